//! Conversion cost per frame, camera format to I420, at 640x480 and 1280x720,
//! on real footage. Run with `cargo bench -p board --bench convert`.
//!
//! Frames come from `scripts/fetch-footage` (vtest.avi as Y4M), turned into
//! each camera format by ffmpeg; without them the benchmark says so and stops.

#![allow(clippy::disallowed_methods, reason = "a benchmark measures real time")]

use std::path::Path;
use std::time::{Duration, Instant};

use board::camera::{to_i420, PixelFormat, RawFrame};

#[path = "../tests/support/footage.rs"]
mod footage;
use footage::frames_in;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    println!("| format | size | median per frame | p95 | frames/s at the median |");
    println!("|---|---|---|---|---|");
    for (w, h) in [(640u32, 480u32), (1280, 720)] {
        let y4m = root.join(format!("target/footage/vtest-{w}x{h}.y4m"));
        if !y4m.exists() {
            println!("missing {}: run scripts/fetch-footage", y4m.display());
            return;
        }
        for format in PixelFormat::ALL {
            let frames = frames_in(&y4m, format, w, h, 60);
            let mut out = Vec::new();
            let mut times: Vec<Duration> = frames
                .iter()
                .map(|data| {
                    let start = Instant::now();
                    to_i420(
                        &RawFrame {
                            format,
                            width: w,
                            height: h,
                            stride: 0,
                            data,
                        },
                        &mut out,
                    )
                    .unwrap();
                    start.elapsed()
                })
                .collect();
            times.sort();
            let (median, p95) = (times[times.len() / 2], times[times.len() * 95 / 100]);
            println!(
                "| {format} | {w}x{h} | {:.3} ms | {:.3} ms | {:.0} |",
                median.as_secs_f64() * 1e3,
                p95.as_secs_f64() * 1e3,
                1.0 / median.as_secs_f64()
            );
        }
    }
}
