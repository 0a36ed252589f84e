//! Frame sources behind one interface: the built-in test pattern, Y4M files,
//! and (on the board) the camera.

mod pacer;
mod testpattern;
mod y4m_file;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::frame::{CaptureTime, Frame, FrameError, VideoSize};

pub use pacer::Pacer;
pub use testpattern::{target_rect, TargetRect, TestPattern, TARGET_LABEL, TARGET_MODEL};
pub use y4m_file::Y4mFile;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("unknown source {0:?}: expected auto, testpattern or file:PATH.y4m")]
    UnknownSpec(String),
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a usable Y4M file: {reason}")]
    BadY4m { path: PathBuf, reason: String },
    #[error("{path} holds no frames")]
    EmptyFile { path: PathBuf },
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Where frames come from, as written in the config or on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SourceSpec {
    /// The camera when there is one, else the test pattern.
    Auto,
    TestPattern,
    File(PathBuf),
}

impl FromStr for SourceSpec {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, SourceError> {
        match s {
            "auto" => Ok(Self::Auto),
            "testpattern" => Ok(Self::TestPattern),
            _ => match s.strip_prefix("file:") {
                Some(path) if !path.is_empty() => Ok(Self::File(path.into())),
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
}

/// Opens the source named by `spec`; `size` applies to sources that can take any size.
pub fn open(spec: &SourceSpec, size: VideoSize) -> Result<Box<dyn FrameSource>, SourceError> {
    match spec {
        SourceSpec::Auto => {
            tracing::info!("no camera support in this build; using the test pattern");
            Ok(Box::new(TestPattern::new(size)))
        }
        SourceSpec::TestPattern => Ok(Box::new(TestPattern::new(size))),
        SourceSpec::File(path) => Ok(Box::new(Y4mFile::open(path)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for text in ["auto", "testpattern", "file:clips/street.y4m"] {
            assert_eq!(text.parse::<SourceSpec>().unwrap().to_string(), text);
        }
        for bad in ["", "camera", "file:", "testpattern "] {
            let err = bad.parse::<SourceSpec>().unwrap_err().to_string();
            assert!(err.contains("expected auto, testpattern or file:PATH.y4m"), "{err}");
        }
    }
}
