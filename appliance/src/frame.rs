//! Raw frames as they travel from a source to the encoder and detector.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::meta::{Detections, FrameMeta};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("frame size {0} is invalid: width and height must be even and between 16 and 4096")]
    BadSize(String),
    #[error("frame buffer holds {got} bytes, a {size} I420 frame needs {need}")]
    BadLength { size: VideoSize, got: usize, need: usize },
}

/// Width and height of a picture: even, 16 to 4096 pixels each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VideoSize {
    width: u16,
    height: u16,
}

impl VideoSize {
    pub fn new(width: u32, height: u32) -> Result<Self, FrameError> {
        let ok = |v: u32| (16..=4096).contains(&v) && v % 2 == 0;
        if ok(width) && ok(height) {
            Ok(Self {
                width: width as u16,
                height: height as u16,
            })
        } else {
            Err(FrameError::BadSize(format!("{width}x{height}")))
        }
    }
    pub fn width(self) -> u32 {
        self.width.into()
    }
    pub fn height(self) -> u32 {
        self.height.into()
    }
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

    pub fn size(&self) -> VideoSize {
        self.size
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The Y, U and V planes; U and V are half the width and height.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let (y, uv) = self.data.split_at(self.size.pixels());
        let (u, v) = uv.split_at(uv.len() / 2);
        (y, u, v)
    }

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

/// Everything about a frame except its pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    pub seq: u64,
    pub capture: CaptureTime,
    pub size: VideoSize,
    pub detections: Option<Detections>,
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
    pub info: FrameInfo,
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
