//! `mado run` publishing over WHIP to real HTTP servers on loopback: the
//! state each failure shows in `/api/status` and the retry timing, then a
//! str0m WHIP server over real UDP that gets every frame with its metadata,
//! and the session deleted when `mado` gets SIGTERM.

#![allow(clippy::disallowed_methods)] // reason: these tests drive real processes in real time, like the shell

mod common;
#[path = "publish/support.rs"]
mod support;
#[path = "publish/tiny_http.rs"]
mod tiny_http;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mado::meta::FrameMeta;
use support::{endpoint_state, start_mado, status, stop, WhipPeer};
use tiny_http::TinyHttp;

#[test]
fn each_failure_shows_its_state_and_is_retried_as_the_server_asks() {
    let brief_posts = Arc::new(Mutex::new(0));
    let counter = brief_posts.clone();
    let http = TinyHttp::start(move |request| match request.path.as_str() {
        "/whip/denied" => (401, vec![], "bad token".into()),
        "/whip/busy" => (503, vec![("Retry-After".into(), "30".into())], "busy".into()),
        "/whip/brief" => {
            let mut posts = counter.lock().unwrap();
            *posts += 1;
            match *posts {
                1 => (503, vec![("Retry-After".into(), "2".into())], "busy".into()),
                _ => (403, vec![], "no".into()),
            }
        }
        _ => (404, vec![], "no such endpoint".into()),
    });
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[publish]\ninitial_backoff_ms = 300\nmax_backoff_ms = 1200\n\
         [[publish.endpoints]]\nname = \"bad-url\"\nurl = \"sfu.example/whip\"\n\
         [[publish.endpoints]]\nname = \"denied\"\nurl = \"{}\"\ntoken = \"wrong-token-123\"\n\
         [[publish.endpoints]]\nname = \"busy\"\nurl = \"{}\"\n\
         [[publish.endpoints]]\nname = \"brief\"\nurl = \"{}\"\n\
         [[publish.endpoints]]\nname = \"nobody\"\nurl = \"http://{closed}/whip\"\n\
         [[publish.endpoints]]\nname = \"gone\"\nurl = \"{}\"\n\
         [[publish.endpoints]]\nname = \"off\"\nenabled = false\nurl = \"{}\"\n",
        http.url("/whip/denied"),
        http.url("/whip/busy"),
        http.url("/whip/brief"),
        http.url("/whip/gone"),
        http.url("/whip/off"),
    );
    let (child, base) = start_mado(&config, dir.path());
    std::thread::sleep(Duration::from_secs(4));
    let (body, json) = status(&base);
    stop(child);
    support::check_log(dir.path());

    assert_eq!(
        json["publish"].as_array().map(Vec::len),
        Some(6),
        "disabled endpoints are left out: {json}"
    );
    assert!(
        endpoint_state(&json, "bad-url").starts_with("rejected: bad URL"),
        "{json}"
    );
    assert_eq!(
        endpoint_state(&json, "denied"),
        "rejected: HTTP 401: the server refused the token"
    );
    let busy = endpoint_state(&json, "busy");
    let secs: f64 = busy
        .strip_prefix("retrying in ")
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{busy}"));
    assert!(
        (20.0..=30.0).contains(&secs) && busy.ends_with("HTTP 503: server error"),
        "{busy}"
    );
    let nobody = endpoint_state(&json, "nobody");
    assert!(
        nobody.starts_with("retrying in") && nobody.contains("unreachable"),
        "{nobody}"
    );
    let gone = endpoint_state(&json, "gone");
    assert!(
        gone.starts_with("retrying in") && gone.ends_with("HTTP 404: no such endpoint"),
        "{gone}"
    );
    assert_eq!(
        endpoint_state(&json, "brief"),
        "rejected: HTTP 403: the server refused the token"
    );
    assert!(
        !body.contains("wrong-token-123") && !body.contains("/whip/"),
        "no token or URL in the status: {body}"
    );

    // What the servers saw: the offer with the token; no retry of a refusal;
    // Retry-After waited out; backoff for the rest.
    let denied = http.requests_to("POST", "/whip/denied");
    assert_eq!(denied.len(), 1, "a refused token is not retried");
    assert_eq!(denied[0].header("authorization"), Some("Bearer wrong-token-123"));
    assert_eq!(denied[0].header("content-type"), Some("application/sdp"));
    assert!(denied[0].body.starts_with("v=0") && denied[0].body.contains("AV1/90000"));
    assert_eq!(
        http.requests_to("POST", "/whip/busy").len(),
        1,
        "Retry-After: 30 is honoured"
    );
    let brief = http.requests_to("POST", "/whip/brief");
    assert_eq!(brief.len(), 2);
    let waited = brief[1].at - brief[0].at;
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(3500),
        "waited {waited:?}"
    );
    let gone = http.requests_to("POST", "/whip/gone");
    assert!(
        (3..=9).contains(&gone.len()),
        "{} attempts in 4 s with 0.3 s to 1.2 s backoff",
        gone.len()
    );
    assert!(http.requests_to("POST", "/whip/off").is_empty());
}

#[test]
fn publishes_every_frame_with_metadata_and_deletes_the_session_on_sigterm() {
    let peer = Arc::new(WhipPeer::default());
    let server = peer.clone();
    let http = TinyHttp::start(move |request| match (request.method.as_str(), request.path.as_str()) {
        // The endpoint moved: the offer and token must follow the redirect.
        ("POST", "/whip/cam") => (307, vec![("Location".into(), "/whip/v2/cam".into())], String::new()),
        ("POST", "/whip/v2/cam") if request.header("authorization") == Some("Bearer good-token-456") => (
            201,
            vec![
                ("Location".into(), "resource/1".into()),
                ("Content-Type".into(), "application/sdp".into()),
            ],
            server.answer(&request.body),
        ),
        ("DELETE", "/whip/v2/resource/1") => (200, vec![], String::new()),
        _ => (401, vec![], String::new()),
    });
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "good-token-456\n").unwrap();
    let config = format!(
        "[[publish.endpoints]]\nname = \"cloud\"\nurl = \"{}\"\ntoken_file = \"{}\"\n",
        http.url("/whip/cam"),
        token_file.display()
    );
    let (mut child, base) = start_mado(&config, dir.path());
    let start = Instant::now();
    let mut live_status = None;
    while start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        let (_, json) = status(&base);
        if peer.frames.lock().unwrap().len() >= 60 {
            live_status = Some(json);
            break;
        }
    }
    let json = live_status.unwrap_or_else(|| {
        let (_, json) = status(&base);
        panic!("fewer than 60 frames in 10 s; status {json}")
    });
    assert_eq!(endpoint_state(&json, "cloud"), "live");
    let frames = peer.frames.lock().unwrap().clone();
    let seqs: Vec<u64> = frames
        .iter()
        .map(|f| {
            FrameMeta::find_in_temporal_unit(f)
                .unwrap()
                .expect("metadata in every frame")
                .seq
        })
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "frames in order, none missing: {seqs:?}"
    );

    // SIGTERM: mado deletes the session and exits cleanly.
    let exit = support::terminate(&mut child);
    assert!(exit.success(), "{exit}");
    let deletes = http.requests_to("DELETE", "/whip/v2/resource/1");
    assert_eq!(deletes.len(), 1, "{:?}", http.requests());
    assert_eq!(deletes[0].header("authorization"), Some("Bearer good-token-456"));
    support::check_log(dir.path());
}
