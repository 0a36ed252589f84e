//! The encode stage as a plain state machine: frames in, framed packets out.
//! It drives an encoder's flow control, attaches each frame's metadata, and
//! follows the bitrate ladder: a rung's frame rate thins the frames, its
//! scale shrinks them, and a new rung gets an encoder of its own.

use std::sync::Arc;

use thiserror::Error;

use crate::adapt::Rung;
use crate::av1::obu::insert_before_picture;
use crate::encode::{open_encoder, EncodeError, EncodedFrame, EncoderSettings, VideoEncoder};
use crate::frame::Frame;
use crate::meta::MetaError;
use crate::scale::{scaled_size, Downscaler};

/// Why the encode stage failed.
#[derive(Debug, Error)]
pub enum EncodeStageError {
    /// The encoder failed (flow control never shows up here).
    #[error("encoder failed: {0}")]
    Encode(#[from] EncodeError),
    /// A frame's metadata could not be framed into its temporal unit.
    #[error("metadata framing failed: {0}")]
    Meta(#[from] MetaError),
}

/// The encode stage: frames in, packets with their metadata OBU out.
///
/// # Driving it
///
/// A plain state machine with no clock, threads or I/O; a frame's time
/// travels inside it (its [`crate::frame::CaptureTime`]), so its outputs
/// depend only on the calls made:
///
/// 1. between frames, the shell may call [`EncodeStage::set_target`] (the rate
///    controller's plan) and [`EncodeStage::request_keyframe`];
/// 2. [`EncodeStage::push`] each frame, in capture order; every packet that
///    became ready is appended to `out`, in order, with its metadata OBU;
/// 3. at the end, `push(None, ..)` flushes the frames still inside the encoder.
///
/// Packets leave in frame order and carry the [`crate::frame::FrameInfo`] of
/// the frame they encode, so nothing here needs to see the time.
///
/// ```
/// use mado::encode::{Backend, EncoderSettings};
/// use mado::frame::CaptureTime;
/// use mado::meta::FrameMeta;
/// use mado::pipeline::EncodeStage;
/// use mado::source::{FrameSource, TestPattern};
///
/// let size = "64x48".parse().unwrap();
/// let settings = EncoderSettings {
///     backend: Backend::Rav1e,
///     size,
///     fps: 30,
///     speed: 10,
///     keyframe_interval: 30,
///     bitrate_kbps: 200,
///     min_quantizer: 64,
///     threads: 1,
///     tiles: 1,
///     temporal_layers: 1,
/// };
/// let mut stage = EncodeStage::adaptive(settings)?;
/// let mut source = TestPattern::new(size);
/// // A simulated clock: one frame every 33 ms from an arbitrary start.
/// let start = CaptureTime { mono: std::time::Instant::now(), wall_us: 1_700_000_000_000_000 };
/// let mut out = Vec::new();
/// for seq in 0..3u64 {
///     let capture = CaptureTime { wall_us: start.wall_us + seq * 33_333, ..start };
///     stage.push(Some(&source.next_frame(seq, capture)?), &mut out)?;
/// }
/// stage.push(None, &mut out)?; // flush
/// let seqs: Vec<u64> = out
///     .iter()
///     .map(|p| FrameMeta::find_in_temporal_unit(&p.data).unwrap().unwrap().seq)
///     .collect();
/// assert_eq!(seqs, [0, 1, 2]);
/// assert!(out[0].keyframe);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EncodeStage {
    encoder: Box<dyn VideoEncoder>,
    /// The full-size settings new rungs start from; `None` for a fixed encoder.
    settings: Option<EncoderSettings>,
    rung: Rung,
    bitrate_kbps: u32,
    scaler: Downscaler,
    /// Frames offered since the rung changed, to thin them to its rate.
    offered: u64,
}

impl EncodeStage {
    /// A stage around one encoder for good.
    pub fn new(encoder: Box<dyn VideoEncoder>) -> Self {
        Self {
            encoder,
            settings: None,
            rung: Rung {
                min_kbps: 0,
                scale: 1,
                fps: u32::MAX,
            },
            bitrate_kbps: 0,
            scaler: Downscaler::default(),
            offered: 0,
        }
    }

    /// A stage that can change bitrate and rung, opening encoders from `settings`.
    pub fn adaptive(settings: EncoderSettings) -> Result<Self, EncodeError> {
        let mut stage = Self::new(open_encoder(&settings)?);
        stage.rung = Rung {
            min_kbps: 0,
            scale: 1,
            fps: settings.fps,
        };
        stage.bitrate_kbps = settings.bitrate_kbps;
        stage.settings = Some(settings);
        Ok(stage)
    }

    /// The next frame pushed becomes a keyframe.
    pub fn request_keyframe(&mut self) {
        self.encoder.request_keyframe();
    }

    /// Encodes from now on at `bitrate_kbps` on `rung`. A new rung flushes
    /// the encoder into `out` and opens another (starting with a keyframe);
    /// a backend that cannot change bitrate keeps its own until then.
    pub fn set_target(
        &mut self,
        bitrate_kbps: u32,
        rung: Rung,
        out: &mut Vec<EncodedFrame>,
    ) -> Result<(), EncodeStageError> {
        let Some(settings) = &self.settings else {
            return Ok(());
        };
        let fps = rung.fps.min(settings.fps);
        if (rung.scale, fps) != (self.rung.scale, self.rung.fps) {
            let next = EncoderSettings {
                size: scaled_size(settings.size, rung.scale),
                fps,
                bitrate_kbps,
                ..settings.clone()
            };
            self.push(None, out)?;
            self.encoder = open_encoder(&next)?;
            self.rung = Rung { fps, ..rung };
            self.offered = 0;
        } else if bitrate_kbps != self.bitrate_kbps {
            match self.encoder.set_bitrate(bitrate_kbps) {
                Ok(()) | Err(EncodeError::Unsupported(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.bitrate_kbps = bitrate_kbps;
        Ok(())
    }

    /// Encodes `frame` (or flushes, for `None`) and appends every packet that
    /// became ready, each carrying its frame's metadata OBU, to `out`. On a
    /// rung with fewer frames or a smaller picture, a frame may be left out
    /// or shrunk first.
    pub fn push(&mut self, frame: Option<&Frame>, out: &mut Vec<EncodedFrame>) -> Result<(), EncodeStageError> {
        let scaled;
        let frame = match (frame, &self.settings) {
            (Some(frame), Some(settings)) => {
                if !self.keeps_next(settings.fps) {
                    return Ok(());
                }
                if self.rung.scale > 1 {
                    let size = scaled_size(frame.image.size(), self.rung.scale);
                    let mut info = frame.info.clone();
                    info.size = size;
                    scaled = Frame {
                        info,
                        image: Arc::new(self.scaler.scale(&frame.image, size)),
                    };
                    Some(&scaled)
                } else {
                    Some(frame)
                }
            }
            (frame, _) => frame,
        };
        loop {
            match self.encoder.send_frame(frame) {
                Ok(()) => break,
                Err(EncodeError::Full) => self.drain(out)?,
                Err(e) => return Err(e.into()),
            }
        }
        self.drain(out)
    }

    /// Whether the next frame from a `source_fps` source is kept at the rung's rate.
    fn keeps_next(&mut self, source_fps: u32) -> bool {
        let (n, fps, source) = (self.offered, u64::from(self.rung.fps), u64::from(source_fps.max(1)));
        self.offered += 1;
        fps >= source || (n + 1) * fps / source > n * fps / source
    }

    fn drain(&mut self, out: &mut Vec<EncodedFrame>) -> Result<(), EncodeStageError> {
        loop {
            match self.encoder.receive_packet() {
                Ok(packet) => out.push(attach_metadata(packet)?),
                Err(EncodeError::NeedMoreData | EncodeError::Finished) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Places the frame's metadata OBU before the picture in its temporal unit,
/// followed by its motion OBU when it has one.
pub fn attach_metadata(mut packet: EncodedFrame) -> Result<EncodedFrame, MetaError> {
    let obu = packet.info.to_meta().to_obu()?;
    packet.data = insert_before_picture(&packet.data, &obu)?;
    if let Some(motion) = &packet.info.motion {
        packet.data = insert_before_picture(&packet.data, &motion.to_obu()?)?;
    }
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{Backend, EncoderSettings, Rav1eEncoder};
    use crate::frame::CaptureTime;
    use crate::meta::FrameMeta;
    use crate::source::{FrameSource, TestPattern};
    use std::time::Instant;

    #[test]
    fn every_frame_comes_out_once_with_its_own_metadata() {
        let size = "128x96".parse().unwrap();
        let settings = EncoderSettings {
            backend: Backend::Rav1e,
            size,
            fps: 30,
            speed: 10,
            keyframe_interval: 60,
            bitrate_kbps: 300,
            min_quantizer: 64,
            threads: 1,
            tiles: 1,
            temporal_layers: 1,
        };
        let mut stage = EncodeStage::new(Box::new(Rav1eEncoder::new(&settings).unwrap()));
        let mut source = TestPattern::new(size);
        let mut out = Vec::new();
        for seq in 0..20 {
            let frame = source
                .next_frame(
                    seq,
                    CaptureTime {
                        mono: Instant::now(),
                        wall_us: 1_000 + seq,
                    },
                )
                .unwrap();
            stage.push(Some(&frame), &mut out).unwrap();
        }
        stage.push(None, &mut out).unwrap();
        assert_eq!(out.len(), 20);
        for (seq, packet) in (0..).zip(&out) {
            let meta = FrameMeta::find_in_temporal_unit(&packet.data).unwrap().unwrap();
            assert_eq!((meta.seq, meta.capture_us), (seq, 1_000 + seq));
            assert_eq!(meta.detections, Some(source_detections(size, seq)));
        }
    }

    fn source_detections(size: crate::frame::VideoSize, seq: u64) -> crate::meta::Detections {
        TestPattern::new(size).detections(seq)
    }

    #[test]
    fn a_lower_rung_halves_the_picture_and_the_frame_rate_from_a_keyframe_on() {
        let settings = crate::encode::tests::settings("320x240", Backend::Aom);
        let mut stage = EncodeStage::adaptive(settings).unwrap();
        let mut out = Vec::new();
        for seq in 0..10 {
            stage
                .push(Some(&crate::encode::tests::frame("320x240", seq)), &mut out)
                .unwrap();
        }
        assert_eq!(out.len(), 10);
        stage
            .set_target(
                200,
                Rung {
                    min_kbps: 0,
                    scale: 2,
                    fps: 15,
                },
                &mut out,
            )
            .unwrap();
        for seq in 10..30 {
            stage
                .push(Some(&crate::encode::tests::frame("320x240", seq)), &mut out)
                .unwrap();
        }
        let after: Vec<_> = out[10..].iter().collect();
        assert_eq!(after.len(), 10, "every other frame of 20");
        assert!(after[0].keyframe, "a new rung starts with a keyframe");
        for packet in after {
            let meta = FrameMeta::find_in_temporal_unit(&packet.data).unwrap().unwrap();
            assert_eq!((meta.width, meta.height), (160, 120));
            assert_eq!(meta.seq % 2, 1, "frames 11, 13, ... are kept");
        }
        // Back to the top: full size and rate again.
        stage
            .set_target(
                500,
                Rung {
                    min_kbps: 0,
                    scale: 1,
                    fps: 30,
                },
                &mut out,
            )
            .unwrap();
        let before = out.len();
        for seq in 30..34 {
            stage
                .push(Some(&crate::encode::tests::frame("320x240", seq)), &mut out)
                .unwrap();
        }
        assert_eq!(out.len() - before, 4);
        assert_eq!(out[before].info.size, "320x240".parse().unwrap());
    }
}
