use super::*;
use crate::meta::{BBox, Detection, Detections};

fn settings() -> TrackerSettings {
    TrackerSettings {
        classes: vec!["person".into(), "car".into()],
        min_score: Norm16::from_f32(0.5),
        min_frames: 3,
        zones: Vec::new(),
        quiet_ms: 1_000,
        max_event_ms: 60_000,
    }
}

const T0_MS: u64 = 1_700_000_000_000;

/// Frame `seq` at 10 frames a second, with `(label, score, box)` detections.
fn frame(seq: u64, items: &[(&str, f32, [f32; 4])]) -> FrameMeta {
    let mut detections = Detections::default();
    for &(label, score, [x, y, w, h]) in items {
        let n = Norm16::from_f32;
        detections
            .items
            .push(Detection {
                class_id: 0,
                label: label.try_into().unwrap(),
                score: n(score),
                bbox: BBox::new(n(x), n(y), n(w), n(h)).unwrap(),
            })
            .unwrap();
    }
    FrameMeta {
        seq,
        capture_us: (T0_MS + seq * 100) * 1000,
        width: 640,
        height: 480,
        detections: Some(detections),
    }
}

const MID: [f32; 4] = [0.4, 0.4, 0.2, 0.2];

fn drain(tracker: &mut EventTracker) -> Vec<EventUpdate> {
    std::iter::from_fn(|| tracker.poll_update()).collect()
}

#[test]
fn an_event_starts_after_min_frames_keeps_its_best_frame_and_ends_when_quiet() {
    let mut tracker = EventTracker::new(settings());
    let scores = [0.6, 0.7, 0.65, 0.9, 0.8];
    let mut updates = Vec::new();
    for (seq, score) in (10..).zip(scores) {
        tracker.handle_frame(&frame(seq, &[("person", score, MID)]));
        updates.extend(drain(&mut tracker));
    }
    // Nothing for 0.9 s: still open. Then 1 s after the last sighting: ended.
    for seq in 15..24 {
        tracker.handle_frame(&frame(seq, &[]));
    }
    assert!(drain(&mut tracker).is_empty());
    assert_eq!(tracker.open_events().count(), 1);
    tracker.handle_frame(&frame(24, &[]));
    updates.extend(drain(&mut tracker));

    let EventUpdate::Started(started) = &updates[0] else {
        panic!("{updates:?}")
    };
    assert_eq!(started.label, "person");
    assert_eq!(started.start_ms, T0_MS + 1_000, "from the first frame seen");
    assert_eq!(started.frames, 3);
    assert_eq!(started.end_ms, None);
    assert_eq!(started.best_seq, 11, "0.7 was the best of the first three");
    assert_eq!(started.snapshot_url, format!("/api/events/{}/snapshot.jpg", started.id));
    let bests: Vec<u64> = updates
        .iter()
        .filter_map(|u| match u {
            EventUpdate::Best(e) => Some(e.best_seq),
            _ => None,
        })
        .collect();
    assert_eq!(bests, [11, 13], "a new best frame each time the score rises");
    let EventUpdate::Ended(ended) = updates.last().unwrap() else {
        panic!("{updates:?}")
    };
    assert_eq!(ended.id, started.id);
    assert_eq!(ended.end_ms, Some(T0_MS + 1_400), "the last frame seen");
    assert_eq!((ended.best_seq, ended.frames), (13, 5));
    assert!((ended.best_score - 0.9).abs() < 1e-3);
}

#[test]
fn too_few_frames_low_scores_and_other_classes_make_no_event() {
    let mut tracker = EventTracker::new(settings());
    // Two frames, then a gap longer than the quiet time: the count starts over.
    tracker.handle_frame(&frame(0, &[("person", 0.9, MID)]));
    tracker.handle_frame(&frame(1, &[("person", 0.9, MID)]));
    tracker.handle_frame(&frame(30, &[("person", 0.9, MID)]));
    for seq in 31..40 {
        tracker.handle_frame(&frame(seq, &[("person", 0.3, MID), ("dog", 0.99, MID)]));
    }
    assert!(drain(&mut tracker).is_empty());
    assert_eq!(tracker.open_events().count(), 0);
}

#[test]
fn zones_count_only_detections_standing_inside() {
    let mut s = settings();
    s.min_frames = 1;
    s.zones = vec![Zone::new("path".into(), vec![[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]).unwrap()];
    let mut tracker = EventTracker::new(s);
    // Feet at (0.75, 0.6): right of the zone.
    tracker.handle_frame(&frame(0, &[("person", 0.9, [0.65, 0.3, 0.2, 0.3])]));
    assert!(drain(&mut tracker).is_empty());
    // Feet at (0.25, 0.6): inside, though most of the box is above the zone.
    tracker.handle_frame(&frame(1, &[("person", 0.9, [0.15, 0.1, 0.2, 0.5])]));
    let updates = drain(&mut tracker);
    let EventUpdate::Started(e) = &updates[0] else {
        panic!("{updates:?}")
    };
    assert_eq!(e.zones, ["path"]);
}

#[test]
fn zones_set_while_running_judge_the_next_frame() {
    let mut s = settings();
    s.min_frames = 1;
    s.zones = vec![Zone::new("path".into(), vec![[0.0, 0.5], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0]]).unwrap()];
    let mut tracker = EventTracker::new(s);
    // Feet at (0.75, 0.6): outside "path".
    let right = [("person", 0.9, [0.65, 0.3, 0.2, 0.3])];
    tracker.handle_frame(&frame(0, &right));
    assert!(drain(&mut tracker).is_empty());
    tracker.set_zones(vec![Zone::new(
        "yard".into(),
        vec![[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]],
    )
    .unwrap()]);
    tracker.handle_frame(&frame(1, &right));
    let updates = drain(&mut tracker);
    let EventUpdate::Started(e) = &updates[0] else {
        panic!("{updates:?}")
    };
    assert_eq!(e.zones, ["yard"]);
}

#[test]
fn classes_have_their_own_events_and_finish_ends_them_all() {
    let mut s = settings();
    s.min_frames = 1;
    let mut tracker = EventTracker::new(s);
    tracker.handle_frame(&frame(0, &[("person", 0.9, MID), ("car", 0.8, MID)]));
    let started: Vec<String> = drain(&mut tracker)
        .into_iter()
        .filter_map(|u| match u {
            EventUpdate::Started(e) => Some(e.label),
            _ => None,
        })
        .collect();
    assert_eq!(started, ["car", "person"]);
    assert_eq!(tracker.poll_timeout(), Some(T0_MS + 1_000));
    tracker.finish();
    let ended: Vec<(String, Option<u64>)> = drain(&mut tracker)
        .into_iter()
        .filter_map(|u| match u {
            EventUpdate::Ended(e) => Some((e.label, e.end_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(ended, [("car".into(), Some(T0_MS)), ("person".into(), Some(T0_MS))]);
    assert_eq!(tracker.poll_timeout(), None);
}

#[test]
fn a_long_event_is_cut_at_its_maximum_and_the_next_one_has_a_new_id() {
    let mut s = settings();
    s.min_frames = 1;
    s.max_event_ms = 2_000;
    let mut tracker = EventTracker::new(s);
    let mut ids = Vec::new();
    for seq in 0..50 {
        tracker.handle_frame(&frame(seq, &[("person", 0.9, MID)]));
        for u in drain(&mut tracker) {
            if let EventUpdate::Started(e) = u {
                ids.push(e.id);
            }
        }
    }
    assert!(ids.len() >= 2, "{ids:?}");
    ids.dedup();
    assert!(ids.len() >= 2, "ids are unique: {ids:?}");
}

#[test]
fn time_never_goes_back_and_no_timeout_without_frames_is_lost() {
    let mut s = settings();
    s.min_frames = 1;
    let mut tracker = EventTracker::new(s);
    tracker.handle_frame(&frame(10, &[("person", 0.9, MID)]));
    let _ = drain(&mut tracker);
    // A frame stamped earlier (a clock step) does not end or reopen anything.
    tracker.handle_frame(&frame(0, &[]));
    assert!(drain(&mut tracker).is_empty());
    // With no frames at all, the shell's timeout ends it.
    tracker.handle_timeout(T0_MS + 1_000 + 1_000);
    assert!(matches!(drain(&mut tracker)[..], [EventUpdate::Ended(_)]));
}

#[test]
fn a_requested_event_opens_at_once_on_that_frame_and_ends_when_quiet() {
    // min_frames = 3 and the class list do not apply to a request.
    let mut tracker = EventTracker::new(settings());
    tracker.handle_frame(&frame(0, &[]));
    tracker.handle_request(&frame(1, &[]), "button");
    let updates = drain(&mut tracker);
    let EventUpdate::Started(e) = &updates[0] else {
        panic!("{updates:?}")
    };
    assert_eq!((e.label.as_str(), e.best_seq, e.frames), ("button", 1, 1));
    // A second press while it is open keeps the one event open.
    tracker.handle_request(&frame(5, &[]), "button");
    assert!(drain(&mut tracker)
        .iter()
        .all(|u| !matches!(u, EventUpdate::Started(_))));
    for seq in 6..20 {
        tracker.handle_frame(&frame(seq, &[]));
    }
    let ended: Vec<EventInfo> = drain(&mut tracker)
        .into_iter()
        .filter_map(|u| match u {
            EventUpdate::Ended(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 1, "one event, ended 1 s after the last press");
    assert_eq!(ended[0].end_ms, Some(T0_MS + 500));
}
