//! Encoder benchmark, both backends side by side in one process on the same
//! real footage at 640x480, 1280x720 and 1920x1080: frames per second and
//! per-frame latency (frame pushed to its packet out, metadata attached),
//! back to back and paced at 30 fps. Then the encode stage driving libaom is
//! set against ffmpeg driving the same libaom with the same settings, to show
//! what the stage itself costs.
//!
//! Run `scripts/fetch-footage --bench`, then `cargo bench -p mado --bench encode`.
//! `MADO_BENCH_FRAMES` sets the frames per case (default 90);
//! `MADO_BENCH_VERSUS_ONLY=1` runs only the comparison with ffmpeg.

#![allow(clippy::disallowed_methods, reason = "a benchmark measures real time")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mado::config::Config;
use mado::encode::{open_encoder, Backend, EncodedFrame, EncoderSettings};
use mado::frame::{CaptureTime, Frame, VideoSize};
use mado::pipeline::EncodeStage;
use mado::source::{FrameSource, Y4mFile};

const SIZES: [&str; 3] = ["640x480", "1280x720", "1920x1080"];
/// The fastest libaom speed ffmpeg 5.1's wrapper accepts; used for the comparison.
const FFMPEG_SPEED: u8 = 8;
const REPEATS: usize = 5;

/// Throughput and CPU time per frame of one run.
#[derive(Clone, Copy)]
struct Cost {
    fps: f64,
    cpu_ms: f64,
}

fn median_cost(mut runs: Vec<Cost>) -> Cost {
    let mid = runs.len() / 2;
    runs.sort_by(|a, b| a.fps.total_cmp(&b.fps));
    let fps = runs[mid].fps;
    runs.sort_by(|a, b| a.cpu_ms.total_cmp(&b.cpu_ms));
    Cost {
        fps,
        cpu_ms: runs[mid].cpu_ms,
    }
}

/// CPU time (user and system) of this process, or of its waited-for children.
fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: `rusage` is a plain C struct for which all zeroes is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given, which is ours.
    unsafe { libc::getrusage(who, &mut usage) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The encode stage's cost (or, with `bare`, the encoder's alone, with no
/// metadata framing): frames in to packets out, encoder set-up left out.
fn stage_cost(input: &[Frame], settings: &EncoderSettings, bare: bool) -> Cost {
    let encoder = open_encoder(settings).unwrap();
    let (mut bare, mut stage) = if bare {
        (Some(encoder), None)
    } else {
        (None, Some(EncodeStage::new(encoder)))
    };
    let mut out = Vec::new();
    let (cpu, start) = (cpu_time(libc::RUSAGE_SELF), Instant::now());
    for frame in input.iter().map(Some).chain([None]) {
        if let Some(encoder) = &mut bare {
            encoder.send_frame(frame).unwrap();
            while encoder.receive_packet().is_ok() {}
        } else if let Some(stage) = &mut stage {
            stage.push(frame, &mut out).unwrap();
            out.clear();
        }
    }
    let (wall, cpu) = (start.elapsed(), cpu_time(libc::RUSAGE_SELF) - cpu);
    Cost {
        fps: input.len() as f64 / wall.as_secs_f64(),
        cpu_ms: cpu.as_secs_f64() * 1e3 / input.len() as f64,
    }
}

/// Median and 95th percentile.
fn quantiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(0.95))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let frames: usize = std::env::var("MADO_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(90);
    let e = Config::default().encoder;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "default settings: speed {}, {} kbps, min quantizer {}, {threads} threads, tiles by size; vtest.avi footage",
        e.speed.get(),
        e.bitrate_kbps.get(),
        e.min_quantizer.get()
    );
    let mut table = Vec::new();
    let mut versus = Vec::new();
    for size in SIZES {
        let size: VideoSize = size.parse().unwrap();
        let path = footage(size);
        let input = match Y4mFile::open(&path) {
            Ok(mut source) => load(&mut source, frames),
            Err(e) => {
                println!("skipping {size}: {e} (run scripts/fetch-footage --bench)");
                continue;
            }
        };
        let only_versus = std::env::var_os("MADO_BENCH_VERSUS_ONLY").is_some();
        for backend in [Backend::Aom, Backend::Rav1e].into_iter().filter(|_| !only_versus) {
            let settings = settings(size, backend, None);
            let row = bench(&input, &settings);
            println!("{backend} {size}: {:.1} fps", row.0);
            table.push((backend, size, row));
        }
        let ours = settings(size, Backend::Aom, Some(FFMPEG_SPEED));
        // Alternating runs, medians: the machine's other load hits both alike.
        let (mut stage, mut bare, mut ffmpeg) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            stage.push(stage_cost(&input, &ours, false));
            bare.push(stage_cost(&input, &ours, true));
            match ffmpeg_cost(&path, &ours, input.len()) {
                Some(cost) => ffmpeg.push(cost),
                None => break,
            }
        }
        if ffmpeg.is_empty() {
            println!("ffmpeg with libaom-av1 is not available: no comparison at {size}");
        } else {
            versus.push((size, median_cost(stage), median_cost(bare), median_cost(ffmpeg)));
        }
    }
    println!();
    println!("| backend | size | encode fps | latency median / p95 | paced at 30 fps: median / p95 | kbps |");
    println!("|---|---|---|---|---|---|");
    for (backend, size, (fps, (m, p), (pm, pp), kbps)) in &table {
        println!(
            "| {backend} | {size} | {fps:.1} | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {kbps:.0} |",
            ms(*m),
            ms(*p),
            ms(*pm),
            ms(*pp)
        );
    }
    println!();
    println!(
        "libaom at speed {FFMPEG_SPEED}, same settings: encode stage (metadata attached) vs ffmpeg -c:v libaom-av1, \
         median of {REPEATS} alternating runs"
    );
    println!("and the same encoder driven bare through `VideoEncoder` (no metadata framing)");
    println!(
        "| size | stage fps | ffmpeg fps | stage / ffmpeg fps | stage CPU ms/frame | ffmpeg CPU ms/frame \
         | stage / ffmpeg CPU | bare CPU ms/frame | stage / bare CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (size, stage, bare, ffmpeg) in versus {
        println!(
            "| {size} | {:.1} | {:.1} | {:.3} | {:.2} | {:.2} | {:.3} | {:.2} | {:.3} |",
            stage.fps,
            ffmpeg.fps,
            stage.fps / ffmpeg.fps,
            stage.cpu_ms,
            ffmpeg.cpu_ms,
            stage.cpu_ms / ffmpeg.cpu_ms,
            bare.cpu_ms,
            stage.cpu_ms / bare.cpu_ms
        );
    }
}

fn footage(size: VideoSize) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/footage/vtest-{size}.y4m"))
}

fn settings(size: VideoSize, backend: Backend, speed: Option<u8>) -> EncoderSettings {
    let mut settings = Config::default().encoder_settings(size);
    settings.backend = backend;
    if backend == Backend::Rav1e {
        settings.temporal_layers = 1;
    }
    if let Some(speed) = speed {
        settings.speed = speed;
    }
    settings
}

fn load(source: &mut dyn FrameSource, frames: usize) -> Vec<Frame> {
    let start = Instant::now();
    (0..frames as u64)
        .map(|seq| {
            let capture = CaptureTime {
                mono: start,
                wall_us: seq * 33_333,
            };
            source.next_frame(seq, capture).unwrap()
        })
        .collect()
}

type Row = (f64, (Duration, Duration), (Duration, Duration), f64);

/// Encodes `input` once back to back and once paced at 30 fps.
fn bench(input: &[Frame], settings: &EncoderSettings) -> Row {
    let (latencies, bytes, elapsed) = encode(input, settings, None);
    let fps = input.len() as f64 / elapsed.as_secs_f64();
    let (paced, _, _) = encode(input, settings, Some(Duration::from_secs(1) / 30));
    let kbps = bytes as f64 * 8.0 / (input.len() as f64 / 30.0) / 1000.0;
    (fps, quantiles(latencies), quantiles(paced), kbps)
}

/// Per-frame latencies, total bytes and the time from the first frame in to
/// the last packet out; with `interval`, frames are pushed no faster than that.
fn encode(input: &[Frame], settings: &EncoderSettings, interval: Option<Duration>) -> (Vec<Duration>, usize, Duration) {
    let mut stage = EncodeStage::new(open_encoder(settings).unwrap());
    let mut pushed_at = Vec::with_capacity(input.len());
    let mut latencies = Vec::with_capacity(input.len());
    let mut out: Vec<EncodedFrame> = Vec::new();
    let mut bytes = 0usize;
    let start = Instant::now();
    let mut collect = |out: &mut Vec<EncodedFrame>, pushed_at: &[Instant]| {
        let now = Instant::now();
        for packet in out.drain(..) {
            latencies.push(now - pushed_at[packet.info.seq as usize]);
            bytes += packet.data.len();
        }
    };
    for (i, frame) in input.iter().enumerate() {
        if let Some(interval) = interval {
            let due = start + interval * i as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        pushed_at.push(Instant::now());
        stage.push(Some(frame), &mut out).unwrap();
        collect(&mut out, &pushed_at);
    }
    stage.push(None, &mut out).unwrap();
    collect(&mut out, &pushed_at);
    assert_eq!(latencies.len(), input.len(), "every frame comes out");
    (latencies, bytes, start.elapsed())
}

/// ffmpeg encoding the same file with libaom and the settings
/// `aom_backend.rs` uses, output discarded.
fn ffmpeg_cost(y4m: &Path, s: &EncoderSettings, frames: usize) -> Option<Cost> {
    let tiles = (s.size.pixels() / (320 * 240)).clamp(1, 8);
    let kbps = format!("{}k", s.bitrate_kbps);
    let params = "enable-tpl-model=0:deltaq-mode=0:enable-order-hint=0:max-intra-rate=300:\
                  coeff-cost-upd-freq=3:mode-cost-upd-freq=3:mv-cost-upd-freq=3:enable-global-motion=0:\
                  enable-warped-motion=0:enable-obmc=0:enable-ref-frame-mvs=0:noise-sensitivity=0:\
                  enable-palette=0:enable-cdef=1";
    let tile_columns = (usize::BITS - 1 - tiles.leading_zeros()).to_string();
    let (speed, qmin, gop) = (
        s.speed.to_string(),
        (s.min_quantizer / 4).to_string(),
        s.keyframe_interval.to_string(),
    );
    let input = y4m.to_string_lossy();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).to_string();
    let args = |frames: &str| -> Vec<String> {
        #[rustfmt::skip]
        let args = [
            "-loglevel", "error", "-nostdin", "-stream_loop", "-1", "-i", &input, "-frames:v", frames,
            "-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", &speed, "-lag-in-frames", "0",
            "-row-mt", "1", "-tile-columns", &tile_columns, "-threads", &threads,
            "-b:v", &kbps, "-minrate", &kbps, "-maxrate", &kbps, "-bufsize", &kbps,
            "-undershoot-pct", "50", "-overshoot-pct", "50", "-qmin", &qmin, "-qmax", "63",
            "-aq-mode", "3", "-g", &gop, "-aom-params", params, "-f", "null", "-",
        ];
        args.map(String::from).to_vec()
    };
    let run = |frames: usize| -> Option<(Duration, Duration)> {
        let (cpu, start) = (cpu_time(libc::RUSAGE_CHILDREN), Instant::now());
        let ok = Command::new("ffmpeg")
            .args(args(&frames.to_string()))
            .status()
            .ok()?
            .success();
        ok.then(|| (start.elapsed(), cpu_time(libc::RUSAGE_CHILDREN) - cpu))
    };
    // The difference between a run of 2N frames and one of N leaves out
    // process start-up and encoder set-up, as the stage's timing does.
    let (once, twice) = (run(frames)?, run(2 * frames)?);
    let n = frames as f64;
    Some(Cost {
        fps: n / twice.0.saturating_sub(once.0).as_secs_f64().max(1e-6),
        cpu_ms: twice.1.saturating_sub(once.1).as_secs_f64() * 1e3 / n,
    })
}
