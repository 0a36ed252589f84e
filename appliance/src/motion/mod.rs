//! Motion-gated detection: a cheap motion detector that looks at every
//! frame, and the gate that lets the expensive detector run at full rate only
//! while something moves (or an object is still being tracked), at a
//! heartbeat rate otherwise.
//!
//! Both are plain state machines: frames and the current `Instant` in,
//! decisions out; no clock, thread or I/O. The pipeline's thread runner
//! drives them (its detection schedule holds the gate).

mod detector;
mod gate;

pub use detector::{Motion, MotionDetector, MotionSettings, GRID_H, GRID_W};
pub use gate::{GateSettings, MotionGate};

pub use crate::meta::{GateMode, MotionMeta, MAX_REGIONS};

#[cfg(test)]
mod tests;
