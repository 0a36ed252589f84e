//! Board support for the Mado appliance: the camera over V4L2 and the GPIO
//! features (status LED, relay, PIR sensor, button) over rppal.
//!
//! On a machine without GPIO the features report themselves not available
//! and the appliance runs without them.

pub mod camera;
pub mod gpio;
