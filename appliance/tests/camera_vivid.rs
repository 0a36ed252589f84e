//! Camera capture against the Linux kernel's own virtual camera driver,
//! `vivid`, inside a virtual machine running Debian's kernel (board/vm/).
//! `mado record` captures from /dev/video0 in each format vivid offers; the
//! recordings are checked here with dav1d and `mado inspect`. Then the camera
//! is unplugged mid-recording and plugged back in.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{mado, read_ivf, require_tool, run_ok};
use serde_json::Value;

const FPS: u64 = 15;
const FRAMES: usize = 30;
const UNPLUG_FRAMES: usize = 90;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The guest script: record in each format, then record across an unplug.
/// Under software emulation the encoder is slower than the camera, so the
/// queue is made deep enough that no frame is dropped while it catches up.
fn guest_script() -> String {
    format!(
        r#"set -u
printf '[pipeline]\nqueue_frames = 200\n' >/tmp/mado.toml
export MADO_CONFIG=/tmp/mado.toml
load-vivid n_devs=1 node_types=0x1 num_inputs=1 input_types=0x0
mado cameras >/share/cameras.json
echo "RESULT cameras $?"
for f in YUYV NV12 YU12; do
  mado record --source camera:/dev/video0 --camera-format $f --size 320x180 --fps {FPS} --frames {FRAMES} --output /share/$f.ivf 2>/share/$f.log
  echo "RESULT $f $?"
done
mado record --source camera:/dev/video0 --size 320x180 --fps {FPS} --frames {UNPLUG_FRAMES} --output /share/unplug.ivf 2>/share/unplug.log &
pid=$!
sleep 2
unload-vivid --unbind
echo "RESULT unplugged"
sleep 3
load-vivid
echo "RESULT replugged"
wait $pid
echo "RESULT unplug $?"
mado record --source camera:/dev/video0 --camera-format MJPG --frames 1 --output /tmp/x.ivf 2>/share/noformat.log
echo "RESULT noformat $?"
mado record --source camera:/dev/video0 --frames 60 --output /tmp/a.ivf 2>/dev/null &
sleep 2
mado record --source camera:/dev/video0 --frames 1 --output /tmp/b.ivf 2>/share/busy.log
echo "RESULT busy $?"
wait
rmmod vivid
modprobe vivid n_devs=1 node_types=0x100
mado record --source camera:/dev/video0 --frames 1 --output /tmp/c.ivf 2>/share/notcapture.log
echo "RESULT notcapture $?"
"#
    )
}

fn capture_times(ivf: &Path) -> Vec<(u64, u64)> {
    let out = run_ok(mado().arg("inspect").arg(ivf));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["meta"]["seq"].as_u64().unwrap(),
                v["meta"]["capture_us"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn decoded_frames(ivf: &Path, w: usize, h: usize) -> usize {
    let yuv = ivf.with_extension("yuv");
    run_ok(Command::new("dav1d").arg("-q").arg("-i").arg(ivf).arg("-o").arg(&yuv));
    let len = std::fs::metadata(&yuv).unwrap().len() as usize;
    assert_eq!(len % (w * h * 3 / 2), 0, "{}: not whole {w}x{h} frames", ivf.display());
    len / (w * h * 3 / 2)
}

#[test]
fn records_from_vivid_in_each_format_and_survives_unplug() {
    require_tool("dav1d", "dav1d");
    require_tool("qemu-system-x86_64", "qemu-system-x86");
    let share = tempfile::tempdir().unwrap();
    let script = share.path().join("guest.sh");
    std::fs::write(&script, guest_script()).unwrap();
    // Without debug information the binary is a tenth the size, which keeps
    // the initramfs small enough to unpack in the VM's memory.
    let bin = tempfile::tempdir().unwrap();
    let mado = bin.path().join("mado");
    let stripped = Command::new("strip")
        .arg("--strip-debug")
        .arg(env!("CARGO_BIN_EXE_mado"))
        .arg("-o")
        .arg(&mado)
        .status()
        .expect("strip (binutils) runs");
    assert!(stripped.success(), "strip failed");
    let out = Command::new(repo().join("board/vm/run"))
        .args(["--share"])
        .arg(share.path())
        .args(["--timeout", "900", "--"])
        .arg(&script)
        .arg(&mado)
        .output()
        .expect("board/vm/run starts");
    let console = String::from_utf8_lossy(&out.stdout);
    let log = |name: &str| std::fs::read_to_string(share.path().join(name)).unwrap_or_default();
    assert!(
        out.status.success(),
        "the VM run failed ({}):\n{console}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let result = |key: &str| {
        console
            .lines()
            .find_map(|l| l.strip_prefix(&format!("RESULT {key} ")))
            .map(str::trim)
            .map(str::to_owned)
    };

    assert_eq!(result("cameras").as_deref(), Some("0"));
    let cameras: Vec<Value> = log("cameras.json")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cameras.len(), 1, "one capture device: {cameras:?}");
    assert_eq!(cameras[0]["driver"], "vivid");
    let formats = cameras[0]["formats"].as_array().unwrap();
    for fourcc in ["YUYV", "NV12", "YU12"] {
        let format = formats
            .iter()
            .find(|f| f["fourcc"] == fourcc)
            .unwrap_or_else(|| panic!("{fourcc} not listed"));
        assert_eq!(format["usable"], true);
        let small = format["sizes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["width"] == 320 && s["height"] == 180);
        let fps = small.unwrap_or_else(|| panic!("{fourcc}: no 320x180"))["fps"]
            .as_array()
            .unwrap();
        assert!(
            fps.iter().any(|f| f.as_f64() == Some(FPS as f64)),
            "{fourcc} 320x180 rates {fps:?}"
        );
    }

    for format in ["YUYV", "NV12", "YU12"] {
        assert_eq!(
            result(format).as_deref(),
            Some("0"),
            "{format} recording failed:\n{}",
            log(&format!("{format}.log"))
        );
        let ivf = share.path().join(format!("{format}.ivf"));
        let (header, frames) = read_ivf(&ivf);
        assert_eq!((header.width, header.height), (320, 180), "{format}");
        assert_eq!(frames.len(), FRAMES, "{format}: frames recorded");
        assert_eq!(decoded_frames(&ivf, 320, 180), FRAMES, "{format}: frames dav1d decoded");
        let times = capture_times(&ivf);
        let seqs: Vec<u64> = times.iter().map(|t| t.0).collect();
        assert_eq!(seqs, (0..FRAMES as u64).collect::<Vec<_>>(), "{format}: no frame lost");
        let mut steps: Vec<u64> = times.windows(2).map(|w| w[1].1 - w[0].1).collect();
        steps.sort();
        let median = steps[steps.len() / 2];
        let want = 1_000_000 / FPS;
        assert!(
            median.abs_diff(want) < want / 5,
            "{format}: capture times advance {median} us a frame, want {want}"
        );
    }

    assert_eq!(
        result("unplug").as_deref(),
        Some("0"),
        "mado exited or failed across the unplug:\n{}",
        log("unplug.log")
    );
    let unplug_log = log("unplug.log");
    assert!(unplug_log.contains("source lost"), "{unplug_log}");
    assert!(unplug_log.contains("source back"), "{unplug_log}");
    let ivf = share.path().join("unplug.ivf");
    assert_eq!(decoded_frames(&ivf, 320, 180), UNPLUG_FRAMES);
    let times = capture_times(&ivf);
    let gaps: Vec<u64> = times
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .filter(|&d| d > 1_000_000)
        .collect();
    assert_eq!(gaps.len(), 1, "one pause in capture across the unplug: {gaps:?}");
    assert!(
        times.last().unwrap().1 > times.first().unwrap().1 + gaps[0],
        "frames after the gap"
    );

    for (case, message) in [
        ("noformat", "offers no usable format"),
        ("busy", "is busy"),
        ("notcapture", "is not a video capture device"),
    ] {
        let stderr = log(&format!("{case}.log"));
        assert_eq!(result(case).as_deref(), Some("1"), "{case}: {stderr}");
        assert!(
            stderr.contains(message) && !stderr.contains("panicked"),
            "{case}: {stderr}"
        );
    }
}
