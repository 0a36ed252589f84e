//! Event zones edited on the dashboard: `PUT /api/events/zones` checks a
//! JSON list of `{name, points}` by the configuration's own rules, stores it
//! in the state directory (`zones.json`, written to a temporary name,
//! fsynced and renamed) and hands it to the event tracker. A stored list
//! takes precedence over `[[events.zones]]` at the next start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, StatusCode};
use mado::events::Zone;

use super::body::BodyError;

type Reply = Response<Full<Bytes>>;

/// The stored zones' file name in the state directory.
const FILE: &str = "zones.json";

/// The largest zone list accepted: hundreds of zones of many corners.
pub const MAX_ZONES_BYTES: usize = 64 * 1024;

/// Where zones edited on the dashboard are kept under `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The stored zones, or `None` when none were ever saved.
pub fn load(file: &Path) -> anyhow::Result<Option<Vec<Zone>>> {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let zones = parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(Some(zones))
}

/// Zones from JSON, checked as `[[events.zones]]` is (the same type and messages).
fn parse(bytes: &[u8]) -> Result<Vec<Zone>, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("zones: {e}"))
}

/// A `PUT /api/events/zones` body read (at most [`MAX_ZONES_BYTES`], within
/// `timeout`), checked and stored in `file`: the zones and their JSON, or
/// the reply that refuses them.
pub async fn receive(req: Request<Incoming>, file: &Path, timeout: Duration) -> Result<(Vec<Zone>, String), Reply> {
    let too_large = || {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("zones: the list may be at most {MAX_ZONES_BYTES} bytes"),
        )
    };
    let body = match super::body::read(req, MAX_ZONES_BYTES, timeout).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return Err(too_large()),
        Err(BodyError::Broken(e)) => {
            return Err(plain(StatusCode::BAD_REQUEST, format!("reading the zones failed: {e}")))
        }
        Err(BodyError::TimedOut) => return Err(plain(StatusCode::REQUEST_TIMEOUT, "the zones did not arrive in time")),
    };
    let zones = parse(&body).map_err(|e| plain(StatusCode::BAD_REQUEST, e))?;
    let json = serde_json::to_string(&zones)
        .map_err(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, format!("zones as JSON: {e}")))?;
    let file = file.to_owned();
    let stored = json.clone();
    let saved = smol::unblock(move || {
        let dir = file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        super::events::write_atomic(dir, FILE, stored.as_bytes())
    })
    .await;
    if let Err(e) = saved {
        tracing::warn!("storing zones: {e:#}");
        return Err(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("storing the zones failed: {e:#}"),
        ));
    }
    Ok((zones, json))
}

fn plain(status: StatusCode, body: impl Into<String>) -> Reply {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body.into() + "\n")))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_checked_as_the_config_does() {
        let zones = parse(br#"[{"name":"door","points":[[0,0],[1,0],[1,1]]}]"#).unwrap();
        assert_eq!(zones[0].name(), "door");
        for (body, why) in [
            (r#"[{"name":"a","points":[[0,0],[1,0]]}]"#, "at least 3"),
            (r#"[{"name":"a","points":[[0,0],[2,0],[0,1]]}]"#, "outside 0 to 1"),
            (r#"[{"name":" ","points":[[0,0],[1,0],[0,1]]}]"#, "needs a name"),
            (
                r#"[{"name":"a","points":[[0,0],[1,0],[0,1]],"colour":1}]"#,
                "unknown field",
            ),
            (r#"{"name":"a"}"#, "zones"),
        ] {
            let err = parse(body.as_bytes()).unwrap_err();
            assert!(err.starts_with("zones: ") && err.contains(why), "{body}: {err}");
        }
    }

    #[test]
    fn stored_zones_load_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        assert!(load(&file).unwrap().is_none());
        std::fs::write(&file, r#"[{"name":"door","points":[[0,0],[1,0],[1,1]]}]"#).unwrap();
        assert_eq!(load(&file).unwrap().unwrap()[0].name(), "door");
        std::fs::write(&file, "[{").unwrap();
        assert!(load(&file).unwrap_err().to_string().contains("zones.json"));
    }
}
