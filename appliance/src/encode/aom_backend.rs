//! The libaom backend in its real-time mode: no lag, no frame reordering,
//! row multithreading and tiles, CBR rate control whose target can change
//! between any two frames, and optionally two temporal layers so that a
//! slow viewer can be sent every other frame (see `docs/adaptation.md`).
//!
//! Links Debian's libaom (3.6 on bookworm, for amd64 and arm64) through
//! the `aom-sys` bindings.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::os::raw::{c_int, c_uint};
use std::ptr;

use aom_sys as aom;

use super::{EncodeError, EncodedFrame, EncoderSettings, VideoEncoder};
use crate::frame::{Frame, FrameInfo, VideoSize};

/// Share of the bitrate given to the base temporal layer when there are two.
pub const BASE_LAYER_SHARE_PCT: u32 = 60;

/// libaom's AV1 encoder in real-time mode.
pub struct AomEncoder {
    // Boxed: libaom keeps pointers to both for the life of the context.
    ctx: Box<aom::aom_codec_ctx_t>,
    cfg: Box<aom::aom_codec_enc_cfg_t>,
    size: VideoSize,
    temporal_layers: u8,
    keyframe_interval: u64,
    /// Frames since the last keyframe; picks the temporal layer.
    since_keyframe: u64,
    keyframe_requested: bool,
    next_pts: i64,
    waiting: VecDeque<(i64, FrameInfo, u8)>,
    ready: VecDeque<EncodedFrame>,
    flushed: bool,
}

// SAFETY: libaom keeps no thread-local state for an encoder context; the
// context and its config are owned by this value and only touched through
// `&mut self`, so moving it to another thread is sound.
unsafe impl Send for AomEncoder {}

impl AomEncoder {
    /// Opens libaom with `settings`.
    pub fn new(settings: &EncoderSettings) -> Result<Self, EncodeError> {
        let size = settings.size;
        if !(1..=2).contains(&settings.temporal_layers) {
            return Err(EncodeError::BadSettings(
                "libaom: temporal layers must be 1 or 2".into(),
            ));
        }
        if !(5..=10).contains(&settings.speed) {
            return Err(EncodeError::BadSettings(format!(
                "libaom real-time speed must be 5 to 10, not {}",
                settings.speed
            )));
        }
        // SAFETY: plain C structs, all-zero is a valid start; libaom fills them.
        let mut cfg: Box<aom::aom_codec_enc_cfg_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: takes no arguments and returns a pointer to libaom's static AV1 interface.
        let iface = unsafe { aom::aom_codec_av1_cx() };
        check(
            // SAFETY: `iface` is libaom's AV1 interface and `cfg` a valid, exclusively borrowed config.
            unsafe { aom::aom_codec_enc_config_default(iface, &mut *cfg, aom::AOM_USAGE_REALTIME) },
            None,
        )?;
        cfg.g_w = size.width();
        cfg.g_h = size.height();
        cfg.g_timebase = aom::aom_rational {
            num: 1,
            den: settings.fps.max(1) as c_int,
        };
        cfg.g_threads = match settings.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()) as c_uint,
            n => n as c_uint,
        };
        cfg.g_lag_in_frames = 0;
        cfg.g_error_resilient = 0;
        cfg.g_pass = aom::aom_enc_pass::AOM_RC_ONE_PASS;
        cfg.rc_end_usage = aom::aom_rc_mode::AOM_CBR;
        cfg.rc_target_bitrate = settings.bitrate_kbps;
        // The quantizer index (0 to 255) on libaom's 0 to 63 scale.
        cfg.rc_min_quantizer = (u32::from(settings.min_quantizer) / 4).min(52);
        cfg.rc_max_quantizer = 63;
        cfg.rc_dropframe_thresh = 0;
        cfg.rc_undershoot_pct = 50;
        cfg.rc_overshoot_pct = 50;
        cfg.rc_buf_initial_sz = 600;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_buf_sz = 1000;
        // Keyframes come from us, on the base layer (see `send_frame`).
        cfg.kf_mode = aom::aom_kf_mode::AOM_KF_DISABLED;

        // SAFETY: zeroed context, initialised by libaom below.
        let mut ctx: Box<aom::aom_codec_ctx_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `ctx` and `cfg` are valid and outlive the context (both are
        // boxed and owned by the encoder); the ABI version is the one aom-sys was built for.
        let init =
            unsafe { aom::aom_codec_enc_init_ver(&mut *ctx, iface, &*cfg, 0, aom::AOM_ENCODER_ABI_VERSION as c_int) };
        if init != aom::aom_codec_err_t::AOM_CODEC_OK {
            // A failed init leaves nothing to destroy.
            return Err(EncodeError::BadSettings(format!(
                "libaom rejected the settings (error {init})"
            )));
        }
        let mut encoder = Self {
            ctx,
            cfg,
            size,
            temporal_layers: settings.temporal_layers,
            keyframe_interval: u64::from(settings.keyframe_interval.max(1)),
            since_keyframe: 0,
            keyframe_requested: true,
            next_pts: 0,
            waiting: VecDeque::new(),
            ready: VecDeque::new(),
            flushed: false,
        };
        encoder.configure(settings)?;
        Ok(encoder)
    }

    /// The real-time controls WebRTC's own libaom wrapper settles on.
    fn configure(&mut self, settings: &EncoderSettings) -> Result<(), EncodeError> {
        use aom::aome_enc_control_id::*;
        let tiles = if settings.tiles == 0 {
            super::default_tiles(self.size)
        } else {
            settings.tiles
        };
        let tile_columns_log2 = usize::BITS - 1 - tiles.max(1).leading_zeros();
        let controls: &[(c_uint, c_int)] = &[
            (AOME_SET_CPUUSED, c_int::from(settings.speed)),
            (AV1E_SET_ROW_MT, 1),
            (AV1E_SET_TILE_COLUMNS, tile_columns_log2 as c_int),
            (AV1E_SET_ENABLE_CDEF, 1),
            (AV1E_SET_ENABLE_TPL_MODEL, 0),
            (AV1E_SET_DELTAQ_MODE, 0),
            (AV1E_SET_ENABLE_ORDER_HINT, 0),
            (AV1E_SET_AQ_MODE, 3),
            (AOME_SET_MAX_INTRA_BITRATE_PCT, 300),
            (AV1E_SET_COEFF_COST_UPD_FREQ, 3),
            (AV1E_SET_MODE_COST_UPD_FREQ, 3),
            (AV1E_SET_MV_COST_UPD_FREQ, 3),
            (AV1E_SET_ENABLE_GLOBAL_MOTION, 0),
            (AV1E_SET_ENABLE_WARPED_MOTION, 0),
            (AV1E_SET_ENABLE_OBMC, 0),
            (AV1E_SET_ENABLE_REF_FRAME_MVS, 0),
            (AV1E_SET_NOISE_SENSITIVITY, 0),
            (AV1E_SET_ENABLE_PALETTE, 0),
        ];
        for &(id, value) in controls {
            // SAFETY: `ctx` was initialised in `new`; each control in the list takes a plain int.
            let err = unsafe { aom::aom_codec_control(&mut *self.ctx, id as c_int, value) };
            check(err, Some(&mut self.ctx)).map_err(|e| EncodeError::BadSettings(format!("control {id}: {e}")))?;
        }
        if self.temporal_layers > 1 {
            self.set_layer_params()?;
        }
        Ok(())
    }

    /// Two temporal layers: the base layer gets a fixed share of the bitrate.
    fn set_layer_params(&mut self) -> Result<(), EncodeError> {
        // SAFETY: plain C struct.
        let mut params: aom::aom_svc_params_t = unsafe { std::mem::zeroed() };
        params.number_spatial_layers = 1;
        params.number_temporal_layers = 2;
        params.scaling_factor_num[0] = 1;
        params.scaling_factor_den[0] = 1;
        let target = self.cfg.rc_target_bitrate;
        for layer in 0..2 {
            params.max_quantizers[layer] = self.cfg.rc_max_quantizer as c_int;
            params.min_quantizers[layer] = self.cfg.rc_min_quantizer as c_int;
        }
        params.framerate_factor[0] = 2;
        params.framerate_factor[1] = 1;
        params.layer_target_bitrate[0] = (target * BASE_LAYER_SHARE_PCT / 100) as c_int;
        params.layer_target_bitrate[1] = target as c_int;
        // SAFETY: `ctx` is initialised; AV1E_SET_SVC_PARAMS takes a pointer to
        // `aom_svc_params_t`, which libaom copies before returning.
        let err = unsafe {
            aom::aom_codec_control(
                &mut *self.ctx,
                aom::aome_enc_control_id::AV1E_SET_SVC_PARAMS as c_int,
                &mut params as *mut aom::aom_svc_params_t,
            )
        };
        check(err, Some(&mut self.ctx))
    }

    /// Layer and references for the next frame: the base layer references
    /// and refreshes slot 0; the enhancement layer only reads it, so no
    /// later frame depends on it and it can be left out for a viewer.
    fn set_frame_layer(&mut self, layer: u8) -> Result<(), EncodeError> {
        use aom::aome_enc_control_id::{AV1E_SET_SVC_LAYER_ID, AV1E_SET_SVC_REF_FRAME_CONFIG};
        let mut id = aom::aom_svc_layer_id_t {
            spatial_layer_id: 0,
            temporal_layer_id: c_int::from(layer),
        };
        // SAFETY: plain C struct.
        let mut refs: aom::aom_svc_ref_frame_config_t = unsafe { std::mem::zeroed() };
        refs.reference[0] = 1; // LAST_FRAME, from slot 0
        refs.refresh[0] = c_int::from(layer == 0);
        // SAFETY: `ctx` is initialised; the two controls take pointers to the
        // structs given here, which libaom copies before returning.
        unsafe {
            check(
                aom::aom_codec_control(&mut *self.ctx, AV1E_SET_SVC_LAYER_ID as c_int, &mut id as *mut _),
                Some(&mut self.ctx),
            )?;
            check(
                aom::aom_codec_control(
                    &mut *self.ctx,
                    AV1E_SET_SVC_REF_FRAME_CONFIG as c_int,
                    &mut refs as *mut _,
                ),
                Some(&mut self.ctx),
            )
        }
    }

    fn encode(&mut self, image: Option<&aom::aom_image_t>, pts: i64, flags: i64) -> Result<(), EncodeError> {
        let image = image.map_or(ptr::null(), |i| i as *const _);
        // SAFETY: `ctx` is initialised; `image` is null (flush) or a wrapped
        // picture whose planes stay borrowed for this call, and libaom copies it.
        let err = unsafe { aom::aom_codec_encode(&mut *self.ctx, image, pts, 1, flags) };
        check(err, Some(&mut self.ctx))?;
        let mut iter: aom::aom_codec_iter_t = ptr::null();
        loop {
            // SAFETY: `ctx` is initialised and `iter` started null, as the iteration requires.
            let packet = unsafe { aom::aom_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            // SAFETY: libaom returns null or a packet valid until the next call.
            let Some(packet) = (unsafe { packet.as_ref() }) else {
                return Ok(());
            };
            if packet.kind != aom::aom_codec_cx_pkt_kind::AOM_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: `frame` is the active member for frame packets.
            let frame = unsafe { &packet.data.frame };
            // SAFETY: for a frame packet libaom points `buf` at `sz` bytes that
            // stay valid until the next call into the context.
            let data = unsafe { packet_bytes(frame.buf as *const u8, frame.sz) }.to_vec();
            // Frames the encoder skipped have no packet: forget them.
            while self.waiting.front().is_some_and(|(p, ..)| *p < frame.pts) {
                self.waiting.pop_front();
            }
            let Some((_, info, layer)) = self.waiting.pop_front() else {
                return Err(EncodeError::Failed("libaom returned a packet for no frame".into()));
            };
            self.ready.push_back(EncodedFrame {
                info,
                keyframe: frame.flags & aom::AOM_FRAME_IS_KEY != 0,
                temporal_layer: layer,
                data,
            });
        }
    }
}

/// The bytes of a packet libaom returned. libaom may hand back a null buffer
/// with size 0, which `slice::from_raw_parts` must never see.
///
/// # Safety
/// Unless `len` is 0, `buf` must point at `len` readable bytes that stay
/// valid and unchanged for the returned lifetime.
unsafe fn packet_bytes<'a>(buf: *const u8, len: usize) -> &'a [u8] {
    if buf.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: non-null, and the caller promises `buf` points at `len` readable bytes.
    unsafe { std::slice::from_raw_parts(buf, len) }
}

/// Turns a libaom status into an error with libaom's own words.
fn check(err: aom::aom_codec_err_t::Type, ctx: Option<&mut aom::aom_codec_ctx_t>) -> Result<(), EncodeError> {
    if err == aom::aom_codec_err_t::AOM_CODEC_OK {
        return Ok(());
    }
    let text = |p: *const std::os::raw::c_char| {
        // SAFETY: libaom's error strings are null or NUL-terminated and static or owned by the context.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    let mut message = format!("libaom error {err}");
    if let Some(ctx) = ctx {
        // SAFETY: `ctx` is a live context; the call only reads its error state.
        if let Some(e) = text(unsafe { aom::aom_codec_error(ctx) }) {
            message = format!("libaom: {e}");
        }
        // SAFETY: as above.
        if let Some(detail) = text(unsafe { aom::aom_codec_error_detail(ctx) }) {
            message.push_str(&format!(" ({detail})"));
        }
    }
    Err(EncodeError::Failed(message))
}

impl Drop for AomEncoder {
    fn drop(&mut self) {
        // SAFETY: `new` returns an encoder only once the context is initialised,
        // and it is destroyed exactly once, here.
        unsafe { aom::aom_codec_destroy(&mut *self.ctx) };
    }
}

impl VideoEncoder for AomEncoder {
    fn send_frame(&mut self, frame: Option<&Frame>) -> Result<(), EncodeError> {
        if self.flushed {
            // Flushing twice is harmless; a frame after the flush is not.
            return frame.map_or(Ok(()), |_| Err(EncodeError::Finished));
        }
        let Some(frame) = frame else {
            self.flushed = true;
            return self.encode(None, self.next_pts, 0);
        };
        if frame.image.size() != self.size {
            return Err(EncodeError::WrongSize {
                got: frame.image.size(),
                want: self.size,
            });
        }
        if !self.ready.is_empty() {
            return Err(EncodeError::Full);
        }
        if self.since_keyframe >= self.keyframe_interval {
            self.keyframe_requested = true;
        }
        if self.keyframe_requested {
            self.since_keyframe = 0;
        }
        let layer = if self.temporal_layers > 1 {
            (self.since_keyframe % 2) as u8
        } else {
            0
        };
        if self.temporal_layers > 1 {
            self.set_frame_layer(layer)?;
        }
        let flags = if self.keyframe_requested {
            aom::AOM_EFLAG_FORCE_KF as i64
        } else {
            0
        };
        let (y, u, v) = frame.image.planes();
        let width = self.size.width() as c_int;
        // SAFETY: plain C struct; `aom_img_wrap` fills it, the planes are
        // pointed at the frame's own buffer and only read during the call.
        let mut image: aom::aom_image_t = unsafe { std::mem::zeroed() };
        // SAFETY: `image` is a valid struct to fill; the buffer is the frame's
        // own I420 data of exactly this size, and outlives the encode call below.
        let wrapped = unsafe {
            aom::aom_img_wrap(
                &mut image,
                aom::aom_img_fmt::AOM_IMG_FMT_I420,
                self.size.width(),
                self.size.height(),
                1,
                y.as_ptr() as *mut u8,
            )
        };
        if wrapped.is_null() {
            return Err(EncodeError::Failed("libaom could not wrap the frame".into()));
        }
        image.planes = [y.as_ptr() as *mut u8, u.as_ptr() as *mut u8, v.as_ptr() as *mut u8];
        image.stride = [width, width / 2, width / 2];
        let pts = self.next_pts;
        self.next_pts += 1;
        self.waiting.push_back((pts, frame.info.clone(), layer));
        self.encode(Some(&image), pts, flags)?;
        self.keyframe_requested = false;
        self.since_keyframe += 1;
        Ok(())
    }

    fn receive_packet(&mut self) -> Result<EncodedFrame, EncodeError> {
        match self.ready.pop_front() {
            Some(packet) => Ok(packet),
            None if self.flushed => Err(EncodeError::Finished),
            None => Err(EncodeError::NeedMoreData),
        }
    }

    fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    fn frames_in_flight(&self) -> usize {
        self.waiting.len() + self.ready.len()
    }

    fn set_bitrate(&mut self, kbps: u32) -> Result<(), EncodeError> {
        if kbps == self.cfg.rc_target_bitrate {
            return Ok(());
        }
        self.cfg.rc_target_bitrate = kbps;
        check(
            // SAFETY: `ctx` is initialised and `cfg` is the config it was opened with, changed in place.
            unsafe { aom::aom_codec_enc_config_set(&mut *self.ctx, &*self.cfg) },
            Some(&mut self.ctx),
        )?;
        if self.temporal_layers > 1 {
            self.set_layer_params()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::tests::{assert_keyframes_and_temporal_units, drain, frame, settings};

    #[test]
    fn an_empty_packet_with_a_null_buffer_reads_as_no_bytes() {
        // SAFETY: a null buffer with length 0 is what the helper must accept.
        let bytes = unsafe { packet_bytes(ptr::null(), 0) };
        assert!(bytes.is_empty());
        let data = [1u8, 2, 3];
        // SAFETY: `data` holds 3 readable bytes for the whole test.
        assert_eq!(unsafe { packet_bytes(data.as_ptr(), data.len()) }, [1, 2, 3]);
    }

    fn aom(size: &str, layers: u8) -> AomEncoder {
        let mut s = settings(size, super::super::Backend::Aom);
        s.temporal_layers = layers;
        AomEncoder::new(&s).unwrap()
    }

    #[test]
    fn every_frame_comes_out_at_once_and_keyframes_follow_requests() {
        let mut encoder = aom("160x96", 1);
        let mut packets = Vec::new();
        for seq in 0..12 {
            if seq == 5 {
                encoder.request_keyframe();
            }
            encoder.send_frame(Some(&frame("160x96", seq))).unwrap();
            assert_eq!(drain(&mut encoder, &mut packets), EncodeError::NeedMoreData);
            assert_eq!(
                packets.len() as u64,
                seq + 1,
                "no lag: frame {seq} is out before the next one goes in"
            );
        }
        encoder.send_frame(None).unwrap();
        assert_eq!(drain(&mut encoder, &mut packets), EncodeError::Finished);
        assert_keyframes_and_temporal_units(&packets, &[0, 5]);
    }

    #[test]
    fn two_temporal_layers_alternate_from_each_keyframe() {
        let mut encoder = aom("160x96", 2);
        let mut packets = Vec::new();
        for seq in 0..9 {
            if seq == 5 {
                encoder.request_keyframe();
            }
            encoder.send_frame(Some(&frame("160x96", seq))).unwrap();
            drain(&mut encoder, &mut packets);
        }
        let layers: Vec<u8> = packets.iter().map(|p| p.temporal_layer).collect();
        assert_eq!(layers, [0, 1, 0, 1, 0, 0, 1, 0, 1]);
        assert!(packets[5].keyframe);
    }

    #[test]
    fn bitrate_changes_between_frames_and_the_output_follows() {
        let mut encoder = aom("320x240", 1);
        encoder.set_bitrate(2000).unwrap();
        let mut packets = Vec::new();
        let bytes = |packets: &[EncodedFrame]| packets.iter().map(|p| p.data.len()).sum::<usize>();
        for seq in 0..60 {
            encoder.send_frame(Some(&frame("320x240", seq))).unwrap();
            drain(&mut encoder, &mut packets);
        }
        let high = bytes(&packets[30..60]);
        encoder.set_bitrate(100).unwrap();
        for seq in 60..120 {
            encoder.send_frame(Some(&frame("320x240", seq))).unwrap();
            drain(&mut encoder, &mut packets);
        }
        let low = bytes(&packets[90..120]);
        assert!(
            low * 3 < high,
            "100 kbps gave {low} bytes per second, 2000 kbps gave {high}"
        );
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let mut s = settings("160x96", super::super::Backend::Aom);
        s.speed = 2;
        assert!(matches!(AomEncoder::new(&s), Err(EncodeError::BadSettings(_))));
        s.speed = 10;
        s.temporal_layers = 3;
        assert!(matches!(AomEncoder::new(&s), Err(EncodeError::BadSettings(_))));
    }
}
