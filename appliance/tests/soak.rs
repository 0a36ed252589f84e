//! `mado run` under abuse on loopback, while a real str0m viewer plays:
//! a thousand slow or stalled HTTP connections, a UDP flood at the media
//! port, and hundreds of abandoned offers. Each is bounded in count and
//! time (about a minute for the file).

#![allow(
    clippy::disallowed_methods,
    reason = "integration tests drive the real binary and wait on real time"
)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::live::{Server, Viewer};
use mado::meta::FrameMeta;
use socket2::{Domain, Socket, Type};
use str0m::format::Codec;

/// A viewer that joined and now plays on its own thread for `duration`;
/// also its session's resource path.
fn play(server: &Server, duration: Duration) -> (JoinHandle<Viewer>, String) {
    let (mut viewer, offer) = Viewer::new(&[Codec::Av1]);
    let (status, location, answer) = server.post_whep("application/sdp", offer.as_bytes());
    assert_eq!(status, 201, "{answer}");
    viewer.accept(&answer);
    let playing = std::thread::spawn(move || {
        viewer.run_for(duration);
        viewer
    });
    (playing, location.expect("a Location header"))
}

/// Each received frame's sequence number and when it arrived.
fn frames(viewer: &Viewer) -> Vec<(u64, Instant)> {
    viewer
        .frames
        .iter()
        .map(|d| {
            let meta = FrameMeta::find_in_temporal_unit(&d.data).unwrap().expect("metadata");
            (meta.seq, d.network_time)
        })
        .collect()
}

/// Frames the encoder dropped so far (those never reach any viewer).
fn dropped(server: &Server) -> u64 {
    server.status()["frames_dropped"].as_u64().unwrap()
}

/// A connection to `to` from the loopback address `from`, with a small
/// receive buffer so a client that does not read is felt quickly.
fn connect_from(from: &str, to: SocketAddr) -> Option<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    socket.set_recv_buffer_size(4096).ok()?;
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).ok()?;
    socket.connect_timeout(&to.into(), Duration::from_secs(2)).ok()?;
    Some(socket.into())
}

/// How the server sees a connection after `wait`: true if it closed it.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn a_thousand_slow_connections_leave_the_viewer_and_the_status_api_alone() {
    let server = Server::start(&[]);
    let http = server.http_addr();
    std::thread::sleep(Duration::from_secs(1));
    let (fds_before, rss_before) = (server.descriptors(), server.rss_kib());
    let dropped_before = dropped(&server);
    let (viewer, session) = play(&server, Duration::from_secs(12));
    std::thread::sleep(Duration::from_secs(2));

    // 1,000 connections from five other loopback addresses (a few
    // misbehaving hosts): a third never finish their headers, a third
    // announce an offer and stall, a third pipeline requests for the biggest
    // asset and never read.
    let attack_start = Instant::now();
    let mut held = Vec::new();
    for i in 0..1000 {
        let from = format!("127.0.0.{}", 2 + i % 5);
        let Some(mut stream) = connect_from(&from, http) else {
            continue;
        };
        let auth = server.auth.bearer();
        let request: Vec<u8> = match i % 3 {
            0 => b"GET /api/status HTTP/1.1\r\nHost: lo".to_vec(),
            1 => format!("POST /whep HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Type: application/sdp\r\nContent-Length: 5000\r\n\r\nv=0\r\n")
                .into_bytes(),
            _ => format!("GET /app.js HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\n\r\n")
                .repeat(400)
                .into_bytes(),
        };
        stream.set_write_timeout(Some(Duration::from_millis(50))).unwrap();
        let _ = stream.write_all(&request);
        held.push(stream);
    }
    let opened = attack_start.elapsed();
    // The status API, from this host's own address, while all that is held.
    let mut slowest = Duration::ZERO;
    let mut answered = 0;
    while attack_start.elapsed() < Duration::from_secs(6) {
        let t = Instant::now();
        assert_eq!(server.status()["viewers"], 1);
        slowest = slowest.max(t.elapsed());
        answered += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let viewer = viewer.join().unwrap();
    assert_eq!(server.delete(&session), 200);
    let got = frames(&viewer);
    let lost_by_encoder = dropped(&server) - dropped_before;
    let in_attack: Vec<u64> = got
        .iter()
        .filter(|(_, at)| *at >= attack_start)
        .map(|(seq, _)| *seq)
        .collect();
    let gaps: u64 = in_attack.windows(2).map(|w| w[1] - w[0] - 1).sum();
    let fds_during = server.descriptors();
    eprintln!(
        "{} connections held (opened in {opened:?}); status: {answered} answers, slowest {slowest:?}; \
         viewer: {} frames during the attack, {gaps} missing, encoder dropped {lost_by_encoder}; \
         descriptors {fds_before} before, {fds_during} during",
        held.len(),
        in_attack.len()
    );
    assert!(in_attack.len() >= 200, "the viewer got {} frames", in_attack.len());
    assert!(gaps <= lost_by_encoder, "{gaps} frames missing at the viewer");
    assert!(slowest < Duration::from_millis(100), "/api/status took {slowest:?}");

    // The attackers keep their sockets open; the server's timeouts close them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.descriptors() > fds_before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    let (fds_after, rss_after) = (server.descriptors(), server.rss_kib());
    let closed = held.iter_mut().map(closed_by_server).filter(|&c| c).count();
    eprintln!(
        "after {:?}: descriptors {fds_after}, {closed} of {} closed by the server; RSS {rss_before} -> {rss_after} KiB",
        attack_start.elapsed(),
        held.len()
    );
    assert!(fds_after <= fds_before + 2, "descriptors {fds_before} -> {fds_after}");
    assert_eq!(closed, held.len(), "connections the server still holds");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS {rss_before} -> {rss_after} KiB"
    );
}

#[test]
fn a_udp_flood_at_the_media_port_leaves_a_viewer_playing() {
    let server = Server::start(&[]);
    std::thread::sleep(Duration::from_secs(1));
    let (mut viewer, offer) = Viewer::new(&[Codec::Av1]);
    let (status, _, answer) = server.post_whep("application/sdp", offer.as_bytes());
    assert_eq!(status, 201, "{answer}");
    let media = Viewer::media_addr(&answer);
    viewer.accept(&answer);
    let dropped_before = dropped(&server);
    let viewer = std::thread::spawn(move || {
        viewer.run_for(Duration::from_secs(9));
        viewer
    });
    std::thread::sleep(Duration::from_secs(2));
    // Two senders as fast as loopback takes them for 5 s: RTP-looking junk
    // and STUN-looking requests with a bogus user name.
    let flood_start = Instant::now();
    let senders: Vec<JoinHandle<u64>> = (0..2)
        .map(|kind| {
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut datagram = vec![0u8; 200];
                if kind == 0 {
                    datagram[0] = 0x80; // RTP version 2
                    datagram[1] = 96;
                } else {
                    datagram.truncate(20);
                    datagram[1] = 0x01; // binding request
                    datagram[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
                }
                let mut sent = 0u64;
                while flood_start.elapsed() < Duration::from_secs(5) {
                    datagram[8..16].copy_from_slice(&sent.to_be_bytes());
                    if socket.send_to(&datagram, media).is_ok() {
                        sent += 1;
                    }
                }
                sent
            })
        })
        .collect();
    let sent: u64 = senders.into_iter().map(|s| s.join().unwrap()).sum();
    let viewer = viewer.join().unwrap();
    let in_flood: Vec<u64> = frames(&viewer)
        .iter()
        .filter(|(_, at)| *at >= flood_start && *at < flood_start + Duration::from_secs(5))
        .map(|(seq, _)| *seq)
        .collect();
    let encoder_dropped = dropped(&server) - dropped_before;
    eprintln!(
        "{sent} datagrams in 5 s ({:.0}/s); the viewer got {} frames meanwhile (of 150), encoder dropped {encoder_dropped}",
        sent as f64 / 5.0,
        in_flood.len()
    );
    assert!(
        in_flood.len() >= 135,
        "only {} of 150 frames during the flood",
        in_flood.len()
    );
}

#[test]
fn two_hundred_abandoned_offers_then_a_real_viewer_still_gets_in() {
    let server = Server::start(&[]);
    let http = server.http_addr();
    let started = Instant::now();
    let mut half_opens = Vec::new();
    for i in 0..200 {
        if i % 4 == 0 {
            // An offer with no candidates at all: nothing will ever arrive.
            let (_, offer) = Viewer::new(&[Codec::Av1]);
            let bare: String = offer
                .split_inclusive("\r\n")
                .filter(|l| !l.starts_with("a=candidate"))
                .collect();
            let (status, _, reason) = server.post_whep("application/sdp", bare.as_bytes());
            assert!(status == 201 || status == 503, "{status} {reason}");
        } else if i % 2 == 0 {
            // Posts an offer and hangs up before the answer.
            let (_, offer) = Viewer::new(&[Codec::Av1]);
            let mut stream = TcpStream::connect(http).unwrap();
            let head = format!(
                "POST /whep HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
                server.auth.bearer(),
                offer.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(offer.as_bytes()).unwrap();
            drop(stream);
        } else {
            // Takes the answer, then keeps ICE alive but never starts DTLS:
            // a half-open session (the limit of 16 refuses most of these
            // while the slots are taken).
            let (mut half_open, offer) = Viewer::new(&[Codec::Av1]);
            let (status, _, answer) = server.post_whep("application/sdp", offer.as_bytes());
            assert!(status == 201 || status == 503, "{status}");
            if status == 201 {
                half_open.accept(&answer);
                half_opens.push(std::thread::spawn(move || {
                    half_open.run_ice_only_for(Duration::from_secs(25))
                }));
            }
        }
    }
    eprintln!(
        "200 abandoned offers in {:?}, {} of them half-open",
        started.elapsed(),
        half_opens.len()
    );
    // The slots come back by the connect deadline; then a real viewer plays.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut viewer, answer) = loop {
        let (viewer, offer) = Viewer::new(&[Codec::Av1]);
        let (status, _, answer) = server.post_whep("application/sdp", offer.as_bytes());
        if status == 201 {
            break (viewer, answer);
        }
        assert_eq!(status, 503, "{answer}");
        assert!(Instant::now() < deadline, "no slot came back: {}", server.status());
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("a real viewer got 201 after {:?}", started.elapsed());
    viewer.accept(&answer);
    viewer.run_for(Duration::from_secs(3));
    assert!(viewer.frames.len() >= 30, "only {} frames", viewer.frames.len());
    let status = server.status();
    assert_eq!(status["viewers_connected"], 1, "{status}");
    for h in half_opens {
        h.join().unwrap();
    }
}

/// The long soak, not run by default: `mado run` on 1280x720 street
/// footage (`scripts/fetch-footage`) with the detector on (the SSD model and
/// the LiteRT runtime from `scripts/models/fetch-runtime`) while four viewers join and leave every
/// few seconds; reports the server's RSS slope and descriptor count. `MADO_SOAK_MINUTES` sets the length (30 by default):
///
/// ```sh
/// MADO_SOAK_MINUTES=30 cargo test -p mado --test soak -- --ignored --nocapture long_soak
/// ```
#[test]
#[ignore = "30 minutes; run by hand"]
fn long_soak() {
    let minutes: f64 = std::env::var("MADO_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30.0);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mado.toml");
    std::fs::write(&config, common::ssd_detect_config()).unwrap();
    // Street footage: the test pattern labels itself, and the detector
    // would never run.
    let footage = common::footage("vtest-1280x720.y4m");
    let source = format!("file:{}", footage.display());
    let server = Server::start_with(&["--source", &source], |c| {
        c.env("MADO_LOG", "info").env("MADO_CONFIG", &config);
    });
    let end = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let start = Instant::now();
    let mut samples: Vec<(f64, u64, usize)> = Vec::new();
    let mut sessions = 0u64;
    let mut frames = 0usize;
    while Instant::now() < end {
        // Four viewers, each staying 2 to 8 s, staggered.
        let viewers: Vec<(JoinHandle<Viewer>, String)> = (0..4u64)
            .map(|i| play(&server, Duration::from_secs(2 + (sessions + i * 3) % 7)))
            .collect();
        for (v, session) in viewers {
            let viewer = v.join().unwrap();
            assert_eq!(server.delete(&session), 200);
            frames += viewer.frames.len();
            sessions += 1;
        }
        let t = start.elapsed().as_secs_f64();
        samples.push((t, server.rss_kib(), server.descriptors()));
        if samples.len().is_multiple_of(10) {
            let (_, rss, fds) = samples.last().unwrap();
            eprintln!("{t:.0} s: {sessions} sessions, {frames} frames, RSS {rss} KiB, {fds} descriptors");
        }
    }
    // Least-squares slope of RSS over time, past the first minute's warm-up.
    let warm: Vec<&(f64, u64, usize)> = samples.iter().filter(|s| s.0 >= 60.0_f64.min(minutes * 20.0)).collect();
    let n = warm.len() as f64;
    let mean_t = warm.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_r = warm.iter().map(|s| s.1 as f64).sum::<f64>() / n;
    let cov: f64 = warm.iter().map(|s| (s.0 - mean_t) * (s.1 as f64 - mean_r)).sum();
    let var: f64 = warm.iter().map(|s| (s.0 - mean_t).powi(2)).sum();
    let slope_kib_per_min = cov / var * 60.0;
    let fds: Vec<usize> = warm.iter().map(|s| s.2).collect();
    let status = server.status();
    eprintln!(
        "SOAK {minutes} min: {sessions} sessions, {frames} frames; RSS {} -> {} KiB, slope {slope_kib_per_min:.1} KiB/min; \
         descriptors min {} max {} last {}; encoder dropped {}, detections {}",
        warm.first().map_or(0, |s| s.1),
        warm.last().map_or(0, |s| s.1),
        fds.iter().min().unwrap_or(&0),
        fds.iter().max().unwrap_or(&0),
        fds.last().unwrap_or(&0),
        status["frames_dropped"],
        status["detections_run"],
    );
    assert_eq!(status["viewers"], 0, "every session was ended");
    assert!(
        status["detections_run"].as_u64().unwrap_or(0) > 0,
        "the detector ran: {status}"
    );
}
