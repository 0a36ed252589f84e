//! A publisher against a WHIP server made of a real str0m peer (ICE-lite, as
//! SFUs often are) and a scripted HTTP side, on a simulated clock: no
//! sockets, no threads, every datagram and answer handed over in memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, MediaData, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::turn_sim::{SimOut, TurnSim};
use super::*;
use crate::encode::EncodedFrame;
use crate::live::tests::encoded_stream;
use crate::live::{Hub, HubConfig, HubOutput};
use crate::meta::FrameMeta;

pub(super) const SERVER_ADDR: &str = "127.0.0.1:7000";
pub(super) const CAMERA_ADDR: &str = "127.0.0.1:8189";
pub(super) const URL: &str = "http://sfu.test:8088/whip/endpoint/cam";
/// The simulated STUN server, and the TURN server with its relayed address.
pub(super) const STUN_ADDR: &str = "127.0.0.2:3478";
pub(super) const TURN_ADDR: &str = "127.0.0.3:3478";
pub(super) const RELAYED_ADDR: &str = "127.0.0.3:50000";
/// The camera as the STUN and TURN servers see it (behind a NAT).
pub(super) const MAPPED_ADDR: &str = "203.0.113.9:40000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// How the scripted HTTP side answers one POST.
#[derive(Debug, Clone)]
pub(super) enum Reply {
    /// 201 with an answer from a fresh str0m peer; Location as given.
    Answer {
        location: &'static str,
    },
    /// 201 whose answer has its DTLS fingerprint altered.
    BadFingerprint,
    Status(u16, Vec<(&'static str, &'static str)>),
    Fail(HttpFailure),
}

pub(super) struct Server {
    rtc: Option<Rtc>,
    mid: Option<Mid>,
    pub(super) received: Vec<MediaData>,
}

pub(super) struct Net {
    pub(super) now: Instant,
    pub(super) publisher: Publisher,
    pub(super) server: Server,
    /// A STUN server at [`STUN_ADDR`], a TURN server at [`TURN_ADDR`].
    pub(super) stun: Option<TurnSim>,
    pub(super) turn: Option<TurnSim>,
    /// The camera and the WHIP server cannot reach each other directly.
    pub(super) direct_blocked: bool,
    /// Host names the simulated DNS knows; others do not resolve.
    pub(super) dns: Vec<(&'static str, SocketAddr)>,
    /// Answers to successive POSTs; the last repeats.
    replies: Vec<Reply>,
    /// Every request made, with when.
    pub(super) requests: Vec<(Instant, HttpRequest)>,
    /// Datagrams in either direction vanish.
    blackhole: bool,
    /// The appliance's shared keyframe path.
    hub: Hub,
    keyframe_asks: usize,
    forced_keyframes: usize,
}

pub(super) fn config(url: &str) -> PublisherConfig {
    PublisherConfig {
        name: "cloud".into(),
        url: url.into(),
        token: Some(Secret::new("s3cret-token")),
        ice_servers: Vec::new(),
        candidates: vec![CAMERA_ADDR.parse().unwrap()],
        pacing_kbps: 20_000,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(8),
        connect_timeout: Duration::from_secs(10),
    }
}

#[allow(clippy::disallowed_methods)] // reason: the simulated clock starts from one real instant
fn start_instant() -> Instant {
    Instant::now()
}

impl Net {
    pub(super) fn new(url: &str, replies: Vec<Reply>) -> Self {
        Self::with_seed(url, replies, 1)
    }

    fn with_seed(url: &str, replies: Vec<Reply>, seed: u64) -> Self {
        Self::with_config(config(url), replies, seed)
    }

    pub(super) fn with_config(config: PublisherConfig, replies: Vec<Reply>, seed: u64) -> Self {
        let now = start_instant();
        let hub = Hub::new(
            HubConfig {
                candidates: vec!["127.0.0.1:8189".parse().unwrap()],
                max_viewers: 4,
                keyframe_min_interval: Duration::from_millis(300),
                pacing_kbps: 20_000,
            },
            [3; 32],
        );
        Self {
            now,
            publisher: Publisher::new(config, now, seed),
            server: Server {
                rtc: None,
                mid: None,
                received: Vec::new(),
            },
            stun: None,
            turn: None,
            direct_blocked: false,
            dns: Vec::new(),
            replies,
            requests: Vec::new(),
            blackhole: false,
            hub,
            keyframe_asks: 0,
            forced_keyframes: 0,
        }
    }

    pub(super) fn posts(&self) -> Vec<Instant> {
        self.requests
            .iter()
            .filter(|(_, r)| r.method == Method::Post)
            .map(|(t, _)| *t)
            .collect()
    }

    fn deletes(&self) -> Vec<&HttpRequest> {
        self.requests
            .iter()
            .filter(|(_, r)| r.method == Method::Delete)
            .map(|(_, r)| r)
            .collect()
    }

    pub(super) fn state(&self) -> String {
        self.publisher.status(self.now).state
    }

    /// The server side of one POST.
    fn answer_post(&mut self, request: &HttpRequest) -> Result<HttpResponse, HttpFailure> {
        let index = self.posts().len() - 1;
        let reply = self.replies[index.min(self.replies.len() - 1)].clone();
        let (location, tamper) = match reply {
            Reply::Fail(failure) => return Err(failure),
            Reply::Status(status, headers) => {
                return Ok(HttpResponse {
                    status,
                    headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
                    body: String::new(),
                })
            }
            Reply::Answer { location } => (location, false),
            Reply::BadFingerprint => ("/whip/resource/1", true),
        };
        let offer = SdpOffer::from_sdp_string(request.body.as_deref().expect("a POST has a body")).unwrap();
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_av1(true)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(SERVER_ADDR.parse().unwrap(), "udp").unwrap());
        let mid = offer.media_lines[0].mid();
        let answer = rtc.sdp_api().accept_offer(offer).unwrap();
        let mut body = answer.to_sdp_string();
        if tamper {
            let at = body.find("a=fingerprint:sha-256 ").expect("a fingerprint") + "a=fingerprint:sha-256 ".len();
            let flipped = if &body[at..at + 1] == "0" { "1" } else { "0" };
            body.replace_range(at..at + 1, flipped);
        }
        self.server = Server {
            rtc: Some(rtc),
            mid: Some(mid),
            received: Vec::new(),
        };
        Ok(HttpResponse {
            status: 201,
            headers: vec![
                ("Location".into(), location.into()),
                ("Content-Type".into(), "application/sdp".into()),
                ("Link".into(), "<stun:stun.sfu.test>; rel=\"ice-server\"".into()),
            ],
            body,
        })
    }

    /// Moves the clock by `dt` and delivers everything until quiet.
    pub(super) fn advance(&mut self, dt: Duration) {
        self.now += dt;
        let now = self.now;
        if self.publisher.poll_timeout().is_some_and(|t| t <= now) {
            self.publisher.handle_timeout(now);
        }
        if self.hub.poll_timeout().is_some_and(|t| t <= now) {
            self.hub.handle_timeout(now);
        }
        if let Some(rtc) = &mut self.server.rtc {
            rtc.handle_input(Input::Timeout(now)).unwrap();
        }
        self.exchange();
    }

    pub(super) fn exchange(&mut self) {
        let now = self.now;
        let (mut to_camera, mut to_server) = (Vec::new(), Vec::new());
        loop {
            let mut moved = false;
            while let Some(output) = self.publisher.poll_output() {
                moved = true;
                match output {
                    PublishOutput::Http(request) => {
                        self.requests.push((now, request.clone()));
                        let result = match request.method {
                            Method::Post => self.answer_post(&request),
                            Method::Delete => Ok(HttpResponse {
                                status: 200,
                                ..Default::default()
                            }),
                        };
                        self.publisher.handle_http(now, request.id, result);
                    }
                    PublishOutput::KeyframeWanted => {
                        self.keyframe_asks += 1;
                        self.hub.request_keyframe(now);
                    }
                    PublishOutput::Resolve { id, host, .. } => {
                        let known = self.dns.iter().filter(|(name, _)| *name == host).map(|(_, a)| *a);
                        let addrs: Vec<SocketAddr> = known.collect();
                        let result = if addrs.is_empty() {
                            Err("no such host".into())
                        } else {
                            Ok(addrs)
                        };
                        self.publisher.handle_resolved(now, id, result);
                    }
                    PublishOutput::Transmit {
                        source,
                        destination,
                        contents,
                    } => {
                        if self.blackhole {
                            continue;
                        }
                        let server = match destination {
                            d if d == addr(STUN_ADDR) => self.stun.as_mut(),
                            d if d == addr(TURN_ADDR) => self.turn.as_mut(),
                            _ => None,
                        };
                        if let Some(server) = server {
                            for out in server.handle_client(now, &contents) {
                                match out {
                                    SimOut::ToClient(bytes) => to_camera.push((destination, source, bytes)),
                                    SimOut::ToPeer { peer, data } => to_server.push((addr(RELAYED_ADDR), peer, data)),
                                }
                            }
                        } else if destination == addr(SERVER_ADDR) && !self.direct_blocked {
                            to_server.push((source, destination, contents));
                        }
                    }
                }
            }
            if let Some(rtc) = &mut self.server.rtc {
                for (source, destination, contents) in to_server.drain(..) {
                    moved = true;
                    let receive = Receive::new(Protocol::Udp, source, destination, &contents).unwrap();
                    let _ = rtc.handle_input(Input::Receive(now, receive));
                }
            }
            to_server.clear();
            while let Some(output) = self.hub.poll_output() {
                if output == HubOutput::ForceKeyframe {
                    self.forced_keyframes += 1;
                }
            }
            if let Some(rtc) = &mut self.server.rtc {
                while let Ok(output) = rtc.poll_output() {
                    match output {
                        Output::Timeout(_) => break,
                        Output::Transmit(t) if t.destination == addr(RELAYED_ADDR) => {
                            let relayed = self
                                .turn
                                .as_ref()
                                .and_then(|turn| turn.handle_peer(t.source, &t.contents));
                            if let Some(bytes) = relayed {
                                to_camera.push((addr(TURN_ADDR), addr(CAMERA_ADDR), bytes));
                            }
                        }
                        Output::Transmit(t) if self.direct_blocked => drop(t),
                        Output::Transmit(t) => to_camera.push((t.source, t.destination, t.contents.to_vec())),
                        Output::Event(Event::MediaData(data)) => self.server.received.push(data),
                        Output::Event(_) => {}
                    }
                }
            }
            for (source, destination, contents) in to_camera.drain(..) {
                moved = true;
                if !self.blackhole {
                    self.publisher.handle_receive(now, source, destination, &contents);
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Advances in `step`s until `done` or `limit` has passed; returns the time taken.
    pub(super) fn run_until(
        &mut self,
        limit: Duration,
        step: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        self.exchange();
        while !done(self) {
            if self.now - start >= limit {
                return None;
            }
            self.advance(step);
        }
        Some(self.now - start)
    }

    pub(super) fn send(&mut self, frame: &EncodedFrame) {
        let data: Arc<[u8]> = frame.data.as_slice().into();
        self.hub.handle_frame(self.now, frame);
        self.publisher.handle_frame(self.now, frame, &data);
        self.advance(Duration::from_millis(33));
    }

    pub(super) fn live(&self) -> bool {
        *self.publisher.state() == PublishState::Live
    }
}

pub(super) const MS: Duration = Duration::from_millis(1);
pub(super) const S: Duration = Duration::from_secs(1);

#[test]
fn publishes_every_frame_with_its_metadata_and_deletes_on_close() {
    let stream = encoded_stream(60);
    let mut net = Net::new(
        URL,
        vec![Reply::Answer {
            location: "/whip/resource/abc",
        }],
    );
    assert_eq!(net.state(), "connecting");
    let took = net.run_until(2 * S, 5 * MS, Net::live).expect("live within 2 s");
    let (_, post) = &net.requests[0];
    assert_eq!(post.url, URL);
    assert_eq!(post.bearer.as_ref().map(Secret::expose), Some("s3cret-token"));
    let offer = post.body.as_deref().unwrap();
    assert!(offer.contains("a=sendonly") && offer.contains("AV1/90000"), "{offer}");
    // Codec names as rtpmap gives them: random ICE credentials may spell "VP8".
    assert!(
        !offer.contains("VP8/90000") && !offer.contains("H264/90000"),
        "AV1 only: {offer}"
    );
    assert!(
        offer.contains("a=candidate:"),
        "candidates are in the offer (no trickle)"
    );
    assert_eq!(net.keyframe_asks, 1, "a new session asks for a keyframe");
    assert_eq!(net.forced_keyframes, 1, "through the hub's keyframe path");
    assert_eq!(
        net.publisher.ice_servers().count(),
        1,
        "the server's Link header is read"
    );
    println!("live after {took:?}");

    for frame in &stream {
        net.send(frame);
    }
    net.advance(200 * MS);
    let received = &net.server.received;
    assert_eq!(received.len(), stream.len(), "every frame arrives");
    for (data, sent) in received.iter().zip(&stream) {
        let meta = FrameMeta::find_in_temporal_unit(&data.data)
            .unwrap()
            .expect("metadata survives");
        assert_eq!(meta, sent.info.to_meta());
    }
    let status = net.publisher.status(net.now);
    assert_eq!(status.state, "live");
    assert_eq!(status.sessions, 1);
    assert!(status.since_s >= 2.0, "{status:?}");
    assert!(status.bitrate_kbps.is_some_and(|k| k > 0), "{status:?}");
    assert!(status.rtt_ms.is_some(), "{status:?}");
    assert!(
        net.publisher.link_report().is_some(),
        "TWCC feedback reaches the rate controller"
    );
    let json = serde_json::to_string(&status).unwrap();
    assert!(!json.contains("s3cret") && !json.contains("sfu.test"), "{json}");

    net.publisher.close(net.now);
    net.exchange();
    let deletes = net.deletes();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].url, "http://sfu.test:8088/whip/resource/abc");
    assert_eq!(deletes[0].bearer.as_ref().map(Secret::expose), Some("s3cret-token"));
    assert_eq!(net.state(), "stopped");
    assert_eq!(net.publisher.poll_timeout(), None);
}

#[test]
fn keyframe_requests_go_through_the_shared_rate_limit() {
    let stream = encoded_stream(10);
    let mut net = Net::new(URL, vec![Reply::Answer { location: "/r/1" }]);
    net.run_until(2 * S, 5 * MS, Net::live).expect("live");
    net.send(&stream[0]);
    net.advance(400 * MS);
    let (asks, forced) = (net.keyframe_asks, net.forced_keyframes);
    for _ in 0..5 {
        let mid = net.server.mid.unwrap();
        let rtc = net.server.rtc.as_mut().unwrap();
        let _ = rtc
            .writer(mid)
            .unwrap()
            .request_keyframe(None, KeyframeRequestKind::Pli);
        net.advance(20 * MS);
    }
    net.advance(400 * MS);
    assert!(net.keyframe_asks - asks >= 3, "the server's PLIs reach the publisher");
    let forced = net.forced_keyframes - forced;
    assert!(
        (1..=2).contains(&forced),
        "{forced} keyframes forced for a burst of PLIs"
    );
}

#[test]
fn unauthorized_is_rejected_and_never_retried() {
    for status in [401, 403] {
        let mut net = Net::new(URL, vec![Reply::Status(status, vec![])]);
        net.advance(MS);
        assert_eq!(
            net.state(),
            format!("rejected: HTTP {status}: the server refused the token")
        );
        net.run_until(3600 * S, S, |_| false);
        assert_eq!(net.posts().len(), 1, "no retry until the config changes");
        assert_eq!(net.publisher.poll_timeout(), None);
    }
}

#[test]
fn a_bad_url_is_rejected_without_a_request() {
    for url in ["sfu.test/whip", "ftp://sfu.test/whip", "http://"] {
        let mut net = Net::new(url, vec![]);
        net.run_until(60 * S, S, |_| false);
        assert!(net.state().starts_with("rejected: bad URL"), "{url}: {}", net.state());
        assert!(net.requests.is_empty());
    }
}

#[test]
fn service_unavailable_waits_as_long_as_retry_after_says() {
    let mut net = Net::new(
        URL,
        vec![
            Reply::Status(503, vec![("Retry-After", "7")]),
            Reply::Answer { location: "/r/1" },
        ],
    );
    net.advance(MS);
    assert_eq!(net.state(), "retrying in 7 s: HTTP 503: server error");
    net.run_until(20 * S, 10 * MS, |n| n.posts().len() == 2)
        .expect("a second POST");
    let posts = net.posts();
    let waited = posts[1] - posts[0];
    assert!(waited >= 7 * S && waited < 7 * S + 20 * MS, "retried after {waited:?}");
    net.run_until(2 * S, 5 * MS, Net::live).expect("live after the retry");
}

#[test]
fn too_many_requests_honours_a_dated_retry_after() {
    let mut net = Net::new(
        URL,
        vec![Reply::Status(
            429,
            vec![
                ("Retry-After", "Mon, 30 Nov 2026 08:00:20 GMT"),
                ("Date", "Mon, 30 Nov 2026 08:00:00 GMT"),
            ],
        )],
    );
    net.advance(MS);
    assert_eq!(net.state(), "retrying in 20 s: HTTP 429: too many requests");
    net.run_until(30 * S, 10 * MS, |n| n.posts().len() == 2)
        .expect("a second POST");
    let posts = net.posts();
    assert!(posts[1] - posts[0] >= 20 * S);
}

/// The delays between successive POSTs while every one fails.
fn retry_delays(reply: Reply, seed: u64, attempts: usize) -> (Vec<Duration>, String) {
    let mut net = Net::with_seed(URL, vec![reply], seed);
    net.advance(MS);
    let state = net.state();
    net.run_until(600 * S, 10 * MS, |n| n.posts().len() > attempts);
    let posts = net.posts();
    (posts.windows(2).map(|w| w[1] - w[0]).collect(), state)
}

#[test]
fn unreachable_hosts_and_dns_failures_back_off_exponentially_with_jitter() {
    let refused = Reply::Fail(HttpFailure::Unreachable("connection refused".into()));
    let (delays, state) = retry_delays(refused.clone(), 1, 7);
    assert!(
        state.starts_with("retrying in 1 s: unreachable: connection refused"),
        "{state}"
    );
    // Ceilings 1, 2, 4, 8 s (the cap), each delay in the upper half.
    for (delay, ceiling) in delays.iter().zip([1, 2, 4, 8, 8, 8, 8]) {
        let ceiling = ceiling * S;
        assert!(
            *delay >= ceiling / 2 && *delay <= ceiling + 10 * MS,
            "{delay:?} for ceiling {ceiling:?}: {delays:?}"
        );
    }
    assert_eq!(delays.len(), 7);
    // The jitter comes from the seed: the same seed, the same delays.
    assert_eq!(retry_delays(refused.clone(), 1, 7).0, delays);
    assert_ne!(retry_delays(refused, 2, 7).0, delays);

    let dns = Reply::Fail(HttpFailure::Dns("no such host sfu.test".into()));
    let (delays, state) = retry_delays(dns, 1, 3);
    assert!(state.contains("DNS failure: no such host"), "{state}");
    assert_eq!(delays.len(), 3);
}

#[test]
fn not_found_and_other_refusals_are_retried() {
    let (delays, state) = retry_delays(Reply::Status(404, vec![]), 1, 2);
    assert!(state.ends_with("HTTP 404: no such endpoint"), "{state}");
    assert_eq!(delays.len(), 2);
    let (_, state) = retry_delays(Reply::Status(500, vec![]), 1, 1);
    assert!(state.ends_with("HTTP 500: server error"), "{state}");
    let (_, state) = retry_delays(Reply::Status(400, vec![]), 1, 1);
    assert!(state.ends_with("HTTP 400: offer refused"), "{state}");
}

#[test]
fn redirects_are_followed_with_the_offer_and_token() {
    let mut net = Net::new(
        URL,
        vec![
            Reply::Status(307, vec![("Location", "/moved/endpoint")]),
            Reply::Status(308, vec![("Location", "http://other.test/whip/cam")]),
            Reply::Answer { location: "session/9" },
        ],
    );
    net.run_until(2 * S, 5 * MS, Net::live)
        .expect("live after two redirects");
    let urls: Vec<_> = net.requests.iter().map(|(_, r)| r.url.as_str()).collect();
    assert_eq!(
        urls,
        [URL, "http://sfu.test:8088/moved/endpoint", "http://other.test/whip/cam"]
    );
    assert!(net
        .requests
        .iter()
        .all(|(_, r)| r.body == net.requests[0].1.body && r.bearer.is_some()));
    net.publisher.close(net.now);
    net.exchange();
    assert_eq!(net.deletes()[0].url, "http://other.test/whip/session/9");

    let mut looping = Net::new(URL, vec![Reply::Status(307, vec![("Location", "/again")])]);
    looping.advance(MS);
    assert!(looping.state().ends_with("too many redirects"), "{}", looping.state());
}

#[test]
fn ice_failure_when_the_server_never_answers_checks() {
    let mut net = Net::new(URL, vec![Reply::Answer { location: "/r/1" }]);
    net.blackhole = true;
    let took = net
        .run_until(30 * S, 50 * MS, |n| n.state().contains("ICE failed"))
        .expect("ICE fails");
    assert!(took <= 10 * S + 100 * MS, "gave up after {took:?}");
    assert_eq!(net.deletes().len(), 1, "the session is deleted before the next offer");
    assert!(net.state().starts_with("retrying in"), "{}", net.state());
}

#[test]
fn a_dtls_failure_is_named_and_retried() {
    let mut net = Net::new(URL, vec![Reply::BadFingerprint]);
    net.run_until(30 * S, 50 * MS, |n| n.state().contains("DTLS failed"))
        .expect("DTLS fails");
    assert!(net.state().starts_with("retrying in"), "{}", net.state());
}

#[test]
fn consent_lost_mid_stream_publishes_again_by_itself() {
    let stream = encoded_stream(40);
    let mut net = Net::new(URL, vec![Reply::Answer { location: "/r/1" }]);
    net.run_until(2 * S, 5 * MS, Net::live).expect("live");
    for frame in &stream[..20] {
        net.send(frame);
    }
    // The server vanishes: nothing comes back.
    net.blackhole = true;
    let mut sent = 20;
    let lost = net
        .run_until(60 * S, 33 * MS, |n| n.state().contains("consent lost"))
        .expect("consent loss is noticed");
    println!("consent lost noticed after {lost:?}");
    assert!(lost <= 9 * S, "took {lost:?}");
    assert_eq!(net.deletes().len(), 1, "the old session is deleted");
    assert_eq!(
        net.publisher.link_report(),
        None,
        "a dead link no longer steers the encoder"
    );
    // The server is back; the next attempt succeeds without help.
    net.blackhole = false;
    let back = net.run_until(30 * S, 10 * MS, Net::live).expect("live again");
    assert!(
        back <= 2 * S,
        "re-published after {back:?} (first backoff is at most 1 s)"
    );
    assert_eq!(net.publisher.status(net.now).sessions, 2);
    assert_eq!(net.posts().len(), 2, "one new offer, no tight loop");
    for frame in &stream[20..] {
        net.send(frame);
        sent += 1;
    }
    net.advance(200 * MS);
    // Delta frames wait for the next keyframe (frame 30) on the new session.
    let seqs: Vec<u64> = net
        .server
        .received
        .iter()
        .map(|d| FrameMeta::find_in_temporal_unit(&d.data).unwrap().unwrap().seq)
        .collect();
    assert_eq!(seqs, (30..sent as u64).collect::<Vec<_>>());
}

#[test]
fn an_uplink_narrower_than_the_stream_gets_the_base_layer_only() {
    let stream = encoded_stream(60);
    assert!(
        stream.iter().any(|f| f.temporal_layer > 0),
        "the test stream has two layers"
    );
    let mut net = Net::new(URL, vec![Reply::Answer { location: "/r/1" }]);
    net.run_until(2 * S, 5 * MS, Net::live).expect("live");
    for frame in &stream[..30] {
        net.send(frame);
    }
    let link = net.publisher.link_report().expect("a link estimate");
    // The encoder now targets far more than this uplink's estimate.
    net.publisher.set_stream_kbps(link.estimate_kbps * 4);
    let before = net.server.received.len();
    for frame in &stream[30..] {
        net.send(frame);
    }
    net.advance(200 * MS);
    let layers: Vec<u8> = net.server.received[before..]
        .iter()
        .map(|d| {
            let seq = FrameMeta::find_in_temporal_unit(&d.data).unwrap().unwrap().seq;
            stream.iter().find(|f| f.info.seq == seq).unwrap().temporal_layer
        })
        .collect();
    assert!(layers.len() >= 14, "{layers:?}");
    assert!(layers.iter().all(|&l| l == 0), "only the base layer: {layers:?}");
    // And back: a stream the link can carry goes out whole again.
    net.publisher.set_stream_kbps(link.estimate_kbps / 4);
    let before = net.server.received.len();
    for frame in &stream[..10] {
        net.send(frame);
    }
    assert!(net.server.received.len() - before >= 9, "every frame again");
}
