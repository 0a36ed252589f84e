//! The `[motion]` section: motion-gated detection.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Ranged;
use crate::motion::{GateSettings, MotionSettings, GRID_H, GRID_W};
use crate::pipeline::MotionOptions;

/// `[motion]`: a cheap motion detector looks at every frame; on a still
/// scene the object detector runs only at the heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotionConfig {
    /// Gate the detector by motion; false: it runs at `[detect] max_rate` always.
    pub enabled: bool,
    /// On a still scene the detector runs once per this many milliseconds.
    pub heartbeat_ms: Ranged<100, 3_600_000>,
    /// Full rate goes on this long after the last motion.
    pub hold_ms: Ranged<0, 600_000>,
    /// Objects found keep full rate this long after the last motion.
    pub track_ms: Ranged<0, 3_600_000>,
    /// Least change of a cell's mean luma (0-255) that counts as motion.
    pub threshold: Ranged<1, 255>,
    /// A cell must also change by this many times the measured sensor noise.
    pub noise_factor: Ranged<1, 50>,
    /// Fewest moving cells (of a 32 x 24 grid) that make a frame moving.
    pub min_cells: Ranged<1, 768>,
    /// A change that stays this long becomes part of the background.
    pub background_ms: Ranged<100, 600_000>,
}

impl Default for MotionConfig {
    fn default() -> Self {
        let d = MotionSettings::default();
        let g = GateSettings::default();
        let ms = |t: Duration| t.as_millis() as i64;
        Self {
            enabled: true,
            heartbeat_ms: Ranged(ms(g.heartbeat)),
            hold_ms: Ranged(ms(g.hold)),
            track_ms: Ranged(ms(g.track)),
            threshold: Ranged(d.threshold as i64),
            noise_factor: Ranged(d.noise_factor as i64),
            min_cells: Ranged(d.min_cells as i64),
            background_ms: Ranged(ms(d.background)),
        }
    }
}

impl MotionConfig {
    /// The pipeline's motion options; `None` when the gate is off.
    pub fn options(&self) -> Option<MotionOptions> {
        let ms = |v: i64| Duration::from_millis(v as u64);
        self.enabled.then(|| MotionOptions {
            detector: MotionSettings {
                threshold: self.threshold.get() as f32,
                noise_factor: self.noise_factor.get() as f32,
                min_cells: (self.min_cells.get() as usize).min(GRID_W * GRID_H),
                background: ms(self.background_ms.get()),
            },
            gate: GateSettings {
                heartbeat: ms(self.heartbeat_ms.get()),
                hold: ms(self.hold_ms.get()),
                track: ms(self.track_ms.get()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn defaults_match_the_motion_module_and_are_on() {
        let options = MotionConfig::default().options().unwrap();
        assert_eq!(options.detector, MotionSettings::default());
        assert_eq!(options.gate, GateSettings::default());
        let off = Config::from_toml("[motion]\nenabled = false\n").unwrap();
        assert_eq!(off.motion.options(), None);
        let set = Config::from_toml("[motion]\nheartbeat_ms = 2000\nhold_ms = 0\nthreshold = 10\n").unwrap();
        let options = set.motion.options().unwrap();
        assert_eq!(options.gate.heartbeat, Duration::from_secs(2));
        assert_eq!(options.gate.hold, Duration::ZERO);
        assert_eq!(options.detector.threshold, 10.0);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key, why) in [
            (
                "[motion]\nheartbeat_ms = 10\n",
                "heartbeat_ms",
                "expected 100 to 3600000",
            ),
            ("[motion]\nthreshold = 0\n", "threshold", "expected 1 to 255"),
            ("[motion]\nmin_cells = 1000\n", "min_cells", "expected 1 to 768"),
            ("[motion]\nhold_ms = -1\n", "hold_ms", "expected 0 to 600000"),
            ("[motion]\nnoise_factor = 2.5\n", "noise_factor", "invalid type"),
            ("[motion]\nenabled = \"yes\"\n", "enabled", "invalid type"),
            ("[motion]\nsensitivity = 3\n", "sensitivity", "unknown field"),
        ] {
            let err = Config::from_toml(text).unwrap_err();
            assert!(err.contains(key) && err.contains(why), "error for {text:?} was: {err}");
        }
    }
}
