//! The shell around MQTT: one task on the executor owns the TCP connection
//! to the broker, the [`Session`] and the clock. The driver hands it
//! [`Notice`]s through a bounded queue and never waits on it: when the
//! broker is slow or gone, notices beyond the queue are dropped and counted,
//! and video and HTTP carry on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_channel::{Receiver, Sender};
use futures_lite::FutureExt as _;
use mado::config::mqtt::MqttConfig;
use mado::encode::EncodedFrame;
use mado::events::{EventInfo, EventUpdate};
use mado::frame::Yuv420;
use mado::mqtt::{EventNotice, HomeAssistant, MqttStatus, Naming, Notice, Session, SessionOptions, StatusNotice};
use mado::pipeline::RecentFrames;
use mado::publish::Backoff;

use super::mqtt_task::{Task, ToTask, CONNECT_TIMEOUT};

/// Notices waiting for the MQTT task; more are dropped.
const QUEUE: usize = 256;
/// How long shutdown waits for `offline` and DISCONNECT to go out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Best pictures held for events still open; more open events than this get
/// no snapshot at their end.
const MAX_OPEN_EVENTS: usize = 8;

/// The driver's side of MQTT; all calls return at once.
pub struct Mqtt {
    tx: Option<Sender<ToTask>>,
    done: Option<Receiver<()>>,
    status: Arc<Mutex<MqttStatus>>,
    /// Notices the queue refused.
    refused: Arc<AtomicU64>,
    classes: Vec<String>,
    /// The newest best picture of each open event, by event id.
    best: Vec<(String, Arc<Yuv420>)>,
    /// The counts and motion state last handed on.
    counts: Vec<(String, u32)>,
    moving: Option<bool>,
}

impl Mqtt {
    /// Off: does nothing, reports `off`.
    pub fn off() -> Self {
        Self {
            tx: None,
            done: None,
            status: Arc::default(),
            refused: Arc::default(),
            classes: Vec::new(),
            best: Vec::new(),
            counts: Vec::new(),
            moving: None,
        }
    }

    /// Starts the MQTT task on `ex` when `[mqtt] enabled`. `classes` get an
    /// occupancy count each. A password file that cannot be read is an error.
    pub fn start(config: &MqttConfig, classes: &[String], ex: &smol::Executor<'static>) -> anyhow::Result<Self> {
        if !config.enabled {
            return Ok(Self::off());
        }
        let hostname = hostname();
        let password = match &config.password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the mqtt password file {}", path.display()))?
                    .trim()
                    .as_bytes()
                    .to_vec(),
            ),
            None => (!config.password.is_empty()).then(|| config.password.expose().as_bytes().to_vec()),
        };
        let client_id = config.client_id_for(&hostname);
        let naming = Naming {
            prefix: config.topic_prefix_for(&hostname),
            discovery_prefix: config.discovery.then(|| config.discovery_prefix.as_str().to_owned()),
            node_id: client_id.clone(),
            device_name: format!("Mado {hostname}"),
            classes: classes.to_vec(),
        };
        let ha = HomeAssistant::new(naming);
        let options = SessionOptions {
            client_id,
            username: (!config.username.is_empty()).then(|| config.username.clone()),
            password,
            keep_alive: Duration::from_secs(config.keep_alive_s.get() as u64),
            will_topic: ha.naming().availability(),
            will_payload: b"offline".to_vec(),
            connect_timeout: CONNECT_TIMEOUT,
        };
        let backoff = Backoff::new(
            Duration::from_millis(config.initial_backoff_ms.get() as u64),
            Duration::from_millis(config.max_backoff_ms.get() as u64),
            fastrand::u64(..),
        );
        #[allow(clippy::disallowed_methods)] // reason: the shell owns the clock
        let now = Instant::now();
        let mut session = Session::new(options, backoff, now);
        for message in ha.on_connect_messages() {
            session.publish(now, message);
        }
        let broker = format!("{}:{}", config.host, config.port.get());
        tracing::info!(%broker, prefix = %ha.naming().prefix, "mqtt starting");
        let status = Arc::new(Mutex::new(MqttStatus {
            broker: broker.clone(),
            ..session.status(now)
        }));
        let refused = Arc::new(AtomicU64::new(0));
        let (tx, rx) = async_channel::bounded(QUEUE);
        let (done_tx, done) = async_channel::bounded(1);
        let task = Task {
            session,
            ha,
            host: config.host.clone(),
            port: config.port.get() as u16,
            broker,
            status: status.clone(),
            refused: refused.clone(),
            stream: None,
        };
        ex.spawn(async move {
            task.run(rx).await;
            drop(done_tx);
        })
        .detach();
        Ok(Self {
            tx: Some(tx),
            done: Some(done),
            status,
            refused,
            classes: classes.to_vec(),
            best: Vec::new(),
            counts: Vec::new(),
            moving: None,
        })
    }

    /// Hands `notice` to the MQTT task, or drops it when its queue is full.
    pub fn notify(&self, notice: Notice) {
        if let Some(tx) = &self.tx {
            if tx.try_send(ToTask::Notice(notice)).is_err() {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A frame's occupancy counts (when it carries detections) and motion
    /// state (when the motion gate is on), each handed on when it changed.
    pub fn on_frame(&mut self, frame: &EncodedFrame) {
        if self.tx.is_none() {
            return;
        }
        if let Some(detections) = &frame.info.detections {
            let counts = mado::mqtt::occupancy(&self.classes, detections);
            if counts != self.counts {
                self.counts = counts.clone();
                self.notify(Notice::Occupancy(counts));
            }
        }
        if let Some(motion) = &frame.info.motion {
            if self.moving != Some(motion.moving) {
                self.moving = Some(motion.moving);
                self.notify(Notice::Motion(motion.moving));
            }
        }
    }

    /// The event tracker's updates: start and end as events, and the best
    /// picture (from `recent`, the raw frames the pipeline still holds) as
    /// the snapshot, once at the start and again at the end.
    pub fn on_event_updates(&mut self, updates: &[EventUpdate], recent: &RecentFrames) {
        if self.tx.is_none() {
            return;
        }
        for update in updates {
            match update {
                EventUpdate::Started(info) => self.notify(Notice::EventStart(event_notice(info))),
                EventUpdate::Best(info) => {
                    let Some(picture) = recent.get(info.best_seq) else {
                        continue;
                    };
                    let open = self.best.len();
                    match self.best.iter_mut().find(|(id, _)| *id == info.id) {
                        Some(slot) => slot.1 = picture,
                        None if open < MAX_OPEN_EVENTS => {
                            self.best.push((info.id.clone(), picture.clone()));
                            self.send_picture(picture);
                        }
                        None => {}
                    }
                }
                EventUpdate::Ended(info) => {
                    self.notify(Notice::EventEnd(event_notice(info)));
                    if let Some(at) = self.best.iter().position(|(id, _)| *id == info.id) {
                        let (_, picture) = self.best.swap_remove(at);
                        self.send_picture(picture);
                    }
                }
            }
        }
    }

    fn send_picture(&self, picture: Arc<Yuv420>) {
        if let Some(tx) = &self.tx {
            if tx.try_send(ToTask::Picture(picture)).is_err() {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The appliance's health, once a status period.
    pub fn on_status(&self, status: &super::status::Status) {
        self.notify(Notice::Status(StatusNotice {
            camera: status.camera.as_str().to_owned(),
            fps: status.fps,
            frames_encoded: status.frames_encoded,
            viewers: status.viewers_connected,
        }));
    }

    /// The connection's state for `/api/status`.
    pub fn status(&self) -> MqttStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Publishes `offline`, disconnects, and waits (a little) for that to go out.
    pub async fn shut_down(&mut self) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        let _ = tx.force_send(ToTask::Shutdown);
        if let Some(done) = self.done.take() {
            let finished = async {
                let _ = done.recv().await;
                true
            }
            .or(async {
                smol::Timer::after(SHUTDOWN_GRACE).await;
                false
            })
            .await;
            if !finished {
                tracing::warn!("mqtt: the broker did not take the goodbye in time");
            }
        }
    }
}

/// What MQTT tells of an event.
fn event_notice(info: &EventInfo) -> EventNotice {
    EventNotice {
        id: info.id.clone(),
        class: info.label.clone(),
        score: info.best_score,
        start_ms: info.start_ms,
        end_ms: info.end_ms,
    }
}

/// The machine's host name, `mado` when it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "mado".into())
}
