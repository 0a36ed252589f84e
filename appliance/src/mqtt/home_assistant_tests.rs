//! Topics and payloads, exactly as README documents them.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::meta::{BBox, Detection, Norm16};

fn naming() -> Naming {
    Naming {
        prefix: "mado/porch".into(),
        discovery_prefix: Some("homeassistant".into()),
        node_id: "mado-porch".into(),
        device_name: "Mado porch".into(),
        classes: vec!["person".into(), "traffic light".into()],
    }
}

fn json_of(m: &Message) -> Value {
    serde_json::from_slice(&m.payload).unwrap()
}

#[test]
fn discovery_describes_every_entity_on_the_documented_topics() {
    let ha = HomeAssistant::new(naming());
    let messages = ha.on_connect_messages();
    assert_eq!(messages[0].topic, "mado/porch/availability");
    assert_eq!(messages[0].payload, b"online");
    assert!(messages[0].retain && messages[0].retention == Retention::Latest);
    let topics: Vec<&str> = messages[1..].iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "homeassistant/binary_sensor/mado-porch/motion/config",
            "homeassistant/sensor/mado-porch/occupancy_person/config",
            "homeassistant/sensor/mado-porch/occupancy_traffic_light/config",
            "homeassistant/sensor/mado-porch/last_event/config",
            "homeassistant/image/mado-porch/snapshot/config",
            "homeassistant/sensor/mado-porch/status/config",
        ]
    );
    assert!(messages.iter().all(|m| m.retain && m.qos == 1));
    let motion = json_of(&messages[1]);
    assert_eq!(
        motion,
        json!({
            "name": "Motion",
            "unique_id": "mado-porch_motion",
            "state_topic": "mado/porch/motion",
            "device_class": "motion",
            "payload_on": "ON",
            "payload_off": "OFF",
            "availability_topic": "mado/porch/availability",
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": {
                "identifiers": ["mado-porch"],
                "name": "Mado porch",
                "manufacturer": "Mado",
                "model": "Mado edge camera",
                "sw_version": env!("CARGO_PKG_VERSION"),
            },
        })
    );
    let light = json_of(&messages[3]);
    assert_eq!(light["name"], "traffic light count");
    assert_eq!(light["state_topic"], "mado/porch/occupancy/traffic_light");
    assert_eq!(light["state_class"], "measurement");
    let event = json_of(&messages[4]);
    assert_eq!(event["state_topic"], "mado/porch/event");
    assert_eq!(event["value_template"], "{{ value_json.class }}");
    assert_eq!(event["json_attributes_topic"], "mado/porch/event");
    let image = json_of(&messages[5]);
    assert_eq!(image["image_topic"], "mado/porch/snapshot");
    assert_eq!(image["content_type"], "image/jpeg");
    let status = json_of(&messages[6]);
    assert_eq!(status["value_template"], "{{ value_json.state }}");
}

#[test]
fn no_discovery_prefix_means_no_discovery() {
    let ha = HomeAssistant::new(Naming {
        discovery_prefix: None,
        ..naming()
    });
    assert_eq!(ha.on_connect_messages().len(), 1);
}

#[test]
fn counts_and_motion_are_published_on_change_only() {
    let now = Instant::now();
    let mut ha = HomeAssistant::new(naming());
    let counts = |p, t| Notice::Occupancy(vec![("person".into(), p), ("traffic light".into(), t)]);
    let out = ha.handle(now, counts(2, 0));
    let pairs: Vec<(&str, &[u8])> = out.iter().map(|m| (m.topic.as_str(), &m.payload[..])).collect();
    assert_eq!(
        pairs,
        [
            ("mado/porch/occupancy/person", &b"2"[..]),
            ("mado/porch/occupancy/traffic_light", &b"0"[..])
        ]
    );
    assert!(ha.handle(now, counts(2, 0)).is_empty());
    let out = ha.handle(now, counts(1, 0));
    assert_eq!((out.len(), &out[0].payload[..]), (1, &b"1"[..]));
    assert!(out[0].retain && out[0].qos == 0 && out[0].retention == Retention::Latest);
    let out = ha.handle(now, Notice::Motion(true));
    assert_eq!(
        (out[0].topic.as_str(), &out[0].payload[..]),
        ("mado/porch/motion", &b"ON"[..])
    );
    assert!(ha.handle(now, Notice::Motion(true)).is_empty());
    assert_eq!(ha.handle(now, Notice::Motion(false))[0].payload, b"OFF");
}

#[test]
fn events_have_the_documented_json_and_are_queued() {
    let mut ha = HomeAssistant::new(naming());
    let event = EventNotice {
        id: "20261130-101500-1".into(),
        class: "person".into(),
        score: 0.8765,
        start_ms: 1_796_000_000_000,
        end_ms: None,
    };
    let now = Instant::now();
    let start = ha.handle(now, Notice::EventStart(event.clone()));
    assert_eq!(start[0].topic, "mado/porch/event");
    assert_eq!(start[0].retention, Retention::Queue);
    assert_eq!(
        json_of(&start[0]),
        json!({"event": "start", "id": "20261130-101500-1", "class": "person", "score": 0.877,
               "start_ms": 1_796_000_000_000u64, "end_ms": null, "snapshot_topic": "mado/porch/snapshot"})
    );
    let end = ha.handle(
        now,
        Notice::EventEnd(EventNotice {
            end_ms: Some(1_796_000_004_000),
            ..event
        }),
    );
    assert_eq!(json_of(&end[0])["event"], "end");
    assert_eq!(json_of(&end[0])["end_ms"], 1_796_000_004_000u64);
    let snap = ha.handle(now, Notice::Snapshot(vec![0xff, 0xd8, 0xff]));
    assert_eq!(
        (snap[0].topic.as_str(), &snap[0].payload[..]),
        ("mado/porch/snapshot", &[0xff, 0xd8, 0xff][..])
    );
}

#[test]
fn status_goes_out_on_change_or_every_half_minute() {
    let t0 = Instant::now();
    let mut ha = HomeAssistant::new(naming());
    let status = |camera: &str, fps| {
        Notice::Status(StatusNotice {
            camera: camera.into(),
            fps,
            frames_encoded: 10,
            viewers: 1,
        })
    };
    let out = ha.handle(t0, status("ok", 30.0));
    assert_eq!(
        json_of(&out[0]),
        json!({"state": "streaming", "camera": "ok", "fps": 30.0, "frames_encoded": 10, "viewers": 1})
    );
    assert!(ha.handle(t0 + Duration::from_secs(1), status("ok", 29.0)).is_empty());
    assert_eq!(
        json_of(&ha.handle(t0 + Duration::from_secs(2), status("lost", 0.0))[0])["state"],
        "stalled"
    );
    assert!(ha.handle(t0 + Duration::from_secs(3), status("lost", 0.0)).is_empty());
    assert_eq!(ha.handle(t0 + Duration::from_secs(33), status("lost", 0.0)).len(), 1);
}

#[test]
fn occupancy_counts_each_configured_class() {
    let item = |label: &str| Detection {
        class_id: 0,
        label: label.try_into().unwrap(),
        score: Norm16::ONE,
        bbox: BBox::from_pixels(0, 0, 2, 2, 10, 10).unwrap(),
    };
    let detections = Detections {
        items: heapless::Vec::from_slice(&[item("Person"), item("dog"), item("person")]).unwrap(),
        ..Default::default()
    };
    let classes = ["person".to_owned(), "car".to_owned()];
    assert_eq!(
        occupancy(&classes, &detections),
        [("person".to_owned(), 2), ("car".to_owned(), 0)]
    );
}
