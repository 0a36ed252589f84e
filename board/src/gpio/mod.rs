//! The board's GPIO features: a status LED, a relay driven by detections, a
//! PIR motion sensor and a button. The behaviour ([`BoardLogic`]: patterns,
//! hold time, debouncing, long press) is sans-IO and runs on any clock; the
//! pins ([`BoardPins`], through rppal) are a thin shell around it.

mod inputs;
mod led;
mod logic;
mod pins;
mod profile;
mod relay;

pub use inputs::{Button, Debouncer, MotionSensor, Press};
pub use led::{LedPattern, StatusLed};
pub use logic::{ApplianceState, BoardLogic, BoardOutput, InputSample, LogicConfig, BUTTON_SETTLE, LONG_PRESS};
pub use pins::{BoardPins, Unavailable};
pub use profile::{Line, Lines, Profile};
pub use relay::DetectionRelay;
