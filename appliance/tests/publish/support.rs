//! Running `mado run` with a [publish] config and reading its status, for
//! the publish tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// Tokens the tests use; none may ever appear in mado's log.
pub const TOKENS: [&str; 3] = ["wrong-token-123", "good-token-456", "tok-werift-789"];

/// `mado run` with `config`; returns the child and its HTTP base URL.
pub fn start_mado(config: &str, dir: &std::path::Path) -> (Child, String) {
    let path = dir.join("mado.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = crate::common::mado();
    crate::common::auth::shared().apply(&mut command);
    let mut child = command
        .env(
            "MADO_LOG",
            std::env::var("MADO_TEST_LOG").unwrap_or_else(|_| "debug".into()),
        )
        .args(["run", "--source", "testpattern", "--size", "320x240"])
        .args(["--listen", "127.0.0.1:0", "--udp-port", "0", "--config"])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mado run");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("mado run exited early").unwrap();
        if let Some(rest) = line.strip_prefix("mado: listening on ") {
            break rest.trim_end_matches('/').to_owned();
        }
    };
    // Keep draining stderr into a file the test reads at the end (check_log).
    let mut log = std::fs::File::create(dir.join("mado.log")).unwrap();
    std::thread::spawn(move || {
        use std::io::Write as _;
        for line in lines.map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
        }
    });
    (child, base)
}

pub fn status(base: &str) -> (String, serde_json::Value) {
    let body = crate::common::auth::shared()
        .agent()
        .get(format!("{base}/api/status"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let json = serde_json::from_str(&body).unwrap();
    (body, json)
}

pub fn endpoint_state(json: &serde_json::Value, name: &str) -> String {
    let endpoints = json["publish"].as_array().expect("a publish list");
    let endpoint = endpoints
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {json}"));
    endpoint["state"].as_str().unwrap().to_owned()
}

pub fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Fails when mado's log (debug level) holds any of the tests' tokens.
pub fn check_log(dir: &std::path::Path) {
    std::thread::sleep(Duration::from_millis(300)); // the draining thread catches up
    let log = std::fs::read_to_string(dir.join("mado.log")).unwrap_or_default();
    assert!(log.contains("DEBUG"), "no debug log kept");
    for token in TOKENS {
        let leak = log.lines().find(|line| line.contains(token));
        assert!(leak.is_none(), "a token was logged: {leak:?}");
    }
}

/// Sends SIGTERM and waits (at most 10 s) for the exit.
pub fn terminate(child: &mut Child) -> ExitStatus {
    // SAFETY: kill(2) with the pid of a child this test started and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        assert!(Instant::now() < deadline, "mado did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A WHIP server over real UDP: a str0m ICE-lite peer per POST, collecting frames.
#[derive(Default)]
pub struct WhipPeer {
    pub frames: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl WhipPeer {
    pub fn answer(&self, offer: &str) -> String {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let addr: SocketAddr = socket.local_addr().unwrap();
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_av1(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let answer = rtc
            .sdp_api()
            .accept_offer(SdpOffer::from_sdp_string(offer).unwrap())
            .unwrap();
        let frames = self.frames.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            let end = Instant::now() + Duration::from_secs(30);
            while Instant::now() < end && rtc.is_alive() {
                loop {
                    match rtc.poll_output() {
                        Ok(Output::Timeout(_)) | Err(_) => break,
                        Ok(Output::Transmit(t)) => {
                            let _ = socket.send_to(&t.contents, t.destination);
                        }
                        Ok(Output::Event(Event::MediaData(d))) => frames.lock().unwrap().push(d.data.to_vec()),
                        Ok(Output::Event(_)) => {}
                    }
                }
                let input = match socket.recv_from(&mut buf) {
                    Ok((n, source)) => Input::Receive(
                        Instant::now(),
                        Receive::new(Protocol::Udp, source, addr, &buf[..n]).unwrap(),
                    ),
                    Err(_) => Input::Timeout(Instant::now()),
                };
                let _ = rtc.handle_input(input);
            }
        });
        answer.to_sdp_string()
    }
}

/// What the werift WHIP endpoint (`tests/whip/werift-whip.mjs`) reports:
/// at least `frames` frames, each with its own metadata, read without error.
pub fn check_werift_frames(result: &serde_json::Value, frames: u64) {
    let got = result["frames"].as_u64().unwrap();
    assert!(got >= frames, "{result}");
    assert_eq!(
        result["withMeta"].as_u64(),
        Some(got),
        "every frame carries metadata: {result}"
    );
    assert_eq!(result["metaErrors"].as_array().map(Vec::len), Some(0), "{result}");
    assert_eq!(
        result["timestampMismatches"], 0,
        "each frame carries its own metadata: {result}"
    );
}
