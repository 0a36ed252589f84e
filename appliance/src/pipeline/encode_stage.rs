//! The encode stage as a plain state machine: frames in, framed packets out.
//! It drives an encoder's flow control and attaches each frame's metadata.

use super::PipelineError;
use crate::av1::obu::insert_before_picture;
use crate::encode::{EncodeError, EncodedFrame, VideoEncoder};
use crate::frame::Frame;

pub struct EncodeStage {
    encoder: Box<dyn VideoEncoder>,
}

impl EncodeStage {
    pub fn new(encoder: Box<dyn VideoEncoder>) -> Self {
        Self { encoder }
    }

    pub fn request_keyframe(&mut self) {
        self.encoder.request_keyframe();
    }

    /// Encodes `frame` (or flushes, for `None`) and appends every packet that
    /// became ready, each carrying its frame's metadata OBU, to `out`.
    pub fn push(&mut self, frame: Option<&Frame>, out: &mut Vec<EncodedFrame>) -> Result<(), PipelineError> {
        loop {
            match self.encoder.send_frame(frame) {
                Ok(()) => break,
                Err(EncodeError::Full) => self.drain(out)?,
                Err(e) => return Err(e.into()),
            }
        }
        self.drain(out)
    }

    fn drain(&mut self, out: &mut Vec<EncodedFrame>) -> Result<(), PipelineError> {
        loop {
            match self.encoder.receive_packet() {
                Ok(packet) => out.push(attach_metadata(packet)?),
                Err(EncodeError::NeedMoreData | EncodeError::Finished) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Places the frame's metadata OBU before the picture in its temporal unit.
pub fn attach_metadata(mut packet: EncodedFrame) -> Result<EncodedFrame, PipelineError> {
    let obu = packet.info.to_meta().to_obu()?;
    packet.data = insert_before_picture(&packet.data, &obu).map_err(crate::meta::MetaError::from)?;
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
}
