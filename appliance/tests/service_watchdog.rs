//! `mado run` under a service manager's eyes: the test plays systemd, with a
//! unix datagram socket as `NOTIFY_SOCKET` and a watchdog period in
//! `WATCHDOG_USEC`. While frames are encoded the service says `READY=1`,
//! keeps pinging and reports its status; once only the encoder is wedged (the
//! fault-injection variable) the pings stop, although HTTP still answers.

#![allow(
    clippy::disallowed_methods,
    reason = "the test plays the service manager in real time"
)]

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;

/// The watchdog period the test asks for: pings every second.
const WATCHDOG_USEC: &str = "3000000";

struct Run {
    child: Child,
    base: String,
    notify: UnixDatagram,
    _dir: tempfile::TempDir,
    auth: common::auth::TestAuth,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(wedge_after_frames: Option<u64>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&path).unwrap();
    notify.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut cmd = common::mado();
    let auth = common::auth::TestAuth::new();
    auth.apply(&mut cmd);
    cmd.args([
        "run",
        "--source",
        "testpattern",
        "--size",
        "160x120",
        "--fps",
        "15",
        "--listen",
        "127.0.0.1:0",
        "--udp-port",
        "0",
    ])
    .env("NOTIFY_SOCKET", &path)
    .env("WATCHDOG_USEC", WATCHDOG_USEC)
    .env_remove("WATCHDOG_PID")
    .env_remove(mado::fault::WEDGE_ENCODER_AFTER_FRAMES)
    .stderr(Stdio::piped());
    if let Some(frames) = wedge_after_frames {
        cmd.env(mado::fault::WEDGE_ENCODER_AFTER_FRAMES, frames.to_string());
    }
    let mut child = cmd.spawn().expect("starting mado run");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("mado run exited early").unwrap();
        if let Some(rest) = line.strip_prefix("mado: listening on ") {
            break rest.trim_end_matches('/').to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Run {
        child,
        base,
        notify,
        _dir: dir,
        auth,
    }
}

/// Every notify message received within `window`, with when it came.
fn collect(run: &Run, window: Duration) -> Vec<(Duration, String)> {
    let start = Instant::now();
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < window {
        if let Ok(n) = run.notify.recv(&mut buf) {
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                messages.push((start.elapsed(), line.to_owned()));
            }
        }
    }
    messages
}

fn pings(messages: &[(Duration, String)]) -> Vec<Duration> {
    messages
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect()
}

fn status(run: &Run) -> serde_json::Value {
    let mut resp = run.auth.agent().get(format!("{}/api/status", run.base)).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
}

#[test]
fn a_healthy_pipeline_says_ready_pings_the_watchdog_and_reports_its_status() {
    let run = start(None);
    let messages = collect(&run, Duration::from_secs(8));
    let ready = messages.iter().position(|(_, m)| m == "READY=1").expect("READY=1 sent");
    assert_eq!(messages.iter().filter(|(_, m)| m == "READY=1").count(), 1);
    let pings = pings(&messages);
    assert!(pings.len() >= 5, "pings: {pings:?}");
    // Every gap is well inside the 3 s watchdog period.
    assert!(
        pings.windows(2).all(|w| w[1] - w[0] < Duration::from_millis(2500)),
        "{pings:?}"
    );
    // Pings go on after READY, while frames are encoded (the few before it
    // are the start-up grace period's).
    let after_ready = messages[ready..].iter().filter(|(_, m)| m == "WATCHDOG=1").count();
    assert!(after_ready >= 4, "{messages:?}");
    let statuses: Vec<&str> = messages.iter().filter_map(|(_, m)| m.strip_prefix("STATUS=")).collect();
    assert!(
        statuses
            .iter()
            .any(|s| s.starts_with("streaming test pattern 160x120 at ")),
        "statuses: {statuses:?}"
    );
    assert!(status(&run)["frames_encoded"].as_u64().unwrap() > 0);
}

#[test]
fn a_wedged_encoder_stops_the_pings_while_http_still_answers() {
    // 15 fps: the encoder hangs after about 3 s.
    let run = start(Some(45));
    let messages = collect(&run, Duration::from_secs(14));
    let pings = pings(&messages);
    assert!(!pings.is_empty(), "pings before the wedge: {messages:?}");
    let last = *pings.last().unwrap();
    // No ping during the last 5 s (the stall limit is 5 s; a 3 s watchdog would fire).
    assert!(
        last < Duration::from_secs(9),
        "pings went on after the encoder hung: {pings:?}"
    );
    let statuses: Vec<&str> = messages.iter().filter_map(|(_, m)| m.strip_prefix("STATUS=")).collect();
    assert!(
        statuses.iter().any(|s| s.starts_with("STALLED")),
        "statuses: {statuses:?}"
    );
    // The rest of the process is alive: HTTP answers and the encoder is stuck.
    let before = status(&run)["frames_encoded"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let after = status(&run);
    assert_eq!(after["frames_encoded"].as_u64().unwrap(), before);
    assert!((45..60).contains(&before), "frames encoded: {before}");
}
