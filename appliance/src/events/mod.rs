//! Events: detections of chosen classes become events with a start, an end,
//! a best-scoring frame (its JPEG snapshot) and a clip.
//!
//! [`EventTracker`] is a plain state machine: each frame's metadata goes in
//! with its capture time, [`EventUpdate`]s come out. [`ClipRecorder`] keeps
//! the last seconds of encoded video and says which frames each event's clip
//! gets. Neither reads a clock or touches a file: the shell (`cmd/events.rs`)
//! writes snapshots and clips on a thread of its own.

mod clips;
pub mod retention;
pub mod snapshot;
mod tracker;
pub mod webm;
mod zone;

pub use clips::{ClipOutput, ClipRecorder, ClipSettings};
pub use tracker::{EventInfo, EventTracker, EventUpdate, TrackerSettings};
pub use zone::{reference_point, Zone, ZoneSpec};
