//! The `[events]` configuration section: which detections make events, and
//! how their clips are cut and kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Ranged;
use crate::events::{ClipSettings, TrackerSettings, Zone};
use crate::meta::{Norm16, MAX_LABEL};

/// `[events]`: events, snapshots and clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Track events and write their snapshots and clips.
    pub enabled: bool,
    /// Labels that make events; empty: every label the detector gives.
    pub classes: Classes,
    /// A detection must score at least this (0 to 1).
    pub min_score: Score,
    /// Frames with a detection before an event starts.
    pub min_frames: Ranged<1, 1_000>,
    /// When not empty, only detections standing in a zone count
    /// (`[[events.zones]]` with `name` and `points = [[x, y], ...]`, 0 to 1).
    pub zones: Vec<Zone>,
    /// An event ends after this long without a detection.
    pub quiet_ms: Ranged<100, 600_000>,
    /// An event that goes on longer is ended, and the next detection starts another.
    pub max_event_ms: Ranged<1_000, 3_600_000>,
    /// Video kept before an event's start (from the keyframe at or before it).
    pub pre_roll_ms: Ranged<0, 60_000>,
    /// Video kept after an event's end.
    pub post_roll_ms: Ranged<0, 60_000>,
    /// Where snapshots and clips go; empty: `clips` in the state directory
    /// (`$STATE_DIRECTORY`, else the working directory).
    pub clip_dir: PathBuf,
    /// Clips older than this many hours are deleted; 0 keeps them for any time.
    pub max_age_hours: Ranged<0, 87_600>,
    /// The clips together may take this many kilobytes; the oldest go first.
    pub quota_kb: Ranged<1, 1_000_000_000>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            classes: Classes(vec!["person".into()]),
            min_score: Score(0.5),
            min_frames: Ranged::new_const(3),
            zones: Vec::new(),
            quiet_ms: Ranged::new_const(5_000),
            max_event_ms: Ranged::new_const(300_000),
            pre_roll_ms: Ranged::new_const(3_000),
            post_roll_ms: Ranged::new_const(3_000),
            clip_dir: PathBuf::new(),
            max_age_hours: Ranged::new_const(168),
            quota_kb: Ranged::new_const(1_048_576),
        }
    }
}

impl EventsConfig {
    /// The tracker's settings.
    pub fn tracker(&self) -> TrackerSettings {
        TrackerSettings {
            classes: self.classes.0.clone(),
            min_score: Norm16::from_f32(self.min_score.0),
            min_frames: self.min_frames.get() as u32,
            zones: self.zones.clone(),
            quiet_ms: self.quiet_ms.get() as u64,
            max_event_ms: self.max_event_ms.get() as u64,
        }
    }

    /// The clip recorder's settings; `frame_ms` is the time between frames.
    pub fn clips(&self, frame_ms: u64) -> ClipSettings {
        ClipSettings {
            pre_roll_ms: self.pre_roll_ms.get() as u64,
            post_roll_ms: self.post_roll_ms.get() as u64,
            lead_ms: self.quiet_ms.get() as u64 + frame_ms * self.min_frames.get() as u64,
        }
    }

    /// The clip directory: `clip_dir`, else `clips` under `state_dir`.
    pub fn clip_dir_in(&self, state_dir: &std::path::Path) -> PathBuf {
        if self.clip_dir.as_os_str().is_empty() {
            state_dir.join("clips")
        } else {
            self.clip_dir.clone()
        }
    }
}

/// A score from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f32", into = "f32")]
pub struct Score(f32);

impl Score {
    /// The value.
    pub fn get(self) -> f32 {
        self.0
    }
}

impl TryFrom<f32> for Score {
    type Error = String;
    fn try_from(v: f32) -> Result<Self, String> {
        if (0.0..=1.0).contains(&v) {
            Ok(Self(v))
        } else {
            Err(format!("{v} is out of range: expected 0 to 1"))
        }
    }
}

impl From<Score> for f32 {
    fn from(s: Score) -> f32 {
        s.0
    }
}

/// Class labels: each non-empty, at most the metadata's label length, no repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Classes(Vec<String>);

impl Classes {
    /// The labels.
    pub fn labels(&self) -> &[String] {
        &self.0
    }
}

impl TryFrom<Vec<String>> for Classes {
    type Error = String;
    fn try_from(labels: Vec<String>) -> Result<Self, String> {
        for (i, label) in labels.iter().enumerate() {
            if label.trim().is_empty() || label.len() > MAX_LABEL {
                return Err(format!("class {label:?} must be 1 to {MAX_LABEL} bytes"));
            }
            if labels[..i].contains(label) {
                return Err(format!("class {label:?} is listed twice"));
            }
        }
        Ok(Self(labels))
    }
}

impl From<Classes> for Vec<String> {
    fn from(c: Classes) -> Self {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn events_parse_with_zones() {
        let config = Config::from_toml(
            "[events]\nenabled = true\nclasses = [\"person\", \"car\"]\nmin_score = 0.6\nquota_kb = 500\n\
             [[events.zones]]\nname = \"drive\"\npoints = [[0, 0.5], [1, 0.5], [1, 1]]\n",
        )
        .unwrap();
        let e = &config.events;
        assert!(e.enabled);
        assert_eq!(e.classes.labels(), ["person", "car"]);
        assert_eq!(e.zones[0].name(), "drive");
        assert!(e.zones[0].contains(0.9, 0.9));
        assert_eq!(e.quota_kb.get(), 500);
        assert_eq!(e.pre_roll_ms.get(), 3_000, "defaults for the rest");
        let text = toml::to_string(&config).unwrap();
        assert_eq!(Config::from_toml(&text).unwrap(), config);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key, why) in [
            ("[events]\nmin_score = 1.5\n", "min_score", "expected 0 to 1"),
            ("[events]\nclasses = [\"\"]\n", "classes", "1 to 20 bytes"),
            ("[events]\nclasses = [\"a\", \"a\"]\n", "classes", "listed twice"),
            ("[events]\nquiet_ms = 5\n", "quiet_ms", "expected 100 to"),
            ("[events]\nquota_kb = 0\n", "quota_kb", "out of range"),
            ("[events]\npreroll = 1\n", "preroll", "unknown field"),
            (
                "[[events.zones]]\nname = \"z\"\npoints = [[0, 0], [1, 0]]\n",
                "zones",
                "at least 3",
            ),
            (
                "[[events.zones]]\nname = \"z\"\npoints = [[0, 0], [2, 0], [0, 1]]\n",
                "zones",
                "outside 0 to 1",
            ),
            (
                "[[events.zones]]\nname = \"z\"\npoints = [[0, 0], [1, 0], [0, 1]]\ncolour = 1\n",
                "colour",
                "unknown field",
            ),
        ] {
            let err = Config::from_toml(text).unwrap_err();
            assert!(err.contains(key) && err.contains(why), "error for {text:?} was: {err}");
        }
    }
}
