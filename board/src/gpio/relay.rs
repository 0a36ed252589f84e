//! The relay (or any GPIO output): on while detections of the configured
//! classes keep coming, and for a hold time after the last one.

use std::time::{Duration, Instant};

/// Drives an output from detections.
#[derive(Debug)]
pub struct DetectionRelay {
    classes: Vec<String>,
    hold: Duration,
    /// On until this instant.
    on_until: Option<Instant>,
}

impl DetectionRelay {
    /// Switches on for detections whose label is in `classes` (any label when
    /// empty) and stays on `hold` after the last.
    pub fn new(classes: Vec<String>, hold: Duration) -> Self {
        Self {
            classes,
            hold,
            on_until: None,
        }
    }

    /// The labels detected in one frame at `now`.
    pub fn handle_detections<'a>(&mut self, now: Instant, labels: impl IntoIterator<Item = &'a str>) {
        let mut labels = labels.into_iter().peekable();
        let matched = if self.classes.is_empty() {
            labels.peek().is_some()
        } else {
            labels.any(|l| self.classes.iter().any(|c| c == l))
        };
        if matched {
            self.on_until = Some(now + self.hold);
        }
    }

    /// Whether the output is on at `now`.
    pub fn is_on(&self, now: Instant) -> bool {
        self.on_until.is_some_and(|until| now < until)
    }

    /// When the output turns off, if it is on.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.on_until
    }

    /// Forgets an expired hold.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.on_until.is_some_and(|until| now >= until) {
            self.on_until = None;
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "one real instant is the simulated clock's origin"
)]
mod tests {
    use super::*;

    fn s(v: u64) -> Duration {
        Duration::from_secs(v)
    }

    #[test]
    fn a_configured_class_switches_on_for_the_hold_time_and_renews_it() {
        let t0 = Instant::now();
        let mut relay = DetectionRelay::new(vec!["Person".into()], s(5));
        relay.handle_detections(t0, ["Car", "Cat"]);
        assert!(!relay.is_on(t0), "other classes leave it off");
        relay.handle_detections(t0, ["Car", "Person"]);
        assert!(relay.is_on(t0 + s(4)));
        relay.handle_detections(t0 + s(4), ["Person"]);
        assert!(relay.is_on(t0 + s(8)), "a new detection extends the hold");
        assert!(!relay.is_on(t0 + s(9)));
        assert_eq!(relay.poll_timeout(), Some(t0 + s(9)));
        relay.handle_timeout(t0 + s(9));
        assert_eq!(relay.poll_timeout(), None);
    }

    #[test]
    fn no_classes_means_any_detection() {
        let t0 = Instant::now();
        let mut relay = DetectionRelay::new(Vec::new(), s(2));
        relay.handle_detections(t0, []);
        assert!(!relay.is_on(t0), "a frame with no detections is not a detection");
        relay.handle_detections(t0, ["Dog"]);
        assert!(relay.is_on(t0 + s(1)));
    }
}
