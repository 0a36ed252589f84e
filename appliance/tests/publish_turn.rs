//! `mado run` publishing through a real TURN server (Debian's `coturn`) to
//! the werift WHIP endpoint (`tests/whip/werift-whip.mjs`), on a network
//! where the relay is the only way: three namespaces,
//!
//! ```text
//! camera 198.51.100.2 ── 198.51.100.1 turn 203.0.113.1 ── 203.0.113.2 sfu
//! ```
//!
//! with no forwarding in `turn`, so the camera and the SFU cannot reach each
//! other's addresses. coturn listens on 198.51.100.1 and relays from
//! 203.0.113.1; a small TCP proxy in `turn` carries the WHIP HTTP requests
//! (signalling only). werift rebuilds every frame and reads its metadata;
//! the offer carried a relayed candidate; the same network without the TURN
//! server never connects.
//!
//! A second case makes the middle namespace a NAT (nftables masquerade) with
//! coturn as a plain STUN server beside werift: the offer carries the NAT's
//! address as a server-reflexive candidate. Without `nft` it is skipped.

#![allow(clippy::disallowed_methods)] // reason: these tests drive real processes in real time, like the shell

mod common;
#[path = "publish/netns.rs"]
mod netns;
#[path = "publish/support.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netns::{ip, Proc};
use serde_json::Value;
use support::check_werift_frames;

const CAM: &str = "198.51.100.2";
const TURN_INNER: &str = "198.51.100.1";
const TURN_OUTER: &str = "203.0.113.1";
const SFU: &str = "203.0.113.2";
const TOKEN: &str = "tok-turn-246";
const TURN_USER: &str = "cam";
const TURN_PASSWORD: &str = "relay-pw-135";
const WRONG_PASSWORD: &str = "not-the-pw-579";
const FRAMES: u64 = 120;

/// The three namespaces and two veth pairs, removed when dropped.
struct Network {
    cam: String,
    turn: String,
    sfu: String,
    /// The middle namespace's link towards the SFU.
    outer: String,
}

impl Network {
    /// The network of one test, `tag` (one letter) telling it from the others'.
    fn create(tag: char) -> Self {
        let id = format!("{tag}{}", std::process::id() % 100_000);
        let net = Self {
            cam: format!("turn-cam-{id}"),
            turn: format!("turn-mid-{id}"),
            sfu: format!("turn-sfu-{id}"),
            outer: format!("tu{id}"),
        };
        for ns in [&net.cam, &net.turn, &net.sfu] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let links = [
            (
                &net.cam,
                CAM,
                &net.turn,
                TURN_INNER,
                format!("tc{id}"),
                format!("tt{id}"),
            ),
            (
                &net.sfu,
                SFU,
                &net.turn,
                TURN_OUTER,
                format!("ts{id}"),
                net.outer.clone(),
            ),
        ];
        for (a, a_addr, b, b_addr, a_link, b_link) in &links {
            ip(&["link", "add", a_link, "type", "veth", "peer", "name", b_link]);
            for (ns, addr, link) in [(a, a_addr, a_link), (b, b_addr, b_link)] {
                ip(&["link", "set", link, "netns", ns]);
                ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", link]);
                ip(&["-n", ns, "link", "set", link, "up"]);
            }
        }
        net
    }

    /// Makes the middle namespace a router that masquerades the camera
    /// behind its outer address.
    fn nat(&self) {
        let status = Self::exec(&self.turn, "sysctl")
            .args(["-q", "-w", "net.ipv4.ip_forward=1"])
            .status()
            .unwrap();
        assert!(status.success(), "enabling forwarding");
        let outer = &self.outer;
        let mut nft = Self::exec(&self.turn, "nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let rules = format!(
            "table ip nat {{\n  chain post {{\n    type nat hook postrouting priority 100;\n    oifname \"{outer}\" masquerade;\n  }}\n}}\n"
        );
        std::io::Write::write_all(nft.stdin.as_mut().unwrap(), rules.as_bytes()).unwrap();
        drop(nft.stdin.take());
        assert!(nft.wait().unwrap().success(), "nft masquerade rule");
        ip(&["-n", &self.cam, "route", "add", "default", "via", TURN_INNER]);
    }

    fn exec(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(program);
        command
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in [&self.cam, &self.turn, &self.sfu] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Lines of a child's stdout.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The rest of the first line starting with `prefix`.
fn next(lines: &mpsc::Receiver<String>, prefix: &str, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no `{prefix}` line in {wait:?}"));
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.trim().to_owned();
        }
    }
}

/// coturn in namespace `ns` with `args` besides the common ones.
fn start_coturn(ns: &str, dir: &Path, args: &[&str]) -> Proc {
    let log = dir.join("turnserver.log");
    let child = Network::exec(ns, "turnserver")
        .args([
            "-n",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--fingerprint",
            "--listening-port",
            "3478",
        ])
        .args(args)
        .arg("--userdb")
        .arg(dir.join("turndb"))
        .arg("--pidfile")
        .arg(dir.join("turnserver.pid"))
        .arg("--log-file")
        .arg(&log)
        .args(["--simple-log", "--verbose"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting turnserver (Debian package coturn)");
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Total General servers") || text.contains("IPv4. UDP listener opened on") {
            return proc;
        }
        assert!(Instant::now() < deadline, "coturn did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// mado in the camera's namespace; its status is read with curl from there.
struct Mado {
    proc: Proc,
    ns: String,
    log: PathBuf,
}

impl Mado {
    fn start(net: &Network, dir: &Path, name: &str, url: &str, ice_servers: &str) -> Self {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[source]\nkind = \"testpattern\"\nsize = \"320x240\"\n\
                 [live]\nlisten = \"{CAM}:8080\"\nannounce = [\"{CAM}\"]\n[tls]\nmode = \"off\"\n\
                 [publish]\nconnect_timeout_ms = 4000\ninitial_backoff_ms = 30000\n\
                 [[publish.endpoints]]\nname = \"werift\"\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\n\
                 {ice_servers}"
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Network::exec(&net.cam, env!("CARGO_BIN_EXE_mado"))
            .args(["run", "--config"])
            .arg(&config)
            .env("MADO_LOG", "debug")
            .env("MADO_STATE_DIR", common::auth::shared().dir())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting mado");
        Self {
            proc: Proc(child),
            ns: net.cam.clone(),
            log,
        }
    }

    /// The endpoint's `/api/status` entry (null until mado answers).
    fn endpoint(&self) -> Value {
        let out = Network::exec(&self.ns, "curl")
            .args(["-s", "-m", "2", "-H"])
            .arg(format!("Authorization: {}", common::auth::shared().bearer()))
            .arg(format!("http://{CAM}:8080/api/status"))
            .output()
            .expect("running curl (Debian package curl)");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        json["publish"][0].clone()
    }

    /// Polls the endpoint's status until `done`.
    fn wait(&self, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let endpoint = self.endpoint();
            if done(&endpoint) {
                return endpoint;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; last status {endpoint}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit.
    fn terminate(&mut self) {
        // SAFETY: kill(2) with the pid of a child this test started and has not reaped.
        unsafe { libc::kill(self.proc.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.proc.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "mado did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails when the log holds the TURN password or the WHIP token.
    fn check_log(&self) {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        for secret in [TURN_PASSWORD, TOKEN] {
            let leak = log.lines().find(|line| line.contains(secret));
            assert!(leak.is_none(), "a secret was logged: {leak:?}");
        }
    }
}

/// The werift WHIP endpoint in the SFU's namespace: the process, its lines, its port.
fn start_werift(net: &Network, whip: &Path) -> (Proc, mpsc::Receiver<String>, String) {
    assert!(
        whip.join("node_modules/werift").is_dir(),
        "werift is not installed: run `npm ci` in appliance/tests/whip (scripts/test-all does)"
    );
    let mut child = Network::exec(&net.sfu, "node")
        .arg("werift-whip.mjs")
        .arg(FRAMES.to_string())
        .arg(TOKEN)
        .arg(SFU)
        .current_dir(whip)
        .stdout(Stdio::piped())
        .spawn()
        .expect("running node");
    let lines = lines_of(&mut child);
    let proc = Proc(child);
    let port = next(&lines, "listening ", Duration::from_secs(10));
    (proc, lines, port)
}

fn state(endpoint: &Value) -> &str {
    endpoint["state"].as_str().unwrap_or("")
}

#[test]
fn werift_gets_every_frame_through_coturn_when_the_relay_is_the_only_path() {
    let whip = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/whip");
    let net = Network::create('r');
    let dir = tempfile::tempdir().unwrap();
    let user = format!("{TURN_USER}:{TURN_PASSWORD}");
    let relay = [
        "--lt-cred-mech",
        "--realm",
        "mado.test",
        "--user",
        &user,
        "--listening-ip",
        TURN_INNER,
        "--relay-ip",
        TURN_OUTER,
        "--min-port",
        "50000",
        "--max-port",
        "50100",
    ];
    let _coturn = start_coturn(&net.turn, dir.path(), &relay);
    let (_werift, werift_lines, port) = start_werift(&net, &whip);

    // WHIP's HTTP (signalling only) through the middle namespace.
    let proxy = format!(
        "const net = require('net'); net.createServer((c) => {{ const s = net.connect({port}, '{SFU}'); \
         c.pipe(s); s.pipe(c); c.on('error', () => s.destroy()); s.on('error', () => c.destroy()); }})\
         .listen(8088, '{TURN_INNER}', () => console.log('proxying'));"
    );
    let mut child = Network::exec(&net.turn, "node")
        .args(["-e", &proxy])
        .stdout(Stdio::piped())
        .spawn()
        .expect("running node");
    let proxy_lines = lines_of(&mut child);
    let _proxy = Proc(child);
    next(&proxy_lines, "proxying", Duration::from_secs(10));

    // Through the relay.
    let ice_servers = format!(
        "[[publish.endpoints.ice_servers]]\nurl = \"turn:{TURN_INNER}:3478?transport=udp\"\n\
         username = \"{TURN_USER}\"\ncredential = \"{TURN_PASSWORD}\"\n"
    );
    let started = Instant::now();
    let url = format!("http://{TURN_INNER}:8088/whip");
    let mut mado = Mado::start(&net, dir.path(), "relayed", &url, &ice_servers);
    let live = mado.wait("live through the relay", Duration::from_secs(20), |e| {
        state(e) == "live"
    });
    println!("live through coturn {:?} after mado started: {live}", started.elapsed());
    assert_eq!(live["candidates"], "host, relay", "{live}");
    let result: Value = serde_json::from_str(&next(&werift_lines, "result ", Duration::from_secs(40))).unwrap();
    println!("werift: {result}");
    check_werift_frames(&result, FRAMES);
    let types = result["offerCandidates"].as_array().cloned().unwrap_or_default();
    assert!(
        types.contains(&Value::from("relay")),
        "the offer carried a relayed candidate: {result}"
    );
    // SIGTERM: the session is deleted and the allocation released.
    mado.terminate();
    assert_eq!(
        next(&werift_lines, "deleted ", Duration::from_secs(5)),
        "/whip/session/1"
    );
    mado.check_log();
    let log = std::fs::read_to_string(&mado.log).unwrap();
    for line in log
        .lines()
        .filter(|l| l.contains("gathering") || l.contains("TURN") || l.contains("posting") || l.contains("publishing"))
    {
        println!("mado: {line}");
    }
    let turn_log = std::fs::read_to_string(dir.path().join("turnserver.log")).unwrap_or_default();
    assert!(
        turn_log
            .lines()
            .any(|l| l.contains("refreshed") && l.contains("lifetime=0")),
        "the allocation was released:\n{turn_log}"
    );
    drop(mado);

    // A wrong password: coturn answers 401 twice; the reason is shown, the
    // offer goes with the host candidate, and nothing loops.
    let wrong = format!(
        "[[publish.endpoints.ice_servers]]\nurl = \"turn:{TURN_INNER}:3478?transport=udp\"\n\
         username = \"{TURN_USER}\"\ncredential = \"{WRONG_PASSWORD}\"\n"
    );
    let mado = Mado::start(&net, dir.path(), "wrong", &url, &wrong);
    let refused = mado.wait("the refusal reported", Duration::from_secs(20), |e| {
        e["ice_problems"].as_array().is_some_and(|p| !p.is_empty())
    });
    println!("wrong password: {refused}");
    assert!(
        refused["ice_problems"][0]
            .as_str()
            .unwrap()
            .ends_with("401 again: the user name or password is wrong"),
        "{refused}"
    );
    assert_eq!(refused["candidates"], "host", "{refused}");
    let log = std::fs::read_to_string(&mado.log).unwrap();
    assert!(!log.contains(WRONG_PASSWORD), "the credential was logged");
    drop(mado);
    let turn_log = std::fs::read_to_string(dir.path().join("turnserver.log")).unwrap_or_default();
    let refusals = turn_log.lines().filter(|l| l.contains("401")).count();
    println!("coturn logged {refusals} lines with a 401");

    // The same network without the TURN server: ICE finds no path.
    let mado = Mado::start(&net, dir.path(), "direct", &url, "");
    let failed = mado.wait("host candidates only", Duration::from_secs(20), |e| {
        state(e).contains("ICE failed") || state(e) == "live"
    });
    println!("without the relay: {failed}");
    assert!(state(&failed).contains("ICE failed"), "{failed}");
    assert_eq!(failed["candidates"], "host");
}

#[test]
fn behind_a_nat_the_offer_carries_the_address_a_stun_server_saw() {
    if Command::new("nft").arg("--version").output().is_err() {
        println!("skipped: no `nft` (Debian package nftables) to make the NAT with");
        return;
    }
    let whip = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/whip");
    let net = Network::create('n');
    net.nat();
    let dir = tempfile::tempdir().unwrap();
    let _stun = start_coturn(&net.sfu, dir.path(), &["--stun-only", "--listening-ip", SFU]);
    let (_werift, werift_lines, port) = start_werift(&net, &whip);
    let url = format!("http://{SFU}:{port}/whip");
    let ice_servers = format!("[[publish.endpoints.ice_servers]]\nurl = \"stun:{SFU}:3478\"\n");
    let started = Instant::now();
    let mado = Mado::start(&net, dir.path(), "nat", &url, &ice_servers);
    let live = mado.wait("live behind the NAT", Duration::from_secs(20), |e| state(e) == "live");
    println!("live behind the NAT {:?} after mado started: {live}", started.elapsed());
    assert_eq!(live["candidates"], "host, srflx", "{live}");
    let result: Value = serde_json::from_str(&next(&werift_lines, "result ", Duration::from_secs(40))).unwrap();
    println!("werift: {result}");
    check_werift_frames(&result, FRAMES);
    let types = result["offerCandidates"].as_array().cloned().unwrap_or_default();
    assert!(types.contains(&Value::from("srflx")), "{result}");
    let log = std::fs::read_to_string(&mado.log).unwrap();
    assert!(!log.contains("ICE server not used"), "the STUN server answered");
}
