//! `mado run`: the appliance's main loop.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use mado::config::Config;
use mado::pipeline::Pace;

const STATUS_EVERY: Duration = Duration::from_secs(5);

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let pipeline = super::start_pipeline(
        config,
        Pace::RealTime {
            fps: config.source.fps.get() as u32,
        },
        None,
    )?;
    let mut last_report = Instant::now();
    let mut last = pipeline.stats();
    while pipeline.output().recv_blocking().is_ok() {
        if last_report.elapsed() >= STATUS_EVERY {
            let now = pipeline.stats();
            let secs = last_report.elapsed().as_secs_f64();
            tracing::info!(
                fps = format!("{:.1}", (now.encoded - last.encoded) as f64 / secs),
                kbps = format!(
                    "{:.0}",
                    (now.encoded_bytes - last.encoded_bytes) as f64 * 8.0 / secs / 1000.0
                ),
                dropped = now.dropped,
                latency_ms = now.last_latency_us / 1000,
                "streaming"
            );
            (last, last_report) = (now, Instant::now());
        }
    }
    pipeline.join()?;
    Ok(ExitCode::SUCCESS)
}
