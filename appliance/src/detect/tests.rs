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
