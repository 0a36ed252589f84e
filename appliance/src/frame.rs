//! Raw frames as they travel from a source to the encoder and detector.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::meta::{Detections, FrameMeta, MotionMeta};

/// Why a frame or size is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The size is not even or is out of range.
    #[error("frame size {0} is invalid: width and height must be even and between 16 and 4096")]
    BadSize(String),
    /// The buffer is not one I420 picture of the size.
    #[error("frame buffer holds {got} bytes, a {size} I420 frame needs {need}")]
    BadLength {
        /// The picture size.
        size: VideoSize,
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        need: usize,
    },
}

/// Width and height of a picture: even, 16 to 4096 pixels each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VideoSize {
    width: u16,
    height: u16,
}

impl VideoSize {
    /// A size, or an error when `width` or `height` is odd or outside 16..=4096.
    pub fn new(width: u32, height: u32) -> Result<Self, FrameError> {
        let ok = |v: u32| (16..=4096).contains(&v) && v.is_multiple_of(2);
        if ok(width) && ok(height) {
            Ok(Self {
                width: width as u16,
                height: height as u16,
            })
        } else {
            Err(FrameError::BadSize(format!("{width}x{height}")))
        }
    }
    /// Width in pixels.
    pub fn width(self) -> u32 {
        self.width.into()
    }
    /// Height in pixels.
    pub fn height(self) -> u32 {
        self.height.into()
    }
    /// Luma pixels in the picture.
    pub fn pixels(self) -> usize {
        self.width as usize * self.height as usize
    }
    /// Bytes of one I420 frame of this size.
    pub fn i420_len(self) -> usize {
        self.pixels() * 3 / 2
    }
}

impl fmt::Display for VideoSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for VideoSize {
    type Err = FrameError;
    fn from_str(s: &str) -> Result<Self, FrameError> {
        let bad = || FrameError::BadSize(s.to_owned());
        let (w, h) = s.split_once('x').ok_or_else(bad)?;
        Self::new(
            w.trim().parse().map_err(|_| bad())?,
            h.trim().parse().map_err(|_| bad())?,
        )
    }
}

impl TryFrom<String> for VideoSize {
    type Error = FrameError;
    fn try_from(s: String) -> Result<Self, FrameError> {
        s.parse()
    }
}

impl From<VideoSize> for String {
    fn from(size: VideoSize) -> String {
        size.to_string()
    }
}

/// An 8-bit I420 picture: the Y plane, then U, then V, without padding.
#[derive(Clone, PartialEq, Eq)]
pub struct Yuv420 {
    size: VideoSize,
    data: Vec<u8>,
}

impl fmt::Debug for Yuv420 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Yuv420({})", self.size)
    }
}

impl Yuv420 {
    /// A black picture.
    pub fn black(size: VideoSize) -> Self {
        let mut data = vec![16u8; size.i420_len()];
        data[size.pixels()..].fill(128);
        Self { size, data }
    }

    /// Wraps `data`, which must be one I420 picture of `size`.
    pub fn from_bytes(size: VideoSize, data: Vec<u8>) -> Result<Self, FrameError> {
        if data.len() != size.i420_len() {
            return Err(FrameError::BadLength {
                size,
                got: data.len(),
                need: size.i420_len(),
            });
        }
        Ok(Self { size, data })
    }

    /// The picture's size.
    pub fn size(&self) -> VideoSize {
        self.size
    }

    /// The Y, U and V planes, one after the other.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The Y, U and V planes; U and V are half the width and height.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let (y, uv) = self.data.split_at(self.size.pixels());
        let (u, v) = uv.split_at(uv.len() / 2);
        (y, u, v)
    }

    /// The Y, U and V planes, writable.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (y, uv) = self.data.split_at_mut(self.size.pixels());
        let (u, v) = uv.split_at_mut(uv.len() / 2);
        (y, u, v)
    }
}

/// When a frame was captured, on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureTime {
    /// Monotonic time, for latency measurements inside the process.
    pub mono: Instant,
    /// Wall clock, microseconds since the Unix epoch, for the metadata.
    pub wall_us: u64,
}

impl CaptureTime {
    /// The same moment `age` earlier on both clocks, as when a driver
    /// reports that a frame was captured some time before it was read.
    #[must_use]
    pub fn earlier_by(self, age: Duration) -> Self {
        Self {
            mono: self.mono.checked_sub(age).unwrap_or(self.mono),
            wall_us: self
                .wall_us
                .saturating_sub(u64::try_from(age.as_micros()).unwrap_or(u64::MAX)),
        }
    }

    /// The RTP timestamp of a video frame captured at this time: the wall
    /// clock on RTP's 90 kHz video clock, wrapping as RTP timestamps do.
    pub fn rtp_timestamp(self) -> u32 {
        (u128::from(self.wall_us) * 9 / 100) as u32
    }
}

/// Everything about a frame except its pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    /// Number of the frame from its source, from 0.
    pub seq: u64,
    /// When it was captured.
    pub capture: CaptureTime,
    /// Its picture size.
    pub size: VideoSize,
    /// Detections for this frame: `None` until a detector (or the source) gives some.
    pub detections: Option<Detections>,
    /// What the motion detector saw and what the detection gate did; `None` without a gate.
    pub motion: Option<MotionMeta>,
}

impl FrameInfo {
    /// The metadata that travels with this frame's encoding.
    pub fn to_meta(&self) -> FrameMeta {
        FrameMeta {
            seq: self.seq,
            capture_us: self.capture.wall_us,
            width: self.size.width,
            height: self.size.height,
            detections: self.detections.clone(),
        }
    }
}

/// A captured frame. Cloning shares the pixels.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Everything but the pixels.
    pub info: FrameInfo,
    /// The pixels, shared between the encoder and the detector.
    pub image: Arc<Yuv420>,
}

impl Frame {
    /// Frame `seq` holding `image`, captured at `capture`, not yet looked at by a detector.
    pub fn new(seq: u64, capture: CaptureTime, image: Yuv420) -> Self {
        let info = FrameInfo {
            seq,
            capture,
            size: image.size(),
            detections: None,
            motion: None,
        };
        Self {
            info,
            image: Arc::new(image),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_time_moved_back_past_the_epoch_stops_there() {
        // A board without a real-time clock can boot with its wall clock at
        // the epoch: a frame's age must not wrap its capture time around.
        let now = CaptureTime {
            mono: Instant::now(),
            wall_us: 5_000,
        };
        let earlier = now.earlier_by(Duration::from_millis(40));
        assert_eq!(earlier.wall_us, 0);
        assert!(earlier.mono <= now.mono);
        let later = CaptureTime {
            wall_us: 1_000_000,
            ..now
        };
        assert_eq!(later.earlier_by(Duration::from_millis(40)).wall_us, 960_000);
    }

    #[test]
    fn rtp_timestamps_count_90_khz_from_the_wall_clock() {
        let at = |wall_us| CaptureTime {
            mono: Instant::now(),
            wall_us,
        };
        assert_eq!(at(1_000_000).rtp_timestamp(), 90_000);
        assert_eq!(
            at(1_000_000 + 33_333)
                .rtp_timestamp()
                .wrapping_sub(at(1_000_000).rtp_timestamp()),
            2_999
        );
        // Late in the epoch the 90 kHz count wraps instead of overflowing.
        assert_eq!(at(u64::MAX).rtp_timestamp(), (u128::from(u64::MAX) * 9 / 100) as u32);
    }

    #[test]
    fn sizes_parse_and_validate() {
        assert_eq!(
            "1280x720".parse::<VideoSize>().unwrap(),
            VideoSize::new(1280, 720).unwrap()
        );
        for bad in ["1280", "641x480", "8x8", "99999x2", "ax b", "640x480x3"] {
            assert!(bad.parse::<VideoSize>().is_err(), "{bad}");
        }
        let size = VideoSize::new(64, 32).unwrap();
        let picture = Yuv420::black(size);
        let (y, u, v) = picture.planes();
        assert_eq!((y.len(), u.len(), v.len()), (2048, 512, 512));
        assert!(Yuv420::from_bytes(size, vec![0; 10]).is_err());
    }
}
