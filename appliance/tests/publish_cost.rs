//! Benchmark (ignored by default): what a WHIP publish session costs `mado
//! run` in CPU, against what one more LAN viewer costs. Each run starts a
//! fresh `mado run` (test pattern, 640x480), connects two str0m viewers over
//! loopback, then either nothing more, a WHIP endpoint (a str0m peer), or a
//! third viewer, and reads mado's CPU time from /proc over 10 s. Runs of the
//! three setups alternate; medians are printed.
//!
//! `cargo test -p mado --test publish_cost -- --ignored --nocapture`

#![allow(clippy::disallowed_methods)] // reason: these tests drive real processes in real time, like the shell

mod common;
#[path = "publish/support.rs"]
mod support;
#[path = "publish/tiny_http.rs"]
mod tiny_http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::live::Viewer;
use str0m::format::Codec;
use support::{endpoint_state, start_mado, status, stop, WhipPeer};
use tiny_http::TinyHttp;

const WARM_UP: Duration = Duration::from_secs(4);
const MEASURE: Duration = Duration::from_secs(10);
const ROUNDS: usize = 3;

/// CPU time (user + system) of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; clock ticks are 1/100 s on Linux.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Starts a viewer on its own thread for `duration`; returns the frames it got.
fn view(base: &str, duration: Duration) -> std::thread::JoinHandle<usize> {
    let (mut viewer, offer) = Viewer::new(&[Codec::Av1]);
    let mut response = common::auth::shared()
        .agent()
        .post(format!("{base}/whep"))
        .header("content-type", "application/sdp")
        .send(offer.as_bytes())
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let answer = response.body_mut().read_to_string().unwrap();
    viewer.accept(&answer);
    std::thread::spawn(move || {
        viewer.run_for(duration);
        viewer.frames.len()
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Setup {
    TwoViewers,
    TwoViewersAndPublish,
    ThreeViewers,
}

/// Mado's CPU use, in percent of one core, with `setup`.
fn run(setup: Setup) -> f64 {
    let peer = Arc::new(WhipPeer::default());
    let server = peer.clone();
    let http = TinyHttp::start(move |request| match request.method.as_str() {
        "POST" => (
            201,
            vec![("Location".into(), "/whip/session/1".into())],
            server.answer(&request.body),
        ),
        _ => (200, vec![], String::new()),
    });
    let dir = tempfile::tempdir().unwrap();
    let mut config = "[source]\nsize = \"640x480\"\n".to_owned();
    if setup == Setup::TwoViewersAndPublish {
        config += &format!(
            "[[publish.endpoints]]\nname = \"bench\"\nurl = \"{}\"\n",
            http.url("/whip")
        );
    }
    let (child, base) = start_mado(&config, dir.path());
    let total = WARM_UP + MEASURE + Duration::from_secs(1);
    let viewers = match setup {
        Setup::ThreeViewers => 3,
        _ => 2,
    };
    let threads: Vec<_> = (0..viewers).map(|_| view(&base, total)).collect();
    std::thread::sleep(WARM_UP);
    let (t0, c0) = (Instant::now(), cpu_time(child.id()));
    std::thread::sleep(MEASURE);
    let (t1, c1) = (Instant::now(), cpu_time(child.id()));
    let (_, json) = status(&base);
    if setup == Setup::TwoViewersAndPublish {
        assert_eq!(endpoint_state(&json, "bench"), "live");
        assert!(peer.frames.lock().unwrap().len() > 200, "the endpoint got the stream");
    }
    for thread in threads {
        assert!(thread.join().unwrap() > 200, "every viewer got the stream");
    }
    stop(child);
    (c1 - c0).as_secs_f64() / (t1 - t0).as_secs_f64() * 100.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
#[ignore = "a benchmark: run with --ignored --nocapture"]
fn a_publish_session_costs_about_what_a_viewer_costs() {
    let setups = [Setup::TwoViewers, Setup::TwoViewersAndPublish, Setup::ThreeViewers];
    let mut samples = vec![Vec::new(); setups.len()];
    for round in 0..ROUNDS {
        for (i, setup) in setups.iter().enumerate() {
            let cpu = run(*setup);
            println!("round {round} {setup:?}: {cpu:.1}% of a core");
            samples[i].push(cpu);
        }
    }
    let medians: Vec<f64> = samples.into_iter().map(median).collect();
    println!(
        "median CPU of mado: 2 viewers {:.1}%, 2 viewers + 1 publish {:.1}%, 3 viewers {:.1}%",
        medians[0], medians[1], medians[2]
    );
    println!(
        "extra for the publish session: {:.1} points; for a third viewer: {:.1} points",
        medians[1] - medians[0],
        medians[2] - medians[0]
    );
}
