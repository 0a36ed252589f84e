//! Topics and payloads: what each [`Notice`] becomes on the wire, and the
//! Home Assistant MQTT discovery configs that describe them. README's
//! "Home Assistant" section documents every topic and payload made here.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Message, Notice, Retention};
use crate::config::mqtt::topic_level;
use crate::meta::Detections;

/// The camera status goes out at least this often while it does not change.
pub const STATUS_EVERY: Duration = Duration::from_secs(30);

/// The names everything is published under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// Topic prefix, e.g. `mado/porch`.
    pub prefix: String,
    /// Home Assistant's discovery prefix; `None`: no discovery.
    pub discovery_prefix: Option<String>,
    /// The device's id in discovery topics and unique ids (made safe with
    /// [`topic_level`]).
    pub node_id: String,
    /// The device's name in Home Assistant.
    pub device_name: String,
    /// The classes that get an occupancy count.
    pub classes: Vec<String>,
}

impl Naming {
    /// `<prefix>/availability`: `online` / `offline`, retained; the last will.
    pub fn availability(&self) -> String {
        format!("{}/availability", self.prefix)
    }
    /// `<prefix>/motion`: `ON` / `OFF`, retained.
    pub fn motion(&self) -> String {
        format!("{}/motion", self.prefix)
    }
    /// `<prefix>/occupancy/<class>`: the count as decimal text, retained.
    pub fn occupancy(&self, class: &str) -> String {
        format!("{}/occupancy/{}", self.prefix, topic_level(class))
    }
    /// `<prefix>/event`: event start and end as JSON, retained.
    pub fn event(&self) -> String {
        format!("{}/event", self.prefix)
    }
    /// `<prefix>/snapshot`: the newest event's best frame, JPEG bytes, retained.
    pub fn snapshot(&self) -> String {
        format!("{}/snapshot", self.prefix)
    }
    /// `<prefix>/status`: the camera's state as JSON, retained.
    pub fn status(&self) -> String {
        format!("{}/status", self.prefix)
    }
    /// `<discovery>/<component>/<node_id>/<object>/config`.
    fn discovery_topic(&self, discovery: &str, component: &str, object: &str) -> String {
        format!("{discovery}/{component}/{}/{object}/config", topic_level(&self.node_id))
    }
}

/// An event, as its start and end messages tell it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventNotice {
    /// The event's id.
    pub id: String,
    /// The detected class.
    pub class: String,
    /// Best score so far (0 to 1).
    pub score: f32,
    /// When it started, milliseconds since the Unix epoch.
    pub start_ms: u64,
    /// When it ended; `None` at the start.
    pub end_ms: Option<u64>,
}

/// The appliance's health, as the status sensor shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusNotice {
    /// The camera's state: `none` (not a camera), `ok` or `lost`.
    pub camera: String,
    /// Frames encoded a second.
    pub fps: f64,
    /// Frames encoded since start.
    pub frames_encoded: u64,
    /// Viewers connected.
    pub viewers: usize,
}

/// Turns notices into messages, publishing only what changed.
#[derive(Debug)]
pub struct HomeAssistant {
    naming: Naming,
    counts: Vec<(String, u32)>,
    motion: Option<bool>,
    status: Option<(String, Instant)>,
}

impl HomeAssistant {
    /// Messages under `naming`.
    pub fn new(naming: Naming) -> Self {
        Self {
            naming,
            counts: Vec::new(),
            motion: None,
            status: None,
        }
    }

    /// The names in use.
    pub fn naming(&self) -> &Naming {
        &self.naming
    }

    /// What every connection starts with: availability `online`, then the
    /// discovery configs (all [`Retention::Latest`], so the session sends
    /// them again after each reconnect).
    pub fn on_connect_messages(&self) -> Vec<Message> {
        let mut messages = vec![Message {
            topic: self.naming.availability(),
            payload: b"online".to_vec(),
            retain: true,
            qos: 1,
            retention: Retention::Latest,
        }];
        messages.extend(self.discovery());
        messages
    }

    /// The `offline` message sent on a clean shutdown (the will says the same).
    pub fn offline(&self) -> Message {
        Message {
            topic: self.naming.availability(),
            payload: b"offline".to_vec(),
            retain: true,
            qos: 1,
            retention: Retention::Once,
        }
    }

    /// The messages for `notice`; empty when nothing changed.
    pub fn handle(&mut self, now: Instant, notice: Notice) -> Vec<Message> {
        let n = &self.naming;
        match notice {
            Notice::Occupancy(counts) => {
                let mut out = Vec::new();
                for (class, count) in counts {
                    match self.counts.iter_mut().find(|(c, _)| *c == class) {
                        Some((_, old)) if *old == count => continue,
                        Some((_, old)) => *old = count,
                        None => self.counts.push((class.clone(), count)),
                    }
                    out.push(state(n.occupancy(&class), count.to_string().into_bytes()));
                }
                out
            }
            Notice::Motion(on) if self.motion != Some(on) => {
                self.motion = Some(on);
                vec![state(n.motion(), if on { "ON" } else { "OFF" }.into())]
            }
            Notice::Motion(_) => Vec::new(),
            Notice::EventStart(event) => vec![event_message(n, "start", &event)],
            Notice::EventEnd(event) => vec![event_message(n, "end", &event)],
            Notice::Snapshot(jpeg) => vec![state(n.snapshot(), jpeg)],
            Notice::Status(status) => {
                let streaming = status.fps > 0.0;
                let key = format!("{}/{streaming}", status.camera);
                let due = match &self.status {
                    Some((last, at)) => *last != key || now >= *at + STATUS_EVERY,
                    None => true,
                };
                if !due {
                    return Vec::new();
                }
                self.status = Some((key, now));
                let payload = json!({
                    "state": if streaming { "streaming" } else { "stalled" },
                    "camera": status.camera,
                    "fps": status.fps,
                    "frames_encoded": status.frames_encoded,
                    "viewers": status.viewers,
                });
                vec![state(n.status(), payload.to_string().into_bytes())]
            }
        }
    }

    /// The discovery configs: motion, one occupancy count per class, the
    /// last event, the snapshot image and the camera status.
    pub fn discovery(&self) -> Vec<Message> {
        let n = &self.naming;
        let Some(discovery) = n.discovery_prefix.as_deref() else {
            return Vec::new();
        };
        let node = topic_level(&n.node_id);
        let common = |object: &str, name: &str| {
            json!({
                "name": name,
                "unique_id": format!("{node}_{object}"),
                "availability_topic": n.availability(),
                "payload_available": "online",
                "payload_not_available": "offline",
                "device": {
                    "identifiers": [node],
                    "name": n.device_name,
                    "manufacturer": "Mado",
                    "model": "Mado edge camera",
                    "sw_version": env!("CARGO_PKG_VERSION"),
                },
            })
        };
        let mut configs = Vec::new();
        let mut add = |component: &str, object: &str, name: &str, extra: Value| {
            let mut config = common(object, name);
            if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
                config.extend(extra);
            }
            configs.push(Message {
                topic: n.discovery_topic(discovery, component, object),
                payload: config.to_string().into_bytes(),
                retain: true,
                qos: 1,
                retention: Retention::Latest,
            });
        };
        add(
            "binary_sensor",
            "motion",
            "Motion",
            json!({"state_topic": n.motion(), "device_class": "motion", "payload_on": "ON", "payload_off": "OFF"}),
        );
        for class in &n.classes {
            let level = topic_level(class);
            add(
                "sensor",
                &format!("occupancy_{level}"),
                &format!("{class} count"),
                json!({"state_topic": n.occupancy(class), "state_class": "measurement", "icon": "mdi:counter"}),
            );
        }
        add(
            "sensor",
            "last_event",
            "Last event",
            json!({"state_topic": n.event(), "value_template": "{{ value_json.class }}", "json_attributes_topic": n.event(), "icon": "mdi:motion-sensor"}),
        );
        add(
            "image",
            "snapshot",
            "Snapshot",
            json!({"image_topic": n.snapshot(), "content_type": "image/jpeg"}),
        );
        add(
            "sensor",
            "status",
            "Camera",
            json!({"state_topic": n.status(), "value_template": "{{ value_json.state }}", "json_attributes_topic": n.status(), "icon": "mdi:cctv"}),
        );
        configs
    }
}

fn state(topic: String, payload: Vec<u8>) -> Message {
    Message {
        topic,
        payload,
        retain: true,
        qos: 0,
        retention: Retention::Latest,
    }
}

fn event_message(n: &Naming, kind: &str, e: &EventNotice) -> Message {
    let payload = json!({
        "event": kind,
        "id": e.id,
        "class": e.class,
        "score": (f64::from(e.score) * 1000.0).round() / 1000.0,
        "start_ms": e.start_ms,
        "end_ms": e.end_ms,
        "snapshot_topic": n.snapshot(),
    });
    Message {
        topic: n.event(),
        payload: payload.to_string().into_bytes(),
        retain: true,
        qos: 1,
        retention: Retention::Queue,
    }
}

/// How many objects of each of `classes` are in `detections` (labels
/// compared without regard to ASCII case: `person` counts `Person`).
pub fn occupancy(classes: &[String], detections: &Detections) -> Vec<(String, u32)> {
    classes
        .iter()
        .map(|class| {
            let count = detections
                .items
                .iter()
                .filter(|d| d.label.as_str().eq_ignore_ascii_case(class))
                .count();
            (class.clone(), count as u32)
        })
        .collect()
}

#[cfg(test)]
#[path = "home_assistant_tests.rs"]
mod tests;
