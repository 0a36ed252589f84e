//! The hub driven by real str0m client peers on a simulated clock: no
//! sockets, no threads, every datagram handed over in memory.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::*;
use crate::av1::obu::{remove_obus, ObuType};
use crate::config::Config;
use crate::encode::EncodedFrame;
use crate::frame::CaptureTime;
use crate::meta::FrameMeta;
use crate::pipeline::EncodeStage;
use crate::source::{FrameSource, TestPattern};

const HUB_ADDR: &str = "127.0.0.1:5000";

pub(super) struct Client {
    pub(super) rtc: Rtc,
    addr: SocketAddr,
    mid: Mid,
    pub(super) events: Vec<Event>,
}

impl Client {
    pub(super) fn received(&self) -> Vec<&MediaData> {
        self.events
            .iter()
            .filter_map(|e| if let Event::MediaData(d) = e { Some(d) } else { None })
            .collect()
    }
}

/// A browser stand-in: a full-ICE str0m peer that wants to receive video.
fn client(now: Instant, port: u16, codec: Codec) -> (Client, SdpOffer, SdpPendingOffer) {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let builder = Rtc::builder().clear_codecs();
    let builder = match codec {
        Codec::Av1 => builder.enable_vp8(true).enable_av1(true),
        _ => builder.enable_vp8(true),
    };
    let mut rtc = builder.build(now);
    rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    (
        Client {
            rtc,
            addr,
            mid,
            events: Vec::new(),
        },
        offer,
        pending,
    )
}

/// A bottleneck on the way to one client: datagrams queue behind each other
/// at `kbps`, and one that would wait longer than `max_queue` is dropped (a
/// token bucket's tail drop).
pub(super) struct Link {
    pub(super) to: SocketAddr,
    pub(super) kbps: u64,
    pub(super) max_queue: Duration,
    free_at: Option<Instant>,
    queue: std::collections::VecDeque<(Instant, SocketAddr, Vec<u8>)>,
}

impl Link {
    pub(super) fn new(to: SocketAddr, kbps: u64) -> Self {
        Self {
            to,
            kbps,
            max_queue: Duration::from_millis(200),
            free_at: None,
            queue: Default::default(),
        }
    }
}

pub(super) struct Net {
    pub(super) hub: Hub,
    pub(super) clients: Vec<Client>,
    pub(super) now: Instant,
    pub(super) links: Vec<Link>,
    pub(super) forced_keyframes: usize,
    /// Drop every n-th datagram from the hub to a client, once connected.
    drop_every: Option<usize>,
    hub_datagrams: usize,
    /// When each datagram from the hub left, and its size.
    sent_log: Vec<(Instant, usize)>,
}

impl Net {
    pub(super) fn new(max_viewers: usize) -> Self {
        let config = HubConfig {
            candidates: vec![HUB_ADDR.parse().unwrap()],
            max_viewers,
            keyframe_min_interval: Duration::from_millis(300),
            pacing_kbps: 20_000,
        };
        Self {
            hub: Hub::new(config, [7; 32]),
            clients: Vec::new(),
            now: Instant::now(),
            forced_keyframes: 0,
            drop_every: None,
            links: Vec::new(),
            hub_datagrams: 0,
            sent_log: Vec::new(),
        }
    }

    fn hub_config(&self) -> HubConfig {
        HubConfig {
            candidates: vec![HUB_ADDR.parse().unwrap()],
            max_viewers: self.hub.max_viewers(),
            keyframe_min_interval: Duration::from_millis(300),
            pacing_kbps: 20_000,
        }
    }

    /// Connects a new client; returns its index and session id.
    pub(super) fn join(&mut self, port: u16) -> (usize, ViewerId) {
        let (mut client, offer, pending) = client(self.now, port, Codec::Av1);
        let (id, answer) = self.hub.add_viewer(self.now, offer).unwrap();
        client.rtc.sdp_api().accept_answer(pending, answer).unwrap();
        self.clients.push(client);
        let index = self.clients.len() - 1;
        let deadline = self.now + Duration::from_secs(5);
        while !self.clients[index].rtc.is_connected() || self.hub.connected_count() < self.clients.len() {
            assert!(self.now < deadline, "client on port {port} never connected");
            self.advance(Duration::from_millis(5));
        }
        (index, id)
    }

    /// Moves time forward and delivers every datagram until the network is quiet.
    pub(super) fn advance(&mut self, dt: Duration) {
        self.now += dt;
        let now = self.now;
        if self.hub.poll_timeout().is_some_and(|t| t <= now) {
            self.hub.handle_timeout(now);
        }
        let mut to_hub = Vec::new();
        for link in &mut self.links {
            while link.queue.front().is_some_and(|(at, ..)| *at <= now) {
                let (_, source, contents) = link.queue.pop_front().unwrap();
                if let Some(client) = self.clients.iter_mut().find(|c| c.addr == link.to) {
                    let receive = Receive::new(Protocol::Udp, source, link.to, &contents).unwrap();
                    if client.rtc.handle_input(Input::Receive(now, receive)).is_ok() {
                        drain(client, &mut to_hub);
                    }
                }
            }
        }
        for client in &mut self.clients {
            client.rtc.handle_input(Input::Timeout(now)).unwrap();
            drain(client, &mut to_hub);
        }
        loop {
            for (source, destination, contents) in to_hub.drain(..) {
                self.hub.handle_receive(now, source, destination, &contents);
            }
            let mut moved = false;
            while let Some(output) = self.hub.poll_output() {
                match output {
                    HubOutput::ForceKeyframe => self.forced_keyframes += 1,
                    HubOutput::Transmit {
                        source,
                        destination,
                        contents,
                    } => {
                        moved = true;
                        self.hub_datagrams += 1;
                        self.sent_log.push((now, contents.len()));
                        if self.drop_every.is_some_and(|n| self.hub_datagrams.is_multiple_of(n)) {
                            continue; // lost on the way
                        }
                        if let Some(link) = self.links.iter_mut().find(|l| l.to == destination) {
                            let start = link.free_at.map_or(now, |t| t.max(now));
                            let done = start + Duration::from_micros(contents.len() as u64 * 8 * 1000 / link.kbps);
                            if done - now <= link.max_queue {
                                link.free_at = Some(done);
                                link.queue.push_back((done, source, contents));
                            }
                            continue;
                        }
                        if let Some(client) = self.clients.iter_mut().find(|c| c.addr == destination) {
                            let receive = Receive::new(Protocol::Udp, source, destination, &contents).unwrap();
                            if client.rtc.handle_input(Input::Receive(now, receive)).is_ok() {
                                drain(client, &mut to_hub);
                            }
                        }
                    }
                }
            }
            if !moved && to_hub.is_empty() {
                break;
            }
        }
    }

    fn send(&mut self, frame: &EncodedFrame) {
        self.hub.handle_frame(self.now, frame);
        self.advance(Duration::from_millis(33));
    }
}

fn drain(client: &mut Client, to_hub: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
    while let Ok(output) = client.rtc.poll_output() {
        match output {
            Output::Timeout(_) => break,
            Output::Transmit(t) => to_hub.push((t.source, t.destination, t.contents.to_vec())),
            Output::Event(e) => client.events.push(e),
        }
    }
}

/// A stream encoded the way the appliance does it, keyframes every 30 frames
/// (the publisher's tests use it too).
pub(crate) fn encoded_stream(frames: u64) -> Vec<EncodedFrame> {
    let size = "160x120".parse().unwrap();
    let mut config = Config::default();
    config.encoder.keyframe_interval = crate::config::Ranged::new_const(30);
    let mut stage = EncodeStage::new(crate::encode::open_encoder(&config.encoder_settings(size)).unwrap());
    let mut source = TestPattern::new(size);
    let mut out = Vec::new();
    let start = Instant::now();
    for seq in 0..frames {
        let capture = CaptureTime {
            mono: start + Duration::from_millis(33 * seq),
            wall_us: 1_000_000 + 33_333 * seq,
        };
        stage
            .push(Some(&source.next_frame(seq, capture).unwrap()), &mut out)
            .unwrap();
    }
    stage.push(None, &mut out).unwrap();
    out
}

#[test]
fn a_viewer_receives_every_frame_with_its_metadata_intact() {
    let stream = encoded_stream(40);
    let mut net = Net::new(4);
    net.join(6000);
    assert_eq!(net.forced_keyframes, 1, "a new viewer asks for a keyframe");
    for frame in &stream {
        net.send(frame);
    }
    net.advance(Duration::from_millis(200));
    let received = net.clients[0].received();
    assert_eq!(received.len(), stream.len());
    for (data, sent) in received.iter().zip(&stream) {
        let meta = FrameMeta::find_in_temporal_unit(&data.data)
            .unwrap()
            .expect("metadata survives RTP");
        assert_eq!(meta, sent.info.to_meta());
        // Packetization drops only the temporal delimiter; every other OBU arrives byte for byte.
        let expected = remove_obus(&sent.data, |o| o.obu_type == ObuType::TemporalDelimiter).unwrap();
        assert_eq!(
            &*data.data,
            expected.as_slice(),
            "frame {} changed in transit",
            sent.info.seq
        );
        // The RTP timestamp is the capture time on the 90 kHz clock.
        assert_eq!(
            data.time.rebase(str0m::media::Frequency::NINETY_KHZ).numer() % (1 << 32),
            (meta.capture_us * 9 / 100) % (1 << 32)
        );
    }
}

#[test]
fn lost_packets_are_retransmitted_on_nack() {
    let stream = encoded_stream(40);
    let mut net = Net::new(4);
    net.join(6000);
    net.drop_every = Some(7);
    for frame in &stream[..35] {
        net.send(frame);
    }
    // A loss is noticed at the next packet; the last frames travel cleanly so every gap is seen.
    net.drop_every = None;
    for frame in &stream[35..] {
        net.send(frame);
    }
    net.advance(Duration::from_millis(500));
    let received = net.clients[0].received();
    let seqs: Vec<u64> = received
        .iter()
        .map(|d| FrameMeta::find_in_temporal_unit(&d.data).unwrap().unwrap().seq)
        .collect();
    assert_eq!(
        seqs,
        (0..40).collect::<Vec<_>>(),
        "every frame arrives whole despite 1 in 7 datagrams lost"
    );
    for (data, sent) in received.iter().zip(&stream) {
        let expected = remove_obus(&sent.data, |o| o.obu_type == ObuType::TemporalDelimiter).unwrap();
        assert_eq!(&*data.data, expected.as_slice());
    }
}

#[test]
fn a_large_keyframe_is_paced_out_not_burst() {
    let mut net = Net::new(4);
    net.hub = Hub::new(
        HubConfig {
            pacing_kbps: 3_000,
            ..net.hub_config()
        },
        [7; 32],
    );
    net.join(6000);
    // A 60 kB keyframe: 480 kbit, about 160 ms of wire time at 3 Mbit/s.
    let mut frame = encoded_stream(1).remove(0);
    let mut data = vec![0x12, 0x00, 0x32];
    crate::av1::obu::write_leb128(60_000, &mut data);
    data.resize(data.len() + 60_000, 0xaa);
    frame.data = data;
    net.sent_log.clear();
    net.hub.handle_frame(net.now, &frame);
    for _ in 0..100 {
        net.advance(Duration::from_millis(5));
    }
    let media: Vec<Instant> = net
        .sent_log
        .iter()
        .filter(|(_, len)| *len > 900)
        .map(|(t, _)| *t)
        .collect();
    assert!(media.len() >= 50, "the frame went out in {} packets", media.len());
    let spread = *media.last().unwrap() - media[0];
    assert!(
        spread >= Duration::from_millis(60),
        "60 kB left within {spread:?}: a burst"
    );
    assert!(net.clients[0].received().len() == 1, "and it arrived whole");
}

#[test]
fn a_late_joiner_starts_at_a_keyframe_and_others_are_undisturbed() {
    let stream = encoded_stream(64);
    let mut net = Net::new(4);
    net.join(6000);
    for frame in &stream[..5] {
        net.send(frame);
    }
    net.join(6001);
    for frame in &stream[5..] {
        net.send(frame);
    }
    net.advance(Duration::from_millis(200));
    let first: Vec<u64> = net.clients[0]
        .received()
        .iter()
        .map(|d| FrameMeta::find_in_temporal_unit(&d.data).unwrap().unwrap().seq)
        .collect();
    assert_eq!(first, (0..64).collect::<Vec<_>>(), "the first viewer got every frame");
    let late: Vec<u64> = net.clients[1]
        .received()
        .iter()
        .map(|d| FrameMeta::find_in_temporal_unit(&d.data).unwrap().unwrap().seq)
        .collect();
    // The pre-recorded stream cannot honour the forced keyframe, so the late
    // viewer waits for the scheduled one at frame 30 and gets everything after.
    assert_eq!(late, (30..64).collect::<Vec<_>>());
    assert!(net.clients[1].received()[0].is_keyframe());
    assert_eq!(net.forced_keyframes, 2);
}

#[test]
fn keyframe_requests_from_viewers_are_rate_limited() {
    let stream = encoded_stream(10);
    let mut net = Net::new(4);
    let (index, _) = net.join(6000);
    net.send(&stream[0]);
    let before = net.forced_keyframes;
    for _ in 0..5 {
        let mid = net.clients[index].mid;
        let mut writer = net.clients[index].rtc.writer(mid).unwrap();
        // A receiver's PLI goes out through its media; str0m sends it as RTCP.
        let _ = writer.request_keyframe(None, KeyframeRequestKind::Pli);
        net.advance(Duration::from_millis(20));
    }
    net.advance(Duration::from_millis(400));
    let forced = net.forced_keyframes - before;
    assert!(
        (1..=2).contains(&forced),
        "5 PLIs in 100 ms gave {forced} forced keyframes"
    );
}

#[test]
fn limits_and_bad_offers_are_refused_and_sessions_end() {
    let mut net = Net::new(2);
    let (_, first) = net.join(6000);
    net.join(6001);
    let (_, offer, _) = client(net.now, 6002, Codec::Av1);
    assert_eq!(
        net.hub.add_viewer(net.now, offer).unwrap_err(),
        WhepError::ViewerLimit(2)
    );
    net.hub.remove_viewer(first).unwrap();
    assert_eq!(net.hub.remove_viewer(first), Err(WhepError::NotFound));
    assert_eq!(net.hub.viewer_count(), 1);
    let (_, offer, _) = client(net.now, 6003, Codec::Vp8);
    assert_eq!(net.hub.add_viewer(net.now, offer).unwrap_err(), WhepError::NoAv1Video);
    assert_eq!("zz".parse::<ViewerId>(), Err(WhepError::NotFound));
    assert_eq!(first.to_string().parse::<ViewerId>(), Ok(first));
}

#[test]
fn a_viewer_that_vanishes_is_dropped() {
    let mut net = Net::new(2);
    net.join(6000);
    assert_eq!(net.hub.viewer_count(), 1);
    net.clients.clear(); // its datagrams now go nowhere
    for _ in 0..120 {
        net.advance(Duration::from_millis(250));
    }
    assert_eq!(net.hub.viewer_count(), 0, "a silent viewer is timed out");
}

#[test]
fn offers_that_never_connect_give_their_slots_back() {
    let mut net = Net::new(2);
    // Two clients take the answers and vanish, as a tab closed before the
    // answer arrived, or an offer whose candidates the hub cannot reach.
    for port in [6000, 6001] {
        let (_, offer, _) = client(net.now, port, Codec::Av1);
        net.hub.add_viewer(net.now, offer).unwrap();
    }
    let (_, offer, _) = client(net.now, 6002, Codec::Av1);
    assert_eq!(
        net.hub.add_viewer(net.now, offer).unwrap_err(),
        WhepError::ViewerLimit(2)
    );
    let deadline = net.now + Duration::from_secs(12);
    while net.now < deadline && net.hub.viewer_count() > 0 {
        // The hub says when it wants to be woken; nothing else arrives.
        let next = net.hub.poll_timeout().expect("a deadline for the waiting viewers");
        net.now = next.max(net.now + Duration::from_millis(1));
        net.hub.handle_timeout(net.now);
    }
    assert_eq!(net.hub.viewer_count(), 0, "slots still held after 12 s");
    // A real viewer gets in.
    net.join(6003);
    assert_eq!(net.hub.connected_count(), 1);
}

#[test]
fn a_link_local_or_unusable_address_is_left_out_of_the_answer() {
    let mut net = Net::new(2);
    net.hub.set_candidates(vec![
        "169.254.10.20:5000".parse().unwrap(),
        "255.255.255.255:5000".parse().unwrap(),
        HUB_ADDR.parse().unwrap(),
    ]);
    let (_, id) = net.join(6000);
    assert_eq!(net.hub.connected_count(), 1);
    net.hub.remove_viewer(id).unwrap();
    // With no usable address at all the offer is refused, and says why.
    net.hub.set_candidates(vec!["169.254.10.20:5000".parse().unwrap()]);
    let (_, offer, _) = client(net.now, 6001, Codec::Av1);
    let err = net.hub.add_viewer(net.now, offer).unwrap_err();
    assert!(err.to_string().contains("no usable address"), "{err}");
}

#[test]
fn new_candidates_reach_the_next_answer() {
    let mut net = Net::new(2);
    net.hub.set_candidates(vec![
        "127.0.0.1:5000".parse().unwrap(),
        "127.0.0.9:5000".parse().unwrap(),
    ]);
    let (_, offer, _) = client(net.now, 6000, Codec::Av1);
    let (_, answer) = net.hub.add_viewer(net.now, offer).unwrap();
    let sdp = answer.to_sdp_string();
    assert!(sdp.contains("127.0.0.9 5000"), "{sdp}");
}

#[test]
fn session_ids_are_128_random_bits_and_debug_hides_them() {
    let mut a = Net::new(4);
    let (_, first) = a.join(6000);
    let (_, second) = a.join(6001);
    let text = first.to_string();
    assert_eq!(text.len(), 32);
    assert_ne!(first, second);
    assert_eq!(text.parse::<ViewerId>(), Ok(first));
    assert!(!format!("{first:?}").contains(&text[..8]));
    // A different key gives different identifiers.
    let mut b = Net::new(4);
    b.hub = Hub::new(b.hub_config(), [8; 32]);
    let (_, other) = b.join(6000);
    assert_ne!(other, first);
    for bad in ["0123456789abcdef", "+0123456789abcdef0123456789abcde", ""] {
        assert_eq!(bad.parse::<ViewerId>(), Err(WhepError::NotFound), "{bad}");
    }
}

#[test]
fn one_viewer_sending_pli_nonstop_gets_only_its_keyframe_budget() {
    let stream = encoded_stream(2);
    let mut net = Net::new(4);
    let (index, _) = net.join(6000);
    net.send(&stream[0]);
    let before = net.forced_keyframes;
    // 10 s of a PLI every 100 ms.
    for _ in 0..100 {
        let mid = net.clients[index].mid;
        let mut writer = net.clients[index].rtc.writer(mid).unwrap();
        let _ = writer.request_keyframe(None, KeyframeRequestKind::Pli);
        net.advance(Duration::from_millis(100));
    }
    let forced = net.forced_keyframes - before;
    // The global limit alone would allow one every 300 ms, about 33.
    assert!(
        (3..=8).contains(&forced),
        "100 PLIs in 10 s gave {forced} forced keyframes"
    );
}

#[test]
fn a_client_that_keeps_ice_alive_but_never_finishes_dtls_loses_its_slot() {
    let mut net = Net::new(1);
    let (mut client, offer, pending) = client(net.now, 6000, Codec::Av1);
    let (_, answer) = net.hub.add_viewer(net.now, offer).unwrap();
    client.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    // The client answers ICE checks and sends its own, but every DTLS
    // record it would send is dropped: ICE stays up, the session never starts.
    let end = net.now + Duration::from_secs(30);
    let mut to_hub = Vec::new();
    while net.now < end && net.hub.viewer_count() > 0 {
        net.now += Duration::from_millis(20);
        let now = net.now;
        client.rtc.handle_input(Input::Timeout(now)).unwrap();
        drain(&mut client, &mut to_hub);
        for (source, destination, contents) in to_hub.drain(..) {
            if contents.first().is_some_and(|b| *b < 2) {
                net.hub.handle_receive(now, source, destination, &contents);
            }
        }
        if net.hub.poll_timeout().is_some_and(|t| t <= now) {
            net.hub.handle_timeout(now);
        }
        while let Some(output) = net.hub.poll_output() {
            if let HubOutput::Transmit {
                source,
                destination,
                contents,
            } = output
            {
                let receive = Receive::new(Protocol::Udp, source, destination, &contents).unwrap();
                if client.rtc.handle_input(Input::Receive(now, receive)).is_ok() {
                    drain(&mut client, &mut to_hub);
                }
            }
        }
    }
    assert_eq!(net.hub.viewer_count(), 0, "a half-open session kept its slot for 30 s");
    assert!(client.rtc.is_alive(), "the client side stayed up throughout");
}
