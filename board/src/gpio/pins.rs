//! The GPIO shell: the configured lines opened through one of two backends.
//! Where `/dev/gpiomem` exists (Raspberry Pi OS kernels) and no chip is
//! configured, rppal drives the registers; otherwise the kernel's GPIO
//! character device does ([`cdev`](super::cdev)), which is what Debian's own
//! kernel offers. A feature whose line cannot be opened (no GPIO on this
//! machine, no permission, line in use) is reported once and left out; the
//! others still work.

use std::path::{Path, PathBuf};

use rppal::gpio::{Gpio, InputPin, Level, OutputPin};

use super::cdev::{find_chip, CdevLine};
use super::logic::InputSample;
use super::profile::{Line, Lines};

/// A feature that is not available, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// `status LED`, `relay`, `PIR sensor` or `button`.
    pub feature: &'static str,
    /// The GPIO error, for the log.
    pub reason: String,
}

/// Which backend opened the lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// rppal over `/dev/gpiomem`.
    GpioMem,
    /// The GPIO character device at this path.
    Cdev(PathBuf),
    /// None: nothing was wanted, or no backend could be opened.
    None,
}

enum OutPin {
    Mem(OutputPin),
    Cdev(CdevLine),
}

enum InPin {
    Mem(InputPin),
    Cdev(CdevLine),
}

struct Output {
    pin: OutPin,
    active_low: bool,
}

struct Input {
    pin: InPin,
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

/// Where the lines come from once a backend is chosen.
enum Source {
    Mem(Gpio),
    Cdev(PathBuf),
}

impl BoardPins {
    /// Opens the configured lines; returns the features that are not
    /// available and the backend used. `chip` is `[board] gpio_chip`: a
    /// device path or a label of a GPIO chip, or `None` for `/dev/gpiomem` if
    /// there is one, else the Pi's main chip found by its label.
    pub fn open(lines: &Lines, chip: Option<&str>) -> (Self, Vec<Unavailable>, Backend) {
        let wanted = [
            ("status LED", lines.status_led),
            ("relay", lines.relay),
            ("PIR sensor", lines.pir),
            ("button", lines.button),
        ];
        let mut missing = Vec::new();
        if wanted.iter().all(|(_, line)| line.is_none()) {
            return (Self::default(), missing, Backend::None);
        }
        let source = if chip.is_none() && has_gpiomem() {
            Gpio::new().map(Source::Mem).map_err(|e| e.to_string())
        } else {
            find_chip(chip).map(Source::Cdev).map_err(|e| e.to_string())
        };
        let source = match source {
            Ok(source) => source,
            Err(e) => {
                for (feature, line) in wanted {
                    if let Some(line) = line {
                        missing.push(Unavailable {
                            feature,
                            reason: format!("GPIO {}: {e}", line.pin),
                        });
                    }
                }
                return (Self::default(), missing, Backend::None);
            }
        };
        // Outputs start inactive; inputs rest at their inactive level
        // through the pull.
        let output = |line| {
            source.output(line).map(|pin| Output {
                pin,
                active_low: line.active_low,
            })
        };
        let input = |line| {
            source.input(line).map(|pin| Input {
                pin,
                active_low: line.active_low,
            })
        };
        let status_led = opened(&mut missing, "status LED", lines.status_led, output);
        let relay = opened(&mut missing, "relay", lines.relay, output);
        let pir = opened(&mut missing, "PIR sensor", lines.pir, input);
        let button = opened(&mut missing, "button", lines.button, input);
        let pins = Self {
            status_led,
            relay,
            pir,
            button,
        };
        let backend = match source {
            Source::Mem(_) => Backend::GpioMem,
            Source::Cdev(path) => Backend::Cdev(path),
        };
        (pins, missing, backend)
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

    /// The input lines read now, as [`BoardLogic`](super::BoardLogic) takes
    /// them: the PIR sensor (true: motion) and the button (true: pressed),
    /// those that are open.
    pub fn samples(&self) -> impl Iterator<Item = InputSample> + '_ {
        let pir = self.pir.as_ref().map(|p| InputSample::Pir(p.is_active()));
        let button = self.button.as_ref().map(|b| InputSample::Button(b.is_active()));
        pir.into_iter().chain(button)
    }

    /// Whether any input is open (the shell need not sample otherwise).
    pub fn has_inputs(&self) -> bool {
        self.pir.is_some() || self.button.is_some()
    }
}

impl Source {
    /// Opens `line` as an output at its inactive level.
    fn output(&self, line: Line) -> Result<OutPin, String> {
        let high = line.active_low;
        match self {
            Self::Mem(gpio) => gpio
                .get(line.pin)
                .map(|pin| {
                    OutPin::Mem(if high {
                        pin.into_output_high()
                    } else {
                        pin.into_output_low()
                    })
                })
                .map_err(|e| e.to_string()),
            Self::Cdev(chip) => CdevLine::output(chip, u32::from(line.pin), high)
                .map(OutPin::Cdev)
                .map_err(|e| e.to_string()),
        }
    }

    /// Opens `line` as an input pulled towards its inactive level.
    fn input(&self, line: Line) -> Result<InPin, String> {
        let pull_high = line.active_low;
        match self {
            Self::Mem(gpio) => gpio
                .get(line.pin)
                .map(|pin| {
                    InPin::Mem(if pull_high {
                        pin.into_input_pullup()
                    } else {
                        pin.into_input_pulldown()
                    })
                })
                .map_err(|e| e.to_string()),
            Self::Cdev(chip) => CdevLine::input(chip, u32::from(line.pin), pull_high)
                .map(InPin::Cdev)
                .map_err(|e| e.to_string()),
        }
    }
}

impl Output {
    fn set(&mut self, active: bool) {
        let high = active != self.active_low;
        match &mut self.pin {
            OutPin::Mem(pin) => pin.write(if high { Level::High } else { Level::Low }),
            OutPin::Cdev(line) => line.set(high),
        }
    }
}

impl Input {
    fn is_active(&self) -> bool {
        let high = match &self.pin {
            InPin::Mem(pin) => pin.read() == Level::High,
            InPin::Cdev(line) => line.get(),
        };
        high != self.active_low
    }
}

/// `line` opened by `open`, or `None` with the reason added to `missing`
/// (also `None`, silently, when the feature has no line).
fn opened<P>(
    missing: &mut Vec<Unavailable>,
    feature: &'static str,
    line: Option<Line>,
    open: impl FnOnce(Line) -> Result<P, String>,
) -> Option<P> {
    let line = line?;
    open(line)
        .map_err(|reason| {
            missing.push(Unavailable {
                feature,
                reason: format!("GPIO {}: {reason}", line.pin),
            })
        })
        .ok()
}

/// Whether rppal can work here: the Raspberry Pi kernel's register window
/// (`/dev/gpiomem`, `/dev/gpiomem0` on a Pi 5).
fn has_gpiomem() -> bool {
    Path::new("/dev/gpiomem").exists() || Path::new("/dev/gpiomem0").exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpio::Profile;

    fn machine_has_gpio() -> bool {
        has_gpiomem() || !gpiocdev::chip::chips().unwrap_or_default().is_empty()
    }

    #[test]
    fn off_a_pi_every_feature_says_why_it_is_not_available_and_the_rest_is_harmless() {
        if machine_has_gpio() {
            eprintln!("skipped: this machine has GPIO");
            return;
        }
        let (mut pins, missing, backend) = BoardPins::open(&Profile::Pi4.default_lines(), None);
        assert_eq!(backend, Backend::None);
        let features: Vec<_> = missing.iter().map(|m| m.feature).collect();
        assert_eq!(features, ["status LED", "relay", "PIR sensor", "button"]);
        assert_eq!(
            missing[0].reason,
            "GPIO 17: no GPIO chip labelled pinctrl-bcm2711 or pinctrl-bcm2835 or pinctrl-rp1 (found: none)"
        );
        pins.set_led(true);
        pins.set_relay(true);
        assert_eq!(pins.samples().count(), 0);
        assert!(!pins.has_inputs());
    }

    #[test]
    fn a_configured_chip_that_is_not_one_is_named_in_the_reason() {
        let (pins, missing, _) = BoardPins::open(&Profile::Zero2W.default_lines(), Some("/dev/null"));
        assert_eq!(missing.len(), 4);
        assert!(
            missing[3].reason.starts_with("GPIO 23: /dev/null: "),
            "{:?}",
            missing[3]
        );
        assert!(!pins.has_inputs());
    }

    #[test]
    fn a_generic_board_asks_for_nothing_and_reports_nothing() {
        let (pins, missing, backend) = BoardPins::open(&Profile::Generic.default_lines(), None);
        assert!(missing.is_empty());
        assert_eq!(backend, Backend::None);
        assert!(!pins.has_inputs());
    }
}
