//! The board's GPIO features in `mado run`: one thread owns the pins and
//! runs [`BoardLogic`] on the real clock; the media driver tells it the
//! appliance's state and each frame's detections.
//!
//! The PIR's motion wakes the detector through the motion gate
//! ([`MotionTrigger`]: full rate at once, then `[motion] hold_ms`). A 10 s
//! hold of the button resets the dashboard password to the first-boot state
//! (`Store::reset_password`, as `mado auth reset-password` does: a new
//! generated password in the state directory's `initial-password`, every
//! session ended). A short press opens a `button` event (snapshot and clip,
//! as a detection's event has) when `[events]` is on, and is only logged
//! and counted otherwise.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use board::gpio::{ApplianceState, BoardLogic, BoardOutput, BoardPins, LogicConfig};
use mado::config::BoardConfig;
use mado::encode::EncodedFrame;
use mado::pipeline::{MotionTrigger, StatsSnapshot};

use super::auth::Store;
use super::events::EventRequest;

/// How often the input pins are sampled (debouncing works on these samples).
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

enum Message {
    State(ApplianceState),
    Detections(Vec<String>),
}

/// The handle the media driver feeds; the thread ends when it is dropped.
pub struct BoardIo {
    to_thread: Option<Sender<Message>>,
    last_state: Option<ApplianceState>,
}

impl BoardIo {
    /// Opens the configured lines and starts the board thread; features
    /// that are not available are logged once and left out.
    /// `credentials` is where the button's long press resets the password;
    /// `events` takes its short presses (none when events are off).
    pub fn start(
        config: &BoardConfig,
        motion: MotionTrigger,
        credentials: Store,
        events: Option<EventRequest>,
    ) -> Self {
        let model = std::fs::read_to_string("/proc/device-tree/model").ok();
        let profile = config.profile(model.as_deref());
        let lines = config.lines(profile);
        let (pins, missing, backend) = BoardPins::open(&lines, config.gpio_chip.as_deref());
        for m in &missing {
            tracing::warn!("board: {} not available ({})", m.feature, m.reason);
        }
        let opened = [lines.status_led, lines.relay, lines.pir, lines.button]
            .iter()
            .filter(|l| l.is_some())
            .count()
            - missing.len();
        tracing::info!(?profile, ?backend, features = opened, "board GPIO");
        if opened == 0 {
            return Self {
                to_thread: None,
                last_state: None,
            };
        }
        let logic_config = LogicConfig {
            relay_classes: config.relay_classes.clone(),
            relay_hold: Duration::from_millis(config.relay_hold_ms.get() as u64),
            pir_settle: Duration::from_millis(config.pir_settle_ms.get() as u64),
        };
        let (tx, rx) = channel();
        #[allow(clippy::disallowed_methods, reason = "the board shell's own thread")]
        let spawned = std::thread::Builder::new().name("mado-board".into()).spawn(move || {
            #[allow(clippy::disallowed_methods, reason = "the board shell reads the clock")]
            let now = Instant::now();
            let mut shell = Shell {
                logic: BoardLogic::new(now, logic_config),
                pins,
                credentials,
                events,
                motion: 0,
                trigger: motion,
                snapshots: 0,
            };
            loop {
                #[allow(clippy::disallowed_methods, reason = "the board shell reads the clock")]
                let now = Instant::now();
                shell.turn(now);
                let mut wait = shell.logic.poll_timeout().saturating_duration_since(now);
                if shell.pins.has_inputs() {
                    wait = wait.min(SAMPLE_EVERY);
                }
                match rx.recv_timeout(wait) {
                    #[allow(clippy::disallowed_methods, reason = "the board shell reads the clock")]
                    Ok(message) => shell.handle(Instant::now(), message),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("board: cannot start its thread: {e}");
            return Self {
                to_thread: None,
                last_state: None,
            };
        }
        Self {
            to_thread: Some(tx),
            last_state: None,
        }
    }

    /// The appliance's state, from the driver's status tick.
    pub fn on_status(&mut self, stats: &StatsSnapshot, viewers: usize, healthy: bool) {
        let state = if !healthy {
            ApplianceState::Error
        } else if stats.source_lost {
            ApplianceState::CameraLost
        } else if stats.encoded == 0 {
            ApplianceState::Starting
        } else {
            ApplianceState::Streaming { viewers }
        };
        if self.last_state != Some(state) {
            self.last_state = Some(state);
            self.send(Message::State(state));
        }
    }

    /// An encoded frame: its detections may switch the relay.
    pub fn on_frame(&self, frame: &EncodedFrame) {
        if let Some(detections) = &frame.info.detections {
            if !detections.items.is_empty() {
                let labels = detections.items.iter().map(|d| d.label.as_str().to_owned()).collect();
                self.send(Message::Detections(labels));
            }
        }
    }

    fn send(&self, message: Message) {
        if let Some(tx) = &self.to_thread {
            let _ = tx.send(message);
        }
    }
}

struct Shell {
    logic: BoardLogic,
    pins: BoardPins,
    credentials: Store,
    events: Option<EventRequest>,
    motion: u64,
    trigger: MotionTrigger,
    snapshots: u64,
}

impl Shell {
    fn handle(&mut self, now: Instant, message: Message) {
        match message {
            Message::State(state) => self.logic.handle_state(now, state),
            Message::Detections(labels) => self.logic.handle_detections(now, labels.iter().map(String::as_str)),
        }
        self.apply();
    }

    fn turn(&mut self, now: Instant) {
        self.logic.handle_timeout(now);
        for sample in self.pins.samples() {
            self.logic.handle_input(now, sample);
        }
        self.apply();
    }

    fn apply(&mut self) {
        while let Some(output) = self.logic.poll_output() {
            match output {
                BoardOutput::Led(lit) => self.pins.set_led(lit),
                BoardOutput::Relay(on) => {
                    tracing::info!(on, "board: relay");
                    self.pins.set_relay(on);
                }
                BoardOutput::Motion => {
                    self.motion += 1;
                    self.trigger.fire();
                    tracing::info!(count = self.motion, "board: PIR motion: detection at full rate");
                }
                BoardOutput::Snapshot => {
                    self.snapshots += 1;
                    match &self.events {
                        Some(events) => {
                            events.fire();
                            tracing::info!(count = self.snapshots, "board: button pressed: a button event");
                        }
                        None => tracing::info!(
                            count = self.snapshots,
                            "board: button pressed (events are off: counted only)"
                        ),
                    }
                }
                BoardOutput::ResetPassword => match self.credentials.reset_password() {
                    Ok(_) => tracing::warn!(
                        "board: button held 10 s: the dashboard password is reset to a generated one (in {}); \
                         every session has ended",
                        self.credentials.initial_password_path().display()
                    ),
                    Err(e) => tracing::warn!("board: button held 10 s, but the password reset failed: {e:#}"),
                },
            }
        }
    }
}
