//! `mado run` against a real Mosquitto broker (Debian's `mosquitto`) on a
//! free loopback port, read with the real `mosquitto_sub`: the Home
//! Assistant discovery configs, availability, occupancy and status arrive
//! with the payloads README documents; the broker killed and restarted on
//! the same port gets everything again while video never stopped; SIGTERM
//! publishes `offline`; SIGKILL leaves it to the broker's last will.

#![allow(clippy::disallowed_methods)] // reason: these tests drive real processes in real time, like the shell

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::live::Server;
use serde_json::Value;

/// Generous: the machine may be loaded by other builds and tests.
const WAIT: Duration = Duration::from_secs(60);

/// A Mosquitto broker on 127.0.0.1:`port` with its own config; killed on drop.
struct Broker {
    child: Child,
}

impl Broker {
    fn start(dir: &Path, port: u16) -> Self {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest stderr\nlog_type all\n"
            ),
        )
        .unwrap();
        // Its log, kept across restarts, tells a clean DISCONNECT from a dropped connection.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("mosquitto.log"))
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let mut child = Command::new("mosquitto")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(log.try_clone().unwrap())
                .spawn()
                .expect("starting mosquitto");
            // Up when it accepts a connection; it exits at once if the port is still taken.
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child };
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "mosquitto did not start on port {port}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the broker's log (in `dir`) has a line with `text`.
fn broker_logged(dir: &Path, text: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default();
        if log.contains(text) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message as `mosquitto_sub` printed it.
#[derive(Debug, Clone)]
struct Msg {
    retained: bool,
    topic: String,
    payload: Vec<u8>,
}

impl Msg {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| panic!("{}: {e}: {}", self.topic, self.text()))
    }
}

/// `mosquitto_sub` on every topic, each message one line: retain flag, topic, payload in hex.
struct Subscriber {
    child: Child,
    rx: mpsc::Receiver<Msg>,
    seen: Vec<Msg>,
}

impl Subscriber {
    fn start(port: u16) -> Self {
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "#", "-F", "%r %t %x"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto_sub");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts = line.splitn(3, ' ');
                let (Some(r), Some(topic), hex) = (parts.next(), parts.next(), parts.next().unwrap_or("")) else {
                    continue;
                };
                let payload = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
                    .collect();
                let msg = Msg {
                    retained: r == "1",
                    topic: topic.to_owned(),
                    payload,
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    /// The first message (seen before or arriving within [`WAIT`]) on `topic` that `accept` takes.
    fn wait_for(&mut self, topic: &str, accept: impl Fn(&Msg) -> bool) -> Msg {
        if let Some(m) = self.seen.iter().find(|m| m.topic == topic && accept(m)) {
            return m.clone();
        }
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(m) = self.rx.recv_timeout(left) else {
                break;
            };
            self.seen.push(m.clone());
            if m.topic == topic && accept(&m) {
                return m;
            }
        }
        let topics: Vec<String> = self.seen.iter().map(|m| format!("{} {}", m.topic, m.text())).collect();
        panic!("no message on {topic} within {WAIT:?}; seen: {topics:#?}");
    }

    /// Forgets what was seen so far.
    fn clear(&mut self) {
        while self.rx.try_recv().is_ok() {}
        self.seen.clear();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_mado(dir: &Path, port: u16) -> Server {
    let config = dir.join("mado.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"mado-test\"\n\
             topic_prefix = \"mado/test\"\nkeep_alive_s = 5\ninitial_backoff_ms = 200\nmax_backoff_ms = 1000\n\
             [detect]\nclasses = [\"target\"]\n\
             [events]\nenabled = true\nclasses = [\"target\"]\nmax_event_ms = 2000\npre_roll_ms = 0\npost_roll_ms = 0\n\
             clip_dir = \"{}\"\n",
            dir.join("clips").display()
        ),
    )
    .unwrap();
    Server::start(&["--config", config.to_str().unwrap()])
}

/// Polls `/api/status` until `check` holds, returning that status.
fn status_until(server: &Server, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = server.status();
        if check(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: last status {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Discovery, availability, occupancy and status with the documented payloads.
fn check_announced(sub: &mut Subscriber) {
    let online = sub.wait_for("mado/test/availability", |m| m.payload == b"online");
    assert_eq!(online.text(), "online");
    let motion = sub.wait_for("homeassistant/binary_sensor/mado-test/motion/config", |_| true);
    let config = motion.json();
    assert_eq!(config["state_topic"], "mado/test/motion");
    assert_eq!(config["device_class"], "motion");
    assert_eq!(config["availability_topic"], "mado/test/availability");
    assert_eq!(config["unique_id"], "mado-test_motion");
    assert_eq!(config["device"]["identifiers"][0], "mado-test");
    let count = sub.wait_for("homeassistant/sensor/mado-test/occupancy_target/config", |_| true);
    assert_eq!(count.json()["state_topic"], "mado/test/occupancy/target");
    let image = sub.wait_for("homeassistant/image/mado-test/snapshot/config", |_| true);
    assert_eq!(image.json()["image_topic"], "mado/test/snapshot");
    let event = sub.wait_for("homeassistant/sensor/mado-test/last_event/config", |_| true);
    assert_eq!(event.json()["state_topic"], "mado/test/event");
    let camera = sub.wait_for("homeassistant/sensor/mado-test/status/config", |_| true);
    assert_eq!(camera.json()["state_topic"], "mado/test/status");
    // The test pattern shows one target in every frame.
    let target = sub.wait_for("mado/test/occupancy/target", |_| true);
    assert_eq!(target.text(), "1");
    let status = sub.wait_for("mado/test/status", |m| m.json()["state"] == "streaming");
    let status = status.json();
    assert_eq!(status["camera"], "none");
    assert!(status["frames_encoded"].as_u64().unwrap() > 0, "{status}");
}

/// An event's start, its snapshot and its end (the test pattern's target is
/// always there: events last `max_event_ms`, then the next one starts).
fn check_event(sub: &mut Subscriber) {
    let start = sub.wait_for("mado/test/event", |m| m.json()["event"] == "start").json();
    assert_eq!(start["class"], "target");
    assert_eq!(start["end_ms"], Value::Null);
    assert_eq!(start["snapshot_topic"], "mado/test/snapshot");
    assert!(start["start_ms"].as_u64().unwrap() > 1_600_000_000_000, "{start}");
    assert!(start["score"].as_f64().unwrap() > 0.5, "{start}");
    let id = start["id"].as_str().unwrap().to_owned();
    assert!(!id.is_empty());
    let snapshot = sub.wait_for("mado/test/snapshot", |_| true);
    assert_eq!(snapshot.payload[..3], [0xff, 0xd8, 0xff], "a JPEG");
    let end = sub
        .wait_for("mado/test/event", |m| {
            m.json()["event"] == "end" && m.json()["id"] == id.as_str()
        })
        .json();
    assert!(
        end["end_ms"].as_u64().unwrap() >= end["start_ms"].as_u64().unwrap(),
        "{end}"
    );
    assert_eq!(end["class"], "target");
}

#[test]
fn home_assistant_hears_the_camera_through_a_broker_restart_and_a_clean_stop() {
    common::require_tool("mosquitto", "mosquitto");
    common::require_tool("mosquitto_sub", "mosquitto-clients");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = Broker::start(dir.path(), port);
    let mut sub = Subscriber::start(port);
    let mut server = start_mado(dir.path(), port);
    check_announced(&mut sub);
    check_event(&mut sub);
    let status = status_until(&server, "connected", |s| s["mqtt"]["state"] == "connected");
    assert_eq!(status["mqtt"]["broker"], format!("127.0.0.1:{port}"));
    assert!(status["mqtt"]["messages_sent"].as_u64().unwrap() >= 8, "{status}");
    // A subscriber that comes later gets the configs and states the broker retained.
    let mut late = Subscriber::start(port);
    let config = late.wait_for("homeassistant/sensor/mado-test/occupancy_target/config", |_| true);
    assert!(config.retained, "discovery configs are retained");
    assert!(late.wait_for("mado/test/availability", |_| true).retained);
    assert!(late.wait_for("mado/test/occupancy/target", |_| true).retained);
    drop(late);

    // The broker dies: mado retries and keeps streaming meanwhile.
    drop(sub);
    broker.kill();
    let down = status_until(&server, "retrying", |s| s["mqtt"]["state"] == "retrying");
    assert!(down["mqtt"]["last_error"].is_string(), "{down}");
    let frames_before = down["frames_encoded"].as_u64().unwrap();
    let still_down = status_until(&server, "frames while the broker is down", |s| {
        s["frames_encoded"].as_u64().unwrap() >= frames_before + 30
    });
    assert_ne!(still_down["mqtt"]["state"], "connected", "{still_down}");

    // Back on the same port, with no retained messages of its own (no
    // persistence): everything that arrives now was published again.
    let broker = Broker::start(dir.path(), port);
    let mut sub = Subscriber::start(port);
    check_announced(&mut sub);
    check_event(&mut sub);
    let up = status_until(&server, "connected again", |s| s["mqtt"]["state"] == "connected");
    assert!(up["frames_encoded"].as_u64().unwrap() > still_down["frames_encoded"].as_u64().unwrap());

    // SIGTERM: a clean goodbye, `offline` from mado itself, kept by the broker.
    sub.clear();
    let exit = server.signal_and_wait(libc::SIGTERM);
    assert!(exit.success(), "{exit}");
    sub.wait_for("mado/test/availability", |m| m.payload == b"offline");
    // From mado, not from its will: it sent DISCONNECT.
    assert!(
        broker_logged(dir.path(), "Client mado-test disconnected."),
        "no clean DISCONNECT in the broker's log:\n{}",
        std::fs::read_to_string(dir.path().join("mosquitto.log")).unwrap_or_default()
    );
    let mut late = Subscriber::start(port);
    let kept = late.wait_for("mado/test/availability", |_| true);
    assert!(kept.retained && kept.payload == b"offline", "{kept:?}");
    drop(broker);
}

#[test]
fn a_killed_mado_is_reported_offline_by_the_last_will() {
    common::require_tool("mosquitto", "mosquitto");
    common::require_tool("mosquitto_sub", "mosquitto-clients");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port);
    let mut sub = Subscriber::start(port);
    let mut server = start_mado(dir.path(), port);
    sub.wait_for("mado/test/availability", |m| m.payload == b"online");
    status_until(&server, "connected", |s| s["mqtt"]["state"] == "connected");
    sub.clear();
    server.signal_and_wait(libc::SIGKILL);
    // mado said nothing: the broker publishes the will.
    let will = sub.wait_for("mado/test/availability", |m| m.payload == b"offline");
    assert_eq!(will.text(), "offline");
    assert!(broker_logged(dir.path(), "Client mado-test closed its connection."));
    let mut late = Subscriber::start(port);
    let kept = late.wait_for("mado/test/availability", |_| true);
    assert!(
        kept.retained && kept.payload == b"offline",
        "the will is retained: {kept:?}"
    );
}
