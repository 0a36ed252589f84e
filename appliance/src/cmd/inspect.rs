//! `mado inspect`: each frame's metadata as one JSON line.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use mado::av1::ivf::IvfReader;
use mado::meta::{Detections, FrameMeta, MotionMeta, Norm16};
use serde_json::{json, Value};

pub fn inspect(path: &Path) -> anyhow::Result<ExitCode> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = IvfReader::new(BufReader::new(file)).with_context(|| format!("reading {}", path.display()))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failures = 0;
    for (index, frame) in reader.enumerate() {
        let frame = frame.with_context(|| format!("reading {}", path.display()))?;
        let mut line = match FrameMeta::find_in_temporal_unit(&frame.data) {
            Ok(Some(meta)) => {
                json!({"frame": index, "pts": frame.pts, "bytes": frame.data.len(), "meta": meta_json(&meta)})
            }
            Ok(None) => {
                json!({"frame": index, "pts": frame.pts, "bytes": frame.data.len(), "meta": null})
            }
            Err(e) => {
                failures += 1;
                json!({"frame": index, "pts": frame.pts, "bytes": frame.data.len(), "error": e.to_string(), "code": e.code()})
            }
        };
        // The motion OBU, when the stream has one (a motion-gated detector).
        match MotionMeta::find_in_temporal_unit(&frame.data) {
            Ok(Some(motion)) => line["motion"] = motion_json(&motion),
            Ok(None) => {}
            Err(e) => {
                failures += 1;
                line["motion_error"] = json!({"error": e.to_string(), "code": e.code()});
            }
        }
        if writeln!(out, "{line}").is_err() {
            break; // stdout closed, e.g. piped into `head`
        }
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn frac(n: Norm16) -> f64 {
    (f64::from(n.get()) * 1e5).round() / 1e5
}

fn meta_json(meta: &FrameMeta) -> Value {
    json!({
        "seq": meta.seq,
        "capture_us": meta.capture_us,
        "width": meta.width,
        "height": meta.height,
        "detections": meta.detections.as_ref().map(detections_json),
    })
}

fn motion_json(m: &MotionMeta) -> Value {
    let regions: Vec<Value> = m
        .regions
        .iter()
        .map(|b| json!([frac(b.x()), frac(b.y()), frac(b.w()), frac(b.h())]))
        .collect();
    json!({"mode": m.mode.as_str(), "moving": m.moving, "interval_ms": m.interval_ms, "regions": regions})
}

fn detections_json(d: &Detections) -> Value {
    let items: Vec<Value> = d
        .items
        .iter()
        .map(|item| {
            let b = item.bbox;
            json!({
                "class_id": item.class_id,
                "label": item.label.as_str(),
                "score": frac(item.score),
                "box": [frac(b.x()), frac(b.y()), frac(b.w()), frac(b.h())],
            })
        })
        .collect();
    json!({"frame_seq": d.frame_seq, "inference_us": d.inference_us, "model": d.model.as_str(), "items": items})
}
