//! Fault injection for the watchdog tests: faults that only happen when the
//! environment asks for them. Release images never set these variables.
//!
//! `MADO_FAULT_WEDGE_ENCODER_AFTER_FRAMES=N`: once N frames are encoded the
//! encoder thread blocks for good, as a hung codec would, while capture,
//! HTTP and the media driver keep running.

use std::sync::OnceLock;

/// The variable that wedges the encoder.
pub const WEDGE_ENCODER_AFTER_FRAMES: &str = "MADO_FAULT_WEDGE_ENCODER_AFTER_FRAMES";

fn wedge_after() -> Option<u64> {
    static AFTER: OnceLock<Option<u64>> = OnceLock::new();
    *AFTER.get_or_init(|| {
        let value = std::env::var(WEDGE_ENCODER_AFTER_FRAMES).ok()?;
        match value.parse() {
            Ok(frames) => {
                tracing::warn!("fault injection: the encoder will hang after {frames} frames");
                Some(frames)
            }
            Err(_) => {
                tracing::warn!("{WEDGE_ENCODER_AFTER_FRAMES}={value:?} is not a frame count; ignored");
                None
            }
        }
    })
}

/// Called by the encoder thread before each frame; never returns once the
/// injected fault is due.
pub fn before_encoding(frames_encoded: u64) {
    if wedge_after().is_some_and(|after| frames_encoded >= after) {
        tracing::warn!("fault injection: encoder wedged after {frames_encoded} frames");
        loop {
            std::thread::park();
        }
    }
}
