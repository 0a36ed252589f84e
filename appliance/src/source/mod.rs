//! Frame sources behind one interface: the built-in test pattern, Y4M files,
//! and (on the board) the camera.

mod camera;
mod pacer;
mod testpattern;
mod y4m_file;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::frame::{CaptureTime, Frame, FrameError, VideoSize};

pub use camera::CameraSource;
pub use pacer::Pacer;
pub use testpattern::{target_rect, SeqStrip, TargetRect, TestPattern, TARGET_LABEL, TARGET_MODEL};
pub use y4m_file::{read_y4m, Y4mFile};

/// Why a source cannot deliver frames.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The spec is not one of the known forms.
    #[error("unknown source {0:?}: expected auto, testpattern, camera, camera:/dev/videoN or file:PATH.y4m")]
    UnknownSpec(String),
    /// A file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not a Y4M file the source can read.
    #[error("{path} is not a usable Y4M file: {reason}")]
    BadY4m {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A Y4M file holds no frames.
    #[error("{path} holds no frames")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// A frame the source made is invalid.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// No V4L2 capture device is present.
    #[error("no camera found")]
    NoCamera,
    /// The camera failed.
    #[error("camera: {0}")]
    Camera(#[from] board::camera::CameraError),
    /// A camera that streamed and then went away could not be opened again.
    #[error("camera lost: {0}")]
    CameraLost(Box<SourceError>),
}

impl SourceError {
    /// True when trying again later may succeed (a camera unplugged or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::NoCamera => true,
            Self::Camera(e) => e.is_transient(),
            Self::CameraLost(_) => true,
            _ => false,
        }
    }

    /// True when only the frame asked for is bad (a corrupt camera frame):
    /// the source itself is fine and the next frame may be taken.
    pub fn is_bad_frame(&self) -> bool {
        matches!(self, Self::Camera(e) if e.is_bad_frame())
    }
}

/// Where frames come from, as written in the config or on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SourceSpec {
    /// The camera when there is one, else the test pattern.
    Auto,
    /// The built-in test pattern.
    TestPattern,
    /// A V4L2 camera: the given device, or the first one present.
    Camera(Option<PathBuf>),
    /// A Y4M file, looped.
    File(PathBuf),
}

impl FromStr for SourceSpec {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, SourceError> {
        match s {
            "auto" => Ok(Self::Auto),
            "testpattern" => Ok(Self::TestPattern),
            "camera" => Ok(Self::Camera(None)),
            _ => match (s.strip_prefix("file:"), s.strip_prefix("camera:")) {
                (Some(path), _) if !path.is_empty() => Ok(Self::File(path.into())),
                (_, Some(path)) if !path.is_empty() => Ok(Self::Camera(Some(path.into()))),
                _ => Err(SourceError::UnknownSpec(s.to_owned())),
            },
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::TestPattern => f.write_str("testpattern"),
            Self::Camera(None) => f.write_str("camera"),
            Self::Camera(Some(path)) => write!(f, "camera:{}", path.display()),
            Self::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl TryFrom<String> for SourceSpec {
    type Error = SourceError;
    fn try_from(s: String) -> Result<Self, SourceError> {
        s.parse()
    }
}

impl From<SourceSpec> for String {
    fn from(spec: SourceSpec) -> String {
        spec.to_string()
    }
}

/// A producer of frames. The caller decides when a frame is due and passes
/// the capture time in, so a source never reads a clock itself.
pub trait FrameSource: Send {
    /// Size of every frame this source produces.
    fn size(&self) -> VideoSize;
    /// Produces frame number `seq`, stamped with `capture`.
    fn next_frame(&mut self, seq: u64, capture: CaptureTime) -> Result<Frame, SourceError>;
    /// A short description for logs.
    fn describe(&self) -> String;
    /// True when the source delivers frames at its own pace (a camera):
    /// `next_frame` then blocks until one arrives.
    fn paced_by_device(&self) -> bool {
        false
    }
    /// When the device captured the frame `next_frame` last returned, on the
    /// kernel's monotonic clock (`CLOCK_MONOTONIC`, as V4L2 drivers stamp
    /// buffers); `None` for sources without a device clock. The caller, which
    /// owns the clocks, maps it onto the frame's [`CaptureTime`].
    fn driver_timestamp(&self) -> Option<std::time::Duration> {
        None
    }
    /// True when the source reports its own detections (the test pattern's
    /// calibration target), so no detector needs to run on it.
    fn labels_itself(&self) -> bool {
        false
    }
}

/// What a source is asked for; sources that cannot choose ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRequest {
    /// The picture size wanted.
    pub size: VideoSize,
    /// Frames per second wanted.
    pub fps: u32,
    /// For cameras: this pixel format only.
    pub camera_format: Option<board::camera::PixelFormat>,
}

/// Opens the source named by `spec`.
pub fn open(spec: &SourceSpec, request: SourceRequest) -> Result<Box<dyn FrameSource>, SourceError> {
    let camera = |path: Option<PathBuf>| CameraSource::open(path, request.size, request.fps, request.camera_format);
    match spec {
        SourceSpec::Auto => match camera(None) {
            Ok(camera) => Ok(Box::new(camera)),
            Err(SourceError::NoCamera) => {
                tracing::info!("no camera found; using the test pattern");
                Ok(Box::new(TestPattern::new(request.size)))
            }
            Err(e) => Err(e),
        },
        SourceSpec::TestPattern => Ok(Box::new(TestPattern::new(request.size))),
        SourceSpec::Camera(path) => Ok(Box::new(camera(path.clone())?)),
        SourceSpec::File(path) => Ok(Box::new(Y4mFile::open(path)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for text in [
            "auto",
            "testpattern",
            "camera",
            "camera:/dev/video2",
            "file:clips/street.y4m",
        ] {
            assert_eq!(text.parse::<SourceSpec>().unwrap().to_string(), text);
        }
        for bad in ["", "webcam", "file:", "camera:", "testpattern "] {
            let err = bad.parse::<SourceSpec>().unwrap_err().to_string();
            assert!(err.contains("expected auto, testpattern, camera"), "{err}");
        }
    }
}
