//! The binary's commands: the shell of ARCHITECTURE.md. Sockets, HTTP,
//! files, the clock and threads live here and in the pipeline's thread
//! runner; everything they drive takes time as an argument.

mod account;
pub mod auth;
mod board_io;
mod body;
pub mod cameras;
mod events;
mod events_http;
mod http;
pub mod inspect;
mod login;
mod media_socket;
mod mqtt;
mod mqtt_task;
mod publish;
pub mod record;
pub mod run;
mod service;
mod status;
mod zones;

use anyhow::Context as _;
use mado::config::Config;
use mado::frame::VideoSize;
use std::path::{Path, PathBuf};

use mado::detect::{Detector, ModelDetector};
use mado::pipeline::{DetectionOptions, OpenDetector, Pace, Pipeline, PipelineOptions};
use mado::source::SourceRequest;

/// The directory of the running executable, where the install prefix and a
/// build tree are found from.
fn exe_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_default()
}

/// The configured detector, or why there is none. The runtime library and the
/// `auto` model are looked for in fixed places (the config, then
/// `$MADO_LITERT_LIB`, then next to the executable: see
/// [`mado::detect::runtime_places`]), never in the working directory. The
/// runtime's and the model's sha256 are checked here, before the pipeline
/// starts: a missing or unknown runtime or a corrupt model leaves video
/// running with detection off, and the reason is returned for the status.
fn detection(config: &Config) -> Result<DetectionOptions, String> {
    let d = &config.detect;
    let exe_dir = exe_dir();
    let library = match d.runtime.as_str() {
        "" => {
            let env = std::env::var_os(mado::detect::LITERT_LIB_ENV).map(PathBuf::from);
            let places = mado::detect::runtime_places(env, &exe_dir);
            places
                .iter()
                .find(|p| p.exists())
                .cloned()
                .unwrap_or_else(|| places[0].clone())
        }
        path => PathBuf::from(path),
    };
    let manifest = match d.model.as_str() {
        "none" => return Err("detection is off in the config (detect.model = \"none\")".into()),
        "auto" => {
            let places = mado::detect::default_manifest_places(&exe_dir);
            match places.iter().find(|p| p.exists()) {
                Some(found) => found.clone(),
                None => return Err(format!("no model installed (looked for {})", show(&places))),
            }
        }
        path => PathBuf::from(path),
    };
    if !library.exists() {
        return Err(format!(
            "the LiteRT runtime {} is missing (scripts/models/fetch-runtime)",
            library.display()
        ));
    }
    mado::detect::runtime::check_runtime(&library).map_err(|e| e.to_string())?;
    mado::detect::load_model_bytes(&manifest).map_err(|e| e.to_string())?;
    tracing::info!(model = %manifest.display(), runtime = %library.display(), mode = ?d.mode, "detector starting");
    let threads = d.threads.get() as usize;
    let open: OpenDetector = Box::new(move || {
        let detector = ModelDetector::open_litert(&manifest, &library, threads)?;
        Ok(Box::new(detector) as Box<dyn Detector>)
    });
    Ok(DetectionOptions {
        open,
        mode: d.mode,
        max_rate: d.max_rate,
        classes: d.classes.clone(),
        min_score: mado::meta::Norm16::from_f32(d.score_threshold),
        motion: config.motion.options(),
    })
}

fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A started pipeline and what it is encoding.
pub struct Started {
    pub pipeline: Pipeline,
    pub source: String,
    pub size: VideoSize,
    pub settings: mado::encode::EncoderSettings,
    /// Why no detector runs, when none does (for /api/status).
    pub detection_off: Option<String>,
}

/// Opens the configured source and encoder and starts the pipeline.
pub fn start_pipeline(config: &Config, pace: Pace, frame_limit: Option<u64>) -> anyhow::Result<Started> {
    let spec = &config.source.kind;
    let request = SourceRequest {
        size: config.source.size,
        fps: config.source.fps.get() as u32,
        camera_format: config.source.camera_format.pixel_format(),
    };
    let source = mado::source::open(spec, request).with_context(|| format!("opening source {spec}"))?;
    let settings = config.encoder_settings(source.size());
    let stage = mado::pipeline::EncodeStage::adaptive(settings.clone())
        .with_context(|| format!("starting the {} AV1 encoder", settings.backend))?;
    tracing::info!(source = %source.describe(), fps = settings.fps, kbps = settings.bitrate_kbps, "pipeline starting");
    let options = PipelineOptions {
        pace,
        queue_frames: config.pipeline.queue_frames.get() as usize,
        frame_limit,
    };
    let (description, size) = (source.describe(), source.size());
    let (detection, detection_off) = if source.labels_itself() {
        (None, None)
    } else {
        match detection(config) {
            Ok(detection) => (Some(detection), None),
            Err(reason) => {
                if config.detect.model == "none" {
                    tracing::info!("{reason}");
                } else {
                    tracing::warn!("detection off: {reason}");
                }
                (None, Some(reason))
            }
        }
    };
    let pipeline = Pipeline::start(source, stage, options, detection).context("starting the pipeline")?;
    Ok(Started {
        pipeline,
        source: description,
        size,
        settings,
        detection_off,
    })
}
