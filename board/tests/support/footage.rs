//! Camera-format frames made by ffmpeg from real footage, for the conversion
//! benchmark and tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use board::camera::PixelFormat;

/// The first frames of `y4m` in `format`, one buffer each, as a camera would deliver them.
pub fn frames_in(y4m: &Path, format: PixelFormat, w: u32, h: u32, frames: usize) -> Vec<Vec<u8>> {
    let (pix_fmt, codec) = match format {
        PixelFormat::Yuyv => ("yuyv422", "rawvideo"),
        PixelFormat::Nv12 => ("nv12", "rawvideo"),
        PixelFormat::Yu12 => ("yuv420p", "rawvideo"),
        PixelFormat::Mjpeg => ("yuvj422p", "mjpeg"),
    };
    let out = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(y4m)
        .args([
            "-frames:v",
            &frames.to_string(),
            "-pix_fmt",
            pix_fmt,
            "-c:v",
            codec,
            "-q:v",
            "3",
            "-f",
        ])
        .arg(if codec == "mjpeg" { "mjpeg" } else { "rawvideo" })
        .arg("-")
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if codec == "mjpeg" {
        split_jpegs(&out.stdout)
    } else {
        let len = match format {
            PixelFormat::Yuyv => (w * h * 2) as usize,
            _ => (w * h * 3 / 2) as usize,
        };
        out.stdout.chunks_exact(len).map(<[u8]>::to_vec).collect()
    }
}

/// Splits a stream of concatenated JPEG images at their start-of-image markers.
pub fn split_jpegs(stream: &[u8]) -> Vec<Vec<u8>> {
    let starts: Vec<usize> = stream
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0xff, 0xd8, 0xff])
        .map(|(i, _)| i)
        .collect();
    starts
        .iter()
        .zip(starts.iter().skip(1).chain([&stream.len()]))
        .map(|(&a, &b)| stream[a..b].to_vec())
        .collect()
}

/// The same frames as ffmpeg's own I420 (`yuv420p`), the reference for conversions.
pub fn reference_i420(y4m: &Path, w: u32, h: u32, frames: usize) -> Vec<Vec<u8>> {
    frames_in(y4m, PixelFormat::Yu12, w, h, frames)
}

/// The footage prepared by `scripts/fetch-footage`, or a clear failure.
pub fn footage(w: u32, h: u32) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/footage/vtest-{w}x{h}.y4m"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-footage (scripts/test-all does)",
        path.display()
    );
    path
}
