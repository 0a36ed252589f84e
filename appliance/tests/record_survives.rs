//! `mado record` killed at random points, and on a full filesystem: what it
//! leaves is read by dav1d and `mado inspect`, and the IVF header counts
//! exactly the frames there. An existing file is never truncated before the
//! source opens.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mado::av1::ivf::IvfReader;

const W: usize = 160;
const H: usize = 96;

fn record(output: &Path, source: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mado"));
    cmd.args(["record", "--source", source, "--size", &format!("{W}x{H}")])
        .args(["--frames", "100000", "--output"])
        .arg(output)
        .args(extra)
        .env_remove("MADO_CONFIG")
        .env("MADO_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn partial(output: &Path) -> PathBuf {
    PathBuf::from(format!("{}.partial", output.display()))
}

/// Waits until the recording has started writing, then `after` more.
fn wait_recording(child: &mut Child, output: &Path, after: Duration) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !partial(output).exists() {
        assert!(child.try_wait().unwrap().is_none(), "mado record exited early");
        assert!(Instant::now() < deadline, "no recording started");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(after);
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

fn finish(child: Child) -> (bool, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// What the file holds: (frames in the header, whole frames present). Panics on a cut frame.
fn ivf_frames(path: &Path) -> (u32, usize) {
    let mut reader = IvfReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let count = reader.header().frame_count;
    let mut frames = 0;
    for frame in reader.by_ref() {
        frame.expect("every frame whole");
        frames += 1;
    }
    (count, frames)
}

/// Frames dav1d decodes from the file.
fn dav1d_frames(path: &Path) -> usize {
    let yuv = path.with_extension("yuv");
    let out = Command::new("dav1d")
        .args(["-q", "--muxer", "yuv", "-i"])
        .arg(path)
        .arg("-o")
        .arg(&yuv)
        .output()
        .expect("dav1d runs");
    assert!(out.status.success(), "dav1d: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::metadata(&yuv).unwrap().len() as usize;
    std::fs::remove_file(&yuv).unwrap();
    assert_eq!(bytes % (W * H * 3 / 2), 0);
    bytes / (W * H * 3 / 2)
}

/// Frames `mado inspect` lists; it must exit successfully.
fn inspect_frames(path: &Path) -> usize {
    let out = Command::new(env!("CARGO_BIN_EXE_mado"))
        .arg("inspect")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().lines().count()
}

/// A finished recording: readable by both, with the exact count.
fn check_finished(path: &Path) -> usize {
    let (count, frames) = ivf_frames(path);
    assert!(frames > 0);
    assert_eq!(count as usize, frames, "header count");
    assert_eq!(dav1d_frames(path), frames, "frames dav1d decodes");
    assert_eq!(inspect_frames(path), frames, "frames mado inspect lists");
    frames
}

fn random_delay(rng: &mut fastrand::Rng, from_ms: u64, to_ms: u64) -> Duration {
    Duration::from_millis(rng.u64(from_ms..to_ms))
}

fn seeded() -> fastrand::Rng {
    let seed = fastrand::u64(..);
    eprintln!("random seed {seed}");
    fastrand::Rng::with_seed(seed)
}

#[test]
fn sigint_and_sigterm_leave_a_finished_recording() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = seeded();
    for (round, sig) in [libc::SIGINT, libc::SIGTERM, libc::SIGINT, libc::SIGTERM]
        .into_iter()
        .enumerate()
    {
        let output = dir.path().join(format!("clip{round}.ivf"));
        std::fs::write(&output, b"an older recording").unwrap();
        let mut child = record(&output, "testpattern", &[]).spawn().unwrap();
        wait_recording(&mut child, &output, random_delay(&mut rng, 100, 1500));
        signal(&child, sig);
        let (ok, stderr) = finish(child);
        assert!(ok, "signal {sig}: {stderr}");
        assert!(stderr.contains("(interrupted)"), "{stderr}");
        assert!(!partial(&output).exists(), "the temporary file is renamed");
        let frames = check_finished(&output);
        eprintln!("signal {sig}: {frames} frames");
    }
}

#[test]
fn sigkill_leaves_whole_frames_in_the_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = seeded();
    for round in 0..3 {
        let output = dir.path().join(format!("killed{round}.ivf"));
        std::fs::write(&output, b"an older recording").unwrap();
        let mut child = record(&output, "testpattern", &[]).spawn().unwrap();
        wait_recording(&mut child, &output, random_delay(&mut rng, 100, 2500));
        signal(&child, libc::SIGKILL);
        let _ = finish(child);
        assert_eq!(std::fs::read(&output).unwrap(), b"an older recording", "untouched");
        let kept = partial(&output);
        let (count, frames) = ivf_frames(&kept);
        // The count follows each frame's write: a kill between the two leaves it one short.
        assert!(
            count as usize == frames || count as usize + 1 == frames,
            "count {count}, {frames} frames"
        );
        assert_eq!(dav1d_frames(&kept), frames, "frames dav1d decodes");
        assert_eq!(inspect_frames(&kept), frames, "frames mado inspect lists");
        eprintln!("SIGKILL: {frames} whole frames, header says {count}");
    }
}

#[test]
fn an_existing_file_is_left_alone_when_the_source_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("keep.ivf");
    std::fs::write(&output, b"an older recording").unwrap();
    let missing = dir.path().join("missing.y4m");
    let source = format!("file:{}", missing.display());
    let (ok, stderr) = finish(record(&output, &source, &[]).spawn().unwrap());
    assert!(!ok);
    assert!(stderr.contains("missing.y4m"), "{stderr}");
    assert_eq!(std::fs::read(&output).unwrap(), b"an older recording");
    assert!(!partial(&output).exists());
}

/// A small tmpfs mounted for the test and unmounted when dropped.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn mount(bytes: usize) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "robust-record-test"])
            .arg(dir.path())
            .status()
            .ok()?;
        status.success().then_some(Self(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_filesystem_ends_the_recording_with_every_frame_written_readable() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let fs = SmallFs::mount(96 << 10).expect("mount a 96 KiB tmpfs");
    let output = fs.0.path().join("full.ivf");
    let (ok, stderr) = finish(record(&output, "testpattern", &["--pace", "fast"]).spawn().unwrap());
    assert!(!ok, "a full disk is an error");
    assert!(stderr.contains("No space left"), "{stderr}");
    assert!(stderr.contains("kept in"), "{stderr}");
    // Move it off the full filesystem so dav1d can write its output next to it.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("full.ivf");
    std::fs::copy(&output, &copy).unwrap();
    let frames = check_finished(&copy);
    eprintln!("full filesystem: {frames} frames kept");
}
