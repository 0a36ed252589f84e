//! Mado, an edge camera: capture, on-device detection, real-time AV1 with the
//! detections carried inside each encoded frame.
//!
//! Pipeline stages are plain state machines that take frames and time and
//! return outputs; threads, clocks and I/O live in [`pipeline`] and the binary.

// Unit tests start their simulated clocks from a real `Instant` (the type has
// no other constructor). The library itself is still checked without this.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod adapt;
pub mod av1;
pub mod config;
pub mod detect;
pub mod encode;
pub mod events;
pub mod fault;
pub mod frame;
pub mod health;
pub mod live;
pub mod meta;
pub mod motion;
pub mod mqtt;
pub mod pipeline;
pub mod publish;
pub mod scale;
pub mod source;
