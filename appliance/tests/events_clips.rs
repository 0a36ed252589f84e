//! Events end to end on the test pattern: its red target walks in and out of
//! a zone, each visit is an event, and each event's clip must decode
//! completely in ffmpeg and dav1d, start at a keyframe before the event, and
//! carry every frame's own metadata (read back by `mado inspect`). Retention
//! with a tiny quota keeps the newest clips, and SIGTERM during a clip
//! leaves a complete, playable file. On real footage with the real
//! detector, people walking make a `Person` event with a complete clip.

#![allow(
    clippy::disallowed_methods,
    reason = "integration tests drive the real binary and wait on real time"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::live::Server;
use common::{mado, require_tool, run_ok};
use serde_json::Value;

/// The target's feet are in the bottom 15% of the picture for about 18 of
/// every 100 frames: an event every 3.3 s, quiet in between.
fn config(dir: &Path, post_roll_ms: u32, extra: &str) -> PathBuf {
    let text = format!(
        "[encoder]\nkeyframe_interval = 300\nbitrate_kbps = 300\n\
         [events]\nenabled = true\nclasses = [\"target\"]\nmin_frames = 2\nquiet_ms = 700\n\
         pre_roll_ms = 1000\npost_roll_ms = {post_roll_ms}\nclip_dir = {:?}\n{extra}\n\
         [[events.zones]]\nname = \"floor\"\npoints = [[0, 0.85], [1, 0.85], [1, 1], [0, 1]]\n",
        dir.join("clips").display().to_string()
    );
    let path = dir.join("mado.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &Path) -> Server {
    let config = config.to_owned();
    Server::start_with(&[], move |c| {
        c.env("MADO_CONFIG", &config);
    })
}

fn get(server: &Server, path: &str) -> (u16, Vec<u8>) {
    let mut resp = server.agent().get(format!("{}{path}", server.base)).call().unwrap();
    let status = resp.status().as_u16();
    (
        status,
        resp.body_mut().with_config().limit(100 << 20).read_to_vec().unwrap(),
    )
}

fn events(server: &Server) -> Vec<Value> {
    let (status, body) = get(server, "/api/events");
    assert_eq!(status, 200);
    serde_json::from_slice::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until `done` holds for the event list, up to two minutes.
fn wait_events(server: &Server, what: &str, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = events(server);
        if done(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {list:#?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn ready(list: &[Value]) -> Vec<&Value> {
    list.iter()
        .filter(|e| e["clip_ready"] == true && !e["end_ms"].is_null())
        .collect()
}

/// Frames ffmpeg decodes from `clip`, failing on any decoding error.
fn ffmpeg_frames(clip: &Path) -> usize {
    let out = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-xerror", "-i"])
            .arg(clip)
            .args(["-f", "framemd5", "-"]),
    );
    // dav1d inside ffmpeg names the metadata it skips; anything else is a failure.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.contains("Unknown Metadata OBU type 25") && !l.contains("Last message repeated")
        })
        .collect();
    assert!(complaints.is_empty(), "ffmpeg: {complaints:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count()
}

/// Pictures dav1d decodes from `clip`: its blocks, each with its temporal
/// delimiter put back, as an IVF stream (dav1d reads no WebM). One file per
/// picture, since a clip may change size at a keyframe (the adaptation's
/// half-size rung) and a single raw file could not be split into frames.
fn dav1d_frames(clip: &Path) -> usize {
    let contents = mado::events::webm::read_clip(std::fs::File::open(clip).unwrap()).unwrap();
    let ivf = clip.with_extension("ivf");
    let (w, h) = (contents.width as usize, contents.height as usize);
    let header = mado::av1::ivf::IvfHeader::av1(w as u16, h as u16, 1000);
    let mut writer = mado::av1::ivf::IvfWriter::new(std::fs::File::create(&ivf).unwrap(), header).unwrap();
    for frame in &contents.frames {
        let mut tu = vec![0x12, 0x00];
        tu.extend_from_slice(&frame.data);
        writer.write_frame(frame.time_ms, &tu).unwrap();
    }
    writer.finish().unwrap();
    let pictures = clip.with_extension("pictures");
    std::fs::create_dir(&pictures).unwrap();
    run_ok(
        Command::new("dav1d")
            .arg("-q")
            .arg("-i")
            .arg(&ivf)
            .arg("-o")
            .arg(pictures.join("%n.yuv")),
    );
    let sizes: Vec<usize> = std::fs::read_dir(&pictures)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len() as usize)
        .collect();
    // 4:2:0 at the clip's size or a smaller rung, never empty or larger.
    assert!(
        sizes.iter().all(|&b| b > 0 && b <= w * h * 3 / 2),
        "picture sizes {sizes:?}"
    );
    sizes.len()
}

/// The frame number the test pattern spells along the top of a 320x240
/// picture (16 blocks of 10 pixels, least significant bit first), read from
/// the JPEG's luma as ffmpeg decodes it.
fn spelt_seq(jpeg: &Path) -> Option<u64> {
    let out = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(jpeg)
            .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"]),
    );
    assert_eq!(out.stdout.len(), 320 * 240, "a 320x240 snapshot");
    let mut seq = 0;
    for bit in 0..16 {
        match out.stdout[5 * 320 + bit * 10 + 5] {
            l if l > 180 => seq |= 1 << bit,
            l if l < 70 => {}
            _ => return None,
        }
    }
    Some(seq)
}

/// `mado inspect` on a clip: one JSON object per frame.
fn inspect(clip: &Path) -> Vec<Value> {
    let out = run_ok(mado().arg("inspect").arg(clip));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A clip's frames as `mado inspect` reads them, and their seqs, after the
/// checks every clip must pass: more than ten frames, a keyframe first, and
/// metadata in every frame.
fn clip_frames(clip: &Path) -> (Vec<Value>, Vec<u64>) {
    let frames = inspect(clip);
    assert!(frames.len() > 10, "{} frames", frames.len());
    assert_eq!(frames[0]["keyframe"], true, "the pre-roll starts at a keyframe");
    let seqs = frames
        .iter()
        .map(|f| f["meta"]["seq"].as_u64().expect("every frame has metadata"))
        .collect();
    (frames, seqs)
}

/// Everything a clip must be: complete in both decoders, from a keyframe at
/// or before the event's start, each frame with its own metadata in order.
fn check_clip(clip: &Path, event: &Value) -> usize {
    let (frames, seqs) = clip_frames(clip);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive frames: {seqs:?}"
    );
    let start_us = event["start_ms"].as_u64().unwrap() * 1000;
    let end_us = event["end_ms"].as_u64().unwrap() * 1000;
    let first_us = frames[0]["meta"]["capture_us"].as_u64().unwrap();
    let last_us = frames.last().unwrap()["meta"]["capture_us"].as_u64().unwrap();
    assert!(first_us < start_us, "pre-roll: the clip starts before the event");
    assert!(last_us >= end_us, "post-roll: the clip ends after the event");
    // The frames inside the event carry the target, and its box is theirs:
    // the time in the clip is the capture time from the first frame.
    for f in &frames {
        let pts_ms = f["pts"].as_u64().unwrap();
        let capture_ms = (f["meta"]["capture_us"].as_u64().unwrap() - first_us) / 1000;
        assert!(pts_ms.abs_diff(capture_ms) <= 1, "{f}");
        assert_eq!(f["meta"]["detections"]["items"][0]["label"], "target", "{f}");
    }
    assert_eq!(ffmpeg_frames(clip), frames.len(), "ffmpeg decodes every frame");
    assert_eq!(dav1d_frames(clip), frames.len(), "dav1d decodes every frame");
    frames.len()
}

#[test]
fn each_visit_to_the_zone_is_an_event_with_a_snapshot_and_a_complete_clip() {
    require_tool("ffmpeg", "ffmpeg");
    require_tool("dav1d", "dav1d");
    let dir = tempfile::tempdir().unwrap();
    let server = start(&config(dir.path(), 500, ""));
    let list = wait_events(&server, "two complete events", |l| ready(l).len() >= 2);
    let done = ready(&list);
    for event in &done[..2] {
        assert_eq!(event["label"], "target");
        assert_eq!(event["zones"], serde_json::json!(["floor"]));
        let id = event["id"].as_str().unwrap();
        let (status, clip) = get(&server, event["clip_url"].as_str().unwrap());
        assert_eq!(status, 200);
        let path = dir.path().join(format!("{id}.webm"));
        std::fs::write(&path, &clip).unwrap();
        check_clip(&path, event);

        // Seeking: a byte range comes back as 206 with exactly those bytes.
        let mut resp = server
            .agent()
            .get(format!("{}{}", server.base, event["clip_url"].as_str().unwrap()))
            .header("range", "bytes=100-199")
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 206);
        assert_eq!(resp.body_mut().read_to_vec().unwrap(), clip[100..200]);

        // The snapshot: a JPEG of the best frame, from its raw picture: the
        // frame number the test pattern spells on it is the best frame's.
        let (status, jpeg) = get(&server, event["snapshot_url"].as_str().unwrap());
        assert_eq!(status, 200);
        assert_eq!(&jpeg[..2], [0xFF, 0xD8]);
        let snap = dir.path().join(format!("{id}.jpg"));
        std::fs::write(&snap, &jpeg).unwrap();
        let best = event["best_seq"].as_u64().unwrap();
        assert_eq!(spelt_seq(&snap), Some(best & 0xFFFF), "snapshot of frame {best}");

        // The index the dashboard plays boxes from: one entry per frame, from the clip's own frames.
        let (status, index) = get(&server, &format!("/api/events/{id}/index.json"));
        assert_eq!(status, 200);
        let index: Value = serde_json::from_slice(&index).unwrap();
        assert_eq!(index["frames"].as_array().unwrap().len(), inspect(&path).len());
    }
    let (status, zones) = get(&server, "/api/events/zones");
    assert_eq!(status, 200);
    let zones: Value = serde_json::from_slice(&zones).unwrap();
    assert_eq!(zones[0]["name"], "floor");
    assert_eq!(zones[0]["points"].as_array().unwrap().len(), 4);
    let (status, _) = get(&server, "/api/events/../../etc/passwd/clip.webm");
    assert_eq!(status, 404);
}

#[test]
fn a_tiny_quota_keeps_the_newest_clips_and_drops_the_oldest() {
    require_tool("ffmpeg", "ffmpeg");
    require_tool("dav1d", "dav1d");
    let dir = tempfile::tempdir().unwrap();
    let server = start(&config(dir.path(), 500, "quota_kb = 60"));
    let mut seen: Vec<String> = Vec::new();
    let list = wait_events(&server, "retention to drop the oldest of five events", |l| {
        for e in l {
            let id = e["id"].as_str().unwrap().to_owned();
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        seen.len() >= 5 && !l.iter().any(|e| e["id"] == seen[0].as_str())
    });
    // What is left fits the quota (besides a clip being written) and the newest complete one is intact.
    let clips = dir.path().join("clips");
    let stored: u64 = std::fs::read_dir(&clips)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(stored <= 60 * 1024 + 64 * 1024, "{stored} bytes stored");
    let newest = ready(&list)[0];
    let id = newest["id"].as_str().unwrap();
    check_clip(&clips.join(format!("{id}.webm")), newest);
    let oldest_kept = list.last().unwrap()["id"].as_str().unwrap().to_owned();
    assert!(
        oldest_kept > seen[0],
        "the oldest went first: kept {oldest_kept}, first {}",
        seen[0]
    );
}

#[test]
fn sigterm_during_a_clip_leaves_a_playable_file() {
    require_tool("ffmpeg", "ffmpeg");
    require_tool("dav1d", "dav1d");
    let dir = tempfile::tempdir().unwrap();
    // A long post-roll: a clip is being written most of the time.
    let mut server = start(&config(dir.path(), 60_000, ""));
    let clips = dir.path().join("clips");
    let deadline = Instant::now() + Duration::from_secs(120);
    let part = loop {
        // The clip directory appears with the first clip.
        let part =
            std::fs::read_dir(&clips).into_iter().flatten().flatten().find(|e| {
                e.file_name().to_string_lossy().ends_with(".webm.part") && e.metadata().unwrap().len() > 20_000
            });
        if let Some(part) = part {
            break part.file_name().to_string_lossy().into_owned();
        }
        assert!(Instant::now() < deadline, "no clip being written");
        std::thread::sleep(Duration::from_millis(200));
    };
    let id = part.trim_start_matches('.').trim_end_matches(".webm.part").to_owned();
    // SAFETY: kill(2) on the child's pid, which this test started and still owns.
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) }, 0);
    let status = server.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    let clip = clips.join(format!("{id}.webm"));
    assert!(clip.exists(), "the clip was finished and renamed");
    assert!(!clips.join(&part).exists());
    let record: Value = serde_json::from_slice(&std::fs::read(clips.join(format!("{id}.json"))).unwrap()).unwrap();
    assert!(!record["end_ms"].is_null(), "the event was ended: {record}");
    let frames = inspect(&clip);
    assert_eq!(frames[0]["keyframe"], true);
    assert_eq!(ffmpeg_frames(&clip), frames.len());
    assert_eq!(dav1d_frames(&clip), frames.len());
}

/// Real footage with the real detector: people walking in `vtest` make a
/// `Person` event whose clip both decoders play to the last frame, from a
/// keyframe, every frame with its own metadata and the event's frames with
/// the people the detector found in them.
#[test]
fn people_in_street_footage_make_an_event_with_a_complete_clip() {
    require_tool("ffmpeg", "ffmpeg");
    require_tool("dav1d", "dav1d");
    let footage = common::footage("vtest-768x576.y4m");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[encoder]\nbitrate_kbps = 600\n\
         [events]\nenabled = true\nclasses = [\"Person\"]\nmin_score = 0.4\nmin_frames = 3\n\
         quiet_ms = 1000\nmax_event_ms = 4000\npre_roll_ms = 1000\npost_roll_ms = 500\nclip_dir = {:?}\n",
        common::ssd_detect_config(),
        dir.path().join("clips").display().to_string()
    );
    let config = dir.path().join("mado.toml");
    std::fs::write(&config, text).unwrap();
    let source = format!("file:{}", footage.display());
    let server = Server::start_with(&["--source", &source], move |c| {
        c.env("MADO_CONFIG", &config);
    });
    let list = wait_events(&server, "a complete Person event", |l| !ready(l).is_empty());
    let event = ready(&list)[0];
    assert_eq!(event["label"], "Person");
    let id = event["id"].as_str().unwrap();
    let clip = dir.path().join("clips").join(format!("{id}.webm"));
    let (frames, seqs) = clip_frames(&clip);
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "frames in order: {seqs:?}");
    let (start_us, end_us) = (
        event["start_ms"].as_u64().unwrap() * 1000,
        event["end_ms"].as_u64().unwrap() * 1000,
    );
    let during: Vec<&Value> = frames
        .iter()
        .filter(|f| (start_us..=end_us).contains(&f["meta"]["capture_us"].as_u64().unwrap()))
        .collect();
    let with_people = during
        .iter()
        .filter(|f| {
            f["meta"]["detections"]["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|d| d["label"] == "Person"))
        })
        .count();
    assert!(
        !during.is_empty() && with_people * 2 >= during.len(),
        "{with_people} of the event's {} frames carry a Person",
        during.len()
    );
    assert_eq!(ffmpeg_frames(&clip), frames.len(), "ffmpeg decodes every frame");
    assert_eq!(dav1d_frames(&clip), frames.len(), "dav1d decodes every frame");
}
