//! The adaptation loop on a simulated clock: str0m's congestion estimates
//! for a strong and a weak viewer feed the rate controller, whose target
//! sizes the frames of a synthetic two-layer encoder, and the hub decides
//! per viewer which layers to send. No sockets, no encoder, no threads.

use std::collections::HashMap;
use std::time::Duration;

use super::tests::{Link, Net};
use crate::adapt::{RateController, Rung};
use crate::av1::obu::{obus, write_leb128, ObuType};
use crate::encode::EncodedFrame;
use crate::frame::{CaptureTime, FrameInfo};

const FRAME_TIME: Duration = Duration::from_micros(33_333);

/// A temporal unit of `bytes` whose frame OBU starts with `seq`.
fn synthetic(net: &Net, seq: u64, keyframe: bool, layer: u8, bytes: usize) -> EncodedFrame {
    let mut payload = seq.to_be_bytes().to_vec();
    payload.resize(bytes.max(8), 0xa5);
    let mut data = vec![0x12, 0x00, ObuType::Frame.code() << 3 | 0x02];
    write_leb128(payload.len() as u64, &mut data);
    data.extend(payload);
    EncodedFrame {
        info: FrameInfo {
            seq,
            capture: CaptureTime {
                mono: net.now,
                wall_us: 1_000_000 + seq * 33_333,
            },
            size: "320x240".parse().unwrap(),
            detections: None,
        },
        keyframe,
        temporal_layer: layer,
        data,
    }
}

/// The sequence numbers a client received after `since`, in order.
fn received_since(net: &Net, client: usize, since: std::time::Instant) -> Vec<u64> {
    net.clients[client]
        .received()
        .iter()
        .filter(|d| d.network_time >= since)
        .filter_map(|d| {
            let frame = obus(&d.data).flatten().find(|o| o.obu_type == ObuType::Frame)?;
            Some(u64::from_be_bytes(frame.payload.get(..8)?.try_into().ok()?))
        })
        .collect()
}

#[test]
fn a_weak_viewer_gets_the_base_layer_and_does_not_drag_the_strong_one_down() {
    let mut net = Net::new(4);
    let (strong, _) = net.join(6001);
    let (weak, _) = net.join(6002);
    net.links.push(Link::new("127.0.0.1:6002".parse().unwrap(), 700));
    let ladder = vec![Rung {
        min_kbps: 0,
        scale: 1,
        fps: 30,
    }];
    let mut control = RateController::new(ladder, 3000, 100, 0.6);
    let mut layers = HashMap::new();
    let (mut since_keyframe, mut forced) = (0u64, net.forced_keyframes);
    let start = net.now;
    let mut next_adapt = start;
    for seq in 0..(40 * 30) {
        // The encoder: keyframes when asked, layers alternating from each,
        // the base layer with 60% of the bits.
        let keyframe = seq == 0 || net.forced_keyframes > forced;
        if keyframe {
            since_keyframe = 0;
            forced = net.forced_keyframes;
        }
        let layer = (since_keyframe % 2) as u8;
        since_keyframe += 1;
        let average = control.plan().bitrate_kbps as usize * 1000 / 8 / 30;
        let bytes = if layer == 0 { average * 6 / 5 } else { average * 4 / 5 };
        layers.insert(seq, layer);
        let frame = synthetic(&net, seq, keyframe, layer, bytes);
        net.hub.handle_frame(net.now, &frame);
        for _ in 0..6 {
            net.advance(FRAME_TIME / 6);
        }
        if net.now >= next_adapt {
            control.handle_links(net.now, &net.hub.links());
            net.hub.set_stream_kbps(control.plan().bitrate_kbps);
            next_adapt = net.now + Duration::from_millis(500);
        }
    }

    let links = net.hub.links();
    let target = control.plan().bitrate_kbps;
    let since = net.now - Duration::from_secs(10);
    let got_strong = received_since(&net, strong, since);
    let got_weak = received_since(&net, weak, since);
    let base = |got: &[u64]| got.iter().filter(|s| layers[*s] == 0).count();
    let summary = format!(
        "target {target} kbps, links {links:?}, last 10 s: strong {} frames ({} base), weak {} ({} base)",
        got_strong.len(),
        base(&got_strong),
        got_weak.len(),
        base(&got_weak)
    );
    // The weak link was found out, and the target sits where the weak
    // viewer's base layer (60%) fits its link: above what that link carries.
    assert!(links.iter().any(|l| l.base_only && l.estimate_kbps < 1000), "{summary}");
    assert!(target > 700 && target < 1400, "{summary}");
    // The strong viewer gets every frame; the weak one the base layer.
    assert!(got_strong.len() >= 285, "{summary}");
    assert!(base(&got_strong) * 2 < got_strong.len() + 10, "{summary}");
    assert!(
        got_weak.len() >= 130 && base(&got_weak) * 10 >= got_weak.len() * 9,
        "{summary}"
    );
}
