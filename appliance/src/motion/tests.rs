use std::time::{Duration, Instant};

use super::*;
use crate::frame::{VideoSize, Yuv420};

const FRAME: Duration = Duration::from_millis(33);

/// A textured scene with a dark square at (`x`, `y`), lit by `gain` and
/// `offset`, with Gaussian-like sensor noise of about `noise` levels.
fn scene(
    size: VideoSize,
    square: Option<(u32, u32)>,
    gain: f32,
    offset: f32,
    noise: f32,
    rng: &mut fastrand::Rng,
) -> Yuv420 {
    let mut image = Yuv420::black(size);
    let (w, h) = (size.width(), size.height());
    let (luma, _, _) = image.planes_mut();
    for y in 0..h {
        for x in 0..w {
            let mut v = 60.0 + 100.0 * (x as f32 / w as f32) + 30.0 * (((x / 24 + y / 24) % 2) as f32);
            if let Some((sx, sy)) = square {
                if (sx..sx + w / 8).contains(&x) && (sy..sy + h / 6).contains(&y) {
                    v = 20.0;
                }
            }
            // The sum of four uniforms: close enough to a Gaussian, sigma = noise.
            let n: f32 = (0..4).map(|_| rng.f32() - 0.5).sum::<f32>() * noise * 1.732;
            luma[(y * w + x) as usize] = (gain * v + offset + n).clamp(0.0, 255.0) as u8;
        }
    }
    image
}

fn size() -> VideoSize {
    "320x240".parse().unwrap()
}

#[test]
fn a_noisy_still_scene_stays_still() {
    let mut rng = fastrand::Rng::with_seed(1);
    let mut detector = MotionDetector::new(MotionSettings::default());
    let t0 = Instant::now();
    let moving = (0..150)
        .filter(|&i| {
            let frame = scene(size(), Some((100, 80)), 1.0, 0.0, 8.0, &mut rng);
            detector.analyze(t0 + FRAME * i, &frame).moving
        })
        .count();
    assert_eq!(moving, 0, "a still scene with noise of 8 levels moved");
}

#[test]
fn a_moving_object_is_found_where_it_is() {
    let mut rng = fastrand::Rng::with_seed(2);
    let mut detector = MotionDetector::new(MotionSettings::default());
    let t0 = Instant::now();
    for i in 0..10 {
        let still = scene(size(), Some((20, 40)), 1.0, 0.0, 4.0, &mut rng);
        assert!(!detector.analyze(t0 + FRAME * i, &still).moving);
    }
    // The square jumps to the right half.
    let moved = scene(size(), Some((200, 120)), 1.0, 0.0, 4.0, &mut rng);
    let motion = detector.analyze(t0 + FRAME * 10, &moved);
    assert!(motion.moving && motion.cells >= 4, "{motion:?}");
    assert!(!motion.regions.is_empty() && motion.regions.len() <= MAX_REGIONS);
    // Two regions: where it went and where it was; both inside the picture.
    let boxes: Vec<[u32; 4]> = motion.regions.iter().map(|r| r.to_pixels(320, 240)).collect();
    let covers = |px: u32, py: u32| {
        boxes
            .iter()
            .any(|[x, y, w, h]| (*x..x + w).contains(&px) && (*y..y + h).contains(&py))
    };
    assert!(covers(215, 140), "the new place is in a region: {boxes:?}");
    assert!(covers(35, 60), "the old place is in a region: {boxes:?}");
    assert!(!covers(300, 10), "a still corner is not: {boxes:?}");
}

#[test]
fn a_lighting_step_is_not_motion() {
    let mut rng = fastrand::Rng::with_seed(3);
    let mut detector = MotionDetector::new(MotionSettings::default());
    let t0 = Instant::now();
    for i in 0..10 {
        let before = scene(size(), Some((100, 80)), 1.0, 0.0, 4.0, &mut rng);
        let _ = detector.analyze(t0 + FRAME * i, &before);
    }
    // An auto-exposure step: 30% brighter, then a global shift down.
    for (i, (gain, offset)) in [(1.3, 0.0), (1.3, 0.0), (1.3, -25.0), (1.0, -10.0)]
        .into_iter()
        .enumerate()
    {
        let after = scene(size(), Some((100, 80)), gain, offset, 4.0, &mut rng);
        let motion = detector.analyze(t0 + FRAME * (10 + i as u32), &after);
        assert!(!motion.moving, "lighting step {gain} {offset}: {motion:?}");
    }
}

#[test]
fn the_gate_runs_at_the_heartbeat_when_still_and_at_full_rate_on_motion() {
    let t0 = Instant::now();
    let settings = GateSettings {
        heartbeat: Duration::from_secs(1),
        hold: Duration::from_secs(2),
        track: Duration::from_secs(5),
    };
    let mut gate = MotionGate::new(settings);
    // Drives the gate for `frames` frames from `start`, as the pipeline
    // does; returns how many went to the detector.
    let run = |gate: &mut MotionGate, start: u32, frames: u32, moving: bool| {
        (start..start + frames)
            .filter(|&i| {
                let now = t0 + FRAME * i;
                gate.handle_motion(now, moving);
                let allowed = gate.allows(now);
                if allowed {
                    gate.on_run(now);
                }
                allowed
            })
            .count()
    };
    // 10 s still at 30 fps: the first frame, then one a second.
    assert_eq!(run(&mut gate, 0, 300, false), 10);
    assert_eq!(gate.mode(t0 + FRAME * 300), GateMode::Still);
    // Motion: every frame, from the first moving one.
    assert_eq!(run(&mut gate, 300, 30, true), 30);
    assert_eq!(gate.mode(t0 + FRAME * 330), GateMode::Motion);
    // Motion ends: full rate for the 2 s hold (60 frames), then the
    // heartbeat, a second after the last full-rate run: 2 runs in 3 s.
    assert_eq!(run(&mut gate, 330, 60, false), 60);
    assert_eq!(run(&mut gate, 390, 90, false), 2);
    assert_eq!(gate.mode(t0 + FRAME * 480), GateMode::Still);
}

#[test]
fn objects_keep_full_rate_for_the_tracking_time_and_a_trigger_wakes_the_gate() {
    let t0 = Instant::now();
    let settings = GateSettings {
        heartbeat: Duration::from_secs(1),
        hold: Duration::from_secs(1),
        track: Duration::from_secs(5),
    };
    let mut gate = MotionGate::new(settings);
    let at = |s: f32| t0 + Duration::from_secs_f32(s);
    gate.handle_motion(at(0.0), true);
    gate.handle_motion(at(0.1), false);
    gate.handle_detections(true);
    assert_eq!(gate.mode(at(0.5)), GateMode::Motion, "within the hold");
    assert_eq!(gate.mode(at(2.0)), GateMode::Tracking, "someone stopped walking");
    assert!(gate.allows(at(2.0)));
    gate.handle_detections(false);
    assert_eq!(gate.mode(at(2.0)), GateMode::Still, "they left");
    gate.handle_detections(true);
    assert_eq!(
        gate.mode(at(6.0)),
        GateMode::Still,
        "a still object: back to the heartbeat"
    );
    gate.on_run(at(6.0));
    assert!(!gate.allows(at(6.5)));
    // A PIR trigger: full rate at once, for the hold time.
    gate.handle_trigger(at(6.5));
    assert!(gate.allows(at(6.5)));
    assert_eq!(gate.mode(at(7.0)), GateMode::Motion);
    assert_eq!(gate.interval(at(7.0), FRAME), FRAME);
    assert_eq!(gate.interval(at(20.0), FRAME), Duration::from_secs(1));
}
