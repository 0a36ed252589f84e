//! Frames a broken or hostile camera could deliver: each is an error from
//! `to_i420`, never a panic, and a JPEG header that claims a huge picture is
//! refused before anything of that size is allocated.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::process::Command;

use board::camera::{to_i420, ConvertError, PixelFormat, RawFrame};

/// Records the largest single allocation each thread makes (tests run on
/// threads of their own, side by side).
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

fn largest_since_reset() -> usize {
    LARGEST.with(|largest| largest.replace(0))
}

// SAFETY: every call is passed straight to the system allocator.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `alloc`; `ptr` came from this allocator, which is the system's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the system allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// One real 64x48 JPEG from ffmpeg's test source, as a UVC camera sends it.
fn small_jpeg() -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=1",
            "-frames:v",
            "1",
        ])
        .args(["-pix_fmt", "yuvj422p", "-f", "mjpeg", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Rewrites the picture size in the JPEG's start-of-frame header.
fn with_header_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    let sof = out
        .windows(2)
        .position(|m| m == [0xff, 0xc0])
        .expect("a baseline SOF0 marker");
    out[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    out[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    out
}

fn convert(format: PixelFormat, width: u32, height: u32, stride: u32, data: &[u8]) -> Result<Vec<u8>, ConvertError> {
    let mut out = Vec::new();
    to_i420(
        &RawFrame {
            format,
            width,
            height,
            stride,
            data,
        },
        &mut out,
    )?;
    Ok(out)
}

#[test]
fn the_real_jpeg_converts() {
    let out = convert(PixelFormat::Mjpeg, 64, 48, 0, &small_jpeg()).unwrap();
    assert_eq!(out.len(), 64 * 48 * 3 / 2);
}

#[test]
fn a_jpeg_claiming_a_huge_picture_is_refused_before_allocating_it() {
    let huge = with_header_size(&small_jpeg(), 16000, 16000);
    // Warm up whatever the test harness and ffmpeg's output allocate.
    let _ = convert(PixelFormat::Mjpeg, 64, 48, 0, &small_jpeg());
    largest_since_reset();
    let err = convert(PixelFormat::Mjpeg, 64, 48, 0, &huge).unwrap_err();
    let largest = largest_since_reset();
    assert!(
        matches!(err, ConvertError::Jpeg(_) | ConvertError::JpegSize { .. }),
        "{err}"
    );
    assert!(
        largest < 1 << 20,
        "a 16000x16000 header made a {largest}-byte allocation"
    );
}

#[test]
fn a_jpeg_of_another_size_or_cut_short_is_an_error() {
    let jpeg = small_jpeg();
    let err = convert(PixelFormat::Mjpeg, 64, 48, 0, &with_header_size(&jpeg, 64, 40)).unwrap_err();
    assert!(matches!(err, ConvertError::JpegSize { got_h: 40, .. }), "{err}");
    for cut in [0, 2, 20] {
        assert!(
            convert(PixelFormat::Mjpeg, 64, 48, 0, &jpeg[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn a_stride_shorter_than_a_line_is_an_error_for_every_raw_format() {
    let data = vec![0u8; 64 * 48 * 2];
    for format in [PixelFormat::Yu12, PixelFormat::Nv12, PixelFormat::Yuyv] {
        for stride in [1, 2, 63] {
            let err = convert(format, 64, 48, stride, &data).unwrap_err();
            assert!(
                matches!(err, ConvertError::StrideTooSmall { .. }),
                "{format} stride {stride}: {err}"
            );
        }
    }
}

#[test]
fn sizes_too_large_to_be_a_camera_frame_are_refused_without_allocating() {
    largest_since_reset();
    for format in PixelFormat::ALL {
        let err = convert(format, 60000, 60000, 0, &[0; 64]).unwrap_err();
        assert!(matches!(err, ConvertError::TooLarge(60000, 60000)), "{format}: {err}");
    }
    for format in [PixelFormat::Yu12, PixelFormat::Nv12, PixelFormat::Yuyv] {
        let err = convert(format, 4096, 4096, u32::MAX, &[0; 64]).unwrap_err();
        assert!(matches!(err, ConvertError::ShortBuffer { .. }), "{format}: {err}");
    }
    assert!(largest_since_reset() < 1 << 20);
}

#[test]
fn a_zero_width_or_height_is_an_error_for_every_format() {
    for format in PixelFormat::ALL {
        for (w, h) in [(0, 2), (4, 0), (0, 0)] {
            let err = convert(format, w, h, 0, &[0; 64]).unwrap_err();
            assert!(matches!(err, ConvertError::OddSize(..)), "{format} {w}x{h}: {err}");
        }
    }
}
