//! The command line: bad input gets a clear error, never a panic.

mod common;

use common::{mado, read_ivf, record_testpattern, run_ok};
use mado::av1::ivf::IvfWriter;
use serde_json::Value;

fn fails_with(cmd: &mut std::process::Command, needles: &[&str]) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{cmd:?} should fail cleanly, stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}:\n{stderr}");
    }
}

#[test]
fn broken_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mado.toml");
    std::fs::write(&config, "[encoder]\nbitrate_kbps = 10\n").unwrap();
    let out = dir.path().join("x.ivf");
    let record = |cmd: &mut std::process::Command| {
        cmd.arg("--config")
            .arg(&config)
            .args(["record", "--frames", "1", "--output"])
            .arg(&out);
    };
    fails_with(
        mado().tap(record),
        &["bitrate_kbps", "expected 50 to 50000", "mado.toml"],
    );
    std::fs::write(&config, "[encoder]\nbitrate = 300\n").unwrap();
    fails_with(mado().tap(record), &["unknown field `bitrate`"]);
    fails_with(
        mado().args(["--config", "/nonexistent/mado.toml", "inspect", "x"]),
        &["cannot read config"],
    );
}

#[test]
fn missing_or_bad_sources_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.ivf");
    fails_with(
        mado()
            .args([
                "record",
                "--source",
                "file:/nonexistent/clip.y4m",
                "--frames",
                "2",
                "--output",
            ])
            .arg(&out),
        &["cannot open /nonexistent/clip.y4m"],
    );
    let not_y4m = dir.path().join("clip.y4m");
    std::fs::write(&not_y4m, "hello").unwrap();
    let source = format!("file:{}", not_y4m.display());
    fails_with(
        mado()
            .args(["record", "--source", &source, "--frames", "2", "--output"])
            .arg(&out),
        &["not a usable Y4M"],
    );
    let out = mado()
        .args(["record", "--source", "webcam", "--frames", "1", "--output", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap rejects the argument");
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected auto, testpattern, camera"));
}

#[test]
fn records_real_footage_from_a_y4m_file_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.y4m");
    let mut bytes = b"YUV4MPEG2 W64 H48 F10:1 Ip A1:1 C420jpeg\n".to_vec();
    for luma in [40u8, 120, 200] {
        bytes.extend_from_slice(b"FRAME\n");
        bytes.extend(std::iter::repeat_n(luma, 64 * 48));
        bytes.extend(std::iter::repeat_n(128, 64 * 48 / 2));
    }
    std::fs::write(&clip, bytes).unwrap();
    let out = dir.path().join("clip.ivf");
    let source = format!("file:{}", clip.display());
    // No detector, whatever is installed where the test happens to run.
    let config = dir.path().join("mado.toml");
    std::fs::write(&config, "[detect]\nmodel = \"none\"\n").unwrap();
    run_ok(
        mado()
            .arg("--config")
            .arg(&config)
            .args([
                "record", "--pace", "fast", "--source", &source, "--frames", "7", "--output",
            ])
            .arg(&out),
    );
    let (header, frames) = read_ivf(&out);
    assert_eq!((header.width, header.height, frames.len()), (64, 48, 7));
    let inspect = run_ok(mado().arg("inspect").arg(&out));
    for (seq, line) in String::from_utf8(inspect.stdout).unwrap().lines().enumerate() {
        let line: Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["meta"]["seq"], seq as u64);
        assert_eq!(
            line["meta"]["detections"],
            Value::Null,
            "model = \"none\" runs no detector"
        );
    }
}

#[test]
fn inspect_reports_bad_files_and_corrupt_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.ivf");
    std::fs::write(&junk, vec![7u8; 100]).unwrap();
    fails_with(mado().arg("inspect").arg(&junk), &["not an IVF file"]);

    let ivf = record_testpattern(dir.path(), "good.ivf", "64x48", 3);
    let (header, mut frames) = read_ivf(&ivf);
    // Break the Mado identifier inside frame 1's metadata OBU: it is then
    // someone else's metadata and ignored. Break its version: it is an error.
    let at = frames[1]
        .data
        .windows(15)
        .position(|w| w == b"mado-detections")
        .unwrap();
    frames[1].data[at + 16] = 9;
    let corrupt = dir.path().join("corrupt.ivf");
    let mut writer = IvfWriter::new(std::fs::File::create(&corrupt).unwrap(), header).unwrap();
    for frame in &frames {
        writer.write_frame(frame.pts, &frame.data).unwrap();
    }
    writer.finish().unwrap();
    let out = mado().arg("inspect").arg(&corrupt).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "the good frames are still listed");
    assert_eq!(lines[0]["meta"]["seq"], 0);
    assert_eq!(lines[1]["code"], "unsupported-version");
    assert_eq!(lines[2]["meta"]["seq"], 2);
}

trait Tap {
    fn tap(&mut self, f: impl FnOnce(&mut Self)) -> &mut Self;
}

impl Tap for std::process::Command {
    fn tap(&mut self, f: impl FnOnce(&mut Self)) -> &mut Self {
        f(self);
        self
    }
}
