//! Which frames the detector looks at, and which detections each frame
//! carries, as a plain state machine. The detector runs on its own thread on
//! the newest frame only; it never holds up capture.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::meta::{Detections, GateMode, MotionMeta};
use crate::motion::{Motion, MotionGate};

/// How detections are matched to frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectMode {
    /// A frame sent to the detector waits for its own result, so its boxes
    /// match its picture; other frames carry the latest result.
    Exact,
    /// Every frame carries the most recent result, marked with the frame it came from.
    Latest,
}

/// What the encoder should do with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "returned once a frame and unpacked at once; a box would cost an allocation"
)]
pub enum Attach {
    /// Encode now with these detections (`None`: no result yet).
    Ready(Option<Detections>),
    /// The frame's own detections are being computed; wait for them.
    Wait,
}

/// Decides which frames the detector sees and which detections each frame carries; time is passed in.
#[derive(Debug, Clone)]
pub struct DetectSchedule {
    mode: DetectMode,
    min_interval: Duration,
    last_offered: Option<Instant>,
    /// The frame waiting for or inside the detector.
    pending: Option<u64>,
    /// Recent results, oldest first. The encoder lags the source by a few
    /// frames, so a frame takes the newest result that is not from its future.
    recent: VecDeque<Detections>,
    /// The motion gate, when detection is motion-gated.
    gate: Option<MotionGate>,
}

const RECENT: usize = 8;

impl DetectSchedule {
    /// At most `max_rate` detections a second.
    pub fn new(mode: DetectMode, max_rate: f64) -> Self {
        let min_interval = Duration::from_secs_f64(1.0 / max_rate.max(0.01));
        Self {
            mode,
            min_interval,
            last_offered: None,
            pending: None,
            recent: VecDeque::new(),
            gate: None,
        }
    }

    /// The same schedule with the detector gated by motion: at full rate
    /// while the gate says so, at its heartbeat otherwise.
    #[must_use]
    pub fn with_gate(mut self, gate: MotionGate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The motion detector's verdict on the frame captured at `now`; call
    /// before [`DetectSchedule::offer`] for that frame. Returns the motion
    /// metadata the frame carries (`None` without a gate).
    pub fn handle_motion(&mut self, now: Instant, motion: &Motion) -> Option<MotionMeta> {
        let gate = self.gate.as_mut()?;
        gate.handle_motion(now, motion.moving);
        Some(MotionMeta {
            mode: gate.mode(now),
            moving: motion.moving,
            interval_ms: u32::try_from(gate.interval(now, self.min_interval).as_millis()).unwrap_or(u32::MAX),
            regions: motion.regions.clone(),
        })
    }

    /// Another sensor (a PIR) saw motion at `now`.
    pub fn handle_trigger(&mut self, now: Instant) {
        if let Some(gate) = &mut self.gate {
            gate.handle_trigger(now);
        }
    }

    /// The gate's mode at `now`; `None` without a gate.
    pub fn gate_mode(&self, now: Instant) -> Option<GateMode> {
        self.gate.as_ref().map(|g| g.mode(now))
    }

    /// A frame arrived at `now`; true when it should go to the detector. A
    /// newer frame replaces one still queued, so the detector sees the newest.
    #[must_use]
    pub fn offer(&mut self, now: Instant, seq: u64) -> bool {
        if self.last_offered.is_some_and(|last| now < last + self.min_interval)
            || self.gate.as_ref().is_some_and(|g| !g.allows(now))
        {
            return false;
        }
        self.last_offered = Some(now);
        if let Some(gate) = &mut self.gate {
            gate.on_run(now);
        }
        self.pending = Some(seq);
        true
    }

    /// The detector finished the frame `detections.frame_seq`.
    pub fn on_result(&mut self, detections: Detections) {
        if let Some(gate) = &mut self.gate {
            gate.handle_detections(!detections.items.is_empty());
        }
        if self.pending == Some(detections.frame_seq) {
            self.pending = None;
        }
        if self.recent.back().is_none_or(|l| l.frame_seq < detections.frame_seq) {
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(detections);
        }
    }

    /// The detector gave up on a frame (an error); nobody should wait for it.
    pub fn on_failure(&mut self, seq: u64) {
        if self.pending == Some(seq) {
            self.pending = None;
        }
    }

    /// The detections frame `seq` should carry.
    #[must_use]
    pub fn attach(&self, seq: u64) -> Attach {
        if self.mode == DetectMode::Exact && self.pending == Some(seq) {
            return Attach::Wait;
        }
        Attach::Ready(self.recent.iter().rev().find(|d| d.frame_seq <= seq).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(frame_seq: u64) -> Detections {
        Detections {
            frame_seq,
            ..Default::default()
        }
    }

    #[test]
    fn latest_mode_never_waits_and_carries_the_newest_result() {
        let t0 = Instant::now();
        let mut s = DetectSchedule::new(DetectMode::Latest, 100.0);
        assert!(s.offer(t0, 0));
        assert_eq!(s.attach(0), Attach::Ready(None));
        s.on_result(result(0));
        assert!(s.offer(t0 + Duration::from_millis(33), 1));
        assert_eq!(
            s.attach(1),
            Attach::Ready(Some(result(0))),
            "frame 1 carries frame 0's result"
        );
        s.on_result(result(1));
        assert_eq!(s.attach(2), Attach::Ready(Some(result(1))));
    }

    #[test]
    fn a_gated_schedule_offers_at_the_heartbeat_when_still_and_every_frame_on_motion() {
        use crate::motion::{GateSettings, Motion};
        let t0 = Instant::now();
        let mut s = DetectSchedule::new(DetectMode::Latest, 100.0).with_gate(MotionGate::new(GateSettings::default()));
        let frame = |i: u32| t0 + Duration::from_millis(33) * i;
        let still = Motion::default();
        let moving = Motion {
            moving: true,
            ..Default::default()
        };
        let mut offered = 0;
        for i in 0..90 {
            let meta = s.handle_motion(frame(i), &still).unwrap();
            assert_eq!((meta.mode, meta.interval_ms), (GateMode::Still, 1000));
            offered += usize::from(s.offer(frame(i), u64::from(i)));
        }
        assert_eq!(offered, 3, "3 s still: one run a second");
        let meta = s.handle_motion(frame(90), &moving).unwrap();
        assert_eq!((meta.mode, meta.moving, meta.interval_ms), (GateMode::Motion, true, 10));
        assert!(s.offer(frame(90), 90), "motion runs the detector at once");
        assert!(s.offer(frame(91), 91));
        assert_eq!(s.gate_mode(frame(91)), Some(GateMode::Motion));
        assert_eq!(
            DetectSchedule::new(DetectMode::Latest, 1.0).handle_motion(t0, &moving),
            None
        );
    }

    #[test]
    fn exact_mode_waits_only_for_frames_that_went_to_the_detector() {
        let t0 = Instant::now();
        let mut s = DetectSchedule::new(DetectMode::Exact, 10.0);
        assert!(s.offer(t0, 0));
        assert!(
            !s.offer(t0 + Duration::from_millis(33), 1),
            "rate limited to 10 a second"
        );
        assert_eq!(s.attach(0), Attach::Wait);
        assert_eq!(s.attach(1), Attach::Ready(None));
        s.on_result(result(0));
        assert_eq!(s.attach(0), Attach::Ready(Some(result(0))));
        // A newer frame displaces a queued one: the old one stops waiting.
        assert!(s.offer(t0 + Duration::from_millis(100), 3));
        assert!(s.offer(t0 + Duration::from_millis(200), 6));
        assert_eq!(s.attach(3), Attach::Ready(Some(result(0))));
        assert_eq!(s.attach(6), Attach::Wait);
        s.on_failure(6);
        assert_eq!(s.attach(6), Attach::Ready(Some(result(0))));
        // A late result never replaces a newer one; no frame gets a result from its future.
        s.on_result(result(9));
        s.on_result(result(3));
        assert_eq!(s.attach(10), Attach::Ready(Some(result(9))));
        assert_eq!(s.attach(8), Attach::Ready(Some(result(0))));
    }
}
