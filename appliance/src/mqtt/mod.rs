//! MQTT for Home Assistant: what happened ([`Notice`]) becomes messages on
//! documented topics ([`HomeAssistant`]), and a sans-IO MQTT 3.1.1 session
//! ([`Session`]) carries them to a broker, reconnecting with backoff. The
//! shell (`cmd/mqtt.rs`) owns the TCP connection and the clock.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use mado::mqtt::{HomeAssistant, Naming, Notice, Session, SessionOptions, SessionOutput};
//! use mado::publish::Backoff;
//!
//! let naming = Naming {
//!     prefix: "mado/porch".into(),
//!     discovery_prefix: Some("homeassistant".into()),
//!     node_id: "mado-porch".into(),
//!     device_name: "Mado porch".into(),
//!     classes: vec!["person".into()],
//! };
//! let mut ha = HomeAssistant::new(naming);
//! let now = Instant::now();
//! let options = SessionOptions {
//!     client_id: "mado-porch".into(),
//!     username: None,
//!     password: None,
//!     keep_alive: Duration::from_secs(30),
//!     will_topic: ha.naming().availability(),
//!     will_payload: b"offline".to_vec(),
//!     connect_timeout: Duration::from_secs(5),
//! };
//! let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 7);
//! let mut session = Session::new(options, backoff, now);
//! for message in ha.on_connect_messages() {
//!     session.publish(now, message);
//! }
//! session.handle_timeout(now);
//! assert_eq!(session.poll_output(), Some(SessionOutput::Open));
//! session.handle_opened(now);
//! assert!(matches!(session.poll_output(), Some(SessionOutput::Transmit(_))));
//! // The shell writes those bytes, reads the broker's CONNACK and hands it in:
//! session.handle_received(now, &[0x20, 0x02, 0x00, 0x00]);
//! // Availability, discovery and the states go out at once.
//! assert!(session.poll_output().is_some());
//! for message in ha.handle(now, Notice::Motion(true)) {
//!     session.publish(now, message);
//! }
//! ```

mod home_assistant;
mod session;
mod wire;

pub use home_assistant::{occupancy, EventNotice, HomeAssistant, Naming, StatusNotice};
pub use session::{Session, SessionOptions, SessionOutput, MAX_QUEUED};

use serde::Serialize;

/// Something that happened, for the MQTT core to tell the broker about.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// How many objects of each configured class the newest detections hold.
    Occupancy(Vec<(String, u32)>),
    /// Whether the motion gate sees motion.
    Motion(bool),
    /// An event opened.
    EventStart(EventNotice),
    /// An event ended.
    EventEnd(EventNotice),
    /// The best frame of an event, as JPEG bytes.
    Snapshot(Vec<u8>),
    /// The appliance's health, from the status snapshot.
    Status(StatusNotice),
}

/// How a message is kept when the broker is away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Only the newest per topic matters; it is sent again on every connect.
    Latest,
    /// Each one matters (events): kept while disconnected, a bounded number.
    Queue,
    /// Sent only when connected at the time, else dropped.
    Once,
}

/// One MQTT message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Published with the retain flag.
    pub retain: bool,
    /// 0 or 1.
    pub qos: u8,
    /// What happens to it while the broker is away.
    pub retention: Retention,
}

/// The MQTT connection's state, as `/api/status` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttState {
    /// MQTT is not enabled.
    #[default]
    Off,
    /// Connecting for the first time.
    Connecting,
    /// Connected to the broker.
    Connected,
    /// The broker was lost or refused; waiting to try again.
    Retrying,
    /// Shut down.
    Stopped,
}

/// The MQTT connection in `/api/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MqttStatus {
    /// `off`, `connecting`, `connected`, `retrying` or `stopped`.
    pub state: MqttState,
    /// `host:port` of the broker; empty when off.
    pub broker: String,
    /// Seconds in this state (connected since, or down since).
    pub since_s: u64,
    /// Messages handed to the connection.
    pub messages_sent: u64,
    /// QoS 1 messages the broker acknowledged.
    pub messages_acked: u64,
    /// Messages dropped: queued while the broker was away and pushed out, or
    /// arriving faster than they could be sent.
    pub messages_dropped: u64,
    /// Why the last connection failed; `null` once connected.
    pub last_error: Option<String>,
}
