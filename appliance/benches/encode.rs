//! Encoder benchmark: frames per second and per-frame latency (frame pushed
//! into the encoder to its packet out, metadata attached) at 640x480 and
//! 1280x720, on the test pattern and on real footage.
//!
//! Run with `cargo bench -p mado --bench encode`. Real footage comes from
//! `scripts/fetch-footage`; without it those rows are skipped.
//! `MADO_BENCH_FRAMES` sets the frames per case (default 90).

use std::path::Path;
use std::time::{Duration, Instant};

use mado::config::Config;
use mado::encode::{EncodedFrame, Rav1eEncoder};
use mado::frame::{CaptureTime, Frame, VideoSize};
use mado::pipeline::EncodeStage;
use mado::source::{FrameSource, TestPattern, Y4mFile};

struct Row {
    content: &'static str,
    size: VideoSize,
    frames: usize,
    fps: f64,
    latency_median: Duration,
    latency_p95: Duration,
    paced_median: Duration,
    paced_p95: Duration,
    kbps: f64,
}

/// Median and 95th percentile.
fn quantiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(0.95))
}

fn main() {
    let frames: usize = std::env::var("MADO_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(90);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let e = Config::default().encoder;
    println!(
        "rav1e default settings: speed {}, {} kbps, min quantizer {}, {threads} threads, tiles by size; frames fed back to back",
        e.speed.get(),
        e.bitrate_kbps.get(),
        e.min_quantizer.get()
    );
    let mut rows = Vec::new();
    for size in ["640x480", "1280x720"] {
        let size: VideoSize = size.parse().unwrap();
        rows.push(bench("test pattern", load(&mut TestPattern::new(size), frames), size));
        let footage = format!("target/footage/vtest-{size}.y4m");
        let footage = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(footage);
        match Y4mFile::open(&footage) {
            Ok(mut source) => rows.push(bench("vtest.avi footage", load(&mut source, frames), size)),
            Err(e) => println!("skipping footage at {size}: {e} (run scripts/fetch-footage)"),
        }
    }
    println!();
    println!(
        "Latency is frame pushed to its packet out (metadata attached): back to back, and with frames paced at 30 fps."
    );
    println!(
        "| content | size | frames | encode fps | latency median / p95 | at 30 fps: median / p95 | kbps at 30 fps |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {:.0} |",
            r.content,
            r.size,
            r.frames,
            r.fps,
            r.latency_median.as_secs_f64() * 1e3,
            r.latency_p95.as_secs_f64() * 1e3,
            r.paced_median.as_secs_f64() * 1e3,
            r.paced_p95.as_secs_f64() * 1e3,
            r.kbps
        );
    }
}

fn load(source: &mut dyn FrameSource, frames: usize) -> Vec<Frame> {
    let start = Instant::now();
    (0..frames as u64)
        .map(|seq| {
            source
                .next_frame(
                    seq,
                    CaptureTime {
                        mono: start,
                        wall_us: seq * 33_333,
                    },
                )
                .unwrap()
        })
        .collect()
}

/// Encodes `input` once back to back and once paced at 30 fps.
fn bench(content: &'static str, input: Vec<Frame>, size: VideoSize) -> Row {
    let start = Instant::now();
    let (latencies, bytes) = encode(&input, size, None);
    let elapsed = start.elapsed();
    let (paced, _) = encode(&input, size, Some(Duration::from_secs(1) / 30));
    let (latency_median, latency_p95) = quantiles(latencies);
    let (paced_median, paced_p95) = quantiles(paced);
    let row = Row {
        content,
        size,
        frames: input.len(),
        fps: input.len() as f64 / elapsed.as_secs_f64(),
        latency_median,
        latency_p95,
        paced_median,
        paced_p95,
        kbps: bytes as f64 * 8.0 / (input.len() as f64 / 30.0) / 1000.0,
    };
    println!(
        "{content} {size}: {:.1} fps, median latency {:?}",
        row.fps, row.latency_median
    );
    row
}

/// Per-frame latencies and total bytes; with `interval`, frames are pushed no faster than that.
fn encode(input: &[Frame], size: VideoSize, interval: Option<Duration>) -> (Vec<Duration>, usize) {
    let settings = Config::default().encoder_settings(size);
    let mut stage = EncodeStage::new(Box::new(Rav1eEncoder::new(&settings).unwrap()));
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
    assert_eq!(latencies.len(), input.len(), "every frame came out");
    (latencies, bytes)
}
