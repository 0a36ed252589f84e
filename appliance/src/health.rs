//! The service's health as systemd sees it: when to say `READY=1`, when to
//! feed the watchdog and what `STATUS=` line to show.
//!
//! A sans-IO state machine: the media driver loop reports the pipeline's
//! progress with the time ([`ServiceHealth::handle_progress`]) and asks what
//! to tell the service manager ([`ServiceHealth::poll_notice`]). Pings come
//! only from that loop and only while encoded frames keep coming, so a hung
//! encoder, a wedged capture loop or a stuck driver loop all stop them and
//! the watchdog restarts the service.

use std::time::{Duration, Instant};

/// Longest time without a newly encoded frame that still counts as healthy.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(5);
/// Time the pipeline may take to deliver its first frame (opening the
/// camera, warming up the encoder) before the pings stop.
pub const DEFAULT_STARTUP_GRACE: Duration = Duration::from_secs(60);

/// What the pipeline has done, as the driver loop sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Frames encoded since the start (a counter that only grows).
    pub frames_encoded: u64,
    /// The camera is gone and the source is retrying it; the encoder is idle
    /// for a reason a restart would not fix.
    pub camera_lost: bool,
}

/// A message for the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The first frame is encoded: `READY=1`.
    Ready,
    /// The pipeline is healthy: `WATCHDOG=1`.
    Watchdog,
    /// A new human-readable status: `STATUS=...`.
    Status(String),
}

/// Health tracking for the systemd notify protocol.
#[derive(Debug)]
pub struct ServiceHealth {
    /// Ping interval: a third of the watchdog period; `None` without a watchdog.
    ping_every: Option<Duration>,
    stall_after: Duration,
    startup_grace: Duration,
    started: Instant,
    progress: Progress,
    /// When `progress.frames_encoded` last grew.
    last_frame: Option<Instant>,
    ready_sent: bool,
    last_ping: Option<Instant>,
    status: String,
    status_sent: String,
}

impl ServiceHealth {
    /// Tracks a service started at `now`; `watchdog` is systemd's
    /// `WatchdogSec=` (from `WATCHDOG_USEC`), if enabled.
    pub fn new(now: Instant, watchdog: Option<Duration>) -> Self {
        Self {
            ping_every: watchdog.map(|w| (w / 3).max(Duration::from_millis(1))),
            stall_after: DEFAULT_STALL_AFTER,
            startup_grace: DEFAULT_STARTUP_GRACE,
            started: now,
            progress: Progress::default(),
            last_frame: None,
            ready_sent: false,
            last_ping: None,
            status: String::new(),
            status_sent: String::new(),
        }
    }

    /// Sets how long the encoder may go without a frame and how long the
    /// first frame may take.
    pub fn with_limits(mut self, stall_after: Duration, startup_grace: Duration) -> Self {
        self.stall_after = stall_after;
        self.startup_grace = startup_grace;
        self
    }

    /// The pipeline's counters at `now`, from the driver loop.
    pub fn handle_progress(&mut self, now: Instant, progress: Progress) {
        if progress.frames_encoded > self.progress.frames_encoded {
            self.last_frame = Some(now);
        }
        self.progress = progress;
    }

    /// The status line to show (`systemctl status`), as the dashboard has it.
    pub fn handle_status(&mut self, line: String) {
        self.status = line;
    }

    /// Whether the pipeline is making progress at `now`.
    pub fn is_healthy(&self, now: Instant) -> bool {
        if self.progress.camera_lost {
            return true;
        }
        match self.last_frame {
            Some(at) => now.saturating_duration_since(at) <= self.stall_after,
            None => now.saturating_duration_since(self.started) <= self.startup_grace,
        }
    }

    /// The next message for the service manager, if any is due at `now`.
    /// Call until it returns `None`.
    pub fn poll_notice(&mut self, now: Instant) -> Option<Notice> {
        if !self.ready_sent && self.last_frame.is_some() {
            self.ready_sent = true;
            return Some(Notice::Ready);
        }
        if self.status != self.status_sent {
            self.status_sent = self.status.clone();
            return Some(Notice::Status(self.status.clone()));
        }
        let every = self.ping_every?;
        let due = self
            .last_ping
            .is_none_or(|at| now.saturating_duration_since(at) >= every);
        if due && self.is_healthy(now) {
            self.last_ping = Some(now);
            return Some(Notice::Watchdog);
        }
        None
    }
}

/// The one-line summary `systemctl status` shows, from the same figures the
/// dashboard shows.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSummary<'a> {
    /// What the frames come from (`testpattern`, `camera:/dev/video0`...).
    pub source: &'a str,
    /// Picture width and height.
    pub size: (u32, u32),
    /// Frames encoded per second, lately.
    pub fps: f64,
    /// Encoded bitrate, kbit/s, lately.
    pub kbps: f64,
    /// Viewers connected.
    pub viewers: u64,
    /// `ok`, `lost` or `none`.
    pub camera: &'a str,
}

impl StatusSummary<'_> {
    /// The status line, with a warning when the pipeline is stalled.
    pub fn line(&self, healthy: bool) -> String {
        let state = if healthy { "streaming" } else { "STALLED" };
        let plural = if self.viewers == 1 { "" } else { "s" };
        format!(
            "{state} {} {}x{} at {:.1} fps, {:.0} kbit/s, {} viewer{plural}, camera {}",
            self.source, self.size.0, self.size.1, self.fps, self.kbps, self.viewers, self.camera
        )
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "one real instant is the simulated clock's origin"
)]
mod tests {
    use super::*;

    const WATCHDOG: Duration = Duration::from_secs(3);

    fn drain(health: &mut ServiceHealth, now: Instant) -> Vec<Notice> {
        std::iter::from_fn(|| health.poll_notice(now)).collect()
    }

    /// Runs the driver loop's one-second status ticks from `from` for
    /// `seconds`, with `frames` giving the encoded counter at each tick;
    /// returns the watchdog pings sent.
    fn run(health: &mut ServiceHealth, t0: Instant, from: u64, seconds: u64, frames: impl Fn(u64) -> u64) -> Vec<u64> {
        let mut pings = Vec::new();
        for s in from..from + seconds {
            let now = t0 + Duration::from_secs(s);
            health.handle_progress(
                now,
                Progress {
                    frames_encoded: frames(s),
                    camera_lost: false,
                },
            );
            if drain(health, now).contains(&Notice::Watchdog) {
                pings.push(s);
            }
        }
        pings
    }

    #[test]
    fn ready_only_once_the_first_frame_is_encoded() {
        let t0 = Instant::now();
        let mut health = ServiceHealth::new(t0, Some(WATCHDOG));
        health.handle_progress(t0, Progress::default());
        assert!(!drain(&mut health, t0).contains(&Notice::Ready));
        let t1 = t0 + Duration::from_millis(800);
        health.handle_progress(
            t1,
            Progress {
                frames_encoded: 1,
                camera_lost: false,
            },
        );
        assert_eq!(drain(&mut health, t1).first(), Some(&Notice::Ready));
        health.handle_progress(
            t1 + WATCHDOG,
            Progress {
                frames_encoded: 40,
                camera_lost: false,
            },
        );
        assert!(
            !drain(&mut health, t1 + WATCHDOG).contains(&Notice::Ready),
            "READY=1 is sent once"
        );
    }

    #[test]
    fn pings_keep_coming_while_frames_are_encoded_often_enough_for_the_watchdog() {
        let t0 = Instant::now();
        let mut health = ServiceHealth::new(t0, Some(WATCHDOG));
        let pings = run(&mut health, t0, 0, 60, |s| s * 30);
        // systemd kills the service when two pings are further apart than WatchdogSec.
        let gaps = pings.windows(2).map(|w| w[1] - w[0]);
        assert!(
            gaps.clone().all(|g| Duration::from_secs(g) < WATCHDOG),
            "pings at {pings:?}"
        );
        assert!(pings.len() >= 50, "pings at {pings:?}");
    }

    #[test]
    fn a_hung_encoder_stops_the_pings_even_though_the_loop_turns() {
        let t0 = Instant::now();
        let mut health = ServiceHealth::new(t0, Some(WATCHDOG));
        // Healthy for 10 s, then the encoder stops at frame 300.
        let pings = run(&mut health, t0, 0, 40, |s| (s * 30).min(300));
        let last = *pings.last().expect("pings while healthy");
        assert!(
            (9..=10 + DEFAULT_STALL_AFTER.as_secs()).contains(&last),
            "pings at {pings:?}"
        );
        assert!(!health.is_healthy(t0 + Duration::from_secs(39)));
    }

    #[test]
    fn a_lost_camera_is_not_a_hang() {
        let t0 = Instant::now();
        let mut health = ServiceHealth::new(t0, Some(WATCHDOG));
        run(&mut health, t0, 0, 5, |s| s * 30);
        let mut pinged = 0;
        for s in 5..40 {
            let now = t0 + Duration::from_secs(s);
            health.handle_progress(
                now,
                Progress {
                    frames_encoded: 150,
                    camera_lost: true,
                },
            );
            pinged += drain(&mut health, now)
                .iter()
                .filter(|n| **n == Notice::Watchdog)
                .count();
        }
        assert!(pinged >= 10, "the watchdog is fed while the camera is retried");
    }

    #[test]
    fn no_first_frame_within_the_grace_period_stops_the_pings() {
        let t0 = Instant::now();
        let mut health =
            ServiceHealth::new(t0, Some(WATCHDOG)).with_limits(DEFAULT_STALL_AFTER, Duration::from_secs(20));
        let pings = run(&mut health, t0, 0, 40, |_| 0);
        assert!(
            !pings.is_empty() && pings.iter().all(|&s| s <= 20),
            "pings at {pings:?}"
        );
    }

    #[test]
    fn without_a_watchdog_there_are_no_pings_but_status_still_changes() {
        let t0 = Instant::now();
        let mut health = ServiceHealth::new(t0, None);
        assert!(run(&mut health, t0, 0, 10, |s| s * 30).is_empty());
        health.handle_status("streaming".into());
        assert_eq!(drain(&mut health, t0), vec![Notice::Status("streaming".into())]);
        health.handle_status("streaming".into());
        assert_eq!(drain(&mut health, t0), vec![], "an unchanged status is not resent");
    }

    #[test]
    fn the_status_line_says_what_the_dashboard_says() {
        let summary = StatusSummary {
            source: "camera:/dev/video0",
            size: (640, 480),
            fps: 29.96,
            kbps: 1480.4,
            viewers: 1,
            camera: "ok",
        };
        assert_eq!(
            summary.line(true),
            "streaming camera:/dev/video0 640x480 at 30.0 fps, 1480 kbit/s, 1 viewer, camera ok"
        );
        assert!(summary.line(false).starts_with("STALLED"));
    }
}
