//! The events API: `GET /api/events`, the configured zones
//! (`/api/events/zones`), and per event its snapshot, its clip
//! (with Range requests, so `<video>` can seek) and the index of the clip's
//! frames with their metadata, keyed by presentation time.

use std::path::{Path, PathBuf};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ACCEPT_RANGES, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use hyper::{HeaderMap, Response, StatusCode};
use mado::meta::FrameMeta;

type Reply = Response<Full<Bytes>>;

const PREFIX: &str = "/api/events";

/// Answers `path` under `/api/events`, or `None` when it is not one of ours.
/// `dir` is the clip directory (`None`: events are off), `zones_json` the configured zones.
pub async fn handle(dir: Option<&Path>, zones_json: &str, path: &str, headers: &HeaderMap) -> Option<Reply> {
    let rest = path.strip_prefix(PREFIX)?;
    let Some(dir) = dir else {
        // The dashboard asks on every load: an empty list, marked off, not an error.
        return Some(match rest {
            "" | "/" | "/zones" => {
                let mut reply = json("[]".into());
                reply
                    .headers_mut()
                    .insert("x-mado-events", hyper::header::HeaderValue::from_static("off"));
                reply
            }
            _ => plain(StatusCode::NOT_FOUND, "events are off ([events] enabled = false)"),
        });
    };
    if rest == "/zones" {
        return Some(json(zones_json.to_owned()));
    }
    let dir = dir.to_owned();
    if rest.is_empty() || rest == "/" {
        let events = smol::unblock(move || super::events::list(&dir)).await;
        return Some(json(serde_json::Value::Array(events).to_string()));
    }
    let (id, file) = rest.strip_prefix('/')?.split_once('/')?;
    // Ids are digits and dashes: nothing can name a path outside the directory.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Some(plain(StatusCode::NOT_FOUND, "no such event"));
    }
    let range = headers.get(RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let reply = match file {
        "snapshot.jpg" => serve_file(dir.join(format!("{id}.jpg")), "image/jpeg", None).await,
        "clip.webm" => serve_file(dir.join(format!("{id}.webm")), "video/webm", range).await,
        "index.json" => {
            let clip = dir.join(format!("{id}.webm"));
            match smol::unblock(move || index(&clip)).await {
                Ok(body) => json(body),
                Err(e) => plain(StatusCode::NOT_FOUND, e),
            }
        }
        _ => plain(StatusCode::NOT_FOUND, "not found"),
    };
    Some(reply)
}

/// The clip's frames, in order: presentation time (ms), keyframe, and the
/// metadata read from the frame's own OBU.
fn index(clip: &Path) -> Result<String, String> {
    let file = std::fs::File::open(clip).map_err(|e| format!("no clip: {e}"))?;
    let contents = mado::events::webm::read_clip(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
    let frames: Vec<serde_json::Value> = contents
        .frames
        .iter()
        .map(|f| {
            let meta = FrameMeta::find_in_temporal_unit(&f.data).ok().flatten();
            serde_json::json!({
                "t_ms": f.time_ms,
                "keyframe": f.keyframe,
                "meta": meta.as_ref().map(super::inspect::meta_json),
            })
        })
        .collect();
    Ok(serde_json::json!({"width": contents.width, "height": contents.height, "frames": frames}).to_string())
}

/// Most bytes one response carries: an open-ended range gets this much (a
/// shorter `206` the media element continues from), so a long clip is never
/// read whole into memory.
const MAX_CHUNK: u64 = 8 << 20;

async fn serve_file(path: PathBuf, mime: &'static str, range: Option<String>) -> Reply {
    let answer = smol::unblock(move || read_range(&path, range.as_deref())).await;
    let builder = Response::builder()
        .header(CONTENT_TYPE, mime)
        .header(ACCEPT_RANGES, "bytes")
        .header("cache-control", "no-cache");
    match answer {
        Ok(Part::Whole(bytes)) => builder.body(Full::new(Bytes::from(bytes))).expect("valid response"),
        Ok(Part::Range { start, bytes, len }) => {
            let end = start + bytes.len() as u64 - 1;
            builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
                .body(Full::new(Bytes::from(bytes)))
                .expect("valid response")
        }
        Ok(Part::Unsatisfiable { len }) => Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(CONTENT_RANGE, format!("bytes */{len}"))
            .body(Full::new(Bytes::new()))
            .expect("valid response"),
        Err(_) => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

enum Part {
    Whole(Vec<u8>),
    Range { start: u64, bytes: Vec<u8>, len: u64 },
    Unsatisfiable { len: u64 },
}

/// The file, or the part of it a `Range` header asks for (one range: what
/// media elements ask for; of several, the first), at most [`MAX_CHUNK`].
fn read_range(path: &Path, range: Option<&str>) -> std::io::Result<Part> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let Some(range) = range else {
        if len > MAX_CHUNK {
            return read_range(path, Some("bytes=0-"));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes)?;
        return Ok(Part::Whole(bytes));
    };
    let ranges = match http_range_header::parse_range_header(range).and_then(|r| r.validate(len)) {
        Ok(ranges) if !ranges.is_empty() => ranges,
        _ => return Ok(Part::Unsatisfiable { len }),
    };
    let start = *ranges[0].start();
    let end = (*ranges[0].end()).min(start + MAX_CHUNK - 1);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = vec![0; (end - start + 1) as usize];
    file.read_exact(&mut bytes)?;
    Ok(Part::Range { start, bytes, len })
}

fn json(body: String) -> Reply {
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

fn plain(status: StatusCode, body: impl Into<String>) -> Reply {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body.into() + "\n")))
        .expect("valid response")
}
