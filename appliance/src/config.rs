//! The appliance's settings, read from TOML. Every setting has a default, so
//! no file is needed; unknown keys and bad values are errors that name the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::adapt::Rung;
use crate::encode::{Backend, EncoderSettings};
use crate::frame::VideoSize;
use crate::source::SourceSpec;

pub mod events;
pub mod mqtt;
pub mod publish;

mod board_config;
pub use board_config::{BoardConfig, BoardProfile, GpioLine};
mod motion_config;
pub use motion_config::MotionConfig;

/// Why the configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has a bad value.
    #[error("config {path} is invalid: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the key and line.
        message: String,
    },
}

/// An integer setting that must lie in `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Ranged<const MIN: i64, const MAX: i64>(i64);

impl<const MIN: i64, const MAX: i64> Ranged<MIN, MAX> {
    /// `value` as a setting; fails to compile in a `const` when out of range.
    pub const fn new_const(value: i64) -> Self {
        assert!(MIN <= value && value <= MAX);
        Self(value)
    }
    /// The value.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl<const MIN: i64, const MAX: i64> TryFrom<i64> for Ranged<MIN, MAX> {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, String> {
        if (MIN..=MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("{value} is out of range: expected {MIN} to {MAX}"))
        }
    }
}

impl<const MIN: i64, const MAX: i64> From<Ranged<MIN, MAX>> for i64 {
    fn from(value: Ranged<MIN, MAX>) -> i64 {
        value.0
    }
}

/// Every setting of the appliance, one section per TOML table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[source]`: where frames come from.
    pub source: SourceConfig,
    /// `[encoder]`: the AV1 encoder.
    pub encoder: EncoderConfig,
    /// `[pipeline]`: queues between the stages.
    pub pipeline: PipelineConfig,
    /// `[live]`: the live view's HTTP and media ports.
    pub live: LiveConfig,
    /// `[detect]`: on-device detection.
    pub detect: DetectConfig,
    /// `[adapt]`: bandwidth adaptation.
    pub adapt: AdaptConfig,
    /// `[publish]`: WHIP endpoints (cloud SFUs) to push the stream to.
    pub publish: publish::PublishConfig,
    /// `[board]`: the board profile and its GPIO lines.
    pub board: BoardConfig,
    /// `[mqtt]`: the MQTT broker and Home Assistant discovery.
    pub mqtt: mqtt::MqttConfig,
    /// `[events]`: events, their snapshots and clips.
    pub events: events::EventsConfig,
    /// `[motion]`: motion-gated detection.
    pub motion: MotionConfig,
}

/// Bandwidth adaptation: the encoder follows the viewers' links (libaom; with
/// rav1e only the ladder's rungs change, each with a new encoder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptConfig {
    /// Follow the viewers' links; when false the encoder keeps its configured bitrate.
    pub enabled: bool,
    /// The bitrate is never set below this; `[encoder] bitrate_kbps` is the ceiling.
    pub floor_kbps: Ranged<50, 50_000>,
    /// From the top rung down: below a rung's `min_kbps` the next one is used.
    pub ladder: Ladder,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        let rung = |min_kbps, scale, fps| Rung { min_kbps, scale, fps };
        Self {
            enabled: true,
            floor_kbps: Ranged::new_const(150),
            ladder: Ladder(vec![rung(700, 1, 30), rung(300, 2, 30), rung(0, 2, 15)]),
        }
    }
}

/// A checked ladder: at least one rung, floors falling, scales 1, 2 or 4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Rung>", into = "Vec<Rung>")]
pub struct Ladder(Vec<Rung>);

impl Ladder {
    /// The ladder's rungs, from the top.
    pub fn rungs(&self) -> &[Rung] {
        &self.0
    }
}

impl TryFrom<Vec<Rung>> for Ladder {
    type Error = String;
    fn try_from(rungs: Vec<Rung>) -> Result<Self, String> {
        if rungs.is_empty() {
            return Err("the ladder needs at least one rung".into());
        }
        if let Some(r) = rungs
            .iter()
            .find(|r| ![1, 2, 4].contains(&r.scale) || !(1..=120).contains(&r.fps))
        {
            return Err(format!("rung {r:?}: scale must be 1, 2 or 4 and fps 1 to 120"));
        }
        if rungs.windows(2).any(|w| w[1].min_kbps >= w[0].min_kbps) {
            return Err("rungs must go from the highest min_kbps down".into());
        }
        Ok(Self(rungs))
    }
}

impl From<Ladder> for Vec<Rung> {
    fn from(ladder: Ladder) -> Self {
        ladder.0
    }
}

/// `[source]`: where frames come from and at what size and rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// `auto`, `testpattern` or `file:PATH.y4m`.
    pub kind: SourceSpec,
    /// Picture size for sources that can produce any size.
    pub size: VideoSize,
    /// Frames per second.
    pub fps: Ranged<1, 120>,
    /// Camera pixel format: auto picks the first of YU12, NV12, YUYV, MJPG the camera offers.
    pub camera_format: CameraFormat,
}

/// A camera pixel format setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CameraFormat {
    /// The first format the camera offers that can be converted.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// Planar 4:2:0 (`YU12`).
    #[serde(rename = "YU12")]
    Yu12,
    /// Semi-planar 4:2:0 (`NV12`).
    #[serde(rename = "NV12")]
    Nv12,
    /// Packed 4:2:2 (`YUYV`).
    #[serde(rename = "YUYV")]
    Yuyv,
    /// Motion JPEG (`MJPG`).
    #[serde(rename = "MJPG")]
    Mjpg,
}

impl CameraFormat {
    /// The pixel format to insist on; `None` for `auto`.
    pub fn pixel_format(self) -> Option<board::camera::PixelFormat> {
        use board::camera::PixelFormat;
        match self {
            Self::Auto => None,
            Self::Yu12 => Some(PixelFormat::Yu12),
            Self::Nv12 => Some(PixelFormat::Nv12),
            Self::Yuyv => Some(PixelFormat::Yuyv),
            Self::Mjpg => Some(PixelFormat::Mjpeg),
        }
    }
}

/// `[encoder]`: the AV1 encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderConfig {
    /// `aom` (libaom in real-time mode) or `rav1e`.
    pub backend: Backend,
    /// 10 is fastest: rav1e's preset (0 to 10) or libaom's real-time speed (5 to 10).
    pub speed: Ranged<0, 10>,
    /// At most this many frames between keyframes.
    pub keyframe_interval: Ranged<1, 600>,
    /// Target bitrate, and the ceiling when adapting.
    pub bitrate_kbps: Ranged<50, 50_000>,
    /// Lowest quantizer index (0 to 255) rate control may use: caps quality
    /// on easy scenes, saving CPU time and bits.
    pub min_quantizer: Ranged<0, 255>,
    /// Encoder threads; 0 means one per core.
    pub threads: Ranged<0, 64>,
    /// Tiles per frame; 0 chooses from the picture size.
    pub tiles: Ranged<0, 64>,
    /// 2 encodes every other frame as a layer nothing depends on, so a slow
    /// viewer can get half the frames (libaom only; rav1e always uses 1).
    pub temporal_layers: Ranged<1, 2>,
}

/// `[pipeline]`: queues between the stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Frames that may wait for the encoder before the oldest is dropped.
    pub queue_frames: Ranged<1, 256>,
}

/// `[live]`: the live view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Address of the dashboard and the WHEP endpoint.
    pub listen: std::net::SocketAddr,
    /// UDP port all viewers' media goes through; 0 picks a free one.
    pub udp_port: Ranged<0, 65535>,
    /// Addresses offered to viewers as ICE host candidates; empty means
    /// every address of every network interface.
    pub announce: Vec<std::net::IpAddr>,
    /// Viewers served at once.
    pub max_viewers: Ranged<1, 64>,
    /// Forced keyframes (for joining viewers and loss reports) are at least this far apart.
    pub keyframe_min_interval_ms: Ranged<0, 10_000>,
    /// Rate each viewer's packets are paced out at, spreading keyframes over time; 0 means three times the bitrate.
    pub pacing_kbps: Ranged<0, 1_000_000>,
}

/// `[detect]`: on-device detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// A model manifest (see models/), `auto` (the general detector when it
    /// and the runtime are installed) or `none`.
    pub model: String,
    /// `exact`: a frame waits for its own detections; `latest`: frames carry the newest.
    pub mode: crate::pipeline::DetectMode,
    /// Most detections a second; the detector always takes the newest frame.
    pub max_rate: f64,
    /// Keep only these classes (labels from the model); empty keeps all.
    pub classes: Vec<String>,
    /// Drop detections scoring below this (on top of the model's own threshold).
    pub score_threshold: f32,
    /// Inference threads.
    pub threads: Ranged<1, 16>,
    /// The LiteRT C library; empty: `$MADO_LITERT_LIB`, else `PREFIX/lib/mado/` for
    /// `PREFIX/bin/mado`, else a build tree's `target/litert/` (scripts/models/fetch-runtime).
    pub runtime: String,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            model: "auto".into(),
            mode: crate::pipeline::DetectMode::Latest,
            max_rate: 15.0,
            classes: Vec::new(),
            score_threshold: 0.0,
            threads: Ranged::new_const(2),
            runtime: String::new(),
        }
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 8080).into(),
            udp_port: Ranged::new_const(8189),
            announce: Vec::new(),
            max_viewers: Ranged::new_const(16),
            keyframe_min_interval_ms: Ranged::new_const(300),
            pacing_kbps: Ranged::new_const(0),
        }
    }
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            kind: SourceSpec::Auto,
            size: VideoSize::new(640, 480).expect("valid"),
            fps: Ranged::new_const(30),
            camera_format: CameraFormat::Auto,
        }
    }
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Aom,
            speed: Ranged::new_const(10),
            keyframe_interval: Ranged::new_const(120),
            bitrate_kbps: Ranged::new_const(1500),
            min_quantizer: Ranged::new_const(64),
            threads: Ranged::new_const(0),
            tiles: Ranged::new_const(0),
            temporal_layers: Ranged::new_const(2),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            queue_frames: Ranged::new_const(3),
        }
    }
}

impl Config {
    /// Reads `path`, or returns the defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text; the error names the offending key and line.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e: toml::de::Error| e.to_string().trim_end().to_owned())?;
        config.mqtt.check()?;
        Ok(config)
    }

    /// Encoder settings for frames of `size`.
    pub fn encoder_settings(&self, size: VideoSize) -> EncoderSettings {
        let e = &self.encoder;
        EncoderSettings {
            backend: e.backend,
            size,
            fps: self.source.fps.get() as u32,
            speed: e.speed.get() as u8,
            keyframe_interval: e.keyframe_interval.get() as u32,
            bitrate_kbps: e.bitrate_kbps.get() as u32,
            min_quantizer: e.min_quantizer.get() as u8,
            threads: e.threads.get() as usize,
            tiles: e.tiles.get() as usize,
            temporal_layers: match e.backend {
                Backend::Aom => e.temporal_layers.get() as u8,
                Backend::Rav1e => 1,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults_and_defaults_round_trip() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
        let text = toml::to_string(&Config::default()).unwrap();
        assert_eq!(Config::from_toml(&text).unwrap(), Config::default());
    }

    #[test]
    fn partial_file_overrides_only_what_it_names() {
        let config = Config::from_toml("[source]\nkind = \"file:street.y4m\"\nfps = 10\n").unwrap();
        assert_eq!(config.source.kind, SourceSpec::File("street.y4m".into()));
        assert_eq!(config.source.fps.get(), 10);
        assert_eq!(config.source.size, SourceConfig::default().size);
        assert_eq!(config.encoder, EncoderConfig::default());
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key, why) in [
            ("[source]\nfpss = 30\n", "fpss", "unknown field"),
            ("[encoder]\nspeed = 11\n", "speed", "expected 0 to 10"),
            ("[source]\nsize = \"641x480\"\n", "size", "must be even"),
            (
                "[source]\nkind = \"webcam\"\n",
                "kind",
                "expected auto, testpattern, camera",
            ),
            ("[pipeline]\nqueue_frames = \"many\"\n", "queue_frames", "invalid type"),
            ("[networking]\n", "networking", "unknown field"),
            ("[live]\nlisten = \"localhost\"\n", "listen", "invalid socket address"),
            (
                "[live]\nannounce = [\"10.0.0.300\"]\n",
                "announce",
                "invalid IP address",
            ),
            ("[source\n", "source", "TOML parse error"),
            ("[encoder]\nbackend = \"x264\"\n", "backend", "unknown variant"),
            (
                "[adapt]\nladder = [{ min_kbps = 100, scale = 3, fps = 30 }]\n",
                "ladder",
                "scale must be 1, 2 or 4",
            ),
            (
                "[adapt]\nladder = [{ min_kbps = 100, scale = 1, fps = 30 }, { min_kbps = 200, scale = 2, fps = 30 }]\n",
                "ladder",
                "highest min_kbps down",
            ),
            ("[adapt]\nladder = []\n", "ladder", "at least one rung"),
        ] {
            let err = Config::from_toml(text).unwrap_err();
            assert!(err.contains(key) && err.contains(why), "error for {text:?} was: {err}");
        }
    }
}
