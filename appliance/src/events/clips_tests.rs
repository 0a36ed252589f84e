use std::time::Instant;

use super::*;
use crate::frame::{CaptureTime, FrameInfo};

const T0_MS: u64 = 1_700_000_000_000;

/// Frame `seq` at 10 frames a second; a keyframe every `gop` frames.
fn frame(seq: u64, gop: u64) -> Arc<EncodedFrame> {
    Arc::new(EncodedFrame {
        info: FrameInfo {
            seq,
            capture: CaptureTime {
                mono: Instant::now(),
                wall_us: (T0_MS + seq * 100) * 1000,
            },
            size: "64x48".parse().unwrap(),
            detections: None,
            motion: None,
        },
        keyframe: seq.is_multiple_of(gop),
        temporal_layer: 0,
        data: vec![0x12, 0],
    })
}

fn settings() -> ClipSettings {
    ClipSettings {
        pre_roll_ms: 1_000,
        post_roll_ms: 500,
        lead_ms: 0,
    }
}

/// The frames each clip got, by id, and whether each was closed.
fn collect(recorder: &mut ClipRecorder, clips: &mut BTreeMap<String, (Vec<u64>, bool)>, keyframes_asked: &mut u32) {
    while let Some(out) = recorder.poll_output() {
        match out {
            ClipOutput::Open { id, frames } => {
                clips.insert(id, (frames.iter().map(|f| f.info.seq).collect(), false));
            }
            ClipOutput::Frame { id, frame } => clips.get_mut(&id).unwrap().0.push(frame.info.seq),
            ClipOutput::Close { id } => clips.get_mut(&id).unwrap().1 = true,
            ClipOutput::RequestKeyframe => *keyframes_asked += 1,
        }
    }
}

#[test]
fn a_clip_has_pre_roll_from_a_keyframe_the_event_and_post_roll() {
    let mut recorder = ClipRecorder::new(settings());
    let (mut clips, mut asked) = (BTreeMap::new(), 0);
    for seq in 0..100 {
        recorder.push(frame(seq, 8));
        if seq == 50 {
            recorder.start("a", T0_MS + 5_000);
        }
        if seq == 60 {
            recorder.end("a", T0_MS + 6_000);
        }
        collect(&mut recorder, &mut clips, &mut asked);
    }
    let (seqs, closed) = &clips["a"];
    assert!(closed);
    // 5.0 s - 1.0 s = frame 40; the keyframe at or before it is frame 40.
    assert_eq!(seqs.first(), Some(&40));
    assert_eq!(seqs.last(), Some(&65), "post-roll to 6.5 s");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gaps: {seqs:?}");
    assert!(
        recorder.ring_len() <= 10 + 8 + 1,
        "the ring holds about the pre-roll: {}",
        recorder.ring_len()
    );
}

#[test]
fn a_long_keyframe_interval_gets_keyframes_asked_for() {
    let mut recorder = ClipRecorder::new(settings());
    let (mut clips, mut asked) = (BTreeMap::new(), 0);
    for seq in 0..100 {
        recorder.push(frame(seq, 1_000));
        collect(&mut recorder, &mut clips, &mut asked);
    }
    // 10 s with one keyframe: one ask per second of pre-roll, give or take.
    assert!((9..=10).contains(&asked), "{asked}");
}

#[test]
fn a_clip_started_before_any_keyframe_begins_at_the_next_one() {
    let mut recorder = ClipRecorder::new(settings());
    let (mut clips, mut asked) = (BTreeMap::new(), 0);
    recorder.start("early", T0_MS);
    for seq in 1..30 {
        recorder.push(frame(seq, 10));
    }
    recorder.finish();
    collect(&mut recorder, &mut clips, &mut asked);
    let (seqs, closed) = &clips["early"];
    assert!(closed);
    assert_eq!(seqs.first(), Some(&10));
    assert_eq!(seqs.len(), 20);
}
