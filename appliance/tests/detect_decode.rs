//! The detector's pure parts against reference vectors made with LiteRT's
//! Python package by scripts/models/make-reference.py: the same raw model
//! outputs must decode to the same detections. No runtime needed.

use std::path::{Path, PathBuf};

use mado::detect::manifest::DecoderSpec;
use mado::detect::{self, blazeface, ssd, DetectError, Manifest, Model, RuntimeError};
use mado::frame::{VideoSize, Yuv420};
use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn floats(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(data(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data("detect-reference.json")).unwrap()).unwrap()
}

fn model(manifest: &str) -> Model {
    detect::load_model(&workspace().join("models").join(manifest))
        .unwrap()
        .0
}

fn close(a: f32, b: f64, tolerance: f32) -> bool {
    (a - b as f32).abs() <= tolerance
}

/// Rust's decoded candidates equal the reference list, in order.
fn assert_matches(candidates: &[detect::Candidate], expected: &Value) {
    let expected = expected.as_array().unwrap();
    assert_eq!(candidates.len(), expected.len(), "{candidates:#?}\nvs {expected:#?}");
    for (c, e) in candidates.iter().zip(expected) {
        assert_eq!(u64::from(c.class_id), e["class_id"].as_u64().unwrap());
        assert!(close(c.score, e["score"].as_f64().unwrap(), 1e-5), "{c:?} vs {e}");
        let b = e["box"].as_array().unwrap();
        for (got, want) in [c.ymin, c.xmin, c.ymax, c.xmax].into_iter().zip(b) {
            assert!(close(got, want.as_f64().unwrap(), 1e-5), "{c:?} vs {e}");
        }
    }
}

#[test]
fn ssd_anchors_match_the_reference() {
    let manifest = model("ssd_mobilenetv2_oidv4.toml").manifest().clone();
    let DecoderSpec::Ssd(spec) = &manifest.decoder else {
        panic!("not an SSD")
    };
    let anchors = ssd::anchors(spec);
    let reference = &reference()["ssd"];
    assert_eq!(anchors.len(), 1917);
    assert_eq!(anchors.len() as u64, reference["anchor_count"].as_u64().unwrap());
    for (index, want) in reference["anchors"].as_object().unwrap() {
        let a = anchors[index.parse::<usize>().unwrap()];
        let want: Vec<f64> = want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        for (got, want) in [a.y, a.x, a.h, a.w].into_iter().zip(want) {
            assert!(close(got, want, 1e-6), "anchor {index}: {a:?}");
        }
    }
}

#[test]
fn blazeface_anchors_match_the_reference() {
    let manifest = model("face_detection_short_range.toml").manifest().clone();
    let DecoderSpec::Blazeface(spec) = &manifest.decoder else {
        panic!("not BlazeFace")
    };
    let anchors = blazeface::anchors(spec, 128, 128);
    let reference = &reference()["face"];
    assert_eq!(anchors.len(), 896);
    for (index, want) in reference["anchors"].as_object().unwrap() {
        let (y, x) = anchors[index.parse::<usize>().unwrap()];
        assert!(close(y, want[0].as_f64().unwrap(), 1e-6) && close(x, want[1].as_f64().unwrap(), 1e-6));
    }
}

#[test]
fn ssd_decodes_stored_outputs_like_the_reference() {
    let model = model("ssd_mobilenetv2_oidv4.toml");
    // Output order must not matter.
    let outputs = vec![floats("ssd-vtest.logits.f32"), floats("ssd-vtest.boxes.f32")];
    let candidates = model.postprocess(&outputs).unwrap();
    assert_matches(&candidates, &reference()["ssd"]["detections"]);

    let detections = model.to_detections(&candidates, 1234);
    assert_eq!(detections.model.as_str(), "ssd-mnv2-oidv4");
    assert_eq!(detections.inference_us, 1234);
    let people = detections.items.iter().filter(|d| d.label.as_str() == "Person").count();
    assert!(people >= 4, "{detections:#?}");
    assert!(detections.items.iter().any(|d| d.label.as_str() == "Car"));
    // A box reaching past the right edge (the reference's car at x 1.005) is clipped.
    for d in &detections.items {
        assert!(u32::from(d.bbox.x().0) + u32::from(d.bbox.w().0) <= 65535);
    }
}

#[test]
fn blazeface_decodes_stored_outputs_like_the_reference() {
    let model = model("face_detection_short_range.toml");
    let outputs = vec![
        floats("face-astronaut.regressors.f32"),
        floats("face-astronaut.logits.f32"),
    ];
    let candidates = model.postprocess(&outputs).unwrap();
    assert_matches(&candidates, &reference()["face"]["detections"]);
    let detections = model.to_detections(&candidates, 0);
    assert_eq!(detections.items.len(), 1);
    assert_eq!(detections.items[0].label.as_str(), "Face");
    assert!(detections.items[0].score.get() > 0.9);
}

#[test]
fn outputs_of_the_wrong_shape_are_an_error() {
    let model = model("ssd_mobilenetv2_oidv4.toml");
    let err = model.postprocess(&[vec![0.0; 10], vec![0.0; 20]]).unwrap_err();
    assert!(matches!(err, DetectError::OutputShape(_)), "{err}");
}

#[test]
fn preprocess_maps_grey_to_the_middle_of_the_range() {
    let model = model("ssd_mobilenetv2_oidv4.toml");
    let size = VideoSize::new(64, 48).unwrap();
    let mut grey = Yuv420::black(size);
    grey.planes_mut().0.fill(126); // (126 - 16) * 255 / 219 = 128.1
    let tensor = model.preprocess(&grey);
    assert_eq!(tensor.len(), 300 * 300 * 3);
    assert!(tensor.iter().all(|v| v.abs() < 0.01), "{:?}", &tensor[..3]);
    let black = model.preprocess(&Yuv420::black(size));
    assert!(black.iter().all(|&v| v == -1.0));
}

fn copy_manifest_with(model_bytes: Option<&[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("face.toml");
    std::fs::copy(workspace().join("models/face_detection_short_range.toml"), &manifest).unwrap();
    if let Some(bytes) = model_bytes {
        std::fs::write(dir.path().join("face_detection_short_range.tflite"), bytes).unwrap();
    }
    (dir, manifest)
}

#[test]
fn a_corrupt_or_missing_model_is_a_clear_error() {
    let (_dir, manifest) = copy_manifest_with(Some(b"not a model"));
    let err = detect::load_model(&manifest).unwrap_err();
    assert!(matches!(err, DetectError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("corrupt"), "{err}");

    let (_dir, manifest) = copy_manifest_with(None);
    let err = detect::load_model(&manifest).unwrap_err();
    assert!(matches!(err, DetectError::Io(..)), "{err}");
    assert!(err.to_string().contains("face_detection_short_range.tflite"), "{err}");
}

#[test]
fn a_bad_manifest_names_the_problem() {
    let text = std::fs::read_to_string(workspace().join("models/face_detection_short_range.toml")).unwrap();
    let err = Manifest::parse(&text.replace("score_threshold", "score_treshold")).unwrap_err();
    assert!(err.to_string().contains("score_treshold"), "{err}");
    let err = Manifest::parse(&text.replace("\"Face\"", "\"A label far too long for the metadata\"")).unwrap_err();
    assert!(err.to_string().contains("longer than 20"), "{err}");
}

#[test]
fn a_missing_runtime_library_is_a_clear_error() {
    let manifest = workspace().join("models/face_detection_short_range.toml");
    let library = Path::new("/nonexistent/libLiteRtRuntimeCApi.so");
    let err = detect::ModelDetector::open_litert(&manifest, library, 1).err().unwrap();
    assert!(
        matches!(err, DetectError::Runtime(RuntimeError::Library { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("fetch-runtime"), "{err}");
}
