//! A running `mado run` and a str0m WHEP client talking to it over real
//! UDP on loopback.

#![allow(
    clippy::disallowed_methods,
    reason = "integration tests drive the real binary and wait on real time"
)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaData, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// The `mado` binary to run: this build's, or the one `MADO_BIN` names (to
/// check that a test fails on an older build).
pub fn mado_path() -> std::path::PathBuf {
    std::env::var_os("MADO_BIN").map_or_else(|| env!("CARGO_BIN_EXE_mado").into(), Into::into)
}

/// `mado run` on loopback with free ports, with the known test password
/// and an API token ([`super::auth::TestAuth`]); killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    /// The server's credentials; [`Server::agent`] sends its token.
    pub auth: super::auth::TestAuth,
    /// Everything the server wrote to stderr after its first line.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with(extra, |_| {})
    }

    /// Like [`Server::start`], with the command adjusted first (its working
    /// directory, say).
    pub fn start_with(extra: &[&str], adjust: impl FnOnce(&mut std::process::Command)) -> Self {
        let mut command = std::process::Command::new(mado_path());
        command.env("MADO_LOG", "warn").env_remove("MADO_CONFIG");
        let auth = super::auth::TestAuth::new();
        auth.apply(&mut command);
        adjust(&mut command);
        let mut child = command
            .args(["run", "--listen", "127.0.0.1:0", "--udp-port", "0"])
            // The test pattern at 320x240 unless the test names a source or a size.
            .args(if extra.contains(&"--source") {
                &[][..]
            } else {
                &["--source", "testpattern"][..]
            })
            .args(if extra.contains(&"--size") || extra.contains(&"--source") {
                &[][..]
            } else {
                &["--size", "320x240"][..]
            })
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting mado run");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait();
                panic!("mado run exited early: {status:?}");
            };
            if let Some(rest) = line.strip_prefix("mado: listening on ") {
                break rest.trim_end_matches('/').to_owned();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut log) = kept.lock() {
                    if log.len() < 4 << 20 {
                        log.push_str(&line);
                        log.push('\n');
                    }
                }
            }
        });
        Self { child, base, auth, log }
    }

    /// Waits up to `timeout` for the server to exit by itself (after a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "mado did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id, to read its descriptors and memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the server process.
    pub fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// The `host:port` part of the base URL.
    pub fn http_addr(&self) -> SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }

    /// The `host:port` part of an `https://` base URL.
    pub fn http_addr_tls(&self) -> SocketAddr {
        self.base.trim_start_matches("https://").parse().unwrap()
    }

    /// An agent that sends this server's API token.
    pub fn agent(&self) -> ureq::Agent {
        self.auth.agent()
    }

    pub fn status(&self) -> serde_json::Value {
        let body = self
            .agent()
            .get(format!("{}/api/status", self.base))
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Posts `body` as `content_type` to /whep; returns status, Location and body.
    pub fn post_whep(&self, content_type: &str, body: &[u8]) -> (u16, Option<String>, String) {
        let mut resp = self
            .agent()
            .post(format!("{}/whep", self.base))
            .header("content-type", content_type)
            .send(body)
            .unwrap();
        let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        (
            resp.status().as_u16(),
            location,
            resp.body_mut().read_to_string().unwrap(),
        )
    }

    /// Announces a 200 kB offer without sending it, as an oversized upload
    /// starts; returns the status the server answers with before reading it.
    pub fn post_oversized(&self) -> u16 {
        self.send_oversized("POST", "/whep", "application/sdp")
    }

    /// Sends only the head of a request announcing a 200 000-byte body and
    /// returns the status: the server must refuse by the announced length
    /// (sending the body too would race the refusal and break the pipe).
    pub fn send_oversized(&self, method: &str, path: &str, content_type: &str) -> u16 {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: {content_type}\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n",
            self.auth.bearer()
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply); // the server may reset the unread upload
        reply.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
    }

    /// Sends `signal` (SIGTERM, SIGKILL) and waits, at most 15 s, for the exit.
    pub fn signal_and_wait(&mut self, signal: i32) -> std::process::ExitStatus {
        // SAFETY: kill(2) with the pid of a child this test started and has not reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(Instant::now() < deadline, "mado did not exit after signal {signal}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn delete(&self, location: &str) -> u16 {
        self.agent()
            .delete(format!("{}{location}", self.base))
            .call()
            .unwrap()
            .status()
            .as_u16()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A receive-only WebRTC peer, like a browser tab.
pub struct Viewer {
    pub rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    pending: Option<SdpPendingOffer>,
    pub frames: Vec<MediaData>,
}

impl Viewer {
    /// A viewer offering the given video codecs.
    pub fn new(codecs: &[Codec]) -> (Self, String) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let addr = socket.local_addr().unwrap();
        let mut builder = Rtc::builder().clear_codecs();
        for codec in codecs {
            builder = match codec {
                Codec::Av1 => builder.enable_av1(true),
                Codec::Vp8 => builder.enable_vp8(true),
                other => panic!("no test support for {other:?}"),
            };
        }
        let mut rtc = builder.build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        (
            Self {
                rtc,
                socket,
                addr,
                pending: Some(pending),
                frames: Vec::new(),
            },
            offer.to_sdp_string(),
        )
    }

    /// The media address the server's answer offers.
    pub fn media_addr(answer: &str) -> SocketAddr {
        answer
            .lines()
            .filter_map(|l| l.strip_prefix("a=candidate:"))
            .find_map(|c| {
                let fields: Vec<&str> = c.split_whitespace().collect();
                format!("{}:{}", fields.get(4)?, fields.get(5)?).parse().ok()
            })
            .expect("a host candidate in the answer")
    }

    pub fn accept(&mut self, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).unwrap();
        self.rtc
            .sdp_api()
            .accept_answer(self.pending.take().unwrap(), answer)
            .unwrap();
    }

    /// Runs the peer for `duration`, collecting frames.
    pub fn run_for(&mut self, duration: Duration) {
        self.run(duration, false);
    }

    /// Runs only the peer's ICE for `duration`: its STUN goes out, nothing
    /// else does, so the session never starts (a half-open client).
    pub fn run_ice_only_for(&mut self, duration: Duration) {
        self.run(duration, true);
    }

    fn run(&mut self, duration: Duration, ice_only: bool) {
        let end = Instant::now() + duration;
        let mut buf = vec![0u8; 2048];
        while Instant::now() < end {
            loop {
                let output = match self.rtc.poll_output() {
                    Ok(output) => output,
                    // A half-open client's own DTLS gives up in the end.
                    Err(_) if ice_only => return,
                    Err(e) => panic!("viewer failed: {e}"),
                };
                match output {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        if !ice_only || t.contents.first().is_some_and(|b| *b < 2) {
                            let _ = self.socket.send_to(&t.contents, t.destination);
                        }
                    }
                    Output::Event(Event::MediaData(d)) => self.frames.push(d),
                    Output::Event(_) => {}
                }
            }
            let input = match self.socket.recv_from(&mut buf) {
                Ok((n, source)) => {
                    let receive = Receive::new(Protocol::Udp, source, self.addr, &buf[..n]).unwrap();
                    Input::Receive(Instant::now(), receive)
                }
                Err(_) => Input::Timeout(Instant::now()),
            };
            if let Err(e) = self.rtc.handle_input(input) {
                assert!(ice_only, "viewer input failed: {e}");
                return;
            }
        }
    }
}
