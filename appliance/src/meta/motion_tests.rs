//! The motion OBU: its test vectors (in `docs/metadata-vectors.json` under
//! `motion`) and the proof that readers of the detections OBU are unaffected.

use super::*;
use serde_json::{json, Value};

fn region(xywh: [f32; 4]) -> BBox {
    let [x, y, w, h] = xywh.map(Norm16::from_f32);
    BBox::new(x, y, w, h).unwrap()
}

/// The motion metadata behind the valid motion vectors, in file order.
pub(super) fn motion_metas() -> [(&'static str, MotionMeta); 3] {
    let still = MotionMeta {
        mode: GateMode::Still,
        moving: false,
        interval_ms: 1000,
        regions: Vec::new(),
    };
    let walking = MotionMeta {
        mode: GateMode::Motion,
        moving: true,
        interval_ms: 66,
        regions: [region([0.125, 0.25, 0.0625, 0.375]), region([0.5, 0.5, 0.25, 0.125])]
            .into_iter()
            .collect(),
    };
    let tracking = MotionMeta {
        mode: GateMode::Tracking,
        moving: false,
        interval_ms: 66,
        regions: Vec::new(),
    };
    [
        ("still-heartbeat", still),
        ("walking-two-regions", walking),
        ("tracking", tracking),
    ]
}

/// Broken motion OBUs, each the `walking-two-regions` vector changed in one way.
fn invalid_motion(valid: &[u8]) -> [(&'static str, std::vec::Vec<u8>, &'static str); 5] {
    let mut bad_id = valid.to_vec();
    bad_id[8] = b'M';
    let mut version = valid.to_vec();
    version[19] = 2;
    let mut mode = valid.to_vec();
    mode[20] = 3;
    let mut moving = valid.to_vec();
    moving[21] = 2;
    let mut no_trailing = valid.to_vec();
    *no_trailing.last_mut().unwrap() = 0x00;
    [
        ("motion-identifier-mismatch", bad_id, "not-mado"),
        ("motion-future-version", version, "unsupported-version"),
        ("unknown-gate-mode", mode, "malformed-body"),
        ("moving-not-a-bool", moving, "malformed-body"),
        ("motion-no-trailing-bits", no_trailing, "missing-trailing-bits"),
    ]
}

/// A temporal unit as the encoder writes it: temporal delimiter, the
/// detections OBU, the motion OBU, then the picture (a stand-in frame OBU).
pub(super) fn temporal_unit(meta: &FrameMeta, motion: &MotionMeta) -> std::vec::Vec<u8> {
    let tu = [&[0x12u8, 0x00][..], &[0x32, 0x02, 0xaa, 0xbb]].concat();
    let tu = obu::insert_before_picture(&tu, &meta.to_obu().unwrap()).unwrap();
    obu::insert_before_picture(&tu, &motion.to_obu().unwrap()).unwrap()
}

fn parse_hex(hex: &str) -> std::vec::Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> std::string::String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `motion` part of `docs/metadata-vectors.json`.
pub(super) fn vectors(frame: &FrameMeta) -> Value {
    let metas = motion_metas();
    let valid: std::vec::Vec<Value> = metas
        .iter()
        .map(|(name, m)| json!({"name": name, "motion": m, "hex": hex(&m.to_obu().unwrap())}))
        .collect();
    let invalid: std::vec::Vec<Value> = invalid_motion(&metas[1].1.to_obu().unwrap())
        .iter()
        .map(|(name, bytes, code)| json!({"name": name, "hex": hex(bytes), "error": code}))
        .collect();
    json!({
        "identifier_hex": hex(&MOTION_ID),
        "version": MOTION_VERSION,
        "valid": valid,
        "invalid": invalid,
        "temporal_unit": {
            "hex": hex(&temporal_unit(frame, &metas[1].1)),
            "meta": frame,
            "motion": metas[1].1,
        },
    })
}

fn decode_motion(bytes: &[u8]) -> Result<MotionMeta, MetaError> {
    MotionMeta::parse(&MetadataObu::new_checked(bytes)?)
}

#[test]
fn motion_vectors_decode_and_encode() {
    let file: Value = serde_json::from_str(include_str!("../../../docs/metadata-vectors.json")).unwrap();
    let motion = &file["motion"];
    for vector in motion["valid"].as_array().unwrap() {
        let bytes = parse_hex(vector["hex"].as_str().unwrap());
        let expected: MotionMeta = serde_json::from_value(vector["motion"].clone()).unwrap();
        assert_eq!(decode_motion(&bytes).unwrap(), expected, "{}", vector["name"]);
        assert_eq!(expected.to_obu().unwrap().as_slice(), bytes.as_slice());
    }
    for vector in motion["invalid"].as_array().unwrap() {
        let bytes = parse_hex(vector["hex"].as_str().unwrap());
        let err = decode_motion(&bytes).expect_err(vector["name"].as_str().unwrap());
        assert_eq!(err.code(), vector["error"].as_str().unwrap(), "{}", vector["name"]);
    }
}

/// The detections reader (`FrameMeta::find_in_temporal_unit`, the version 1
/// reader, unchanged) reads a unit that also carries a motion OBU, and
/// decoders of the detections OBU never see the motion payload.
#[test]
fn version_1_readers_read_units_with_a_motion_obu() {
    let file: Value = serde_json::from_str(include_str!("../../../docs/metadata-vectors.json")).unwrap();
    let unit = &file["motion"]["temporal_unit"];
    let tu = parse_hex(unit["hex"].as_str().unwrap());
    let meta: FrameMeta = serde_json::from_value(unit["meta"].clone()).unwrap();
    let motion: MotionMeta = serde_json::from_value(unit["motion"].clone()).unwrap();
    assert_eq!(FrameMeta::find_in_temporal_unit(&tu).unwrap(), Some(meta.clone()));
    assert_eq!(MotionMeta::find_in_temporal_unit(&tu).unwrap(), Some(motion.clone()));
    // The motion OBU is not a detections OBU, and the other way round.
    let motion_obu = motion.to_obu().unwrap();
    let view = MetadataObu::new_checked(&motion_obu[..]).unwrap();
    assert!(!view.is_mado() && view.is_mado_motion());
    assert_eq!(FrameMeta::parse(&view).unwrap_err().code(), "not-mado");
    // Without the motion OBU the unit reads as before; stripping removes both.
    let without = [&[0x12u8, 0x00][..], &[0x32, 0x02, 0xaa, 0xbb]].concat();
    assert_eq!(MotionMeta::find_in_temporal_unit(&without).unwrap(), None);
    assert_eq!(strip_from_temporal_unit(&tu).unwrap(), without);
}

#[test]
fn eight_regions_fit_and_a_region_outside_the_frame_is_rejected() {
    let full = MotionMeta {
        mode: GateMode::Motion,
        moving: true,
        interval_ms: u32::MAX,
        regions: (0..MAX_REGIONS).map(|_| region([0.5, 0.5, 0.25, 0.25])).collect(),
    };
    let bytes = full.to_obu().unwrap();
    assert!(bytes.len() < 200);
    assert_eq!(decode_motion(&bytes).unwrap(), full);
    for cut in 0..bytes.len() {
        assert!(decode_motion(&bytes[..cut]).is_err());
    }
    // The first region's x (0.5 = 32768, a three-byte varint) moved to 1.0: x + w > 1.
    let mut outside = bytes.to_vec();
    let at = 1 + 1 + 1 + 16 + 1 + 1 + 1 + 5 + 1;
    assert_eq!(&outside[at..at + 3], &[0x80, 0x80, 0x02]);
    outside[at..at + 3].copy_from_slice(&[0xff, 0xff, 0x03]);
    assert_eq!(decode_motion(&outside).unwrap_err().code(), "malformed-body");
}
