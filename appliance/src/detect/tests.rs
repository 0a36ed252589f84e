//! Unit tests of the pure parts; the reference-vector and runtime tests are
//! in appliance/tests/detect_*.rs.

use super::candidate::{non_max_suppression, sigmoid, Candidate};
use super::manifest::DecoderSpec;
use super::preprocess::yuv_to_rgb;
use super::*;
use crate::frame::Yuv420;

const SSD_MANIFEST: &str = include_str!("../../../models/ssd_mobilenetv2_oidv4.toml");
const FACE_MANIFEST: &str = include_str!("../../../models/face_detection_short_range.toml");

fn boxed(class_id: u16, score: f32, xmin: f32) -> Candidate {
    Candidate {
        class_id,
        score,
        ymin: 0.0,
        xmin,
        ymax: 0.5,
        xmax: xmin + 0.5,
    }
}

#[test]
fn nms_suppresses_overlaps_within_a_class_only() {
    let kept = non_max_suppression(
        vec![
            boxed(1, 0.6, 0.0),
            boxed(1, 0.9, 0.05),
            boxed(2, 0.7, 0.0),
            boxed(1, 0.8, 0.5),
        ],
        0.5,
        16,
    );
    let scores: Vec<f32> = kept.iter().map(|c| c.score).collect();
    assert_eq!(scores, [0.9, 0.8, 0.7]);
    assert_eq!(
        non_max_suppression(vec![boxed(1, 0.9, 0.0), boxed(1, 0.8, 0.5)], 0.5, 1).len(),
        1
    );
}

#[test]
fn iou_of_identical_disjoint_and_empty_boxes() {
    let a = boxed(0, 1.0, 0.0);
    assert!((a.iou(&a) - 1.0).abs() < 1e-6);
    assert_eq!(a.iou(&boxed(0, 1.0, 0.6)), 0.0);
    let empty = Candidate { xmax: 0.0, ..a };
    assert_eq!(empty.iou(&empty), 0.0);
}

#[test]
fn sigmoid_is_bounded_and_centred() {
    assert_eq!(sigmoid(0.0), 0.5);
    assert!(sigmoid(100.0) <= 1.0 && sigmoid(-100.0) >= 0.0);
}

#[test]
fn limited_range_white_and_red_convert_to_full_range_rgb() {
    let white = yuv_to_rgb(235.0, 128.0, 128.0);
    assert!(white.iter().all(|&c| (c - 255.0).abs() < 0.5), "{white:?}");
    // BT.601 red: Y 81, U 90, V 240.
    let red = yuv_to_rgb(81.0, 90.0, 240.0);
    assert!(red[0] > 250.0 && red[1] < 5.0 && red[2] < 5.0, "{red:?}");
}

#[test]
fn committed_manifests_give_the_models_anchor_counts() {
    let ssd = Model::new(Manifest::parse(SSD_MANIFEST).unwrap());
    assert_eq!(ssd.anchor_count(), 1917);
    assert_eq!(ssd.manifest().labels[4], "Person");
    let face = Model::new(Manifest::parse(FACE_MANIFEST).unwrap());
    assert_eq!(face.anchor_count(), 896);
    assert!(matches!(face.manifest().decoder, DecoderSpec::Blazeface(_)));
}

#[test]
fn detections_are_clipped_to_the_frame_and_labelled() {
    let model = Model::new(Manifest::parse(SSD_MANIFEST).unwrap());
    let outside = Candidate {
        class_id: 23,
        score: 0.7,
        ymin: -0.1,
        xmin: 0.9,
        ymax: 0.2,
        xmax: 1.2,
    };
    let gone = Candidate {
        class_id: 4,
        score: 0.6,
        ymin: 1.1,
        xmin: 0.0,
        ymax: 1.3,
        xmax: 0.1,
    };
    let d = model.to_detections(&[outside, gone], 5);
    assert_eq!(d.items.len(), 1);
    let car = &d.items[0];
    assert_eq!((car.class_id, car.label.as_str()), (23, "Car"));
    assert_eq!(car.bbox.y(), Norm16::ZERO);
    assert_eq!(car.bbox.x().0 + car.bbox.w().0, u16::MAX);
}

#[test]
fn letterbox_keeps_the_aspect_ratio_and_maps_boxes_back() {
    let face = Model::new(Manifest::parse(FACE_MANIFEST).unwrap());
    let size = crate::frame::VideoSize::new(64, 32).unwrap();
    let placement = face.placement(size);
    assert_eq!(
        placement,
        Placement {
            x: 0.0,
            y: 0.25,
            w: 1.0,
            h: 0.5
        }
    );

    let mut white = Yuv420::black(size);
    white.planes_mut().0.fill(235);
    let tensor = face.preprocess(&white);
    let pixel = |row: usize, col: usize| tensor[(row * 128 + col) * 3];
    assert_eq!((pixel(0, 64), pixel(31, 64)), (-1.0, -1.0)); // top bar
    assert!((pixel(32, 0) - 1.0).abs() < 0.01 && (pixel(95, 127) - 1.0).abs() < 0.01);
    assert_eq!((pixel(96, 64), pixel(127, 64)), (-1.0, -1.0)); // bottom bar

    // The middle of the input is the middle of the frame; its top edge the frame's.
    let c = Candidate {
        class_id: 0,
        score: 1.0,
        ymin: 0.25,
        xmin: 0.25,
        ymax: 0.5,
        xmax: 0.75,
    };
    let f = placement.to_frame(c);
    assert_eq!((f.ymin, f.xmin, f.ymax, f.xmax), (0.0, 0.25, 0.5, 0.75));
    let ssd = Model::new(Manifest::parse(SSD_MANIFEST).unwrap());
    assert_eq!(ssd.placement(size), Placement::FULL);
}

/// A manifest that parses also builds its model: every bad value is a
/// manifest error, never a panic or a huge allocation in `Model::new`.
fn model_from(text: &str) -> Result<Model, DetectError> {
    Manifest::parse(text).map(Model::new)
}

#[test]
fn blazeface_strides_and_anchor_counts_are_checked() {
    for (from, to) in [
        ("strides = [8, 16]", "strides = [0, 16]"),
        ("strides = [8, 16]", "strides = [8, 100000]"),
        ("strides = [8, 16]", "strides = [8]"),
        ("anchors_per_cell = [2, 6]", "anchors_per_cell = [2, 0]"),
        ("anchors_per_cell = [2, 6]", "anchors_per_cell = [2, 1000000000]"),
        ("box_scale = 128.0", "box_scale = 0.0"),
        ("box_scale = 128.0", "box_scale = nan"),
    ] {
        assert!(FACE_MANIFEST.contains(from), "{from}");
        let err = model_from(&FACE_MANIFEST.replace(from, to)).unwrap_err();
        assert!(matches!(err, DetectError::Manifest(_)), "{to}: {err}");
    }
}

#[test]
fn ssd_feature_maps_sizes_and_scales_are_checked() {
    let maps = "feature_maps = [19, 10, 5, 3, 2, 1]";
    assert!(SSD_MANIFEST.contains(maps));
    for bad in [
        "feature_maps = [0, 10]",
        "feature_maps = [100000]",
        "feature_maps = [1000, 1000]",
    ] {
        let err = model_from(&SSD_MANIFEST.replace(maps, bad)).unwrap_err();
        assert!(matches!(err, DetectError::Manifest(_)), "{bad}: {err}");
    }
    for (from, to) in [
        ("width = 300", "width = 70000"),
        ("score_threshold = ", "score_threshold = inf #"),
    ] {
        assert!(SSD_MANIFEST.contains(from), "{from}");
        let err = model_from(&SSD_MANIFEST.replacen(from, to, 1)).unwrap_err();
        assert!(matches!(err, DetectError::Manifest(_)), "{to}: {err}");
    }
}

#[test]
fn an_oversized_manifest_file_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    let padding = format!("# {}\n", "x".repeat(manifest::MAX_MANIFEST_BYTES as usize));
    std::fs::write(&path, format!("{SSD_MANIFEST}{padding}")).unwrap();
    let err = Manifest::load(&path).unwrap_err().to_string();
    assert!(err.contains("larger than"), "{err}");
}

#[test]
fn nan_and_infinite_outputs_never_become_boxes() {
    for text in [SSD_MANIFEST, FACE_MANIFEST] {
        let model = Model::new(Manifest::parse(text).unwrap());
        let n = model.anchor_count();
        let (box_values, classes) = match model.manifest().decoder {
            DecoderSpec::Ssd(_) => (4, model.manifest().labels.len()),
            DecoderSpec::Blazeface(_) => (16, 1),
        };
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, 0.0];
        let boxes: Vec<f32> = (0..n * box_values).map(|i| specials[i % 5]).collect();
        let logits: Vec<f32> = (0..n * classes).map(|i| specials[(i / 3) % 5]).collect();
        let kept = model.postprocess(&[boxes, logits]).unwrap();
        let sane = |c: &Candidate| {
            (0.0..=1.0).contains(&c.score) && [c.ymin, c.xmin, c.ymax, c.xmax].iter().all(|v| v.is_finite())
        };
        assert!(kept.iter().all(sane), "{kept:?}");
        let detections = model.to_detections(&kept, 0);
        assert!(detections.items.iter().all(|d| d.score.get() <= 1.0));
    }
}

#[test]
fn runtime_and_models_are_looked_for_in_fixed_places_never_the_working_directory() {
    let installed = Path::new("/opt/mado/bin");
    assert_eq!(
        runtime_places(None, installed),
        [
            PathBuf::from("/opt/mado/lib/mado/libLiteRtRuntimeCApi.so"),
            PathBuf::from("/opt/mado/litert/libLiteRtRuntimeCApi.so"),
        ]
    );
    let env = PathBuf::from("/srv/litert.so");
    assert_eq!(runtime_places(Some(env.clone()), installed)[0], env);
    let built = Path::new("/src/mado/target/debug");
    assert!(runtime_places(None, built).contains(&PathBuf::from("/src/mado/target/litert/libLiteRtRuntimeCApi.so")));
    assert_eq!(
        default_manifest_places(built)[1],
        PathBuf::from("/src/mado/models/ssd_mobilenetv2_oidv4.toml")
    );
    for place in runtime_places(None, built)
        .iter()
        .chain(&default_manifest_places(built))
    {
        assert!(place.is_absolute(), "{}", place.display());
    }
}
