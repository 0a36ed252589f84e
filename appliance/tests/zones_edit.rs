//! Zones edited through `PUT /api/events/zones` against the real `mado run`:
//! stored, served back, applied to the running event tracker (an event on
//! the test pattern names the new zone), kept across a restart ahead of the
//! config's zones; invalid lists, missing logins and other origins refused.

#![allow(
    clippy::disallowed_methods,
    reason = "integration tests drive the real binary and wait on real time"
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::live::Server;
use serde_json::{json, Value};

/// Events on the test pattern's target, whose feet are in the bottom 15% of
/// the picture for about 18 of every 100 frames; the config's own zone is
/// `floor`, the same band.
fn config(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        "[events]\nenabled = true\nclasses = [\"target\"]\nmin_frames = 2\nquiet_ms = 700\n\
         pre_roll_ms = 0\npost_roll_ms = 0\nclip_dir = {:?}\n\
         [[events.zones]]\nname = \"floor\"\npoints = [[0, 0.85], [1, 0.85], [1, 1], [0, 1]]\n",
        dir.join("clips").display().to_string()
    );
    let path = dir.join("mado.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The band `floor` covers, under another name.
fn ground() -> Value {
    json!([{"name": "ground", "points": [[0.0, 0.8], [1.0, 0.8], [1.0, 1.0], [0.0, 1.0]]}])
}

fn put(agent: &ureq::Agent, server: &Server, body: &str, origin: Option<&str>) -> (u16, String) {
    let mut req = agent
        .put(format!("{}/api/events/zones", server.base))
        .header("content-type", "application/json");
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    let mut resp = req.send(body).unwrap();
    (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap())
}

fn get_json(agent: &ureq::Agent, server: &Server, path: &str) -> Value {
    let mut resp = agent.get(format!("{}{path}", server.base)).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
}

#[test]
fn zones_put_apply_and_survive_a_restart() {
    let dir = tempfile::Builder::new().prefix("mado-zones-").tempdir().unwrap();
    let config = config(dir.path());
    let start = |state: Option<&Path>| {
        let config = config.clone();
        let state = state.map(Path::to_owned);
        Server::start_with(&[], move |c| {
            c.env("MADO_CONFIG", &config);
            if let Some(state) = state {
                c.env("MADO_STATE_DIR", state);
            }
        })
    };
    let mut server = start(None);
    let agent = server.agent();
    assert_eq!(get_json(&agent, &server, "/api/events/zones")[0]["name"], "floor");

    // Refusals first: nothing may change the zones.
    let body = ground().to_string();
    let (status, _) = put(&common::auth::agent_with(None), &server, &body, None);
    assert_eq!(status, 401, "PUT without a session");
    let (status, reply) = put(&agent, &server, &body, Some("http://evil.example"));
    assert_eq!(status, 403, "cross-origin PUT: {reply}");
    for (bad, why) in [
        (r#"[{"name":"a","points":[[0,0],[1,0]]}]"#, "at least 3"),
        (r#"[{"name":"a","points":[[0,0],[1.5,0],[0,1]]}]"#, "outside 0 to 1"),
        (r#"[{"name":"","points":[[0,0],[1,0],[0,1]]}]"#, "needs a name"),
        ("not json", "zones"),
    ] {
        let (status, reply) = put(&agent, &server, bad, None);
        assert_eq!(status, 400, "{bad}: {reply}");
        assert!(reply.contains(why), "{bad}: {reply}");
    }
    assert_eq!(
        server.send_oversized("PUT", "/api/events/zones", "application/json"),
        413,
        "oversized list"
    );
    assert_eq!(get_json(&agent, &server, "/api/events/zones")[0]["name"], "floor");

    // A valid list from the dashboard's own origin.
    let origin = server.base.clone();
    let (status, reply) = put(&agent, &server, &body, Some(&origin));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(get_json(&agent, &server, "/api/events/zones"), ground());
    assert!(server.auth.dir().join("zones.json").exists());

    // The running tracker judges by the new zone at once.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let events = get_json(&agent, &server, "/api/events");
        if events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["zones"] == json!(["ground"]))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no event in zone ground: {events:#}");
        std::thread::sleep(Duration::from_millis(250));
    }

    // A restart on the same state directory keeps them, ahead of the config's.
    server.signal_and_wait(libc::SIGTERM);
    let again = start(Some(server.auth.dir()));
    assert_eq!(get_json(&agent, &again, "/api/events/zones"), ground());
}
