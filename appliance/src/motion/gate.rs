//! The gate in front of the detector: full rate while something moves (and
//! for a hold time after), or while an object found after the last motion is
//! still there; a heartbeat otherwise.

use std::time::{Duration, Instant};

use crate::meta::GateMode;

/// The gate's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSettings {
    /// On a still scene the detector runs once per this interval.
    pub heartbeat: Duration,
    /// Full rate goes on this long after the last motion.
    pub hold: Duration,
    /// An object of the kept classes keeps full rate this long after the
    /// last motion (someone who stopped walking); after that a still object
    /// is checked at the heartbeat like the rest of the scene.
    pub track: Duration,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            hold: Duration::from_secs(3),
            track: Duration::from_secs(10),
        }
    }
}

/// Decides, frame by frame, whether the detector may look; time is passed in.
///
/// Feed it [`MotionGate::handle_motion`] for every frame (or
/// [`MotionGate::handle_trigger`] from another sensor, such as a PIR) and
/// [`MotionGate::handle_detections`] for every detector result; ask
/// [`MotionGate::allows`] before offering a frame to the detector and call
/// [`MotionGate::on_run`] when one is offered.
#[derive(Debug, Clone)]
pub struct MotionGate {
    settings: GateSettings,
    last_motion: Option<Instant>,
    moving: bool,
    objects: bool,
    last_run: Option<Instant>,
}

impl MotionGate {
    /// A gate that has seen nothing yet: still, and the first frame may run.
    pub fn new(settings: GateSettings) -> Self {
        Self {
            settings,
            last_motion: None,
            moving: false,
            objects: false,
            last_run: None,
        }
    }

    /// The motion detector's verdict on the frame captured at `now`.
    pub fn handle_motion(&mut self, now: Instant, moving: bool) {
        self.moving = moving;
        if moving {
            self.last_motion = Some(now);
        }
    }

    /// Another sensor saw motion at `now` (a PIR): like a moving frame.
    pub fn handle_trigger(&mut self, now: Instant) {
        self.last_motion = Some(now);
    }

    /// A detector result arrived: `objects` when it kept any detection.
    pub fn handle_detections(&mut self, objects: bool) {
        self.objects = objects;
    }

    /// The gate's mode at `now`.
    pub fn mode(&self, now: Instant) -> GateMode {
        let since = |t: Duration| self.last_motion.is_some_and(|m| now.saturating_duration_since(m) < t);
        if self.moving || since(self.settings.hold) {
            GateMode::Motion
        } else if self.objects && since(self.settings.track) {
            GateMode::Tracking
        } else {
            GateMode::Still
        }
    }

    /// True when the last frame the motion detector saw was moving.
    pub fn moving(&self) -> bool {
        self.moving
    }

    /// Whether the detector may look at a frame at `now`: always at full
    /// rate, at most once per heartbeat when still.
    pub fn allows(&self, now: Instant) -> bool {
        self.mode(now) != GateMode::Still
            || self
                .last_run
                .is_none_or(|last| now.saturating_duration_since(last) >= self.settings.heartbeat)
    }

    /// A frame captured at `now` went to the detector.
    pub fn on_run(&mut self, now: Instant) {
        self.last_run = Some(now);
    }

    /// The shortest time between detector runs at `now` (`full`: the rate
    /// limit of full rate).
    pub fn interval(&self, now: Instant, full: Duration) -> Duration {
        match self.mode(now) {
            GateMode::Still => self.settings.heartbeat.max(full),
            _ => full,
        }
    }
}
