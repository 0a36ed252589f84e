//! Real AV1 decoders (dav1d, aomdec) decode a recorded stream to exactly the
//! same pictures with and without Mado's metadata OBUs.

mod common;

use std::path::Path;
use std::process::Command;

use common::{mado, read_ivf, require_tool, run_ok};
use mado::av1::ivf::IvfWriter;
use mado::meta::{strip_from_temporal_unit, FrameMeta};
use md5::{Digest, Md5};

const FRAMES: usize = 45;
const SIZE: (usize, usize) = (320, 240);

/// Decodes `ivf` with `decoder` to raw I420; returns (md5, frame count).
fn decode(decoder: &str, ivf: &Path, out: &Path) -> (String, usize) {
    match decoder {
        "dav1d" => run_ok(Command::new("dav1d").arg("-q").arg("-i").arg(ivf).arg("-o").arg(out)),
        "aomdec" => run_ok(Command::new("aomdec").arg("--rawvideo").arg("-o").arg(out).arg(ivf)),
        other => unreachable!("{other}"),
    };
    let raw = std::fs::read(out).unwrap();
    let frame_len = SIZE.0 * SIZE.1 * 3 / 2;
    assert_eq!(raw.len() % frame_len, 0, "{decoder} output is not whole frames");
    (format!("{:x}", Md5::digest(&raw)), raw.len() / frame_len)
}

#[test]
fn rav1e_stream_decodes_identically_with_and_without_metadata() {
    decoders_agree("backend = \"rav1e\"");
}

#[test]
fn aom_stream_decodes_identically_with_and_without_metadata() {
    decoders_agree("backend = \"aom\"\ntemporal_layers = 1");
}

#[test]
fn layered_aom_stream_decodes_identically_with_and_without_metadata() {
    decoders_agree("backend = \"aom\"\ntemporal_layers = 2");
}

fn decoders_agree(encoder: &str) {
    require_tool("dav1d", "dav1d");
    require_tool("aomdec", "aom-tools");
    let dir = tempfile::tempdir().unwrap();
    // Short keyframe interval, so the stream has several sequence headers too.
    let config = dir.path().join("mado.toml");
    std::fs::write(&config, format!("[encoder]\nkeyframe_interval = 15\n{encoder}\n")).unwrap();
    let with_meta = dir.path().join("with-meta.ivf");
    run_ok(
        mado()
            .arg("--config")
            .arg(&config)
            .args(["record", "--source", "testpattern", "--pace", "fast"])
            .args([
                "--size",
                "320x240",
                "--frames",
                &FRAMES.to_string(),
                "--output",
                with_meta.to_str().unwrap(),
            ]),
    );

    let (header, frames) = read_ivf(&with_meta);
    assert_eq!(frames.len(), FRAMES);
    assert_eq!(
        (header.width, header.height, header.frame_count),
        (320, 240, FRAMES as u32)
    );
    let without_meta = dir.path().join("without-meta.ivf");
    let mut writer = IvfWriter::new(std::fs::File::create(&without_meta).unwrap(), header).unwrap();
    for (seq, frame) in frames.iter().enumerate() {
        let meta = FrameMeta::find_in_temporal_unit(&frame.data).unwrap();
        assert_eq!(meta.map(|m| m.seq), Some(seq as u64), "frame {seq} lacks its metadata");
        let stripped = strip_from_temporal_unit(&frame.data).unwrap();
        assert!(stripped.len() < frame.data.len());
        assert_eq!(FrameMeta::find_in_temporal_unit(&stripped).unwrap(), None);
        writer.write_frame(frame.pts, &stripped).unwrap();
    }
    writer.finish().unwrap();

    let mut digests = Vec::new();
    for decoder in ["dav1d", "aomdec"] {
        let a = decode(decoder, &with_meta, &dir.path().join(format!("{decoder}-with.yuv")));
        let b = decode(
            decoder,
            &without_meta,
            &dir.path().join(format!("{decoder}-without.yuv")),
        );
        assert_eq!(
            a.1, FRAMES,
            "{decoder} decoded {} of {FRAMES} frames with metadata",
            a.1
        );
        assert_eq!(
            b.1, FRAMES,
            "{decoder} decoded {} of {FRAMES} frames without metadata",
            b.1
        );
        assert_eq!(a.0, b.0, "{decoder} output differs when the metadata is present");
        digests.push(a.0);
    }
    assert_eq!(digests[0], digests[1], "dav1d and aomdec disagree");
}

/// A viewer on a slow link is sent only the base temporal layer: every other
/// frame. Both decoders must decode exactly those frames, and each still
/// carries its own metadata.
#[test]
fn base_layer_of_a_layered_aom_stream_decodes_on_its_own() {
    require_tool("dav1d", "dav1d");
    require_tool("aomdec", "aom-tools");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mado.toml");
    std::fs::write(
        &config,
        "[encoder]\nbackend = \"aom\"\ntemporal_layers = 2\nkeyframe_interval = 16\n",
    )
    .unwrap();
    let layered = dir.path().join("layered.ivf");
    run_ok(
        mado()
            .arg("--config")
            .arg(&config)
            .args([
                "record",
                "--source",
                "testpattern",
                "--pace",
                "fast",
                "--size",
                "320x240",
            ])
            .args(["--frames", &FRAMES.to_string(), "--output", layered.to_str().unwrap()]),
    );
    let (mut header, frames) = read_ivf(&layered);
    let layer_of = |data: &[u8]| {
        mado::av1::obu::obus(data)
            .map(|o| o.unwrap())
            .find(|o| o.obu_type.starts_picture())
            .map(|o| o.temporal_id().unwrap_or(0)) // libaom omits the extension on the base layer
            .unwrap()
    };
    let layers: Vec<u8> = frames.iter().map(|f| layer_of(&f.data)).collect();
    assert_eq!(layers[..4], [0, 1, 0, 1]);
    let base: Vec<_> = frames.iter().filter(|f| layer_of(&f.data) == 0).collect();
    assert_eq!(base.len(), FRAMES.div_ceil(2));
    header.frame_count = base.len() as u32;
    let base_only = dir.path().join("base.ivf");
    let mut writer = IvfWriter::new(std::fs::File::create(&base_only).unwrap(), header).unwrap();
    for frame in &base {
        let meta = FrameMeta::find_in_temporal_unit(&frame.data).unwrap().unwrap();
        assert_eq!(meta.seq % 2, 0, "frame {} is in the base layer", meta.seq);
        writer.write_frame(frame.pts, &frame.data).unwrap();
    }
    writer.finish().unwrap();
    let mut digests = Vec::new();
    for decoder in ["dav1d", "aomdec"] {
        let (md5, count) = decode(decoder, &base_only, &dir.path().join(format!("{decoder}-base.yuv")));
        assert_eq!(
            count,
            base.len(),
            "{decoder} decoded {count} of {} base-layer frames",
            base.len()
        );
        digests.push(md5);
    }
    assert_eq!(digests[0], digests[1], "dav1d and aomdec disagree on the base layer");
}
