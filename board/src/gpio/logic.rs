//! The board's behaviour as one sans-IO state machine: the appliance's state
//! and detections in, input pin samples in, output levels and events out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::inputs::{Button, MotionSensor, Press};
use super::led::{LedPattern, StatusLed};
use super::relay::DetectionRelay;

/// How long a button press must hold to count.
pub const BUTTON_SETTLE: Duration = Duration::from_millis(30);
/// Holding the button this long resets the password.
pub const LONG_PRESS: Duration = Duration::from_secs(10);

/// Settings of the board's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicConfig {
    /// Detections of these labels switch the relay on (any label when empty).
    pub relay_classes: Vec<String>,
    /// The relay stays on this long after the last matching detection.
    pub relay_hold: Duration,
    /// The PIR output must hold this long to count as motion.
    pub pir_settle: Duration,
}

/// The appliance's state, as the LED shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplianceState {
    /// No frame encoded yet.
    Starting,
    /// Encoding; `viewers` watching.
    Streaming {
        /// Viewers connected.
        viewers: usize,
    },
    /// The camera went away; retrying.
    CameraLost,
    /// The pipeline failed or stalled.
    Error,
}

/// An input pin's sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSample {
    /// The PIR sensor, true while it sees motion.
    Pir(bool),
    /// The button, true while pressed.
    Button(bool),
}

/// What the board asks of the appliance or its pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardOutput {
    /// Light (true) or darken the status LED.
    Led(bool),
    /// Switch the relay on or off.
    Relay(bool),
    /// Motion began: run detection now.
    Motion,
    /// Short button press: take a snapshot / record an event.
    Snapshot,
    /// Ten-second hold: reset the password to its first-boot state.
    ResetPassword,
}

/// The status LED, relay, PIR and button together.
#[derive(Debug)]
pub struct BoardLogic {
    led: StatusLed,
    relay: DetectionRelay,
    pir: MotionSensor,
    button: Button,
    /// Levels last asked of the pins.
    led_out: Option<bool>,
    relay_out: Option<bool>,
    outputs: VecDeque<BoardOutput>,
}

impl BoardLogic {
    /// The board at `now`, showing [`ApplianceState::Starting`].
    pub fn new(now: Instant, config: LogicConfig) -> Self {
        let mut logic = Self {
            led: StatusLed::new(now),
            relay: DetectionRelay::new(config.relay_classes, config.relay_hold),
            pir: MotionSensor::new(config.pir_settle),
            button: Button::new(BUTTON_SETTLE, LONG_PRESS),
            led_out: None,
            relay_out: None,
            outputs: VecDeque::new(),
        };
        logic.update_pins(now);
        logic
    }

    /// The appliance's state changed (or was restated) at `now`.
    pub fn handle_state(&mut self, now: Instant, state: ApplianceState) {
        let pattern = match state {
            ApplianceState::Starting => LedPattern::Starting,
            ApplianceState::Streaming { viewers: 0 } => LedPattern::Streaming,
            ApplianceState::Streaming { .. } => LedPattern::ViewerConnected,
            ApplianceState::CameraLost => LedPattern::CameraLost,
            ApplianceState::Error => LedPattern::Error,
        };
        self.led.set_pattern(now, pattern);
        self.update_pins(now);
    }

    /// The labels detected in one frame.
    pub fn handle_detections<'a>(&mut self, now: Instant, labels: impl IntoIterator<Item = &'a str>) {
        self.relay.handle_detections(now, labels);
        self.update_pins(now);
    }

    /// A sample of an input pin.
    pub fn handle_input(&mut self, now: Instant, sample: InputSample) {
        match sample {
            InputSample::Pir(active) => {
                if self.pir.handle_sample(now, active) {
                    self.outputs.push_back(BoardOutput::Motion);
                }
            }
            InputSample::Button(pressed) => match self.button.handle_sample(now, pressed) {
                Some(Press::Short) => self.outputs.push_back(BoardOutput::Snapshot),
                Some(Press::Long) => self.outputs.push_back(BoardOutput::ResetPassword),
                None => {}
            },
        }
        self.update_pins(now);
    }

    /// Time passes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.led.handle_timeout(now);
        self.relay.handle_timeout(now);
        self.update_pins(now);
    }

    /// When [`BoardLogic::handle_timeout`] is next needed.
    pub fn poll_timeout(&self) -> Instant {
        let led = self.led.poll_timeout();
        self.relay.poll_timeout().map_or(led, |r| r.min(led))
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<BoardOutput> {
        self.outputs.pop_front()
    }

    /// The LED pattern shown.
    pub fn led_pattern(&self) -> LedPattern {
        self.led.pattern()
    }

    fn update_pins(&mut self, now: Instant) {
        let led = self.led.is_lit();
        if self.led_out != Some(led) {
            self.led_out = Some(led);
            self.outputs.push_back(BoardOutput::Led(led));
        }
        let relay = self.relay.is_on(now);
        if self.relay_out != Some(relay) {
            self.relay_out = Some(relay);
            self.outputs.push_back(BoardOutput::Relay(relay));
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

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn logic(t0: Instant) -> BoardLogic {
        BoardLogic::new(
            t0,
            LogicConfig {
                relay_classes: vec!["Person".into()],
                relay_hold: Duration::from_secs(3),
                pir_settle: ms(100),
            },
        )
    }

    fn drain(logic: &mut BoardLogic) -> Vec<BoardOutput> {
        std::iter::from_fn(|| logic.poll_output()).collect()
    }

    /// Runs the shell's loop on a simulated clock until `until`: wakes at
    /// each poll_timeout and every `sample` for the inputs, collecting outputs.
    fn run(
        logic: &mut BoardLogic,
        from: Instant,
        until: Instant,
        mut inputs: impl FnMut(Instant) -> Vec<InputSample>,
    ) -> Vec<(Duration, BoardOutput)> {
        let mut out = Vec::new();
        let mut now = from;
        while now < until {
            logic.handle_timeout(now);
            for sample in inputs(now) {
                logic.handle_input(now, sample);
            }
            out.extend(drain(logic).into_iter().map(|o| (now - from, o)));
            now = logic.poll_timeout().min(now + ms(10));
        }
        out
    }

    #[test]
    fn the_led_follows_the_appliance_state() {
        let t0 = Instant::now();
        let mut board = logic(t0);
        assert_eq!(
            drain(&mut board),
            vec![BoardOutput::Led(true), BoardOutput::Relay(false)]
        );
        let blinks = run(&mut board, t0, t0 + ms(2000), |_| vec![]);
        assert_eq!(
            blinks,
            vec![
                (ms(500), BoardOutput::Led(false)),
                (ms(1000), BoardOutput::Led(true)),
                (ms(1500), BoardOutput::Led(false))
            ]
        );
        let t1 = t0 + ms(2000);
        board.handle_state(t1, ApplianceState::Streaming { viewers: 0 });
        assert_eq!(board.led_pattern(), LedPattern::Streaming);
        board.handle_state(t1, ApplianceState::Streaming { viewers: 2 });
        assert_eq!(board.led_pattern(), LedPattern::ViewerConnected);
        board.handle_state(t1, ApplianceState::CameraLost);
        assert_eq!(board.led_pattern(), LedPattern::CameraLost);
        board.handle_state(t1, ApplianceState::Error);
        assert_eq!(board.led_pattern(), LedPattern::Error);
    }

    #[test]
    fn the_relay_holds_after_the_last_matching_detection() {
        let t0 = Instant::now();
        let mut board = logic(t0);
        drain(&mut board);
        board.handle_detections(t0, ["Person"]);
        assert_eq!(drain(&mut board), vec![BoardOutput::Relay(true)]);
        board.handle_detections(t0 + ms(1000), ["Car"]);
        board.handle_detections(t0 + ms(2000), ["Person"]);
        let outputs = run(&mut board, t0 + ms(2000), t0 + ms(8000), |_| vec![]);
        let relay: Vec<_> = outputs
            .iter()
            .filter(|(_, o)| matches!(o, BoardOutput::Relay(_)))
            .collect();
        assert_eq!(
            relay,
            vec![&(ms(3000), BoardOutput::Relay(false))],
            "off 3 s after the last Person"
        );
    }

    #[test]
    fn motion_and_button_presses_become_events() {
        let t0 = Instant::now();
        let mut board = logic(t0);
        drain(&mut board);
        // PIR high from 1 s to 4 s; button pressed 5.0-5.3 s and again from 6 s for 11 s.
        let events: Vec<_> = run(&mut board, t0, t0 + ms(18_000), |now| {
            let t = (now - t0).as_millis();
            vec![
                InputSample::Pir((1000..4000).contains(&t)),
                InputSample::Button((5000..5300).contains(&t) || (6000..17_000).contains(&t)),
            ]
        })
        .into_iter()
        .filter(|(_, o)| !matches!(o, BoardOutput::Led(_) | BoardOutput::Relay(_)))
        .collect();
        assert_eq!(
            events,
            vec![
                (ms(1100), BoardOutput::Motion),
                (ms(5330), BoardOutput::Snapshot),
                (ms(16_030), BoardOutput::ResetPassword),
            ]
        );
    }
}
