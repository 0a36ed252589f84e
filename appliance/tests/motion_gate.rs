//! Motion-gated detection on real footage, with the real detector, through
//! the pipeline's own schedule (`DetectSchedule` with its `MotionGate`) on a
//! simulated 30 fps clock:
//!
//! - on `vtest` (people walking) the person recall with the gate on is at
//!   least 98% of the recall without it, frame by frame against the
//!   ungated run (each frame's carried detections matched by IoU);
//! - on a still scene (one frame of the same footage, looped, with sensor
//!   noise) the detector runs at least 10 times less often;
//! - a lighting step on that still scene does not wake it.
//!
//! Needs target/footage/ (scripts/fetch-footage) and the LiteRT library
//! (scripts/models/fetch-runtime).

#![allow(
    clippy::disallowed_methods,
    reason = "the simulated clock starts from a real Instant"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mado::detect::{Detector, ModelDetector};
use mado::frame::{CaptureTime, Yuv420};
use mado::meta::{Detections, GateMode};
use mado::motion::{GateSettings, MotionDetector, MotionGate, MotionSettings};
use mado::pipeline::{Attach, DetectMode, DetectSchedule};
use mado::source::{FrameSource, Y4mFile};

const FRAME: Duration = Duration::from_nanos(33_333_333);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn detector() -> ModelDetector<mado::detect::LiteRt> {
    let library = mado::detect::litert_library(&workspace());
    assert!(
        library.exists(),
        "{} is missing: run scripts/models/fetch-runtime",
        library.display()
    );
    let manifest = workspace().join("models/ssd_mobilenetv2_oidv4.toml");
    ModelDetector::open_litert(&manifest, &library, 2).unwrap()
}

fn footage(frames: usize) -> Vec<Yuv420> {
    let path = workspace().join("target/footage/vtest-768x576.y4m");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-footage",
        path.display()
    );
    let mut source = Y4mFile::open(&path).unwrap();
    let capture = CaptureTime {
        mono: Instant::now(),
        wall_us: 0,
    };
    (0..frames as u64)
        .map(|seq| Yuv420::clone(&source.next_frame(seq, capture).unwrap().image))
        .collect()
}

/// `image` with sensor-like noise: Gaussian-like per pixel (sigma about 4
/// levels) and a small per-frame flicker of the whole picture.
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

/// What one run did: the detections each frame carried, and detector runs.
struct Run {
    carried: Vec<Option<Detections>>,
    runs: usize,
    modes: Vec<Option<GateMode>>,
}

/// Feeds `frames` through the schedule as the pipeline's source thread does,
/// running the detector on every frame the schedule offers it (the result
/// comes back at once, as with a detector faster than the frame rate).
fn run(frames: &[Yuv420], gated: bool, detector: &mut impl Detector) -> Run {
    let t0 = Instant::now();
    let mut schedule = DetectSchedule::new(DetectMode::Latest, 1000.0);
    let mut motion = gated.then(|| MotionDetector::new(MotionSettings::default()));
    if gated {
        schedule = schedule.with_gate(MotionGate::new(GateSettings::default()));
    }
    let mut out = Run {
        carried: Vec::new(),
        runs: 0,
        modes: Vec::new(),
    };
    for (seq, image) in frames.iter().enumerate() {
        let now = t0 + FRAME * seq as u32;
        let seq = seq as u64;
        if let Some(m) = &mut motion {
            let found = m.analyze(now, image);
            let _ = schedule.handle_motion(now, &found);
        }
        if schedule.offer(now, seq) {
            out.runs += 1;
            let mut result = detector.detect(image).unwrap();
            result.frame_seq = seq;
            result.items.retain(|d| d.label.as_str() == "Person");
            schedule.on_result(result);
        }
        out.modes.push(schedule.gate_mode(now));
        match schedule.attach(seq) {
            Attach::Ready(d) => out.carried.push(d),
            Attach::Wait => unreachable!("latest mode never waits"),
        }
    }
    out
}

fn iou(a: [u32; 4], b: [u32; 4]) -> f64 {
    let [ax, ay, aw, ah] = a.map(f64::from);
    let [bx, by, bw, bh] = b.map(f64::from);
    let w = ((ax + aw).min(bx + bw) - ax.max(bx)).max(0.0);
    let h = ((ay + ah).min(by + bh) - ay.max(by)).max(0.0);
    let inter = w * h;
    inter / (aw * ah + bw * bh - inter).max(1.0)
}

/// People in the reference frames, and how many of them the gated run's
/// frames carry (IoU at least 0.5, each box matched once).
fn matched(reference: &[Option<Detections>], gated: &[Option<Detections>]) -> (usize, usize) {
    let boxes = |d: &Option<Detections>| -> Vec<[u32; 4]> {
        d.iter()
            .flat_map(|d| d.items.iter().map(|i| i.bbox.to_pixels(768, 576)))
            .collect()
    };
    let (mut people, mut found) = (0, 0);
    for (r, g) in reference.iter().zip(gated) {
        let mut candidates = boxes(g);
        for person in boxes(r) {
            people += 1;
            if let Some(at) = candidates.iter().position(|c| iou(person, *c) >= 0.5) {
                candidates.swap_remove(at);
                found += 1;
            }
        }
    }
    (people, found)
}

#[test]
fn on_street_footage_the_gate_keeps_the_person_recall() {
    let frames = footage(300);
    let mut detector = detector();
    let ungated = run(&frames, false, &mut detector);
    let gated = run(&frames, true, &mut detector);
    assert_eq!(ungated.runs, frames.len(), "without the gate every frame is looked at");
    let (people, found) = matched(&ungated.carried, &gated.carried);
    let moving = gated.modes.iter().filter(|m| **m != Some(GateMode::Still)).count();
    eprintln!(
        "street: {people} people in the ungated frames, {found} carried by the gated run ({:.1}%); \
         detector runs {} gated, {} ungated; {moving} of {} frames at full rate",
        100.0 * found as f64 / people as f64,
        gated.runs,
        ungated.runs,
        frames.len()
    );
    assert!(people >= 300, "only {people} people found in the footage");
    assert!(found * 100 >= people * 98, "recall with the gate: {found} of {people}");
}

#[test]
fn on_a_still_noisy_scene_the_detector_runs_ten_times_less_and_a_lighting_step_does_not_wake_it() {
    let still = footage(1).remove(0);
    let mut rng = fastrand::Rng::with_seed(14);
    // 10 s at 30 fps; from 6 s on, the scene is 25% brighter (an auto-exposure step).
    let frames: Vec<Yuv420> = (0..300)
        .map(|i| {
            let mut frame = noisy(&still, &mut rng);
            if i >= 180 {
                let (luma, _, _) = frame.planes_mut();
                for p in luma.iter_mut() {
                    *p = (f32::from(*p) * 1.25).min(255.0) as u8;
                }
            }
            frame
        })
        .collect();
    let mut detector = detector();
    let ungated = run(&frames, false, &mut detector);
    let gated = run(&frames, true, &mut detector);
    let full_rate = gated.modes.iter().filter(|m| **m != Some(GateMode::Still)).count();
    eprintln!(
        "still scene: detector runs {} gated, {} ungated ({:.1}x fewer); {full_rate} frames at full rate",
        gated.runs,
        ungated.runs,
        ungated.runs as f64 / gated.runs as f64
    );
    assert_eq!(ungated.runs, 300);
    assert!(gated.runs * 10 <= ungated.runs, "{} runs with the gate", gated.runs);
    assert_eq!(full_rate, 0, "noise or the lighting step woke the gate");
}
