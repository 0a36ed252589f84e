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
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _, FutureExt as _};
use mado::config::mqtt::MqttConfig;
use mado::encode::EncodedFrame;
use mado::events::snapshot::{jpeg_from_i420, SNAPSHOT_QUALITY};
use mado::events::{EventInfo, EventUpdate};
use mado::frame::Yuv420;
use mado::mqtt::{
    EventNotice, HomeAssistant, MqttState, MqttStatus, Naming, Notice, Session, SessionOptions, SessionOutput,
    StatusNotice,
};
use mado::pipeline::RecentFrames;
use mado::publish::Backoff;
use smol::net::TcpStream;

/// Notices waiting for the MQTT task; more are dropped.
const QUEUE: usize = 256;
/// Opening the TCP connection and the CONNACK must take no longer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A write that takes longer (the broker stopped reading) fails the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for `offline` and DISCONNECT to go out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long a clean close waits for the broker to close its side.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Best pictures held for events still open; more open events than this get
/// no snapshot at their end.
const MAX_OPEN_EVENTS: usize = 8;

enum ToTask {
    Notice(Notice),
    /// An event's best picture, made into the JPEG snapshot off the loop.
    Picture(Arc<Yuv420>),
    Shutdown,
}

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

enum Wake {
    Task(Option<ToTask>),
    Read(std::io::Result<usize>),
    Timeout,
}

struct Task {
    session: Session,
    ha: HomeAssistant,
    host: String,
    port: u16,
    broker: String,
    status: Arc<Mutex<MqttStatus>>,
    refused: Arc<AtomicU64>,
    stream: Option<TcpStream>,
}

#[allow(clippy::disallowed_methods)] // reason: the shell owns the clock
impl Task {
    async fn run(mut self, rx: Receiver<ToTask>) {
        let mut buf = vec![0u8; 4096];
        let mut stopping = false;
        loop {
            self.drive().await;
            if stopping {
                return;
            }
            let deadline = self.session.poll_timeout();
            let mut reader = self.stream.clone();
            let wake = async { Wake::Task(rx.recv().await.ok()) }
                .or(async {
                    match &mut reader {
                        Some(stream) => Wake::Read(stream.read(&mut buf).await),
                        None => std::future::pending().await,
                    }
                })
                .or(async {
                    match deadline {
                        Some(at) => smol::Timer::at(at).await,
                        None => std::future::pending().await,
                    };
                    Wake::Timeout
                })
                .await;
            let now = Instant::now();
            match wake {
                Wake::Task(Some(ToTask::Notice(notice))) => {
                    for message in self.ha.handle(now, notice) {
                        self.session.publish(now, message);
                    }
                }
                Wake::Task(Some(ToTask::Picture(picture))) => {
                    let jpeg = smol::unblock(move || jpeg_from_i420(&picture, SNAPSHOT_QUALITY)).await;
                    match jpeg {
                        Ok(jpeg) => {
                            for message in self.ha.handle(Instant::now(), Notice::Snapshot(jpeg)) {
                                self.session.publish(Instant::now(), message);
                            }
                        }
                        Err(e) => tracing::warn!("mqtt: no snapshot: {e}"),
                    }
                }
                Wake::Task(Some(ToTask::Shutdown)) | Wake::Task(None) => {
                    self.session.shut_down(now, self.ha.offline());
                    stopping = true;
                }
                Wake::Read(Ok(0)) => self.closed(now, "the broker closed the connection".into()),
                Wake::Read(Ok(n)) => self.session.handle_received(now, &buf[..n]),
                Wake::Read(Err(e)) => self.closed(now, format!("reading from the broker: {e}")),
                Wake::Timeout => self.session.handle_timeout(now),
            }
        }
    }

    fn closed(&mut self, now: Instant, reason: String) {
        self.stream = None;
        self.session.handle_closed(now, reason);
    }

    /// Carries out what the session asks for, then publishes its status.
    async fn drive(&mut self) {
        self.session.handle_timeout(Instant::now());
        while let Some(output) = self.session.poll_output() {
            match output {
                SessionOutput::Open => {
                    let connect = TcpStream::connect((self.host.as_str(), self.port)).or(async {
                        smol::Timer::after(CONNECT_TIMEOUT).await;
                        Err(std::io::ErrorKind::TimedOut.into())
                    });
                    match connect.await {
                        Ok(stream) => {
                            let _ = stream.set_nodelay(true);
                            self.stream = Some(stream);
                            tracing::info!(broker = %self.broker, "mqtt connected");
                            self.session.handle_opened(Instant::now());
                        }
                        Err(e) => {
                            tracing::debug!(broker = %self.broker, "mqtt connect failed: {e}");
                            self.session
                                .handle_open_failed(Instant::now(), format!("connecting to {}: {e}", self.broker));
                        }
                    }
                }
                SessionOutput::Transmit(bytes) => {
                    let Some(stream) = &mut self.stream else {
                        continue;
                    };
                    let write = async { stream.write_all(&bytes).await }.or(async {
                        smol::Timer::after(WRITE_TIMEOUT).await;
                        Err(std::io::ErrorKind::TimedOut.into())
                    });
                    if let Err(e) = write.await {
                        tracing::warn!(broker = %self.broker, "mqtt write failed: {e}");
                        self.closed(Instant::now(), format!("writing to the broker: {e}"));
                    }
                }
                SessionOutput::Close => {
                    let Some(mut stream) = self.stream.take() else {
                        continue;
                    };
                    if self.session.status(Instant::now()).state == MqttState::Stopped {
                        // A clean goodbye: half-close and let the broker read
                        // the DISCONNECT and close first. Closing with its
                        // PUBACKs unread would reset the connection, and the
                        // broker might lose the DISCONNECT and send the will.
                        let _ = stream.flush().await;
                        let _ = stream.shutdown(std::net::Shutdown::Write);
                        let mut sink = [0u8; 512];
                        let drained = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
                        drained
                            .or(async {
                                smol::Timer::after(CLOSE_GRACE).await;
                            })
                            .await;
                    }
                }
            }
        }
        self.session.count_dropped(self.refused.swap(0, Ordering::Relaxed));
        if let Ok(mut status) = self.status.lock() {
            *status = MqttStatus {
                broker: self.broker.clone(),
                ..self.session.status(Instant::now())
            };
        }
    }
}
