//! `mado run` publishing to a WHIP endpoint built on werift, a WebRTC stack
//! written independently of str0m (`tests/whip/werift-whip.mjs`): every
//! frame rebuilt from RTP by werift carries its own metadata, read with the
//! dashboard's decoder; a PLI from werift brings a keyframe; SIGTERM deletes
//! the session.

#![allow(clippy::disallowed_methods)] // reason: these tests drive real processes in real time, like the shell

mod common;
#[path = "publish/support.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{check_werift_frames, endpoint_state, start_mado, status, terminate};

const FRAMES: u64 = 150;

struct Node(std::process::Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn werift_gets_every_frame_with_its_own_metadata_and_a_keyframe_on_pli() {
    let whip = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/whip");
    assert!(
        whip.join("node_modules/werift").is_dir(),
        "werift is not installed: run `npm ci` in appliance/tests/whip (scripts/test-all does)"
    );
    let mut node = Command::new("node")
        .arg("werift-whip.mjs")
        .arg(FRAMES.to_string())
        .arg(support::TOKENS[2])
        .current_dir(&whip)
        .stdout(Stdio::piped())
        .spawn()
        .expect("running node");
    let stdout = node.stdout.take().unwrap();
    let node = Node(node);
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let next = |prefix: &str, wait: u64| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(wait))
                .unwrap_or_else(|_| panic!("werift printed no `{prefix}` line in {wait} s"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    };
    let port = next("listening ", 10);

    // Keyframes only every 20 s: a prompt keyframe after the PLI is a forced one.
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[encoder]\nkeyframe_interval = 600\n\
         [[publish.endpoints]]\nname = \"werift\"\nurl = \"http://127.0.0.1:{port}/whip\"\ntoken = \"{}\"\n",
        support::TOKENS[2]
    );
    let (mut mado, base) = start_mado(&config, dir.path());
    let result: serde_json::Value = serde_json::from_str(&next("result ", 40)).unwrap();
    let (_, json) = status(&base);
    println!("werift: {result}");
    println!("mado: {}", json["publish"]);

    check_werift_frames(&result, FRAMES);
    assert_eq!(result["seqGaps"], 0, "consecutive frames, none lost: {result}");
    assert_eq!(result["incomplete"], 0, "{result}");
    assert_eq!(result["posts"], 1, "{result}");
    // Keyframes: the first, the one the PLI asked for, and none besides
    // (scheduled ones are 20 s apart), so the PLI went through one rate-limited path.
    assert!(
        result["keyframes"].as_u64().is_some_and(|k| (1..=3).contains(&k)),
        "{result}"
    );
    let after_pli = result["keyframeAfterPliMs"].as_u64().expect("a keyframe after the PLI");
    assert!(after_pli < 1000, "keyframe {after_pli} ms after the PLI");
    assert_eq!(endpoint_state(&json, "werift"), "live");
    let endpoint = &json["publish"][0];
    assert!(endpoint["bitrate_kbps"].as_u64().is_some_and(|k| k > 0), "{endpoint}");

    assert!(terminate(&mut mado).success());
    assert_eq!(next("deleted ", 5), "/whip/session/1");
    support::check_log(dir.path());
    drop(node);
}
