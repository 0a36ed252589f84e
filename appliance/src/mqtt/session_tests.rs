//! The session on a simulated clock, its bytes read back with the codec.

use std::time::{Duration, Instant};

use mqttrs::{decode_slice, Packet, QoS, QosPid};

use super::*;

const CONNACK_OK: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
const CONNACK_BAD_AUTH: [u8; 4] = [0x20, 0x02, 0x00, 0x04];
const PINGRESP: [u8; 2] = [0xd0, 0x00];

fn options() -> SessionOptions {
    SessionOptions {
        client_id: "mado-test".into(),
        username: Some("cam".into()),
        password: Some(b"pw".to_vec()),
        keep_alive: Duration::from_secs(20),
        will_topic: "mado/test/availability".into(),
        will_payload: b"offline".to_vec(),
        connect_timeout: Duration::from_secs(5),
    }
}

fn session(now: Instant) -> Session {
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8), 1);
    Session::new(options(), backoff, now)
}

fn message(topic: &str, payload: &str, retention: Retention) -> Message {
    Message {
        topic: topic.into(),
        payload: payload.into(),
        retain: true,
        qos: 1,
        retention,
    }
}

fn drain(s: &mut Session) -> Vec<SessionOutput> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

/// The (topic, payload) of every PUBLISH among `outputs`.
fn published(outputs: &[SessionOutput]) -> Vec<(String, String)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            SessionOutput::Transmit(bytes) => match decode_slice(bytes).unwrap().unwrap() {
                Packet::Publish(p) => Some((p.topic_name.to_owned(), String::from_utf8_lossy(p.payload).into_owned())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Opens and completes the handshake at `now`; returns what went out after CONNACK.
fn connect(s: &mut Session, now: Instant) -> Vec<SessionOutput> {
    s.handle_timeout(now);
    assert_eq!(drain(s), [SessionOutput::Open]);
    s.handle_opened(now);
    drain(s);
    s.handle_received(now, &CONNACK_OK);
    drain(s)
}

#[test]
fn connect_carries_the_retained_last_will_and_credentials() {
    let now = Instant::now();
    let mut s = session(now);
    assert_eq!(s.poll_timeout(), Some(now));
    s.handle_timeout(now);
    assert_eq!(drain(&mut s), [SessionOutput::Open]);
    s.handle_opened(now);
    let out = drain(&mut s);
    let [SessionOutput::Transmit(bytes)] = &out[..] else {
        panic!("{out:?}");
    };
    let Some(Packet::Connect(c)) = decode_slice(bytes).unwrap() else {
        panic!("not a CONNECT");
    };
    assert_eq!(c.client_id, "mado-test");
    assert_eq!(c.keep_alive, 20);
    assert_eq!((c.username, c.password), (Some("cam"), Some(&b"pw"[..])));
    let will = c.last_will.unwrap();
    assert_eq!((will.topic, will.message), ("mado/test/availability", &b"offline"[..]));
    assert!(will.retain && will.qos == QoS::AtLeastOnce);
    assert_eq!(s.status(now).state, MqttState::Connecting);
}

#[test]
fn latest_messages_are_replayed_on_every_connect_and_queued_ones_once() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.publish(t0, message("a/availability", "online", Retention::Latest));
    s.publish(t0, message("a/motion", "OFF", Retention::Latest));
    s.publish(t0, message("a/motion", "ON", Retention::Latest));
    s.publish(t0, message("a/event", "e1", Retention::Queue));
    s.publish(t0, message("a/once", "x", Retention::Once));
    let out = connect(&mut s, t0);
    assert_eq!(
        published(&out),
        [
            ("a/availability".into(), "online".into()),
            ("a/motion".into(), "ON".into()),
            ("a/event".into(), "e1".into())
        ]
    );
    assert_eq!(s.status(t0).state, MqttState::Connected);
    assert_eq!(s.status(t0).messages_dropped, 1, "the Once message found no connection");
    // The broker goes away; it comes back after the backoff.
    s.handle_closed(t0, "reset".into());
    assert_eq!(drain(&mut s), [SessionOutput::Close]);
    let status = s.status(t0);
    assert_eq!(
        (status.state, status.last_error.as_deref()),
        (MqttState::Retrying, Some("reset"))
    );
    let retry = s.poll_timeout().unwrap();
    assert!(retry > t0 && retry <= t0 + Duration::from_secs(1), "{retry:?}");
    s.handle_timeout(t0 + Duration::from_millis(100));
    assert!(drain(&mut s).is_empty(), "no attempt before the backoff is over");
    let out = connect(&mut s, retry);
    assert_eq!(
        published(&out),
        [
            ("a/availability".into(), "online".into()),
            ("a/motion".into(), "ON".into())
        ]
    );
}

#[test]
fn events_while_down_are_bounded_and_the_oldest_go() {
    let t0 = Instant::now();
    let mut s = session(t0);
    for i in 0..MAX_QUEUED + 5 {
        s.publish(t0, message("a/event", &i.to_string(), Retention::Queue));
    }
    assert_eq!(s.status(t0).messages_dropped, 5);
    let out = published(&connect(&mut s, t0));
    assert_eq!(out.len(), MAX_QUEUED);
    assert_eq!(out[0].1, "5");
}

#[test]
fn pings_keep_the_session_alive_and_a_silent_broker_is_dropped() {
    let t0 = Instant::now();
    let mut s = session(t0);
    connect(&mut s, t0);
    let ping_at = s.poll_timeout().unwrap();
    assert_eq!(ping_at, t0 + Duration::from_secs(15));
    s.handle_timeout(ping_at);
    let out = drain(&mut s);
    assert!(
        matches!(&out[..], [SessionOutput::Transmit(b)] if b[..] == [0xc0, 0x00]),
        "{out:?}"
    );
    s.handle_received(ping_at, &PINGRESP);
    let next = s.poll_timeout().unwrap();
    assert_eq!(next, ping_at + Duration::from_secs(15));
    s.handle_timeout(next);
    drain(&mut s);
    // No PINGRESP this time: after a keep-alive the connection is given up.
    s.handle_timeout(next + Duration::from_secs(20));
    assert_eq!(drain(&mut s), [SessionOutput::Close]);
    assert_eq!(s.status(next).state, MqttState::Retrying);
}

#[test]
fn refused_and_slow_connections_back_off_with_growing_delays() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_timeout(t0);
    drain(&mut s);
    s.handle_opened(t0);
    drain(&mut s);
    s.handle_received(t0, &CONNACK_BAD_AUTH);
    assert_eq!(drain(&mut s), [SessionOutput::Close]);
    assert!(s.status(t0).last_error.unwrap().contains("BadUsernamePassword"));
    let mut now = s.poll_timeout().unwrap();
    let mut waits = Vec::new();
    for _ in 0..5 {
        s.handle_timeout(now);
        assert_eq!(drain(&mut s), [SessionOutput::Open]);
        // The TCP connect never completes.
        let deadline = s.poll_timeout().unwrap();
        assert_eq!(deadline, now + Duration::from_secs(5));
        s.handle_timeout(deadline);
        assert!(drain(&mut s).is_empty());
        let next = s.poll_timeout().unwrap();
        waits.push(next - deadline);
        now = next;
    }
    assert!(waits[3] > Duration::from_secs(2), "{waits:?}");
    assert!(waits.iter().all(|w| *w <= Duration::from_secs(8)), "{waits:?}");
}

#[test]
fn garbage_from_the_broker_is_a_failure_not_a_panic() {
    for junk in [
        &[0x20u8, 0xff, 0xff, 0xff, 0xff][..],
        &[0xf0, 0x00],
        &[0x30, 0x01, 0x00],
    ] {
        let t0 = Instant::now();
        let mut s = session(t0);
        connect(&mut s, t0);
        s.handle_received(t0, junk);
        assert_eq!(drain(&mut s), [SessionOutput::Close], "{junk:?}");
        assert_eq!(s.status(t0).state, MqttState::Retrying);
    }
}

#[test]
fn packets_split_across_reads_are_put_together() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.publish(t0, message("a/availability", "online", Retention::Latest));
    s.handle_timeout(t0);
    s.handle_opened(t0);
    drain(&mut s);
    s.handle_received(t0, &CONNACK_OK[..1]);
    s.handle_received(t0, &CONNACK_OK[1..3]);
    assert_eq!(s.status(t0).state, MqttState::Connecting);
    s.handle_received(t0, &[CONNACK_OK[3], 0x40, 0x02, 0x00]);
    assert_eq!(s.status(t0).state, MqttState::Connected);
    s.handle_received(t0, &[0x01]);
    assert_eq!(s.status(t0).messages_acked, 1);
}

#[test]
fn shutting_down_says_offline_then_disconnects() {
    let t0 = Instant::now();
    let mut s = session(t0);
    connect(&mut s, t0);
    let offline = Message {
        retention: Retention::Once,
        ..message("mado/test/availability", "offline", Retention::Once)
    };
    s.shut_down(t0, offline);
    let out = drain(&mut s);
    assert_eq!(published(&out), [("mado/test/availability".into(), "offline".into())]);
    let SessionOutput::Transmit(bytes) = &out[1] else {
        panic!("{out:?}");
    };
    assert_eq!(decode_slice(bytes).unwrap(), Some(Packet::Disconnect));
    assert_eq!(out[2], SessionOutput::Close);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.status(t0).state, MqttState::Stopped);
}

#[test]
fn qos_one_messages_get_fresh_packet_ids() {
    let t0 = Instant::now();
    let mut s = session(t0);
    connect(&mut s, t0);
    let mut pids = Vec::new();
    for _ in 0..3 {
        s.publish(t0, message("a/event", "e", Retention::Queue));
        let out = drain(&mut s);
        let SessionOutput::Transmit(bytes) = &out[0] else {
            panic!()
        };
        let Some(Packet::Publish(p)) = decode_slice(bytes).unwrap() else {
            panic!()
        };
        let QosPid::AtLeastOnce(pid) = p.qospid else { panic!() };
        assert!(p.retain);
        pids.push(pid.get());
    }
    pids.dedup();
    assert_eq!(pids.len(), 3);
}
