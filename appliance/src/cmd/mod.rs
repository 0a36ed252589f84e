//! The binary's commands.

mod board_io;
pub mod cameras;
mod http;
pub mod inspect;
mod media_socket;
pub mod record;
pub mod run;
mod service;

use anyhow::Context as _;
use mado::config::Config;
use mado::frame::VideoSize;
use std::path::{Path, PathBuf};

use mado::detect::{Detector, ModelDetector};
use mado::pipeline::{DetectionOptions, OpenDetector, Pace, Pipeline, PipelineOptions};
use mado::source::SourceRequest;

/// The general detector `model = "auto"` uses when it is installed.
const DEFAULT_MANIFEST: &str = "models/ssd_mobilenetv2_oidv4.toml";

/// The configured detector, if any; `auto` quietly does without one when the
/// model or the runtime library is not installed.
fn detection(config: &Config) -> anyhow::Result<Option<DetectionOptions>> {
    let d = &config.detect;
    let library = match d.runtime.as_str() {
        "" => mado::detect::litert_library(Path::new(".")),
        path => PathBuf::from(path),
    };
    let manifest = match d.model.as_str() {
        "none" => return Ok(None),
        "auto" if !Path::new(DEFAULT_MANIFEST).exists() || !library.exists() => {
            tracing::info!(
                "no detector: needs {DEFAULT_MANIFEST} and {} (scripts/models/fetch-runtime)",
                library.display()
            );
            return Ok(None);
        }
        "auto" => PathBuf::from(DEFAULT_MANIFEST),
        path => PathBuf::from(path),
    };
    tracing::info!(model = %manifest.display(), mode = ?d.mode, "detector starting");
    let threads = d.threads.get() as usize;
    let open: OpenDetector = Box::new(move || {
        let detector = ModelDetector::open_litert(&manifest, &library, threads)?;
        Ok(Box::new(detector) as Box<dyn Detector>)
    });
    Ok(Some(DetectionOptions {
        open,
        mode: d.mode,
        max_rate: d.max_rate,
        classes: d.classes.clone(),
        min_score: mado::meta::Norm16::from_f32(d.score_threshold),
    }))
}

/// A started pipeline and what it is encoding.
pub struct Started {
    pub pipeline: Pipeline,
    pub source: String,
    pub size: VideoSize,
    pub settings: mado::encode::EncoderSettings,
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
    let detection = if source.labels_itself() {
        None
    } else {
        detection(config)?
    };
    let pipeline = Pipeline::start(source, stage, options, detection).context("starting the pipeline")?;
    Ok(Started {
        pipeline,
        source: description,
        size,
        settings,
    })
}
