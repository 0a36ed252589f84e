use super::*;
use serde_json::{json, Value};

const VECTORS: &str = include_str!("../../../docs/metadata-vectors.json");

fn label<const N: usize>(s: &str) -> String<N> {
    String::try_from(s).unwrap()
}

fn detection(class_id: u16, name: &str, score: f32, xywh: [f32; 4]) -> Detection {
    let [x, y, w, h] = xywh.map(Norm16::from_f32);
    Detection {
        class_id,
        label: label(name),
        score: Norm16::from_f32(score),
        bbox: BBox::new(x, y, w, h).unwrap(),
    }
}

/// The metadata behind the valid test vectors, in the order of the file.
fn vector_metas() -> [(&'static str, FrameMeta); 3] {
    let no_detector = FrameMeta {
        seq: 0,
        capture_us: 1_700_000_000_000_000,
        width: 640,
        height: 480,
        detections: None,
    };
    let target = FrameMeta {
        seq: 42,
        capture_us: 1_763_769_600_123_456,
        width: 1280,
        height: 720,
        detections: Some(Detections {
            frame_seq: 42,
            inference_us: 0,
            model: label("testpattern"),
            items: Vec::from_slice(&[detection(0, "target", 1.0, [0.25, 0.5, 0.125, 0.25])]).unwrap(),
        }),
    };
    let mut street = Detections {
        frame_seq: 299,
        inference_us: 5_512,
        model: label("ssd-mobilenetv2-oidv4"),
        ..Default::default()
    };
    for (class_id, name, score, xywh) in [
        (4, "Person", 0.82, [0.10, 0.20, 0.05, 0.30]),
        (4, "Person", 0.61, [0.55, 0.25, 0.06, 0.28]),
        (23, "Car", 0.47, [0.70, 0.40, 0.25, 0.20]),
    ] {
        street.items.push(detection(class_id, name, score, xywh)).unwrap();
    }
    let latest = FrameMeta {
        seq: 301,
        capture_us: 1_763_769_610_000_000,
        width: 768,
        height: 576,
        detections: Some(street),
    };
    [
        ("no-detector", no_detector),
        ("calibration-target", target),
        ("street-latest-mode", latest),
    ]
}

fn worst_case() -> FrameMeta {
    let item = Detection {
        class_id: u16::MAX,
        label: label(&"W".repeat(MAX_LABEL)),
        score: Norm16::ONE,
        bbox: BBox::new(Norm16(32768), Norm16(32768), Norm16(32767), Norm16(32767)).unwrap(),
    };
    FrameMeta {
        seq: u64::MAX,
        capture_us: u64::MAX,
        width: u16::MAX,
        height: u16::MAX,
        detections: Some(Detections {
            frame_seq: u64::MAX,
            inference_us: u32::MAX,
            model: label(&"M".repeat(MAX_MODEL)),
            items: core::iter::repeat_n(item, MAX_DETECTIONS).collect(),
        }),
    }
}

fn parse_hex(hex: &str) -> std::vec::Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(bytes: &[u8]) -> std::string::String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(bytes: &[u8]) -> Result<FrameMeta, MetaError> {
    FrameMeta::parse(&MetadataObu::new_checked(bytes)?)
}

/// Broken inputs for the vectors: each one is a valid OBU changed in one way.
fn invalid_vectors(valid: &[u8]) -> [(&'static str, std::vec::Vec<u8>, &'static str); 7] {
    let mut other_type = valid.to_vec();
    other_type[2] = 26;
    let mut bad_id = valid.to_vec();
    bad_id[3] = b'M';
    let mut version = valid.to_vec();
    version[19] = 2;
    let mut no_trailing = valid.to_vec();
    *no_trailing.last_mut().unwrap() = 0x00;
    let mut truncated = valid[..valid.len() - 5].to_vec();
    truncated[1] -= 5;
    let mut frame_obu = valid.to_vec();
    frame_obu[0] = (6 << 3) | 0x02;
    [
        ("size-beyond-buffer", valid[..valid.len() - 1].to_vec(), "malformed-obu"),
        ("frame-obu-not-metadata", frame_obu, "not-metadata-obu"),
        ("other-metadata-type", other_type, "other-metadata-type"),
        ("identifier-mismatch", bad_id, "not-mado"),
        ("future-version", version, "unsupported-version"),
        ("body-cut-short", truncated, "malformed-body"),
        ("no-trailing-bits", no_trailing, "missing-trailing-bits"),
    ]
}

/// Rewrites `docs/metadata-vectors.json`; run with `MADO_WRITE_VECTORS=1 cargo test -p mado vectors`.
#[test]
fn vectors_file_is_current() {
    let metas = vector_metas();
    let valid: std::vec::Vec<Value> = metas
        .iter()
        .map(|(name, meta)| json!({"name": name, "meta": meta, "hex": to_hex(&meta.to_obu().unwrap())}))
        .collect();
    let base = metas[1].1.to_obu().unwrap();
    let invalid: std::vec::Vec<Value> = invalid_vectors(&base)
        .iter()
        .map(|(name, bytes, code)| json!({"name": name, "hex": to_hex(bytes), "error": code}))
        .collect();
    let file = json!({
        "metadata_type": METADATA_TYPE,
        "identifier_hex": to_hex(&MADO_ID),
        "version": VERSION,
        "valid": valid,
        "invalid": invalid,
        "motion": super::motion_tests::vectors(&metas[1].1),
    });
    let text = serde_json::to_string_pretty(&file).unwrap() + "\n";
    if std::env::var_os("MADO_WRITE_VECTORS").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metadata-vectors.json"),
            &text,
        )
        .unwrap();
    }
    assert_eq!(
        VECTORS, text,
        "docs/metadata-vectors.json is stale: the encoding changed"
    );
}

#[test]
fn decodes_and_encodes_the_spec_vectors() {
    let file: Value = serde_json::from_str(VECTORS).unwrap();
    let valid = file["valid"].as_array().unwrap();
    assert_eq!(valid.len(), 3);
    for vector in valid {
        let bytes = parse_hex(vector["hex"].as_str().unwrap());
        let expected: FrameMeta = serde_json::from_value(vector["meta"].clone()).unwrap();
        assert_eq!(decode(&bytes).unwrap(), expected, "{}", vector["name"]);
        assert_eq!(
            expected.to_obu().unwrap().as_slice(),
            bytes.as_slice(),
            "{}",
            vector["name"]
        );
    }
    let invalid = file["invalid"].as_array().unwrap();
    assert!(invalid.len() >= 7);
    for vector in invalid {
        let bytes = parse_hex(vector["hex"].as_str().unwrap());
        let err = decode(&bytes).expect_err(vector["name"].as_str().unwrap());
        assert_eq!(err.code(), vector["error"].as_str().unwrap(), "{}", vector["name"]);
    }
}

#[test]
fn the_spec_document_quotes_the_vectors() {
    let spec = include_str!("../../../docs/metadata.md");
    let file: Value = serde_json::from_str(VECTORS).unwrap();
    for vector in file["valid"]
        .as_array()
        .unwrap()
        .iter()
        .chain(file["invalid"].as_array().unwrap())
        .chain(file["motion"]["valid"].as_array().unwrap())
        .chain(file["motion"]["invalid"].as_array().unwrap())
    {
        assert!(
            spec.contains(vector["hex"].as_str().unwrap()),
            "docs/metadata.md lacks vector {}",
            vector["name"]
        );
    }
}

#[test]
fn hand_checked_layout_of_the_smallest_obu() {
    let bytes = vector_metas()[0].1.to_obu().unwrap();
    assert_eq!(bytes[0], 0x2a, "type 5, has_size_field");
    assert_eq!(usize::from(bytes[1]), bytes.len() - 2, "obu_size covers the rest");
    assert_eq!(bytes[2], METADATA_TYPE);
    assert_eq!(&bytes[3..19], &MADO_ID);
    assert_eq!(bytes[19], VERSION);
    // seq 0, capture 1_700_000_000_000_000 as a varint, 640 = 80 05, 480 = e0 03, None = 00.
    assert_eq!(
        &bytes[20..],
        &[0x00, 0x80, 0x80, 0xf9, 0xc0, 0xc1, 0xc4, 0x82, 0x03, 0x80, 0x05, 0xe0, 0x03, 0x00, 0x80]
    );
}

#[test]
fn round_trips_the_worst_case_within_the_bound() {
    let meta = worst_case();
    let bytes = meta.to_obu().unwrap();
    assert!(bytes.len() <= MAX_OBU_LEN);
    assert_eq!(decode(&bytes).unwrap(), meta);
}

#[test]
fn rejects_every_truncation_and_survives_every_corruption() {
    for (_, meta) in vector_metas().iter().chain([("worst", worst_case())].iter()) {
        let bytes = meta.to_obu().unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "prefix of {cut} bytes accepted");
        }
        for at in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut corrupt = bytes.to_vec();
                corrupt[at] ^= flip;
                // Must not panic; when it still decodes, it must re-encode to a valid OBU.
                if let Ok(meta) = decode(&corrupt) {
                    assert_eq!(decode(&meta.to_obu().unwrap()).unwrap(), meta);
                }
            }
        }
    }
}

#[test]
fn boxes_must_lie_inside_the_frame() {
    assert_eq!(
        BBox::new(Norm16(40000), Norm16::ZERO, Norm16(30000), Norm16::ZERO),
        Err(MetaError::BoxOutsideFrame)
    );
    let inside = BBox::from_pixels(600, 400, 40, 80, 640, 480).unwrap();
    assert_eq!(inside.x().0 + inside.w().0, u16::MAX);
    assert_eq!(inside.y().0 + inside.h().0, u16::MAX);
    let mut bytes = vector_metas()[1].1.to_obu().unwrap();
    // The box is the last field before the trailing bits: x = 0.25 (3 bytes),
    // y = 0.5 (3), w = 0.125 (2), h = 0.25 (3). Raise x to 1 so x + w exceeds 1.
    let at = bytes.len() - 1 - 11;
    assert_eq!(
        &bytes[at..at + 3],
        &[0x80, 0x80, 0x01],
        "x = 16384 as a postcard varint"
    );
    bytes[at..at + 3].copy_from_slice(&[0xff, 0xff, 0x03]);
    assert_eq!(decode(&bytes).unwrap_err().code(), "malformed-body");
}

#[test]
fn finds_metadata_in_a_temporal_unit_and_strips_it() {
    let meta = vector_metas()[2].1.clone();
    let tu = [&[0x12u8, 0x00][..], &[0x32, 0x02, 0xaa, 0xbb]].concat();
    let with_meta = obu::insert_before_picture(&tu, &meta.to_obu().unwrap()).unwrap();
    assert_eq!(FrameMeta::find_in_temporal_unit(&with_meta).unwrap(), Some(meta));
    assert_eq!(FrameMeta::find_in_temporal_unit(&tu).unwrap(), None);
    assert_eq!(strip_from_temporal_unit(&with_meta).unwrap(), tu);
    // Someone else's metadata OBU is neither read nor stripped.
    let foreign = [0x2a, 0x03, 0x04, 0xb5, 0x80];
    let with_foreign = obu::insert_before_picture(&tu, &foreign).unwrap();
    assert_eq!(FrameMeta::find_in_temporal_unit(&with_foreign).unwrap(), None);
    assert_eq!(strip_from_temporal_unit(&with_foreign).unwrap(), with_foreign);
}
