//! `mado inspect`: each frame's metadata as one JSON line, from an IVF
//! stream or an event clip (WebM).

use std::fs::File;
use std::io::{BufReader, Read as _, Seek as _, SeekFrom, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use mado::av1::ivf::IvfReader;
use mado::meta::{Detections, FrameMeta, MotionMeta, Norm16};
use serde_json::{json, Value};

/// A frame read: its time, whether it is a keyframe (clips only), its temporal unit.
type Read = (u64, Option<bool>, Vec<u8>);

/// The EBML magic a WebM (Matroska) file starts with.
const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

/// Prints each frame of an IVF stream or a WebM clip: its time (`pts`: IVF
/// timestamps, or milliseconds from a clip's start), size and metadata;
/// clips also say which frames are keyframes.
pub fn inspect(path: &Path) -> anyhow::Result<ExitCode> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut magic = [0u8; 4];
    let is_webm = file.read_exact(&mut magic).is_ok() && magic == EBML_MAGIC;
    file.seek(SeekFrom::Start(0))?;
    let frames: Box<dyn Iterator<Item = anyhow::Result<Read>>> = if is_webm {
        let clip = mado::events::webm::read_clip(BufReader::new(file))
            .with_context(|| format!("reading {}", path.display()))?;
        Box::new(
            clip.frames
                .into_iter()
                .map(|f| Ok((f.time_ms, Some(f.keyframe), f.data))),
        )
    } else {
        let reader = IvfReader::new(BufReader::new(file)).with_context(|| format!("reading {}", path.display()))?;
        let path = path.to_owned();
        Box::new(reader.map(move |f| {
            let f = f.with_context(|| format!("reading {}", path.display()))?;
            Ok((f.pts, None, f.data))
        }))
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failures = 0;
    for (index, frame) in frames.enumerate() {
        let (pts, keyframe, data) = frame?;
        let mut line = match FrameMeta::find_in_temporal_unit(&data) {
            Ok(Some(meta)) => json!({"frame": index, "pts": pts, "bytes": data.len(), "meta": meta_json(&meta)}),
            Ok(None) => json!({"frame": index, "pts": pts, "bytes": data.len(), "meta": null}),
            Err(e) => {
                failures += 1;
                json!({"frame": index, "pts": pts, "bytes": data.len(), "error": e.to_string(), "code": e.code()})
            }
        };
        if let Some(keyframe) = keyframe {
            line["keyframe"] = keyframe.into();
        }
        // The motion OBU, when the stream has one (a motion-gated detector).
        match MotionMeta::find_in_temporal_unit(&data) {
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

pub fn meta_json(meta: &FrameMeta) -> Value {
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
