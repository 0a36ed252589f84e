//! `mado run` in a network namespace of its own whose interface has a
//! link-local address (as a board without DHCP gets), then gains and loses
//! an address while running, as DHCP does. Needs root (`ip netns`).

#![allow(
    clippy::disallowed_methods,
    reason = "integration tests drive the real binary and wait on real time"
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::live::Viewer;
use str0m::format::Codec;

/// A namespace with a veth pair inside it (`neta`, `netb`), deleted on drop.
struct Namespace(String);

impl Namespace {
    fn new() -> Self {
        let name = format!("netaddr{}", std::process::id());
        let ns = Self(name);
        ns.ip(&["netns", "add", &ns.0]);
        ns.inside(&["ip", "link", "set", "lo", "up"]);
        ns.inside(&["ip", "link", "add", "neta", "type", "veth", "peer", "name", "netb"]);
        ns.inside(&["ip", "link", "set", "neta", "up"]);
        ns.inside(&["ip", "link", "set", "netb", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("running ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {} (this test needs root and iproute2)",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn inside(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .expect("running ip netns exec");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn spawn(&self, program: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.0, program])
            .args(args)
            .env("MADO_LOG", "warn")
            .env("MADO_STATE_DIR", common::auth::shared().dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mado in the namespace")
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// POSTs a fresh offer from inside the namespace; returns the status and body.
fn offer(ns: &Namespace, dir: &std::path::Path) -> (u16, String) {
    let (_, sdp) = Viewer::new(&[Codec::Av1]);
    let file = dir.join("offer.sdp");
    std::fs::write(&file, sdp).unwrap();
    let data = format!("@{}", file.display());
    let authorization = format!("authorization: {}", common::auth::shared().bearer());
    let out = ns.inside(&[
        "curl",
        "-s",
        "-m",
        "5",
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/sdp",
        "-H",
        &authorization,
        "--data-binary",
        &data,
        "http://127.0.0.1:8080/whep",
    ]);
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn candidates(answer: &str) -> Vec<String> {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .filter_map(|c| c.split_whitespace().nth(4).map(str::to_owned))
        .collect()
}

#[test]
fn a_link_local_address_is_skipped_and_new_addresses_are_offered() {
    common::require_tool("curl", "curl");
    let dir = tempfile::tempdir().unwrap();
    let ns = Namespace::new();
    ns.inside(&["ip", "addr", "add", "169.254.7.7/16", "dev", "neta"]);
    let mado = common::live::mado_path();
    let _mado = Killed(ns.spawn(
        mado.to_str().unwrap(),
        &[
            "run",
            "--source",
            "testpattern",
            "--size",
            "160x120",
            "--listen",
            "127.0.0.1:8080",
            "--udp-port",
            "0",
            "--max-viewers",
            "64",
        ],
    ));
    // The first offer, once the server answers at all.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, answer) = loop {
        let (status, answer) = offer(&ns, dir.path());
        if status != 0 || Instant::now() > deadline {
            break (status, answer);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 201, "with a link-local address up: {answer}");
    let offered = candidates(&answer);
    assert!(offered.iter().any(|c| c == "127.0.0.1"), "{offered:?}");
    assert!(!offered.iter().any(|c| c.starts_with("169.254.")), "{offered:?}");

    // An address arrives while running: the next viewers are offered it.
    ns.inside(&["ip", "addr", "add", "10.250.0.1/24", "dev", "neta"]);
    let added = Instant::now();
    let found = loop {
        let (status, answer) = offer(&ns, dir.path());
        assert_eq!(status, 201, "{answer}");
        if candidates(&answer).iter().any(|c| c == "10.250.0.1") {
            break added.elapsed();
        }
        assert!(added.elapsed() < Duration::from_secs(10), "10.250.0.1 never offered");
        std::thread::sleep(Duration::from_millis(1000));
    };
    eprintln!("a new address was offered {found:?} after it appeared");
    // And when it goes, it is no longer offered.
    ns.inside(&["ip", "addr", "del", "10.250.0.1/24", "dev", "neta"]);
    let removed = Instant::now();
    loop {
        let (status, answer) = offer(&ns, dir.path());
        assert_eq!(status, 201, "{answer}");
        if !candidates(&answer).iter().any(|c| c == "10.250.0.1") {
            break;
        }
        assert!(removed.elapsed() < Duration::from_secs(10), "10.250.0.1 still offered");
        std::thread::sleep(Duration::from_millis(1000));
    }
}
