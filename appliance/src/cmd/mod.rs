//! The binary's commands.

pub mod cameras;
mod http;
pub mod inspect;
mod media_socket;
pub mod record;
pub mod run;

use anyhow::Context as _;
use mado::config::Config;
use mado::encode::Rav1eEncoder;
use mado::frame::VideoSize;
use mado::pipeline::{Pace, Pipeline, PipelineOptions};
use mado::source::SourceRequest;

/// A started pipeline and what it is encoding.
pub struct Started {
    pub pipeline: Pipeline,
    pub source: String,
    pub size: VideoSize,
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
    let encoder = Rav1eEncoder::new(&settings).context("starting the AV1 encoder")?;
    tracing::info!(source = %source.describe(), fps = settings.fps, kbps = settings.bitrate_kbps, "pipeline starting");
    let options = PipelineOptions {
        pace,
        queue_frames: config.pipeline.queue_frames.get() as usize,
        frame_limit,
    };
    let (description, size) = (source.describe(), source.size());
    Ok(Started {
        pipeline: Pipeline::start(source, Box::new(encoder), options),
        source: description,
        size,
    })
}
