//! Motion-gated detection: what the motion detector costs per frame at
//! 640x480 and 1280x720, and the CPU seconds per minute of video that
//! detection takes (motion detector, gate and the real detector together)
//! with the gate on and off, on street footage (people walking) and on a
//! still scene (one frame of it, looped, with sensor noise). Frames follow
//! a simulated 30 fps clock; the detector's full rate is `[detect] max_rate`'s
//! default, and it runs on every frame the schedule offers it.
//!
//! Run `scripts/fetch-footage` and `scripts/models/fetch-runtime`, then
//! `cargo bench -p mado --bench motion`. `MADO_BENCH_FRAMES` sets the frames
//! per scene (default 150).

#![allow(clippy::disallowed_methods, reason = "a benchmark measures real time")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mado::config::Config;
use mado::detect::{Detector, ModelDetector};
use mado::frame::{CaptureTime, Yuv420};
use mado::motion::{GateSettings, MotionDetector, MotionGate, MotionSettings};
use mado::pipeline::{DetectMode, DetectSchedule};
use mado::source::{FrameSource, Y4mFile};

const FRAME: Duration = Duration::from_nanos(33_333_333);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// CPU time (user and system) of this process.
fn cpu_time() -> Duration {
    // SAFETY: `rusage` is a plain C struct for which all zeroes is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given, which is ours.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn footage(name: &str, frames: usize) -> Vec<Yuv420> {
    let path = workspace().join("target/footage").join(name);
    let mut source =
        Y4mFile::open(&path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-footage)", path.display()));
    let capture = CaptureTime {
        mono: Instant::now(),
        wall_us: 0,
    };
    (0..frames as u64)
        .map_while(|seq| source.next_frame(seq, capture).ok())
        .map(|f| Yuv420::clone(&f.image))
        .collect()
}

fn noisy(image: &Yuv420, rng: &mut fastrand::Rng) -> Yuv420 {
    let mut out = image.clone();
    let flicker = rng.f32() * 2.0 - 1.0;
    let (luma, _, _) = out.planes_mut();
    for p in luma.iter_mut() {
        let n: f32 = (0..4).map(|_| rng.f32() - 0.5).sum::<f32>() * 4.0 * 1.732;
        *p = (f32::from(*p) + n + flicker).clamp(0.0, 255.0) as u8;
    }
    out
}

/// CPU seconds a minute of video costs, and detector runs, over `frames`.
fn detection_cost(frames: &[Yuv420], gated: bool, detector: &mut impl Detector) -> (f64, usize) {
    let t0 = Instant::now();
    let mut schedule = DetectSchedule::new(DetectMode::Latest, Config::default().detect.max_rate);
    let mut motion = gated.then(|| MotionDetector::new(MotionSettings::default()));
    if gated {
        schedule = schedule.with_gate(MotionGate::new(GateSettings::default()));
    }
    let mut runs = 0;
    let cpu = cpu_time();
    for (seq, image) in frames.iter().enumerate() {
        let now = t0 + FRAME * seq as u32;
        if let Some(m) = &mut motion {
            let found = m.analyze(now, image);
            let _ = schedule.handle_motion(now, &found);
        }
        if schedule.offer(now, seq as u64) {
            runs += 1;
            let mut result = detector.detect(image).unwrap();
            result.frame_seq = seq as u64;
            schedule.on_result(result);
        }
    }
    let spent = (cpu_time() - cpu).as_secs_f64();
    let video_s = frames.len() as f64 / 30.0;
    (spent * 60.0 / video_s, runs)
}

fn main() {
    let frames: usize = std::env::var("MADO_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);

    println!("motion detector alone, per frame (median of 5 passes over the footage):");
    for name in ["vtest-640x480.y4m", "vtest-1280x720.y4m"] {
        let input = footage(name, 120);
        let mut per_frame = Vec::new();
        for _ in 0..5 {
            let mut detector = MotionDetector::new(MotionSettings::default());
            let (t0, cpu) = (Instant::now(), cpu_time());
            let mut moving = 0;
            for (i, image) in input.iter().enumerate() {
                moving += usize::from(detector.analyze(t0 + FRAME * i as u32, image).moving);
            }
            let cpu_us = (cpu_time() - cpu).as_secs_f64() * 1e6 / input.len() as f64;
            per_frame.push((cpu_us, t0.elapsed().as_secs_f64() * 1e6 / input.len() as f64, moving));
        }
        per_frame.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (cpu_us, wall_us, moving) = per_frame[2];
        println!(
            "  {name}: {cpu_us:.0} us CPU, {wall_us:.0} us wall per frame ({:.2}% of one core at 30 fps); {moving} of {} frames moving",
            cpu_us * 30.0 / 1e4,
            input.len()
        );
    }

    let library = mado::detect::litert_library(&workspace());
    let manifest = workspace().join("models/ssd_mobilenetv2_oidv4.toml");
    let mut detector =
        ModelDetector::open_litert(&manifest, &library, 2).expect("the detector (scripts/models/fetch-runtime)");
    let street = footage("vtest-768x576.y4m", frames);
    let mut rng = fastrand::Rng::with_seed(14);
    let still: Vec<Yuv420> = (0..street.len()).map(|_| noisy(&street[0], &mut rng)).collect();
    println!(
        "\ndetection CPU seconds per minute of 768x576 video at 30 fps ({} frames a scene, full rate {} a second):",
        street.len(),
        Config::default().detect.max_rate
    );
    for (scene, input) in [("street", &street), ("still + noise", &still)] {
        let (off, runs_off) = detection_cost(input, false, &mut detector);
        let (on, runs_on) = detection_cost(input, true, &mut detector);
        println!(
            "  {scene:>13}: gate off {off:.1} CPU s/min ({runs_off} runs), gate on {on:.1} CPU s/min ({runs_on} runs): on/off = {:.3}",
            on / off
        );
    }
}
