//! One MQTT 3.1.1 client session over whatever byte stream the shell opens:
//! connect with a last will, publish, keep alive, reconnect with backoff.
//! Sans-IO: bytes and time in, bytes and "open"/"close" requests out. The
//! packets are encoded and decoded by the `mqttrs` codec.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mqttrs::{Connect, ConnectReturnCode, LastWill, Packet, Pid, Protocol, Publish, QoS, QosPid};

use super::wire::{encode, packet_len};
use super::{Message, MqttState, MqttStatus, Retention};
use crate::publish::Backoff;

/// Events kept while the broker is away; older ones are dropped (counted).
pub const MAX_QUEUED: usize = 32;
/// The most bytes of a partial packet kept from the broker.
const MAX_RX: usize = 64 * 1024;

/// What the session needs to know to connect.
#[derive(Clone)]
pub struct SessionOptions {
    /// The MQTT client id.
    pub client_id: String,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Vec<u8>>,
    /// Keep-alive interval told to the broker.
    pub keep_alive: Duration,
    /// The last will: the broker publishes it (retained, QoS 1) when the session dies.
    pub will_topic: String,
    /// The will's payload.
    pub will_payload: Vec<u8>,
    /// The TCP connect and the CONNACK must come within this.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for SessionOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionOptions")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("keep_alive", &self.keep_alive)
            .field("will_topic", &self.will_topic)
            .finish_non_exhaustive()
    }
}

/// What the shell must do for the session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum SessionOutput {
    /// Open a connection to the broker, then call [`Session::handle_opened`]
    /// or [`Session::handle_open_failed`].
    Open,
    /// Write these bytes to the connection.
    Transmit(Vec<u8>),
    /// Close the connection.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting to (re)connect at this time.
    Waiting(Instant),
    /// The shell is opening the connection; give up at this time.
    Opening(Instant),
    /// CONNECT sent, waiting for CONNACK until this time.
    Connecting(Instant),
    /// Connected: `last_out` is when we last sent, `ping` when a PINGREQ went unanswered.
    Up { last_out: Instant, ping: Option<Instant> },
    /// Shut down for good.
    Stopped,
}

/// The client session. Drive it as ARCHITECTURE.md says: `handle_*` with
/// `now`, drain [`Session::poll_output`], wait until [`Session::poll_timeout`].
#[derive(Debug)]
pub struct Session {
    options: SessionOptions,
    state: State,
    backoff: Backoff,
    out: VecDeque<SessionOutput>,
    /// The newest message per topic, sent again on every connect (availability,
    /// discovery, states), in first-published order.
    latest: Vec<Message>,
    /// Messages waiting for a connection, at most [`MAX_QUEUED`].
    queued: VecDeque<Message>,
    rx: Vec<u8>,
    next_pid: Pid,
    since: Instant,
    sent: u64,
    dropped: u64,
    acked: u64,
    last_error: Option<String>,
}

impl Session {
    /// A session that asks to connect at `now`.
    pub fn new(options: SessionOptions, backoff: Backoff, now: Instant) -> Self {
        Self {
            options,
            state: State::Waiting(now),
            backoff,
            out: VecDeque::new(),
            latest: Vec::new(),
            queued: VecDeque::new(),
            rx: Vec::new(),
            next_pid: Pid::new(),
            since: now,
            sent: 0,
            dropped: 0,
            acked: 0,
            last_error: None,
        }
    }

    /// The next thing the shell must do.
    pub fn poll_output(&mut self) -> Option<SessionOutput> {
        self.out.pop_front()
    }

    /// When [`Session::handle_timeout`] wants to be called; `None` when stopped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(at) | State::Opening(at) | State::Connecting(at) => Some(at),
            State::Up { last_out, ping } => Some(match ping {
                Some(sent) => sent + self.options.keep_alive,
                None => last_out + self.ping_every(),
            }),
            State::Stopped => None,
        }
    }

    /// Pings a little before the keep-alive runs out.
    fn ping_every(&self) -> Duration {
        self.options.keep_alive.mul_f64(0.75)
    }

    /// Timers: connect when the wait is over, give up a slow connect, ping, and
    /// drop a connection whose ping went unanswered.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Waiting(at) if now >= at => {
                self.state = State::Opening(now + self.options.connect_timeout);
                self.out.push_back(SessionOutput::Open);
            }
            State::Opening(at) | State::Connecting(at) if now >= at => {
                self.fail(now, "the broker did not answer in time".into());
            }
            State::Up { ping: Some(sent), .. } if now >= sent + self.options.keep_alive => {
                self.fail(now, "the broker stopped answering pings".into());
            }
            State::Up { last_out, ping: None } if now >= last_out + self.ping_every() => {
                self.transmit(now, &Packet::Pingreq);
                self.state = State::Up {
                    last_out: now,
                    ping: Some(now),
                };
            }
            _ => {}
        }
    }

    /// The connection is open: send CONNECT.
    pub fn handle_opened(&mut self, now: Instant) {
        if !matches!(self.state, State::Opening(_)) {
            return;
        }
        self.rx.clear();
        let o = &self.options;
        let connect = Packet::Connect(Connect {
            protocol: Protocol::MQTT311,
            keep_alive: o.keep_alive.as_secs().clamp(1, u64::from(u16::MAX)) as u16,
            client_id: &o.client_id,
            clean_session: true,
            last_will: Some(LastWill {
                topic: &o.will_topic,
                message: &o.will_payload,
                qos: QoS::AtLeastOnce,
                retain: true,
            }),
            username: o.username.as_deref(),
            password: o.password.as_deref(),
        });
        let bytes = encode(&connect);
        self.out.push_back(SessionOutput::Transmit(bytes));
        self.state = State::Connecting(now + self.options.connect_timeout);
    }

    /// The connection could not be opened.
    pub fn handle_open_failed(&mut self, now: Instant, reason: String) {
        if matches!(self.state, State::Opening(_)) {
            self.fail(now, reason);
        }
    }

    /// The connection closed or a write failed.
    pub fn handle_closed(&mut self, now: Instant, reason: String) {
        if matches!(self.state, State::Connecting(_) | State::Up { .. }) {
            self.fail(now, reason);
        }
    }

    /// Bytes from the broker.
    pub fn handle_received(&mut self, now: Instant, bytes: &[u8]) {
        if !matches!(self.state, State::Connecting(_) | State::Up { .. }) {
            return;
        }
        self.rx.extend_from_slice(bytes);
        loop {
            let len = match packet_len(&self.rx) {
                Ok(Some(len)) => len,
                Ok(None) if self.rx.len() <= MAX_RX => return,
                Ok(None) => return self.fail(now, "a packet from the broker is too large".into()),
                Err(()) => return self.fail(now, "the broker sent a malformed packet".into()),
            };
            let packet: Vec<u8> = self.rx.drain(..len).collect();
            // A broker owes this client only CONNACK, PUBACK and PINGRESP (it
            // subscribes to nothing and publishes at QoS 0 and 1), each of a
            // fixed length; anything else is refused before the codec, which
            // trusts the lengths it is given.
            let expected = match packet[0] {
                0x20 | 0x40 => 4,
                0xd0 => 2,
                _ => 0,
            };
            if packet.len() != expected {
                return self.fail(
                    now,
                    format!("the broker sent an unexpected packet (type byte {:#04x})", packet[0]),
                );
            }
            match mqttrs::decode_slice(&packet) {
                Ok(Some(packet)) => self.on_packet(now, packet),
                Ok(None) | Err(_) => return self.fail(now, "the broker sent a malformed packet".into()),
            }
            if !matches!(self.state, State::Connecting(_) | State::Up { .. }) {
                return;
            }
        }
    }

    fn on_packet(&mut self, now: Instant, packet: Packet<'_>) {
        match (self.state, packet) {
            (State::Connecting(_), Packet::Connack(connack)) => {
                if connack.code != ConnectReturnCode::Accepted {
                    return self.fail(now, format!("the broker refused the connection: {:?}", connack.code));
                }
                self.state = State::Up {
                    last_out: now,
                    ping: None,
                };
                self.since = now;
                self.last_error = None;
                self.backoff.reset();
                for message in self.latest.clone() {
                    self.send(now, &message);
                }
                while let Some(message) = self.queued.pop_front() {
                    self.send(now, &message);
                }
            }
            (State::Up { last_out, .. }, Packet::Pingresp) => self.state = State::Up { last_out, ping: None },
            (State::Up { .. }, Packet::Puback(_)) => self.acked += 1,
            (State::Connecting(_), _) => self.fail(now, "the broker sent something before CONNACK".into()),
            _ => {}
        }
    }

    /// Publishes `message` now if connected. A [`Retention::Latest`] message
    /// replaces the last one on its topic and is sent again on every connect;
    /// a [`Retention::Queue`] one waits for the connection, at most
    /// [`MAX_QUEUED`] of them (the oldest is dropped).
    pub fn publish(&mut self, now: Instant, message: Message) {
        if self.state == State::Stopped {
            self.dropped += 1;
            return;
        }
        let up = matches!(self.state, State::Up { .. });
        match message.retention {
            Retention::Latest => {
                match self.latest.iter_mut().find(|m| m.topic == message.topic) {
                    Some(slot) => *slot = message.clone(),
                    None => self.latest.push(message.clone()),
                }
                if up {
                    self.send(now, &message);
                }
            }
            Retention::Queue if up => self.send(now, &message),
            Retention::Queue => {
                if self.queued.len() == MAX_QUEUED {
                    self.queued.pop_front();
                    self.dropped += 1;
                }
                self.queued.push_back(message);
            }
            Retention::Once if up => self.send(now, &message),
            Retention::Once => self.dropped += 1,
        }
    }

    /// Says goodbye: publishes `message` (availability offline) and
    /// DISCONNECT when connected, so the broker does not send the last will;
    /// then closes. The session stays stopped.
    pub fn shut_down(&mut self, now: Instant, message: Message) {
        if matches!(self.state, State::Up { .. }) {
            self.send(now, &message);
            self.transmit(now, &Packet::Disconnect);
            self.out.push_back(SessionOutput::Close);
        } else if matches!(self.state, State::Opening(_) | State::Connecting(_)) {
            self.out.push_back(SessionOutput::Close);
        }
        self.state = State::Stopped;
        self.since = now;
    }

    /// A note of a message the shell could not take (its queue was full).
    pub fn count_dropped(&mut self, n: u64) {
        self.dropped += n;
    }

    /// The session's state for `/api/status`.
    pub fn status(&self, now: Instant) -> MqttStatus {
        MqttStatus {
            state: match self.state {
                State::Waiting(_) if self.last_error.is_some() => MqttState::Retrying,
                State::Waiting(_) | State::Opening(_) | State::Connecting(_) => MqttState::Connecting,
                State::Up { .. } => MqttState::Connected,
                State::Stopped => MqttState::Stopped,
            },
            broker: String::new(),
            since_s: now.saturating_duration_since(self.since).as_secs(),
            messages_sent: self.sent,
            messages_acked: self.acked,
            messages_dropped: self.dropped,
            last_error: self.last_error.clone(),
        }
    }

    fn send(&mut self, now: Instant, message: &Message) {
        let qospid = match message.qos {
            0 => QosPid::AtMostOnce,
            _ => {
                let pid = self.next_pid;
                self.next_pid = pid + 1;
                QosPid::AtLeastOnce(pid)
            }
        };
        let publish = Packet::Publish(Publish {
            dup: false,
            qospid,
            retain: message.retain,
            topic_name: &message.topic,
            payload: &message.payload,
        });
        self.transmit(now, &publish);
        self.sent += 1;
    }

    fn transmit(&mut self, now: Instant, packet: &Packet<'_>) {
        self.out.push_back(SessionOutput::Transmit(encode(packet)));
        if let State::Up { ping, .. } = self.state {
            self.state = State::Up { last_out: now, ping };
        }
    }

    fn fail(&mut self, now: Instant, reason: String) {
        if matches!(self.state, State::Connecting(_) | State::Up { .. }) {
            self.out.push_back(SessionOutput::Close);
        }
        if matches!(self.state, State::Up { .. }) {
            self.since = now;
        }
        self.last_error = Some(reason);
        self.rx.clear();
        self.state = State::Waiting(now + self.backoff.next_delay());
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
