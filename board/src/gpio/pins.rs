//! The GPIO shell: the configured lines opened through rppal. A feature
//! whose line cannot be opened (no GPIO on this machine, no permission, pin
//! in use) is reported once and left out; the others still work.

use rppal::gpio::{Gpio, InputPin, Level, OutputPin};

use super::profile::{Line, Lines};

/// A feature that is not available, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// `status LED`, `relay`, `PIR sensor` or `button`.
    pub feature: &'static str,
    /// The GPIO error, for the log.
    pub reason: String,
}

struct Output {
    pin: OutputPin,
    active_low: bool,
}

struct Input {
    pin: InputPin,
    active_low: bool,
}

/// The opened lines.
#[derive(Default)]
pub struct BoardPins {
    status_led: Option<Output>,
    relay: Option<Output>,
    pir: Option<Input>,
    button: Option<Input>,
}

impl BoardPins {
    /// Opens the configured lines; returns the features that are not available.
    pub fn open(lines: &Lines) -> (Self, Vec<Unavailable>) {
        let wanted = [
            ("status LED", lines.status_led),
            ("relay", lines.relay),
            ("PIR sensor", lines.pir),
            ("button", lines.button),
        ];
        let mut missing = Vec::new();
        let gpio = match Gpio::new() {
            Ok(gpio) => gpio,
            Err(e) => {
                for (feature, line) in wanted {
                    if let Some(line) = line {
                        missing.push(Unavailable {
                            feature,
                            reason: format!("GPIO {}: {e}", line.pin),
                        });
                    }
                }
                return (Self::default(), missing);
            }
        };
        let mut open = |feature: &'static str, line: Option<Line>| {
            let line = line?;
            match gpio.get(line.pin) {
                Ok(pin) => Some((pin, line.active_low)),
                Err(e) => {
                    missing.push(Unavailable {
                        feature,
                        reason: format!("GPIO {}: {e}", line.pin),
                    });
                    None
                }
            }
        };
        let output = |(pin, active_low): (rppal::gpio::Pin, bool)| Output {
            // Start inactive.
            pin: if active_low {
                pin.into_output_high()
            } else {
                pin.into_output_low()
            },
            active_low,
        };
        // Inputs rest at their inactive level through the internal pull.
        let input = |(pin, active_low): (rppal::gpio::Pin, bool)| Input {
            pin: if active_low {
                pin.into_input_pullup()
            } else {
                pin.into_input_pulldown()
            },
            active_low,
        };
        let pins = Self {
            status_led: open("status LED", lines.status_led).map(output),
            relay: open("relay", lines.relay).map(output),
            pir: open("PIR sensor", lines.pir).map(input),
            button: open("button", lines.button).map(input),
        };
        (pins, missing)
    }

    /// Lights or darkens the status LED (if there is one).
    pub fn set_led(&mut self, lit: bool) {
        if let Some(out) = &mut self.status_led {
            out.set(lit);
        }
    }

    /// Switches the relay (if there is one).
    pub fn set_relay(&mut self, on: bool) {
        if let Some(out) = &mut self.relay {
            out.set(on);
        }
    }

    /// The PIR sensor's output (true: motion), if there is one.
    pub fn read_pir(&self) -> Option<bool> {
        self.pir.as_ref().map(Input::is_active)
    }

    /// The button (true: pressed), if there is one.
    pub fn read_button(&self) -> Option<bool> {
        self.button.as_ref().map(Input::is_active)
    }

    /// Whether any input is open (the shell need not sample otherwise).
    pub fn has_inputs(&self) -> bool {
        self.pir.is_some() || self.button.is_some()
    }
}

impl Output {
    fn set(&mut self, active: bool) {
        let level = if active != self.active_low {
            Level::High
        } else {
            Level::Low
        };
        self.pin.write(level);
    }
}

impl Input {
    fn is_active(&self) -> bool {
        (self.pin.read() == Level::High) != self.active_low
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpio::Profile;

    #[test]
    fn off_a_pi_every_feature_says_why_it_is_not_available_and_the_rest_is_harmless() {
        if std::path::Path::new("/dev/gpiomem").exists() || std::path::Path::new("/dev/gpiomem0").exists() {
            eprintln!("skipped: this machine has GPIO");
            return;
        }
        let (mut pins, missing) = BoardPins::open(&Profile::Pi4.default_lines());
        let features: Vec<_> = missing.iter().map(|m| m.feature).collect();
        assert_eq!(features, ["status LED", "relay", "PIR sensor", "button"]);
        for m in &missing {
            assert!(m.reason.starts_with("GPIO ") && m.reason.len() > 10, "{m:?}");
        }
        pins.set_led(true);
        pins.set_relay(true);
        assert_eq!((pins.read_pir(), pins.read_button()), (None, None));
        assert!(!pins.has_inputs());
    }

    #[test]
    fn a_generic_board_asks_for_nothing_and_reports_nothing() {
        let (pins, missing) = BoardPins::open(&Profile::Generic.default_lines());
        assert!(missing.is_empty());
        assert!(!pins.has_inputs());
    }
}
