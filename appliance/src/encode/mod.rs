//! Video encoding behind a small push/pull interface, in the manner of rav1e:
//! push frames with `send_frame`, pull packets with `receive_packet`, and
//! treat `NeedMoreData` and `Full` as flow control rather than failure.

mod aom_backend;
mod rav1e_backend;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::frame::{Frame, FrameInfo, VideoSize};

pub use aom_backend::{AomEncoder, BASE_LAYER_SHARE_PCT};
pub use rav1e_backend::Rav1eEncoder;

/// Which library encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// libaom in real-time mode: no lag, bitrate changes on the fly, temporal layers.
    Aom,
    /// rav1e: pure Rust, but holds about three frames back and cannot change bitrate.
    Rav1e,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Aom => "aom",
            Backend::Rav1e => "rav1e",
        })
    }
}

/// Opens the encoder `settings` name.
pub fn open_encoder(settings: &EncoderSettings) -> Result<Box<dyn VideoEncoder>, EncodeError> {
    Ok(match settings.backend {
        Backend::Aom => Box::new(AomEncoder::new(settings)?),
        Backend::Rav1e => Box::new(Rav1eEncoder::new(settings)?),
    })
}

/// About one tile per 320x240 block of picture, which lets two to four cores work.
fn default_tiles(size: VideoSize) -> usize {
    (size.pixels() / (320 * 240)).clamp(1, 8)
}

/// Encoder errors; the first three are flow control, not failures.
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
    /// The frame is not the size the encoder was opened with.
    #[error("frame is {got}, the encoder was configured for {want}")]
    WrongSize {
        /// The frame's size.
        got: VideoSize,
        /// The size the encoder was opened with.
        want: VideoSize,
    },
    /// The settings are out of the backend's range.
    #[error("encoder settings rejected: {0}")]
    BadSettings(String),
    /// The encoder library reported a failure.
    #[error("encoder failed: {0}")]
    Failed(String),
    /// This backend cannot do what was asked.
    #[error("the {0} backend cannot do that")]
    Unsupported(Backend),
}

/// What an encoder is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderSettings {
    /// Which library encodes.
    pub backend: Backend,
    /// Picture size.
    pub size: VideoSize,
    /// Frames per second.
    pub fps: u32,
    /// Speed, 10 fastest: rav1e's preset (0 to 10) or libaom's real-time `cpu-used` (5 to 10).
    pub speed: u8,
    /// At most this many frames between keyframes.
    pub keyframe_interval: u32,
    /// Target bitrate.
    pub bitrate_kbps: u32,
    /// Lowest quantizer index (0 to 255) rate control may pick. Easy scenes
    /// otherwise get near-lossless quality, which costs CPU time and bits.
    pub min_quantizer: u8,
    /// Worker threads; 0 picks one per core.
    pub threads: usize,
    /// Tiles per frame, more tiles encode in parallel; 0 picks from the size.
    pub tiles: usize,
    /// 1, or 2 for a base layer at half the frame rate that no frame of the
    /// other layer is needed for (libaom only).
    pub temporal_layers: u8,
}

/// One encoded temporal unit (low-overhead OBUs) and the frame it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The frame this packet encodes.
    pub info: FrameInfo,
    /// Decodable on its own.
    pub keyframe: bool,
    /// 0 for the base layer; frames of layer 1 can be left out for a viewer.
    pub temporal_layer: u8,
    /// One temporal unit in low-overhead OBU format.
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
    /// Changes the target bitrate from the next frame on.
    fn set_bitrate(&mut self, kbps: u32) -> Result<(), EncodeError>;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::frame::CaptureTime;
    use crate::source::{FrameSource, TestPattern};
    use std::time::Instant;

    pub(crate) fn settings(size: &str, backend: Backend) -> EncoderSettings {
        EncoderSettings {
            backend,
            size: size.parse().unwrap(),
            fps: 30,
            speed: 10,
            keyframe_interval: 30,
            bitrate_kbps: 500,
            min_quantizer: 0,
            threads: 1,
            tiles: 1,
            temporal_layers: 1,
        }
    }

    /// Test-pattern frame `seq` of `size`.
    pub(crate) fn frame(size: &str, seq: u64) -> Frame {
        let capture = CaptureTime {
            mono: Instant::now(),
            wall_us: seq,
        };
        TestPattern::new(size.parse().unwrap())
            .next_frame(seq, capture)
            .unwrap()
    }

    /// Keyframes exactly at `keyframes`; every packet a temporal unit with a picture.
    pub(crate) fn assert_keyframes_and_temporal_units(packets: &[EncodedFrame], keyframes: &[u64]) {
        use crate::av1::obu::{obus, ObuType};
        let got: Vec<u64> = packets.iter().filter(|p| p.keyframe).map(|p| p.info.seq).collect();
        assert_eq!(got, keyframes);
        for packet in packets {
            let types: Vec<ObuType> = obus(&packet.data).map(|o| o.unwrap().obu_type).collect();
            assert_eq!(types.first(), Some(&ObuType::TemporalDelimiter));
            assert!(types.iter().any(|t| t.starts_picture()));
        }
    }

    /// Pulls every ready packet into `out`; returns the flow-control error that stopped it.
    pub(crate) fn drain(encoder: &mut dyn VideoEncoder, out: &mut Vec<EncodedFrame>) -> EncodeError {
        loop {
            match encoder.receive_packet() {
                Ok(packet) => out.push(packet),
                Err(flow) => return flow,
            }
        }
    }
}
