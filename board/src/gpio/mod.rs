//! The board's GPIO features: a status LED, a relay driven by detections, a
//! PIR motion sensor and a button. The behaviour ([`BoardLogic`]: patterns,
//! hold time, debouncing, long press) is sans-IO and runs on any clock; the
//! pins ([`BoardPins`], through rppal or the kernel's GPIO character
//! device) are a thin shell around it.

mod cdev;
mod inputs;
mod led;
mod logic;
mod pins;
mod profile;
mod relay;

pub use cdev::{CdevError, PI_CHIP_LABELS};
pub use inputs::{Button, Debouncer, MotionSensor, Press};
pub use led::{LedPattern, StatusLed};
pub use logic::{ApplianceState, BoardLogic, BoardOutput, InputSample, LogicConfig, BUTTON_SETTLE, LONG_PRESS};
pub use pins::{Backend, BoardPins, Unavailable};
pub use profile::{Line, Lines, Profile};
pub use relay::DetectionRelay;
