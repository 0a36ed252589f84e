//! The systemd side of `mado run`: `READY=1`, `STATUS=` and watchdog pings
//! over the notify socket, as [`ServiceHealth`] decides from the pipeline's
//! progress. Without `NOTIFY_SOCKET` (not under systemd) nothing is sent.

use std::time::Instant;

use mado::health::{Notice, Progress, ServiceHealth, StatusSummary};
use mado::pipeline::StatsSnapshot;
use sd_notify::NotifyState;

use super::http::HttpState;

/// Tells systemd how the service is doing; fed from the media driver loop.
pub struct Service {
    health: ServiceHealth,
    /// The notify socket failed once; said in the log, not again.
    failed: bool,
}

impl Service {
    /// Reads the watchdog period systemd passes in the environment.
    pub fn from_env() -> Self {
        #[allow(clippy::disallowed_methods, reason = "the service shell starts the health clock")]
        let now = Instant::now();
        let watchdog = sd_notify::watchdog_enabled();
        if let Some(period) = watchdog {
            tracing::info!(?period, "systemd watchdog enabled; fed while frames are encoded");
        }
        Self {
            health: ServiceHealth::new(now, watchdog),
            failed: false,
        }
    }

    /// One turn of the driver loop at `now`, after the status is published;
    /// returns whether the pipeline is healthy.
    pub fn tick(&mut self, now: Instant, stats: &StatsSnapshot, state: &HttpState) -> bool {
        self.health.handle_progress(
            now,
            Progress {
                frames_encoded: stats.encoded,
                camera_lost: stats.source_lost,
            },
        );
        let healthy = self.health.is_healthy(now);
        if let Some(line) = status_line(state, healthy) {
            self.health.handle_status(line);
        }
        while let Some(notice) = self.health.poll_notice(now) {
            let sent = match &notice {
                Notice::Ready => sd_notify::notify(&[NotifyState::Ready]),
                Notice::Watchdog => sd_notify::notify(&[NotifyState::Watchdog]),
                Notice::Status(line) => sd_notify::notify(&[NotifyState::Status(line)]),
            };
            if notice == Notice::Ready {
                tracing::info!("first frame encoded: ready");
            }
            if let Err(e) = sent {
                if !std::mem::replace(&mut self.failed, true) {
                    tracing::warn!("cannot notify systemd: {e}");
                }
            }
        }
        healthy
    }
}

/// The status line from what the dashboard shows.
fn status_line(state: &HttpState, healthy: bool) -> Option<String> {
    let status = state.status.lock().ok()?;
    let size = (status.width, status.height);
    // The test pattern's description names its size already.
    let source = status.source.as_str();
    let source = source
        .strip_suffix(&format!(" {}x{}", size.0, size.1))
        .unwrap_or(source);
    let summary = StatusSummary {
        source,
        size,
        fps: status.fps,
        kbps: status.bitrate_kbps,
        viewers: status.viewers_connected as u64,
        camera: status.camera.as_str(),
    };
    Some(summary.line(healthy))
}
