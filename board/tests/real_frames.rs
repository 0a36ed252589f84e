//! Real frames in each camera format (made by ffmpeg from real footage, as a
//! camera would deliver them) convert to the same picture as ffmpeg's own
//! I420. This covers MJPEG, which the kernel's vivid camera does not offer.

mod support;

use board::camera::{to_i420, PixelFormat, RawFrame};
use support::footage::{footage, frames_in, reference_i420};

const W: u32 = 640;
const H: u32 = 480;
const FRAMES: usize = 8;

/// Peak signal-to-noise ratio in dB between two planes.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn check(format: PixelFormat, min_luma_db: f64, min_chroma_db: f64) {
    let clip = footage(W, H);
    let reference = reference_i420(&clip, W, H, FRAMES);
    let frames = frames_in(&clip, format, W, H, FRAMES);
    assert_eq!(frames.len(), FRAMES, "{format}: ffmpeg made {} frames", frames.len());
    let luma = (W * H) as usize;
    let mut out = Vec::new();
    for (i, (frame, want)) in frames.iter().zip(&reference).enumerate() {
        to_i420(
            &RawFrame {
                format,
                width: W,
                height: H,
                stride: 0,
                data: frame,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), want.len());
        let (y, c) = (psnr(&out[..luma], &want[..luma]), psnr(&out[luma..], &want[luma..]));
        assert!(
            y >= min_luma_db && c >= min_chroma_db,
            "{format} frame {i}: luma {y:.1} dB, chroma {c:.1} dB"
        );
    }
    assert!(
        psnr(&reference[0], &reference[FRAMES - 1]) < 40.0,
        "the footage moves: frames differ"
    );
}

#[test]
fn nv12_is_exact() {
    check(PixelFormat::Nv12, f64::INFINITY, f64::INFINITY);
}

#[test]
fn yu12_is_exact() {
    check(PixelFormat::Yu12, f64::INFINITY, f64::INFINITY);
}

#[test]
fn yuyv_keeps_luma_and_averages_chroma() {
    // ffmpeg makes 4:2:2 from 4:2:0 by interpolating lines; averaging them back is close, not exact.
    check(PixelFormat::Yuyv, f64::INFINITY, 40.0);
}

#[test]
fn mjpeg_decodes_to_the_same_picture() {
    // JPEG is lossy (made at a webcam-like quality): the picture must still match closely.
    check(PixelFormat::Mjpeg, 35.0, 35.0);
}
