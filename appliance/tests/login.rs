//! Login and HTTPS against the real `mado run`: what a stranger on the LAN
//! gets without a session, the login rate limit, sessions and their expiry,
//! the Host/Origin checks, HTTPS with the generated certificate, and the
//! `mado auth` commands.

#![allow(
    clippy::disallowed_methods,
    reason = "integration tests drive the real binary and wait on real time"
)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::auth::{agent_with, set_password, TestAuth, PASSWORD};
use common::live::{Server, Viewer};
use str0m::format::Codec;

/// A raw HTTP/1.1 request from `from` (a loopback address) to `to`; returns
/// the status and the whole answer.
fn raw(from: &str, to: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&format!("{from}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&to.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request = format!(
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, answer)
}

fn login_body(password: &str) -> String {
    serde_json::json!({ "password": password }).to_string()
}

/// POSTs a login; returns the status and the `Set-Cookie` value, if any.
fn login(base: &str, password: &str) -> (u16, Option<String>) {
    let resp = agent_with(None)
        .post(format!("{base}/api/login"))
        .header("content-type", "application/json")
        .send(login_body(password))
        .unwrap();
    let cookie = resp.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), cookie)
}

fn get(base: &str, path: &str, cookie: Option<&str>) -> u16 {
    let mut req = agent_with(None).get(format!("{base}{path}"));
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    req.call().unwrap().status().as_u16()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn without_a_session_or_token_status_dashboard_and_whep_are_refused() {
    let server = Server::start(&[]);
    let base = &server.base;
    let anonymous = agent_with(None);
    assert_eq!(get(base, "/api/status", None), 401);
    assert_eq!(get(base, "/app.js", None), 401);
    assert_eq!(get(base, "/login", None), 200);
    assert_eq!(get(base, "/login.js", None), 200);
    let dashboard = anonymous.get(format!("{base}/")).call().unwrap();
    assert_eq!(dashboard.status().as_u16(), 303);
    assert_eq!(dashboard.headers()["location"], "/login");
    let (_, offer) = Viewer::new(&[Codec::Av1]);
    let post = anonymous
        .post(format!("{base}/whep"))
        .header("content-type", "application/sdp")
        .send(offer.as_bytes())
        .unwrap();
    assert_eq!(post.status().as_u16(), 401);
    assert!(post.headers().contains_key("www-authenticate"));
    let delete = anonymous
        .delete(format!("{base}/whep/0123456789abcdef"))
        .call()
        .unwrap();
    assert_eq!(delete.status().as_u16(), 401);
    let patch = anonymous
        .patch(format!("{base}/whep/0123456789abcdef"))
        .send(&b""[..])
        .unwrap();
    assert_eq!(patch.status().as_u16(), 401);
    let wrong = agent_with(Some(format!("Bearer mado_{}", "0".repeat(64))));
    assert_eq!(
        wrong
            .get(format!("{base}/api/status"))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(server.status()["viewers"], 0, "the token works");
    assert_eq!(server.status()["auth"], "password");
    // A token-holding WHEP client gets its viewer.
    let (status, _, _) = server.post_whep("application/sdp", offer.as_bytes());
    assert_eq!(status, 201);
}

#[test]
fn login_gives_a_strict_cookie_and_logout_ends_it() {
    let server = Server::start(&[]);
    let base = &server.base;
    assert_eq!(login(base, "not the password").0, 401);
    let (status, set_cookie) = login(base, PASSWORD);
    assert_eq!(status, 204);
    let set_cookie = set_cookie.expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let (name, id) = cookie.split_once('=').unwrap();
    assert!(name.starts_with("mado_session_"), "{name}");
    assert!(id.len() >= 32 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert_eq!(get(base, "/api/status", Some(&cookie)), 200);
    assert_eq!(get(base, "/", Some(&cookie)), 200);
    assert_eq!(get(base, "/app.js", Some(&cookie)), 200);
    let logout = agent_with(None)
        .post(format!("{base}/api/logout"))
        .header("cookie", &cookie)
        .send(&b""[..])
        .unwrap();
    assert_eq!(logout.status().as_u16(), 204);
    assert!(logout.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(get(base, "/api/status", Some(&cookie)), 401, "after logout");
    assert_eq!(
        get(base, "/api/status", Some(&format!("{name}=0123"))),
        401,
        "a made-up id"
    );
}

#[test]
fn wrong_passwords_slow_that_address_and_not_another() {
    let server = Server::start(&[]);
    let addr = server.http_addr();
    let head = |host: &str| format!("POST /api/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n");
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(raw("127.0.0.1", addr, &head("localhost"), &login_body("guess")).0);
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(checked + refused, 20, "{statuses:?}");
    assert!((6..=8).contains(&checked), "5 free, then waits: {statuses:?}");
    // Even the right password waits there now; another address is not slowed.
    let (status, answer) = raw("127.0.0.1", addr, &head("localhost"), &login_body(PASSWORD));
    assert_eq!(status, 429, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after:"), "{answer}");
    let (status, answer) = raw("127.0.0.2", addr, &head("localhost"), &login_body(PASSWORD));
    assert_eq!(status, 204, "{answer}");
}

#[test]
fn an_idle_session_expires() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mado.toml");
    std::fs::write(&config, "[auth]\nsession_idle_s = 10\n").unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let (status, cookie) = login(&server.base, PASSWORD);
    assert_eq!(status, 204);
    let cookie = cookie.unwrap().split(';').next().unwrap().to_owned();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(get(&server.base, "/api/status", Some(&cookie)), 200, "used within 10 s");
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(get(&server.base, "/api/status", Some(&cookie)), 401, "idle 12 s");
}

#[test]
fn a_foreign_host_and_a_cross_origin_post_are_refused() {
    let server = Server::start(&[]);
    let addr = server.http_addr();
    let auth = server.auth.bearer();
    let (status, answer) = raw(
        "127.0.0.1",
        addr,
        &format!(
            "GET /api/status HTTP/1.1\r\nHost: rebound.example:{}\r\nAuthorization: {auth}\r\n",
            addr.port()
        ),
        "",
    );
    assert_eq!(status, 403, "DNS rebinding: {answer}");
    assert!(answer.contains("rebound.example"), "{answer}");
    let (status, _) = raw(
        "127.0.0.1",
        addr,
        &format!(
            "GET /api/status HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: {auth}\r\n",
            addr.port()
        ),
        "",
    );
    assert_eq!(status, 200);
    let login_from = |origin: &str| {
        raw(
            "127.0.0.1",
            addr,
            &format!(
                "POST /api/login HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nContent-Type: application/json\r\n"
            ),
            &login_body(PASSWORD),
        )
    };
    let (status, answer) = login_from("http://evil.example");
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("Origin"), "{answer}");
    let (_, offer) = Viewer::new(&[Codec::Av1]);
    let (status, _) = raw(
        "127.0.0.1",
        addr,
        &format!("POST /whep HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\nAuthorization: {auth}\r\nContent-Type: application/sdp\r\n"),
        &offer,
    );
    assert_eq!(status, 403, "a cross-site WHEP POST");
    assert_eq!(login_from(&format!("http://{addr}")).0, 204, "the device's own page");
}

#[test]
fn https_serves_the_generated_certificate_and_plain_http_is_redirected() {
    let server = Server::start(&["--tls", "on"]);
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);
    let cert_path = server.auth.dir().join("tls-cert.pem");
    assert_eq!(mode(&server.auth.dir().join("tls-key.pem")), 0o600);
    let pem = std::fs::read(&cert_path).unwrap();
    let trusting = |authorization: Option<String>| {
        let cert = ureq::tls::Certificate::from_pem(&pem).unwrap();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])))
            .build();
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls);
        if let Some(value) = authorization {
            config = config.middleware(
                move |mut req: http::Request<ureq::SendBody>, next: ureq::middleware::MiddlewareNext| {
                    req.headers_mut().insert("authorization", value.parse().unwrap());
                    next.handle(req)
                },
            );
        }
        ureq::Agent::from(config.build())
    };
    for base in [server.base.clone(), server.base.replace("127.0.0.1", "localhost")] {
        let resp = trusting(Some(server.auth.bearer()))
            .get(format!("{base}/api/status"))
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{base}");
    }
    // A client that does not trust the certificate gets no answer.
    assert!(agent_with(None)
        .get(format!("{}/api/status", server.base))
        .call()
        .is_err());
    // The login cookie is Secure.
    let resp = trusting(None)
        .post(format!("{}/api/login", server.base))
        .header("content-type", "application/json")
        .send(login_body(PASSWORD))
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
    // Plain HTTP to the same port is sent to HTTPS.
    let addr = server.http_addr_tls();
    let (status, answer) = raw(
        "127.0.0.1",
        addr,
        &format!("GET /x?y=1 HTTP/1.1\r\nHost: localhost:{}\r\n", addr.port()),
        "",
    );
    assert_eq!(status, 308, "{answer}");
    assert!(
        answer.contains(&format!("location: https://localhost:{}/x?y=1", addr.port())),
        "{answer}"
    );
    // The fingerprint mado shows is the certificate's.
    use rustls_pki_types::pem::PemObject as _;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    let expected = sha2_hex(&der);
    let out = common::run_ok(
        common::mado()
            .arg("--state-dir")
            .arg(server.auth.dir())
            .arg("print-config"),
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains(&expected), "{expected} in {printed}");
}

fn sha2_hex(der: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn auth_init_is_idempotent_and_keeps_its_files_private() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let init = || {
        let out = common::run_ok(common::mado().arg("--state-dir").arg(&state).args(["auth", "init"]));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = init();
    let generated = first
        .lines()
        .find_map(|l| l.strip_prefix("mado: generated the dashboard password: "))
        .unwrap_or_else(|| panic!("{first}"))
        .trim()
        .to_owned();
    assert!(generated.len() >= 20, "{generated}");
    assert_eq!(mode(&state), 0o700);
    for file in ["password", "initial-password", "tls-cert.pem", "tls-key.pem"] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    let hash = std::fs::read_to_string(state.join("password")).unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(&generated));
    assert_eq!(
        std::fs::read_to_string(state.join("initial-password")).unwrap().trim(),
        generated
    );
    let cert = std::fs::read(state.join("tls-cert.pem")).unwrap();
    let second = init();
    assert!(
        second.contains("a password is set") && !second.contains(&generated),
        "{second}"
    );
    assert_eq!(std::fs::read_to_string(state.join("password")).unwrap(), hash);
    assert_eq!(std::fs::read(state.join("tls-cert.pem")).unwrap(), cert);
    // The generated password logs in to a server on that state directory.
    let server = Server::start_with(&[], |c| {
        c.env("MADO_STATE_DIR", &state);
    });
    assert_eq!(login(&server.base, &generated).0, 204);
}

#[test]
fn mado_run_makes_a_first_password_when_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("fresh");
    let server = Server::start_with(&[], |c| {
        c.env("MADO_STATE_DIR", &state);
    });
    let initial = state.join("initial-password");
    assert_eq!(mode(&initial), 0o600);
    let generated = std::fs::read_to_string(&initial).unwrap().trim().to_owned();
    assert_eq!(login(&server.base, &generated).0, 204);
}

#[test]
fn set_password_replaces_the_password_and_ends_the_sessions() {
    let server = Server::start(&[]);
    let (status, cookie) = login(&server.base, PASSWORD);
    assert_eq!(status, 204);
    let cookie = cookie.unwrap().split(';').next().unwrap().to_owned();
    let short = set_password(server.auth.dir(), "short");
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 8"),
        "{short:?}"
    );
    assert_eq!(
        get(&server.base, "/api/status", Some(&cookie)),
        200,
        "a refused change changes nothing"
    );
    set_password(server.auth.dir(), "a brand new password");
    assert_eq!(
        get(&server.base, "/api/status", Some(&cookie)),
        401,
        "sessions end with the old password"
    );
    assert_eq!(login(&server.base, PASSWORD).0, 401);
    assert_eq!(login(&server.base, "a brand new password").0, 204);
}

/// What the board's button does when held 10 s (`Store::reset_password`).
#[test]
fn reset_password_goes_back_to_a_generated_first_password_and_ends_the_sessions() {
    let server = Server::start(&[]);
    let (status, cookie) = login(&server.base, PASSWORD);
    assert_eq!(status, 204);
    let cookie = cookie.unwrap().split(';').next().unwrap().to_owned();
    let out = common::auth::mado_command()
        .arg("--state-dir")
        .arg(server.auth.dir())
        .args(["auth", "reset-password"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    let initial = server.auth.dir().join("initial-password");
    assert_eq!(mode(&initial), 0o600);
    let generated = std::fs::read_to_string(&initial).unwrap().trim().to_owned();
    assert!(
        generated.len() >= 8 && printed.contains(&generated),
        "the new password is printed once: {printed}"
    );
    assert_eq!(
        get(&server.base, "/api/status", Some(&cookie)),
        401,
        "every session ends"
    );
    assert_eq!(login(&server.base, PASSWORD).0, 401, "the old password is gone");
    assert_eq!(login(&server.base, &generated).0, 204);
    let with_token = server.agent().get(format!("{}/api/status", server.base)).call();
    assert_eq!(
        with_token.map(|r| r.status().as_u16()).ok(),
        Some(200),
        "API tokens stay"
    );
}

#[test]
fn a_revoked_token_is_refused() {
    let server = Server::start(&[]);
    assert_eq!(
        server
            .agent()
            .get(format!("{}/api/status", server.base))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let out = common::run_ok(
        common::mado()
            .arg("--state-dir")
            .arg(server.auth.dir())
            .args(["auth", "token", "revoke", "tests"]),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    assert_eq!(
        server
            .agent()
            .get(format!("{}/api/status", server.base))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
}

#[test]
fn mode_none_needs_no_login_and_says_so() {
    let auth = TestAuth::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mado.toml");
    std::fs::write(&config, "[auth]\nmode = \"none\"\n").unwrap();
    let server = Server::start_with(&["--config", config.to_str().unwrap()], |c| auth.apply(c));
    let mut resp = agent_with(None)
        .get(format!("{}/api/status", server.base))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let status: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(status["auth"], "none");
    assert_eq!(get(&server.base, "/", None), 200);
    let (status, _) = raw(
        "127.0.0.1",
        server.http_addr(),
        "GET /api/status HTTP/1.1\r\nHost: rebound.example\r\n",
        "",
    );
    assert_eq!(status, 403, "the Host check stays");
}

#[test]
fn passwords_session_ids_and_tokens_never_reach_the_log() {
    let server = Server::start_with(&[], |c| {
        c.env("MADO_LOG", "debug");
    });
    assert_eq!(login(&server.base, "wrong-guess-123").0, 401);
    let (status, cookie) = login(&server.base, PASSWORD);
    assert_eq!(status, 204);
    let cookie = cookie.unwrap().split(';').next().unwrap().to_owned();
    let id = cookie.split_once('=').unwrap().1.to_owned();
    assert_eq!(get(&server.base, "/api/status", Some(&cookie)), 200);
    assert_eq!(server.status()["auth"], "password");
    std::thread::sleep(Duration::from_millis(500));
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("wrong password"), "the log says what happened: {log}");
    for secret in [PASSWORD, "wrong-guess-123", id.as_str(), server.auth.token.as_str()] {
        assert!(!log.contains(secret), "{secret:?} in the log");
    }
}
