//! The detector's runtime and models come from fixed places and are checked
//! before use: an unknown LiteRT build is refused before its code runs, the
//! `auto` model is found next to the executable whatever the working
//! directory, and a corrupt model or missing runtime leaves `mado record`
//! recording, with detection off and the reason logged.

use std::path::{Path, PathBuf};
use std::process::Command;

use mado::detect::{self, LiteRt, RuntimeError};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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

#[test]
fn a_litert_build_other_than_the_pinned_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("libLiteRtRuntimeCApi.so");
    let mut bytes = std::fs::read(library()).unwrap();
    bytes.extend_from_slice(b"another build");
    std::fs::write(&other, bytes).unwrap();
    let model = workspace().join("models/face_detection_short_range.tflite");
    let err = LiteRt::open(&other, &model, 1).err().expect("refused");
    assert!(matches!(err, RuntimeError::UnknownRuntime { .. }), "{err}");
    // The pinned one loads.
    LiteRt::open(&library(), &model, 1).expect("the pinned build loads");
}

/// A short Y4M clip of ffmpeg's test source: a source that needs a detector.
fn clip(dir: &Path) -> PathBuf {
    let path = dir.join("clip.y4m");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x96:rate=30",
            "-frames:v",
            "6",
        ])
        .args(["-pix_fmt", "yuv420p", "-y"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    path
}

/// Runs `mado record` on the clip from `cwd` with `config`; returns whether it
/// succeeded, its log, and the frames recorded.
fn record(cwd: &Path, config: &str) -> (bool, String, usize) {
    let clip = clip(cwd);
    let config_path = cwd.join("mado.toml");
    std::fs::write(&config_path, config).unwrap();
    let output = cwd.join("out.ivf");
    let out = Command::new(env!("CARGO_BIN_EXE_mado"))
        .current_dir(cwd)
        .arg("--config")
        .arg(&config_path)
        .args(["record", "--pace", "fast", "--frames", "6", "--source"])
        .arg(format!("file:{}", clip.display()))
        .arg("--output")
        .arg(&output)
        .env_remove(detect::LITERT_LIB_ENV)
        .env("MADO_LOG", "info")
        .output()
        .unwrap();
    let frames = std::fs::read(&output)
        .ok()
        .map_or(0, |bytes| mado::av1::ivf::IvfReader::new(&bytes[..]).unwrap().count());
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        frames,
    )
}

#[test]
fn the_auto_model_and_runtime_are_found_next_to_the_executable_from_any_directory() {
    let elsewhere = tempfile::tempdir().unwrap();
    let (ok, log, frames) = record(elsewhere.path(), "[detect]\nmodel = \"auto\"\n");
    assert!(ok, "{log}");
    assert_eq!(frames, 6);
    assert!(log.contains("detector starting"), "{log}");
}

#[test]
fn a_corrupt_model_leaves_video_recording_with_detection_off() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let name = "face_detection_short_range";
    std::fs::copy(
        workspace().join(format!("models/{name}.toml")),
        models.join(format!("{name}.toml")),
    )
    .unwrap();
    let mut model = std::fs::read(workspace().join(format!("models/{name}.tflite"))).unwrap();
    model.truncate(1000);
    std::fs::write(models.join(format!("{name}.tflite")), model).unwrap();
    let manifest = models.join(format!("{name}.toml"));
    let (ok, log, frames) = record(
        dir.path(),
        &format!("[detect]\nmodel = {:?}\n", manifest.display().to_string()),
    );
    assert!(ok, "{log}");
    assert_eq!(frames, 6);
    assert!(log.contains("detection off") && log.contains("sha256"), "{log}");
}

#[test]
fn a_missing_runtime_leaves_video_recording_with_detection_off() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = workspace().join("models/face_detection_short_range.toml");
    let config = format!(
        "[detect]\nmodel = {:?}\nruntime = \"/nonexistent/libLiteRtRuntimeCApi.so\"\n",
        manifest.display().to_string()
    );
    let (ok, log, frames) = record(dir.path(), &config);
    assert!(ok, "{log}");
    assert_eq!(frames, 6);
    assert!(log.contains("detection off") && log.contains("missing"), "{log}");
}
