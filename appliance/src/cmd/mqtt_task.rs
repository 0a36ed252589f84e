//! The MQTT task: owns the broker's TCP connection and drives the
//! [`Session`] with the clock; the driver talks to it only through the
//! bounded queue of [`ToTask`] (`cmd/mqtt.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::Receiver;
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _, FutureExt as _};
use mado::events::snapshot::{jpeg_from_i420, SNAPSHOT_QUALITY};
use mado::frame::Yuv420;
use mado::mqtt::{HomeAssistant, MqttState, MqttStatus, Notice, Session, SessionOutput};
use smol::net::TcpStream;

/// Opening the TCP connection and the CONNACK must take no longer.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A write that takes longer (the broker stopped reading) fails the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a clean close waits for the broker to close its side.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What the driver's side sends the task.
pub(super) enum ToTask {
    Notice(Notice),
    /// An event's best picture, made into the JPEG snapshot off the loop.
    Picture(Arc<Yuv420>),
    Shutdown,
}

enum Wake {
    Task(Option<ToTask>),
    Read(std::io::Result<usize>),
    Timeout,
}

/// The task's state.
pub(super) struct Task {
    pub(super) session: Session,
    pub(super) ha: HomeAssistant,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) broker: String,
    pub(super) status: Arc<Mutex<MqttStatus>>,
    pub(super) refused: Arc<AtomicU64>,
    pub(super) stream: Option<TcpStream>,
}

#[allow(clippy::disallowed_methods)] // reason: the shell owns the clock
impl Task {
    /// Runs until told to shut down (or the driver's side is dropped).
    pub(super) async fn run(mut self, rx: Receiver<ToTask>) {
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
