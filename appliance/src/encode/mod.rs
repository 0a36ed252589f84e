//! Video encoding behind a small push/pull interface, in the manner of rav1e:
//! push frames with `send_frame`, pull packets with `receive_packet`, and
//! treat `NeedMoreData` and `Full` as flow control rather than failure.

mod rav1e_backend;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::frame::{Frame, FrameInfo, VideoSize};

pub use rav1e_backend::Rav1eEncoder;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// Flow control: push more frames before a packet can come out.
    #[error("the encoder needs more frames")]
    NeedMoreData,
    /// Flow control: pull packets before pushing another frame.
    #[error("the encoder is full; receive packets first")]
    Full,
    /// Every frame has been encoded after a flush.
    #[error("end of stream")]
    Finished,
    #[error("frame is {got}, the encoder was configured for {want}")]
    WrongSize { got: VideoSize, want: VideoSize },
    #[error("encoder settings rejected: {0}")]
    BadSettings(String),
    #[error("encoder failed: {0}")]
    Failed(String),
}

/// What an encoder is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderSettings {
    pub size: VideoSize,
    pub fps: u32,
    /// rav1e speed preset, 0 (slowest) to 10 (fastest).
    pub speed: u8,
    /// At most this many frames between keyframes.
    pub keyframe_interval: u32,
    pub bitrate_kbps: u32,
    /// Lowest quantizer index (0 to 255) rate control may pick. Easy scenes
    /// otherwise get near-lossless quality, which costs CPU time and bits.
    pub min_quantizer: u8,
    /// Worker threads; 0 picks one per core.
    pub threads: usize,
    /// Tiles per frame, more tiles encode in parallel; 0 picks from the size.
    pub tiles: usize,
}

/// One encoded temporal unit (low-overhead OBUs) and the frame it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    pub info: FrameInfo,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// A video encoder with a push/pull interface.
pub trait VideoEncoder: Send {
    /// Pushes a frame, or `None` to flush: encode what is queued and finish.
    fn send_frame(&mut self, frame: Option<&Frame>) -> Result<(), EncodeError>;
    /// Pulls the next packet, or a flow-control error.
    fn receive_packet(&mut self) -> Result<EncodedFrame, EncodeError>;
    /// Makes the next frame pushed a keyframe.
    fn request_keyframe(&mut self);
    /// Frames pushed that have not come out as packets yet.
    fn frames_in_flight(&self) -> usize;
}
