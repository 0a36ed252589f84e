//! The `[board]` section: which board this is and the GPIO lines of its
//! features (status LED, relay, PIR sensor, button).

use serde::{Deserialize, Serialize};

use super::Ranged;
use board::gpio::{Line, Lines, Profile};

/// The board's GPIO features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoardConfig {
    /// `auto` (from the device tree), `pi4` (also Pi 400 and CM4), `pi5`,
    /// `zero2w` or `generic` (no GPIO).
    pub profile: BoardProfile,
    /// The GPIO chip: a device path (`/dev/gpiochip0`) or a chip label
    /// (`pinctrl-bcm2711`); absent: `/dev/gpiomem` where the kernel has it,
    /// else the Pi's main chip found by its label.
    pub gpio_chip: Option<String>,
    /// The status LED's line; absent: the profile's (GPIO 17), `pin = -1`: none.
    pub status_led: Option<GpioLine>,
    /// The relay's line; absent: the profile's (GPIO 27), `pin = -1`: none.
    pub relay: Option<GpioLine>,
    /// The PIR sensor's line; absent: the profile's (GPIO 22), `pin = -1`: none.
    pub pir: Option<GpioLine>,
    /// The button's line; absent: the profile's (GPIO 23, active low), `pin = -1`: none.
    pub button: Option<GpioLine>,
    /// Detections of these labels switch the relay on; empty: any detection.
    pub relay_classes: Vec<String>,
    /// The relay stays on this long after the last matching detection.
    pub relay_hold_ms: Ranged<0, 86_400_000>,
    /// The PIR output must hold this long to count as motion.
    pub pir_settle_ms: Ranged<0, 10_000>,
}

impl Default for BoardConfig {
    fn default() -> Self {
        Self {
            profile: BoardProfile::Auto,
            gpio_chip: None,
            status_led: None,
            relay: None,
            pir: None,
            button: None,
            relay_classes: vec!["Person".into()],
            relay_hold_ms: Ranged::new_const(5000),
            pir_settle_ms: Ranged::new_const(100),
        }
    }
}

/// A board profile setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoardProfile {
    /// Read the board's model from the device tree.
    #[default]
    Auto,
    /// Raspberry Pi 4, Pi 400, CM4.
    Pi4,
    /// Raspberry Pi 5.
    Pi5,
    /// Raspberry Pi Zero 2 W.
    Zero2w,
    /// No GPIO.
    Generic,
}

/// A GPIO line in the config: `{ pin = 17, active_low = false }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    /// BCM GPIO number; -1 leaves the feature out.
    pub pin: Ranged<-1, 53>,
    /// Active (lit, on, motion, pressed) when low.
    #[serde(default)]
    pub active_low: bool,
}

impl BoardConfig {
    /// The profile in effect, given the device tree's model string.
    pub fn profile(&self, model: Option<&str>) -> Profile {
        match self.profile {
            BoardProfile::Auto => Profile::from_model(model),
            BoardProfile::Pi4 => Profile::Pi4,
            BoardProfile::Pi5 => Profile::Pi5,
            BoardProfile::Zero2w => Profile::Zero2W,
            BoardProfile::Generic => Profile::Generic,
        }
    }

    /// The lines in effect: the profile's, with the configured ones instead.
    pub fn lines(&self, profile: Profile) -> Lines {
        let defaults = profile.default_lines();
        let pick = |configured: Option<GpioLine>, default: Option<Line>| match configured {
            None => default,
            Some(line) => u8::try_from(line.pin.get()).ok().map(|pin| Line {
                pin,
                active_low: line.active_low,
            }),
        };
        Lines {
            status_led: pick(self.status_led, defaults.status_led),
            relay: pick(self.relay, defaults.relay),
            pir: pick(self.pir, defaults.pir),
            button: pick(self.button, defaults.button),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn a_profile_gives_the_lines_and_the_config_overrides_or_removes_them() {
        let config = Config::from_toml(
            "[board]\nprofile = \"zero2w\"\ngpio_chip = \"pinctrl-bcm2835\"\nrelay = { pin = 5, active_low = true }\npir = { pin = -1 }\n",
        )
        .unwrap()
        .board;
        let profile = config.profile(Some("Raspberry Pi 4 Model B"));
        assert_eq!(profile, Profile::Zero2W, "an explicit profile wins over the model");
        assert_eq!(config.gpio_chip.as_deref(), Some("pinctrl-bcm2835"));
        assert_eq!(BoardConfig::default().gpio_chip, None);
        let lines = config.lines(profile);
        assert_eq!(lines.status_led, Profile::Zero2W.default_lines().status_led);
        assert_eq!(
            lines.relay,
            Some(Line {
                pin: 5,
                active_low: true
            })
        );
        assert_eq!(lines.pir, None);
        let auto = BoardConfig::default();
        assert_eq!(auto.profile(Some("linux,dummy-virt")), Profile::Generic);
        assert_eq!(auto.lines(Profile::Generic), Lines::default());
    }

    #[test]
    fn bad_board_settings_name_the_key() {
        for (text, why) in [
            ("[board]\nprofile = \"pi3\"\n", "unknown variant"),
            ("[board]\nrelay = { pin = 60 }\n", "expected -1 to 53"),
            ("[board]\nbutton = { pin = 3, pullup = true }\n", "unknown field"),
        ] {
            let err = Config::from_toml(text).unwrap_err();
            assert!(err.contains(why), "error for {text:?} was: {err}");
        }
    }
}
