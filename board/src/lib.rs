//! Board support for the Mado appliance: the camera over V4L2 and the status
//! LED over GPIO.
//!
//! On a machine that is not a Raspberry Pi the board reports itself absent
//! and every output becomes a no-op, so the appliance runs anywhere.

pub mod camera;

use rppal::gpio::{Gpio, OutputPin};
use thiserror::Error;

/// Why the board's outputs could not be opened.
#[derive(Debug, Error)]
pub enum BoardError {
    /// A GPIO pin could not be opened.
    #[error("GPIO pin {pin} is not usable: {source}")]
    Pin {
        /// BCM pin number.
        pin: u8,
        /// The GPIO error.
        source: rppal::gpio::Error,
    },
}

/// The board's outputs, or their absence.
pub enum Board {
    /// A Raspberry Pi with GPIO access.
    Pi {
        /// The status LED output.
        status_led: OutputPin,
    },
    /// Not a Raspberry Pi (or no GPIO access); why, for the log.
    Absent {
        /// Why.
        reason: String,
    },
}

impl Board {
    /// Opens the GPIO outputs, with the status LED on BCM pin `status_led_pin`.
    pub fn open(status_led_pin: u8) -> Result<Self, BoardError> {
        let gpio = match Gpio::new() {
            Ok(gpio) => gpio,
            Err(e) => return Ok(Self::Absent { reason: e.to_string() }),
        };
        let pin = gpio.get(status_led_pin).map_err(|source| BoardError::Pin {
            pin: status_led_pin,
            source,
        })?;
        Ok(Self::Pi {
            status_led: pin.into_output_low(),
        })
    }

    /// True on a Raspberry Pi with GPIO access.
    pub fn is_present(&self) -> bool {
        matches!(self, Self::Pi { .. })
    }

    /// Lights the status LED while the appliance is streaming.
    pub fn set_status(&mut self, on: bool) {
        if let Self::Pi { status_led } = self {
            if on {
                status_led.set_high();
            } else {
                status_led.set_low();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_a_pi_the_board_is_absent_and_outputs_are_harmless() {
        let mut board = Board::open(17).unwrap();
        if let Board::Absent { reason } = &board {
            assert!(!reason.is_empty());
        }
        board.set_status(true);
        board.set_status(false);
    }
}
