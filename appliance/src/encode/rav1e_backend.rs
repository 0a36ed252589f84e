//! The rav1e backend, configured for low latency: no frame reordering,
//! one frame of RDO lookahead, no scene-change keyframes.

use rav1e::config::SpeedSettings;
use rav1e::prelude::*;

use super::{Backend, EncodeError, EncodedFrame, EncoderSettings, VideoEncoder};
use crate::frame::{Frame, FrameInfo, VideoSize};

/// rav1e's AV1 encoder, in low-latency mode.
pub struct Rav1eEncoder {
    ctx: Context<u8>,
    size: VideoSize,
    keyframe_requested: bool,
    in_flight: usize,
}

impl Rav1eEncoder {
    /// Opens rav1e with `settings`.
    pub fn new(settings: &EncoderSettings) -> Result<Self, EncodeError> {
        let size = settings.size;
        if settings.temporal_layers != 1 {
            return Err(EncodeError::BadSettings("rav1e encodes one temporal layer".into()));
        }
        let mut speed = SpeedSettings::from_preset(settings.speed.min(10));
        speed.rdo_lookahead_frames = 1;
        speed.scene_detection_mode = SceneDetectionSpeed::None;
        let config = EncoderConfig {
            width: size.width() as usize,
            height: size.height() as usize,
            time_base: Rational::new(1, u64::from(settings.fps.max(1))),
            low_latency: true,
            min_quantizer: settings.min_quantizer,
            min_key_frame_interval: 0,
            max_key_frame_interval: u64::from(settings.keyframe_interval.max(1)),
            bitrate: i32::try_from(u64::from(settings.bitrate_kbps) * 1000).unwrap_or(i32::MAX),
            tiles: if settings.tiles == 0 {
                super::default_tiles(size)
            } else {
                settings.tiles
            },
            speed_settings: speed,
            ..EncoderConfig::with_speed_preset(settings.speed.min(10))
        };
        let ctx = Config::new()
            .with_encoder_config(config)
            .with_threads(settings.threads)
            .new_context()
            .map_err(|e| EncodeError::BadSettings(e.to_string()))?;
        Ok(Self {
            ctx,
            size,
            keyframe_requested: false,
            in_flight: 0,
        })
    }
}

impl VideoEncoder for Rav1eEncoder {
    fn send_frame(&mut self, frame: Option<&Frame>) -> Result<(), EncodeError> {
        let Some(frame) = frame else {
            self.ctx.flush();
            return Ok(());
        };
        if frame.image.size() != self.size {
            return Err(EncodeError::WrongSize {
                got: frame.image.size(),
                want: self.size,
            });
        }
        let mut input = self.ctx.new_frame();
        let (y, u, v) = frame.image.planes();
        let width = self.size.width() as usize;
        input.planes[0].copy_from_raw_u8(y, width, 1);
        input.planes[1].copy_from_raw_u8(u, width / 2, 1);
        input.planes[2].copy_from_raw_u8(v, width / 2, 1);
        let params = FrameParameters {
            frame_type_override: if self.keyframe_requested {
                FrameTypeOverride::Key
            } else {
                FrameTypeOverride::No
            },
            opaque: Some(Opaque::new(frame.info.clone())),
            t35_metadata: Box::new([]),
        };
        match self.ctx.send_frame((input, params)) {
            Ok(()) => {
                self.keyframe_requested = false;
                self.in_flight += 1;
                Ok(())
            }
            Err(EncoderStatus::EnoughData) => Err(EncodeError::Full),
            Err(status) => Err(EncodeError::Failed(status.to_string())),
        }
    }

    fn receive_packet(&mut self) -> Result<EncodedFrame, EncodeError> {
        loop {
            match self.ctx.receive_packet() {
                Ok(packet) => {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    let info = packet
                        .opaque
                        .and_then(|o| o.downcast::<FrameInfo>().ok())
                        .ok_or_else(|| EncodeError::Failed("packet lost its frame info".into()))?;
                    return Ok(EncodedFrame {
                        info: *info,
                        keyframe: packet.frame_type == FrameType::KEY,
                        temporal_layer: 0,
                        data: packet.data,
                    });
                }
                // A frame was encoded but produced no packet yet: ask again.
                Err(EncoderStatus::Encoded) => continue,
                Err(EncoderStatus::NeedMoreData) => return Err(EncodeError::NeedMoreData),
                Err(EncoderStatus::LimitReached) => return Err(EncodeError::Finished),
                Err(status) => return Err(EncodeError::Failed(status.to_string())),
            }
        }
    }

    fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    fn frames_in_flight(&self) -> usize {
        self.in_flight
    }

    /// rav1e fixes the bitrate when its context is made (xiph/rav1e#3382).
    fn set_bitrate(&mut self, _kbps: u32) -> Result<(), EncodeError> {
        Err(EncodeError::Unsupported(Backend::Rav1e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::tests::{assert_keyframes_and_temporal_units, drain, frame, settings};

    #[test]
    fn encodes_every_frame_in_order_and_honours_keyframe_requests() {
        let mut encoder = Rav1eEncoder::new(&settings("160x96", Backend::Rav1e)).unwrap();
        let mut packets = Vec::new();
        for seq in 0..12 {
            if seq == 5 {
                encoder.request_keyframe();
            }
            encoder.send_frame(Some(&frame("160x96", seq))).unwrap();
            assert_eq!(drain(&mut encoder, &mut packets), EncodeError::NeedMoreData);
        }
        assert!(packets.len() < 12, "low-latency rav1e still holds a few frames back");
        encoder.send_frame(None).unwrap();
        assert_eq!(drain(&mut encoder, &mut packets), EncodeError::Finished);
        assert_eq!(encoder.frames_in_flight(), 0);

        let seqs: Vec<u64> = packets.iter().map(|p| p.info.seq).collect();
        assert_eq!(seqs, (0..12).collect::<Vec<_>>());
        assert_keyframes_and_temporal_units(&packets, &[0, 5]);
    }

    #[test]
    fn rejects_frames_of_the_wrong_size_and_bitrate_changes() {
        let mut encoder = Rav1eEncoder::new(&settings("160x96", Backend::Rav1e)).unwrap();
        assert!(matches!(
            encoder.send_frame(Some(&frame("64x64", 0))),
            Err(EncodeError::WrongSize { .. })
        ));
        assert_eq!(encoder.set_bitrate(100), Err(EncodeError::Unsupported(Backend::Rav1e)));
    }
}
