//! The status LED: a blink pattern for each state of the appliance.

use std::time::{Duration, Instant};

/// What the LED shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LedPattern {
    /// Starting up: a slow, even blink (1 Hz).
    #[default]
    Starting,
    /// Streaming, nobody watching: steadily on.
    Streaming,
    /// Streaming to at least one viewer: on, with a short dark blip every 2 s.
    ViewerConnected,
    /// The camera is gone and being retried: two quick flashes, then a pause.
    CameraLost,
    /// Something failed: a fast blink (5 Hz).
    Error,
}

/// Milliseconds, in constants.
const fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl LedPattern {
    /// The pattern as (lit, duration) steps, repeated.
    pub fn steps(self) -> &'static [(bool, Duration)] {
        const STARTING: &[(bool, Duration)] = &[(true, ms(500)), (false, ms(500))];
        const STREAMING: &[(bool, Duration)] = &[(true, ms(1000))];
        const VIEWER: &[(bool, Duration)] = &[(true, ms(1800)), (false, ms(200))];
        const CAMERA_LOST: &[(bool, Duration)] =
            &[(true, ms(100)), (false, ms(150)), (true, ms(100)), (false, ms(1150))];
        const ERROR: &[(bool, Duration)] = &[(true, ms(100)), (false, ms(100))];
        match self {
            Self::Starting => STARTING,
            Self::Streaming => STREAMING,
            Self::ViewerConnected => VIEWER,
            Self::CameraLost => CAMERA_LOST,
            Self::Error => ERROR,
        }
    }
}

/// The LED's state machine: the pattern, where in it we are and when the
/// next step starts.
#[derive(Debug)]
pub struct StatusLed {
    pattern: LedPattern,
    step: usize,
    next_step: Instant,
}

impl StatusLed {
    /// Starts showing [`LedPattern::Starting`] at `now`.
    pub fn new(now: Instant) -> Self {
        let pattern = LedPattern::Starting;
        Self {
            pattern,
            step: 0,
            next_step: now + pattern.steps()[0].1,
        }
    }

    /// The pattern shown.
    pub fn pattern(&self) -> LedPattern {
        self.pattern
    }

    /// Shows `pattern` from its first step at `now` (no change if it is shown already).
    pub fn set_pattern(&mut self, now: Instant, pattern: LedPattern) {
        if pattern != self.pattern {
            self.pattern = pattern;
            self.step = 0;
            self.next_step = now + pattern.steps()[0].1;
        }
    }

    /// Advances to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let steps = self.pattern.steps();
        while self.next_step <= now {
            self.step = (self.step + 1) % steps.len();
            self.next_step += steps[self.step].1;
        }
    }

    /// Whether the LED is lit now.
    pub fn is_lit(&self) -> bool {
        self.pattern.steps()[self.step].0
    }

    /// When the LED may next change.
    pub fn poll_timeout(&self) -> Instant {
        self.next_step
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "one real instant is the simulated clock's origin"
)]
mod tests {
    use super::*;

    /// The LED sampled every 50 ms for `span_ms`, as a string of '#' (lit) and '.'.
    fn trace(led: &mut StatusLed, t0: Instant, span_ms: u64) -> String {
        (0..span_ms / 50)
            .map(|i| {
                led.handle_timeout(t0 + ms(i * 50));
                if led.is_lit() {
                    '#'
                } else {
                    '.'
                }
            })
            .collect()
    }

    #[test]
    fn each_state_has_its_own_pattern() {
        let t0 = Instant::now();
        let mut led = StatusLed::new(t0);
        assert_eq!(trace(&mut led, t0, 2000), "##########..........##########..........");
        let t1 = t0 + ms(2000);
        led.set_pattern(t1, LedPattern::Streaming);
        assert!(trace(&mut led, t1, 3000).chars().all(|c| c == '#'));
        let t2 = t1 + ms(3000);
        led.set_pattern(t2, LedPattern::ViewerConnected);
        assert_eq!(trace(&mut led, t2, 2000), format!("{}....", "#".repeat(36)));
        let t3 = t2 + ms(2000);
        led.set_pattern(t3, LedPattern::CameraLost);
        assert_eq!(trace(&mut led, t3, 1500), format!("##...##{}", ".".repeat(23)));
        let t4 = t3 + ms(1500);
        led.set_pattern(t4, LedPattern::Error);
        assert_eq!(trace(&mut led, t4, 800), "##..##..##..##..");
    }

    #[test]
    fn setting_the_same_pattern_does_not_restart_it() {
        let t0 = Instant::now();
        let mut led = StatusLed::new(t0);
        led.handle_timeout(t0 + ms(600));
        assert!(!led.is_lit());
        led.set_pattern(t0 + ms(600), LedPattern::Starting);
        assert!(!led.is_lit());
        assert_eq!(led.poll_timeout(), t0 + ms(1000));
    }

    #[test]
    fn a_late_timeout_catches_up_without_bursting() {
        let t0 = Instant::now();
        let mut led = StatusLed::new(t0);
        led.handle_timeout(t0 + ms(10_250));
        assert!(led.is_lit());
        assert_eq!(led.poll_timeout(), t0 + ms(10_500));
    }
}
