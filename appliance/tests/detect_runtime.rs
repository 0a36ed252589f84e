//! The whole detector with the LiteRT runtime on real pictures. Needs the
//! library from scripts/models/fetch-runtime (or MADO_LITERT_LIB) and, for
//! the street scene, target/footage/ from scripts/fetch-footage
//! (scripts/test-all runs both); without them the tests fail and say why.

#![allow(
    clippy::disallowed_methods,
    reason = "integration tests drive the real runtime and measure real time"
)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use mado::detect::{self, Detector, Interpreter, LiteRt, ModelDetector, RuntimeError};
use mado::frame::{CaptureTime, VideoSize, Yuv420};
use mado::source::{FrameSource, Y4mFile};
use std::sync::Arc;

const THREADS: usize = 2;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn library() -> PathBuf {
    let path = detect::litert_library(&workspace());
    assert!(
        path.exists(),
        "no LiteRT library at {}: run scripts/models/fetch-runtime",
        path.display()
    );
    path
}

fn stored(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(data(name)).unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Frame 100 of the street scene from scripts/fetch-footage.
fn vtest_frame() -> Yuv420 {
    let path = workspace().join("target/footage/vtest-768x576.y4m");
    let mut source = Y4mFile::open(&path).unwrap_or_else(|e| panic!("{e}: run scripts/fetch-footage"));
    let capture = CaptureTime {
        mono: Instant::now(),
        wall_us: 0,
    };
    let frame = (0..=100)
        .map(|seq| source.next_frame(seq, capture).unwrap())
        .last()
        .unwrap();
    Arc::try_unwrap(frame.image).unwrap()
}

fn astronaut() -> Yuv420 {
    let bytes = std::fs::read(data("astronaut-256x256.i420")).unwrap();
    Yuv420::from_bytes(VideoSize::new(256, 256).unwrap(), bytes).unwrap()
}

/// Largest difference between two output sets, matched by length.
fn max_difference(got: &[Vec<f32>], want: &[Vec<f32>]) -> f32 {
    let mut worst = 0.0f32;
    for w in want {
        let g = got
            .iter()
            .find(|g| g.len() == w.len())
            .expect("an output of the same length");
        worst = g.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
    }
    worst
}

fn open(manifest: &str, library: &Path) -> (detect::Model, LiteRt) {
    let (model, path) = detect::load_model(&workspace().join("models").join(manifest)).unwrap();
    (model, LiteRt::open(library, &path, THREADS).unwrap())
}

#[test]
fn litert_runs_the_ssd_like_python_and_finds_people_in_the_street() {
    let (library, frame) = (library(), vtest_frame());
    let (model, mut interpreter) = open("ssd_mobilenetv2_oidv4.toml", &library);
    // Rust preprocessing + LiteRT from Rust give the outputs Python got.
    let outputs = interpreter.run(&model.preprocess(&frame)).unwrap();
    let want = [stored("ssd-vtest.boxes.f32"), stored("ssd-vtest.logits.f32")];
    let diff = max_difference(&outputs, &want);
    assert!(diff < 0.05, "outputs differ from the reference by {diff}");

    let mut detector = ModelDetector::new(model, interpreter);
    let detections = detector.detect(&frame).unwrap();
    eprintln!("{detections:?}");
    let people = detections.items.iter().filter(|d| d.label.as_str() == "Person").count();
    assert!(people >= 3, "{detections:#?}");
    assert_eq!(
        detections.inference_us, 0,
        "the detector reads no clock; the pipeline times it"
    );
}

#[test]
fn litert_blazeface_finds_the_astronauts_face() {
    let library = library();
    let image = astronaut();
    let (model, mut interpreter) = open("face_detection_short_range.toml", &library);
    let outputs = interpreter.run(&model.preprocess(&image)).unwrap();
    let want = [
        stored("face-astronaut.regressors.f32"),
        stored("face-astronaut.logits.f32"),
    ];
    let diff = max_difference(&outputs, &want);
    assert!(diff < 0.05, "outputs differ from the reference by {diff}");

    let mut detector = ModelDetector::new(model, interpreter);
    let detections = detector.detect(&image).unwrap();
    assert_eq!(detections.items.len(), 1, "{detections:#?}");
    let face = &detections.items[0];
    assert_eq!(face.label.as_str(), "Face");
    assert!(face.score.get() > 0.85, "{face:?}");
    // The face is in the upper middle of the picture.
    let [x, y, w, h] = face.bbox.to_pixels(256, 256);
    assert!(
        (80..110).contains(&x) && (30..55).contains(&y) && w > 30 && h > 30,
        "{face:?}"
    );
}

/// The astronaut in the middle of a wider grey frame: letterboxing keeps the
/// face's shape and the box comes back in the wider frame's coordinates.
#[test]
fn litert_blazeface_finds_the_face_in_a_wide_frame() {
    let library = library();
    let square = astronaut();
    let size = VideoSize::new(384, 256).unwrap();
    let mut wide = Yuv420::black(size);
    let (sy, su, sv) = square.planes();
    let (wy, wu, wv) = wide.planes_mut();
    wy.fill(128);
    for row in 0..256 {
        wy[row * 384 + 64..row * 384 + 320].copy_from_slice(&sy[row * 256..row * 256 + 256]);
    }
    for row in 0..128 {
        wu[row * 192 + 32..row * 192 + 160].copy_from_slice(&su[row * 128..row * 128 + 128]);
        wv[row * 192 + 32..row * 192 + 160].copy_from_slice(&sv[row * 128..row * 128 + 128]);
    }
    let (model, path) = detect::load_model(&workspace().join("models/face_detection_short_range.toml")).unwrap();
    let mut detector = ModelDetector::new(model, LiteRt::open(&library, &path, THREADS).unwrap());
    let in_square = detector.detect(&square).unwrap().items[0].bbox.to_pixels(256, 256);
    let detections = detector.detect(&wide).unwrap();
    assert_eq!(detections.items.len(), 1, "{detections:#?}");
    let [x, y, w, h] = detections.items[0].bbox.to_pixels(384, 256);
    // The face is a third smaller in the model input here, so the model's box
    // differs a little; its centre must still be the face's, shifted by the
    // 64-pixel margin, and (unlike a stretched input) it must stay square.
    let centre = |x: u32, w: u32| x as f32 + w as f32 / 2.0;
    let dx = centre(x, w) - (centre(in_square[0], in_square[2]) + 64.0);
    let dy = centre(y, h) - centre(in_square[1], in_square[3]);
    let report = format!("{:?} in the wide frame, {in_square:?} in the square one", [x, y, w, h]);
    assert!(dx.abs() <= 8.0 && dy.abs() <= 10.0, "{report}");
    assert!(
        w.abs_diff(h) <= 4 && w.abs_diff(in_square[2]) <= in_square[2] / 4,
        "{report}"
    );
}

#[test]
fn litert_rejects_an_input_of_the_wrong_size() {
    let library = library();
    let (_, mut interpreter) = open("face_detection_short_range.toml", &library);
    assert!(interpreter.run(&[0.0; 10]).is_err());
}

#[test]
fn a_corrupt_model_file_is_an_error_not_a_crash() {
    let library = library();
    let dir = tempfile::tempdir().unwrap();
    // LiteRT itself rejects files that are not TF Lite models at all...
    let garbage = dir.path().join("garbage.tflite");
    std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    for path in [garbage, dir.path().join("missing.tflite")] {
        let err = LiteRt::open(&library, &path, 1).err().expect("an error");
        assert!(matches!(err, RuntimeError::Call { .. }), "{err}");
    }
    // ...but crashes (SIGSEGV in 1.4.0) on a truncated one, which is why the
    // detector checks the manifest's sha256 before LiteRT sees the file.
    let model = std::fs::read(workspace().join("models/face_detection_short_range.tflite")).unwrap();
    std::fs::write(dir.path().join("face_detection_short_range.tflite"), &model[..1000]).unwrap();
    let manifest = dir.path().join("face.toml");
    std::fs::copy(workspace().join("models/face_detection_short_range.toml"), &manifest).unwrap();
    let err = ModelDetector::open_litert(&manifest, &library, 1)
        .err()
        .expect("an error");
    assert!(matches!(err, detect::DetectError::Checksum { .. }), "{err}");
}

/// Median inference time of both models (SSD on the street frame); compare
/// with `scripts/models/make-reference.py --bench` (same models, inputs and
/// threads; both take the thread count from MADO_BENCH_THREADS, default 2,
/// and the timed runs from MADO_BENCH_RUNS, default 200, after a twentieth
/// as many untimed ones, at least 2):
/// `cargo test -p mado --test detect_runtime -- --ignored --nocapture`.
/// scripts/bench-aarch64-detect runs both under qemu-aarch64-static.
#[test]
#[ignore]
fn bench_ssd_inference() {
    let (library, frame) = (library(), vtest_frame());
    let setting = |name: &str, default: usize| std::env::var(name).ok().and_then(|t| t.parse().ok()).unwrap_or(default);
    let threads = setting("MADO_BENCH_THREADS", THREADS);
    let runs = setting("MADO_BENCH_RUNS", 200).max(1);
    for (manifest, image) in [
        ("ssd_mobilenetv2_oidv4.toml", frame),
        ("face_detection_short_range.toml", astronaut()),
    ] {
        let (model, path) = detect::load_model(&workspace().join("models").join(manifest)).unwrap();
        let mut interpreter = LiteRt::open(&library, &path, threads).unwrap();
        let input = model.preprocess(&image);
        for _ in 0..(runs / 20).max(2) {
            interpreter.run(&input).unwrap();
        }
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                interpreter.run(&input).unwrap();
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        // The median as numpy takes it: the mean of the middle two of an even count.
        let median = (times[(runs - 1) / 2] + times[runs / 2]) / 2.0;
        eprintln!(
            "{manifest}: median {median:.2} ms, fastest {:.2} ms over {runs} runs, {threads} threads",
            times[0]
        );
    }
}
