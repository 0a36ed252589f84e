//! The account API the dashboard uses, against the real `mado run`: API
//! tokens made, listed and revoked by a person logged in (never by a
//! token), and the password changed, which ends every other session.

#![allow(
    clippy::disallowed_methods,
    reason = "integration tests drive the real binary and wait on real time"
)]

mod common;

use common::auth::{agent_with, PASSWORD};
use common::live::Server;

/// A request as a person logged in (`cookie`), a script (`bearer`) or a
/// stranger (neither); returns the status, the body and any new cookie.
fn call(
    server: &Server,
    method: &str,
    path: &str,
    who: Who<'_>,
    body: Option<serde_json::Value>,
) -> (u16, String, Option<String>) {
    let agent = agent_with(match who {
        Who::Bearer(token) => Some(format!("Bearer {token}")),
        _ => None,
    });
    let url = format!("{}{path}", server.base);
    let request = http::Request::builder().method(method).uri(&url);
    let request = match who {
        Who::Cookie(cookie) => request.header("cookie", cookie),
        _ => request,
    }
    .header("content-type", "application/json");
    let mut resp = agent
        .run(request.body(body.map(|b| b.to_string()).unwrap_or_default()).unwrap())
        .unwrap();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default(), cookie)
}

#[derive(Clone, Copy)]
enum Who<'a> {
    Cookie(&'a str),
    Bearer(&'a str),
    Stranger,
}

fn status_as(server: &Server, who: Who<'_>) -> u16 {
    call(server, "GET", "/api/status", who, None).0
}

#[test]
fn tokens_are_made_listed_and_revoked_by_a_person_logged_in_only() {
    let server = Server::start(&[]);
    let person = server.auth.login(&server.base);
    let me = Who::Cookie(&person);

    let (status, body, _) = call(
        &server,
        "POST",
        "/api/tokens",
        me,
        Some(serde_json::json!({"name": "nvr"})),
    );
    assert_eq!(status, 201, "{body}");
    let made: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mado_") && token.len() == 69, "{token}");
    assert_eq!(
        status_as(&server, Who::Bearer(&token)),
        200,
        "the new token works at once"
    );

    // Listed by name (with the test's own token), never shown again, and
    // stored only as a hash.
    let (status, body, _) = call(&server, "GET", "/api/tokens", me, None);
    assert_eq!(status, 200);
    let names: Vec<String> = serde_json::from_str::<serde_json::Value>(&body).unwrap()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["tests", "nvr"]);
    assert!(!body.contains(&token[5..]));
    let stored = std::fs::read_to_string(server.auth.dir().join("tokens")).unwrap();
    assert!(stored.contains("nvr ") && !stored.contains(&token[5..]), "{stored}");

    // Names are checked, and taken ones refused.
    let create = |name: &str| {
        call(
            &server,
            "POST",
            "/api/tokens",
            me,
            Some(serde_json::json!({ "name": name })),
        )
    };
    assert_eq!(create("nvr").0, 409);
    let (status, body, _) = create("two words");
    assert_eq!(status, 400);
    assert!(body.contains("token name"), "{body}");
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/tokens",
            me,
            Some(serde_json::json!({"label": "x"}))
        )
        .0,
        400
    );

    // A token manages nothing: a leaked one cannot mint more or lock the owner out.
    let script = Who::Bearer(&token);
    assert_eq!(call(&server, "GET", "/api/tokens", script, None).0, 403);
    assert_eq!(create_as(&server, script, "more"), 403);
    assert_eq!(call(&server, "DELETE", "/api/tokens/tests", script, None).0, 403);
    let change = serde_json::json!({"current": PASSWORD, "new": "taken over by a script"});
    assert_eq!(call(&server, "POST", "/api/password", script, Some(change)).0, 403);
    // A stranger gets the login gate's answer.
    assert_eq!(call(&server, "GET", "/api/tokens", Who::Stranger, None).0, 401);
    assert_eq!(create_as(&server, Who::Stranger, "mine"), 401);

    // Revoked: refused at once; a second revoke finds nothing.
    assert_eq!(call(&server, "DELETE", "/api/tokens/nvr", me, None).0, 204);
    assert_eq!(status_as(&server, Who::Bearer(&token)), 401);
    assert_eq!(call(&server, "DELETE", "/api/tokens/nvr", me, None).0, 404);
    assert_eq!(status_as(&server, Who::Cookie(&person)), 200);
}

fn create_as(server: &Server, who: Who<'_>, name: &str) -> u16 {
    call(
        server,
        "POST",
        "/api/tokens",
        who,
        Some(serde_json::json!({ "name": name })),
    )
    .0
}

#[test]
fn the_password_changed_on_the_dashboard_ends_every_other_session() {
    let server = Server::start(&[]);
    let mine = server.auth.login(&server.base);
    let other = server.auth.login(&server.base);
    let change = |current: &str, new: &str| {
        call(
            &server,
            "POST",
            "/api/password",
            Who::Cookie(&mine),
            Some(serde_json::json!({"current": current, "new": new})),
        )
    };
    let (status, body, _) = change(PASSWORD, "short");
    assert_eq!(status, 400);
    assert!(body.contains("at least 8"), "{body}");
    assert_eq!(change("not the password", "a brand new password").0, 401);
    assert_eq!(
        status_as(&server, Who::Cookie(&other)),
        200,
        "a refused change changes nothing"
    );

    let (status, body, renewed) = change(PASSWORD, "a brand new password");
    assert_eq!(status, 204, "{body}");
    let renewed = renewed.expect("a new session for the person who changed it");
    assert_eq!(status_as(&server, Who::Cookie(&renewed)), 200);
    assert_eq!(status_as(&server, Who::Cookie(&other)), 401, "other sessions end");
    assert_eq!(status_as(&server, Who::Cookie(&mine)), 401, "the old cookie ends too");
    assert_eq!(
        status_as(&server, Who::Bearer(&server.auth.bearer()[7..])),
        200,
        "tokens stay"
    );

    let login = |password: &str| {
        agent_with(None)
            .post(format!("{}/api/login", server.base))
            .header("content-type", "application/json")
            .send(serde_json::json!({ "password": password }).to_string())
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(login(PASSWORD), 401);
    assert_eq!(login("a brand new password"), 204);
}
