//! `mado inspect` on a recorded test-pattern stream shows the calibration
//! target moving along its path, one entry per frame, and the decoded
//! pictures have the target where the metadata says.

mod common;

use std::process::Command;

use common::{mado, record_testpattern, require_tool, run_ok};
use mado::source::target_rect;
use serde_json::Value;

const FRAMES: u64 = 48;

#[test]
fn inspect_lists_every_frame_with_the_target_on_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let ivf = record_testpattern(dir.path(), "pattern.ivf", "320x240", FRAMES);
    let out = run_ok(mado().arg("inspect").arg(&ivf));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, FRAMES, "one line per frame");

    let size = "320x240".parse().unwrap();
    let mut xs = Vec::new();
    let mut last_capture = 0;
    for (seq, line) in (0u64..).zip(&lines) {
        let meta = &line["meta"];
        assert_eq!(meta["seq"], seq, "no gaps, in order");
        assert_eq!(
            (meta["width"].as_u64(), meta["height"].as_u64()),
            (Some(320), Some(240))
        );
        let capture = meta["capture_us"].as_u64().unwrap();
        assert!(capture >= last_capture, "capture times never go back");
        last_capture = capture;
        let detections = &meta["detections"];
        assert_eq!(detections["frame_seq"], seq);
        let items = detections["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["label"], "target");
        let b: Vec<f64> = items[0]["box"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let want = target_rect(size, seq);
        let px = |frac: f64, total: f64| (frac * total).round() as u32;
        assert_eq!([px(b[0], 320.0), px(b[1], 240.0)], [want.x, want.y], "frame {seq}");
        assert_eq!(
            [px(b[2], 320.0), px(b[3], 240.0)],
            [want.side, want.side],
            "frame {seq}"
        );
        xs.push(want.x);
    }
    xs.dedup();
    assert!(xs.len() as u64 > FRAMES * 3 / 4, "the target moves nearly every frame");
}

#[test]
fn decoded_pictures_show_the_target_where_the_metadata_puts_it_rav1e() {
    decoded_pictures_show_the_target("rav1e");
}

#[test]
fn decoded_pictures_show_the_target_where_the_metadata_puts_it_aom() {
    decoded_pictures_show_the_target("aom");
}

fn decoded_pictures_show_the_target(backend: &str) {
    require_tool("dav1d", "dav1d");
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[encoder]\nbackend = \"{backend}\"\n");
    let ivf = common::record_with(dir.path(), "pattern.ivf", "320x240", 24, &config);
    let yuv = dir.path().join("decoded.yuv");
    run_ok(Command::new("dav1d").arg("-q").arg("-i").arg(&ivf).arg("-o").arg(&yuv));
    let raw = std::fs::read(&yuv).unwrap();
    let (w, h) = (320usize, 240usize);
    let frame_len = w * h * 3 / 2;
    assert_eq!(raw.len(), 24 * frame_len);
    let (_, frames) = common::read_ivf(&ivf);
    for (seq, (picture, coded)) in raw.chunks(frame_len).zip(&frames).enumerate() {
        let meta = mado::meta::FrameMeta::find_in_temporal_unit(&coded.data)
            .unwrap()
            .unwrap();
        let [x, y, bw, bh] = meta.detections.unwrap().items[0]
            .bbox
            .to_pixels(320, 240)
            .map(|v| v as usize);
        let v_plane = &picture[w * h + w * h / 4..];
        let v_at = |px: usize, py: usize| v_plane[(py / 2) * (w / 2) + px / 2];
        // Inside the box the picture is red (high V); a box width to the side it is not.
        assert!(
            v_at(x + bw / 2, y + bh / 2) > 200,
            "frame {seq}: no target at the box centre"
        );
        let beside = if x + 2 * bw < w { x + bw + bw / 2 } else { x - bw / 2 };
        assert!(v_at(beside, y + bh / 2) < 170, "frame {seq}: red outside the box");
    }
}
