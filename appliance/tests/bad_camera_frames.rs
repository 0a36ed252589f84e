//! A camera that delivers corrupt frames, or vanishes and cannot be opened
//! again for a while, never ends the pipeline: bad frames are counted and
//! skipped, and the good ones around them are all encoded.
//!
//! The source replays real MJPEG frames (made by ffmpeg, as a UVC camera
//! sends them) through the board's real converter, exactly as
//! `board::camera::Camera::next_frame` does; some are garbled, cut short or
//! empty on the way, as a flaky USB link delivers them.

use std::process::Command;
use std::time::Instant;

use board::camera::{to_i420, CameraError, PixelFormat, RawFrame};
use mado::encode::{Backend, EncoderSettings, Rav1eEncoder};
use mado::frame::{CaptureTime, Frame, VideoSize, Yuv420};
use mado::pipeline::{EncodeStage, Pace, Pipeline, PipelineOptions};
use mado::source::{FrameSource, SourceError};

const W: u32 = 96;
const H: u32 = 64;

/// Real JPEG frames of ffmpeg's test source, one per element.
fn jpeg_frames(count: usize) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc=size={W}x{H}:rate=30"),
        ])
        .args([
            "-frames:v",
            &count.to_string(),
            "-pix_fmt",
            "yuvj422p",
            "-f",
            "mjpeg",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Each frame ends with the end-of-image marker.
    let mut frames = Vec::new();
    let mut start = 0;
    for at in 0..out.stdout.len().saturating_sub(1) {
        if out.stdout[at..at + 2] == [0xff, 0xd9] {
            frames.push(out.stdout[start..at + 2].to_vec());
            start = at + 2;
        }
    }
    assert_eq!(frames.len(), count);
    frames
}

/// What happens to frame `i` on the way from the camera.
fn damage(i: usize, jpeg: &[u8]) -> Vec<u8> {
    match i % 5 {
        1 => Vec::new(),                          // bytesused 0
        3 => jpeg[..jpeg.len().min(40)].to_vec(), // cut inside the headers
        4 if i % 10 == 4 => b"\x00\x00 not a jpeg at all".to_vec(),
        _ => jpeg.to_vec(),
    }
}

struct FlakyCamera {
    frames: Vec<Vec<u8>>,
    next: usize,
    /// Frames after which the camera is lost and reopening fails this many times.
    lost_at: usize,
    lost_for: usize,
}

impl FrameSource for FlakyCamera {
    fn size(&self) -> VideoSize {
        VideoSize::new(W, H).unwrap()
    }

    fn next_frame(&mut self, seq: u64, capture: CaptureTime) -> Result<Frame, SourceError> {
        if self.next == self.lost_at && self.lost_for > 0 {
            self.lost_for -= 1;
            // What `CameraSource` reports when a camera that streamed cannot be opened again.
            let unusable = CameraError::NoUsableFormat {
                path: "/dev/video9".into(),
                offered: "H264".into(),
            };
            return Err(SourceError::CameraLost(Box::new(unusable.into())));
        }
        let i = self.next;
        self.next = (self.next + 1) % self.frames.len();
        let data = damage(i, &self.frames[i]);
        let mut out = Vec::new();
        let raw = RawFrame {
            format: PixelFormat::Mjpeg,
            width: W,
            height: H,
            stride: 0,
            data: &data,
        };
        to_i420(&raw, &mut out).map_err(|source| CameraError::Convert {
            path: "/dev/video9".into(),
            source,
        })?;
        Ok(Frame::new(seq, capture, Yuv420::from_bytes(self.size(), out)?))
    }

    fn describe(&self) -> String {
        "flaky camera".into()
    }

    fn paced_by_device(&self) -> bool {
        true
    }
}

#[test]
fn corrupt_frames_are_counted_and_skipped_and_a_lost_camera_is_retried() {
    let frames = jpeg_frames(30);
    let bad = (0..frames.len())
        .filter(|&i| damage(i, &frames[i]) != frames[i])
        .count();
    let source = FlakyCamera {
        frames,
        next: 0,
        lost_at: 7,
        lost_for: 2,
    };
    let settings = EncoderSettings {
        backend: Backend::Rav1e,
        size: source.size(),
        fps: 30,
        speed: 10,
        keyframe_interval: 30,
        bitrate_kbps: 200,
        min_quantizer: 64,
        threads: 1,
        tiles: 1,
        temporal_layers: 1,
    };
    let encoder = Rav1eEncoder::new(&settings).unwrap();
    let good = 30 - bad as u64;
    let options = PipelineOptions {
        pace: Pace::AsFastAsPossible,
        queue_frames: 64,
        frame_limit: Some(good),
    };
    #[allow(clippy::disallowed_methods, reason = "the test times the real pipeline")]
    let started = Instant::now();
    let pipeline = Pipeline::start(Box::new(source), EncodeStage::new(Box::new(encoder)), options, None).unwrap();
    let packets = std::iter::from_fn(|| pipeline.output().recv_blocking().ok()).count();
    let stats = pipeline
        .join()
        .expect("bad frames and a lost camera do not end the pipeline");
    assert_eq!(stats.bad_frames, bad as u64);
    assert_eq!((stats.captured, stats.encoded, packets as u64), (good, good, good));
    assert!(!stats.source_lost, "the camera came back");
    assert!(started.elapsed().as_secs() < 60);
}
