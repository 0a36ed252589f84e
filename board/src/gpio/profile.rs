//! Board profiles: which GPIO lines a board uses by default.

/// One GPIO line: its BCM number and whether it is active when low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// BCM GPIO number (not the header's pin number).
    pub pin: u8,
    /// The line is active (LED lit, relay on, motion, pressed) when low.
    pub active_low: bool,
}

/// The lines of each feature; `None` leaves a feature out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lines {
    /// The status LED (output).
    pub status_led: Option<Line>,
    /// The relay driven by detections (output).
    pub relay: Option<Line>,
    /// The PIR motion sensor (input).
    pub pir: Option<Line>,
    /// The push button (input, pulled towards its inactive level).
    pub button: Option<Line>,
}

/// A kind of board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Raspberry Pi 4, Pi 400 and CM4 (BCM2711).
    Pi4,
    /// Raspberry Pi 5 (RP1 GPIO; needs a kernel with RP1 support).
    Pi5,
    /// Raspberry Pi Zero 2 W (BCM2710).
    Zero2W,
    /// Any other Linux machine: no GPIO.
    Generic,
}

impl Profile {
    /// The profile for a device tree model string (`/proc/device-tree/model`),
    /// or generic when there is none or it is not a known Pi.
    pub fn from_model(model: Option<&str>) -> Self {
        let model = model.unwrap_or("").trim_end_matches('\0');
        if model.starts_with("Raspberry Pi 5") {
            Self::Pi5
        } else if model.starts_with("Raspberry Pi Zero 2") {
            Self::Zero2W
        } else if ["Raspberry Pi 4", "Raspberry Pi 400", "Raspberry Pi Compute Module 4"]
            .iter()
            .any(|p| model.starts_with(p))
        {
            Self::Pi4
        } else {
            Self::Generic
        }
    }

    /// The default wiring: the same header positions on every Pi (LED on
    /// GPIO 17, relay on 27, PIR on 22, button on 23 to ground); none on a
    /// generic machine.
    pub fn default_lines(self) -> Lines {
        let high = |pin| Some(Line { pin, active_low: false });
        match self {
            Self::Pi4 | Self::Pi5 | Self::Zero2W => Lines {
                status_led: high(17),
                relay: high(27),
                pir: high(22),
                button: Some(Line {
                    pin: 23,
                    active_low: true,
                }),
            },
            Self::Generic => Lines::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_map_to_profiles() {
        for (model, profile) in [
            (Some("Raspberry Pi 4 Model B Rev 1.4\0"), Profile::Pi4),
            (Some("Raspberry Pi 400 Rev 1.0"), Profile::Pi4),
            (Some("Raspberry Pi Compute Module 4 Rev 1.0"), Profile::Pi4),
            (Some("Raspberry Pi Zero 2 W Rev 1.0"), Profile::Zero2W),
            (Some("Raspberry Pi 5 Model B Rev 1.0"), Profile::Pi5),
            (Some("linux,dummy-virt"), Profile::Generic),
            (None, Profile::Generic),
        ] {
            assert_eq!(Profile::from_model(model), profile, "{model:?}");
        }
        assert_eq!(Profile::Generic.default_lines(), Lines::default());
        assert!(Profile::Zero2W.default_lines().button.unwrap().active_low);
    }
}
