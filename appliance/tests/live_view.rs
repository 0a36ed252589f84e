//! `mado run` over real HTTP and UDP on loopback: WHEP statuses, viewer
//! limits, and a str0m viewer that receives the stream with its metadata.

#![allow(
    clippy::disallowed_methods,
    reason = "integration tests drive the real binary and wait on real time"
)]

mod common;

use std::time::Duration;

use common::live::{Server, Viewer};
use mado::meta::FrameMeta;
use str0m::format::Codec;

#[test]
fn whep_refuses_bad_requests_with_the_right_status() {
    let server = Server::start(&[]);
    let (status, _, reason) = server.post_whep("text/plain", b"v=0");
    assert_eq!(status, 415, "{reason}");
    assert_eq!(server.post_oversized(), 413);
    let (status, _, reason) = server.post_whep("application/sdp", b"v=0\r\nthis is not sdp");
    assert_eq!(status, 400);
    assert!(reason.contains("not valid SDP"), "{reason}");
    let (_, vp8_only) = Viewer::new(&[Codec::Vp8]);
    let (status, _, reason) = server.post_whep("application/sdp", vp8_only.as_bytes());
    assert_eq!(status, 400);
    assert!(reason.contains("AV1"), "{reason}");
    assert_eq!(server.delete("/whep/0123456789abcdef"), 404);
    assert_eq!(server.delete("/whep/nonsense"), 404);
    let patch = server
        .agent()
        .patch(format!("{}/whep/0123456789abcdef", server.base))
        .send(&b""[..])
        .unwrap();
    assert_eq!(patch.status().as_u16(), 405);
    // Still serving after all that.
    assert_eq!(server.status()["viewers"], 0);
}

#[test]
fn the_viewer_limit_gives_503_until_a_session_ends() {
    let server = Server::start(&["--max-viewers", "1"]);
    let (_, offer) = Viewer::new(&[Codec::Av1]);
    let (status, location, _) = server.post_whep("application/sdp", offer.as_bytes());
    assert_eq!(status, 201);
    let location = location.expect("a Location header");
    assert!(location.starts_with("/whep/"), "{location}");
    let (_, second) = Viewer::new(&[Codec::Av1]);
    let (status, _, reason) = server.post_whep("application/sdp", second.as_bytes());
    assert_eq!(status, 503, "{reason}");
    assert_eq!(server.delete(&location), 200);
    assert_eq!(server.delete(&location), 404);
    let (status, _, _) = server.post_whep("application/sdp; charset=utf-8", second.as_bytes());
    assert_eq!(status, 201);
}

#[test]
fn a_viewer_gets_a_forced_keyframe_at_once_then_every_frame_with_metadata() {
    // Scheduled keyframes only every 20 s: a prompt first picture must be a forced one.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mado.toml");
    std::fs::write(&config, "[encoder]\nkeyframe_interval = 600\n").unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(500));
    let (mut viewer, offer) = Viewer::new(&[Codec::Av1]);
    let (status, location, answer) = server.post_whep("application/sdp", offer.as_bytes());
    assert_eq!(status, 201, "{answer}");
    viewer.accept(&answer);
    viewer.run_for(Duration::from_secs(4));

    assert!(viewer.frames.len() >= 30, "only {} frames in 4 s", viewer.frames.len());
    assert!(
        viewer.frames[0].is_keyframe(),
        "the first frame a viewer gets is a keyframe"
    );
    let seqs: Vec<u64> = viewer
        .frames
        .iter()
        .map(|d| {
            FrameMeta::find_in_temporal_unit(&d.data)
                .unwrap()
                .expect("metadata")
                .seq
        })
        .collect();
    assert!(
        seqs[0] < 600,
        "the first picture came from a forced keyframe, not the scheduled one"
    );
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "frames arrive in order: {seqs:?}");
    let status = server.status();
    assert_eq!(
        (status["viewers"].as_u64(), status["viewers_connected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(server.delete(&location.unwrap()), 200);
    assert_eq!(server.status()["viewers"], 0);
}
