//! Credentials for tests of `mado run`: ONE place that knows how a test
//! logs in. [`TestAuth::new`] makes a state directory with a known password
//! and an API token (through the real `mado auth` commands); a test passes
//! it to the server with [`TestAuth::apply`] (`MADO_STATE_DIR`) and makes
//! requests with [`TestAuth::agent`] (`Authorization: Bearer`) or logs in
//! with [`TestAuth::login`] (a session cookie).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// The password every test server gets.
pub const PASSWORD: &str = "mado-test-password";

/// A state directory with [`PASSWORD`] and an API token; removed on drop.
pub struct TestAuth {
    dir: tempfile::TempDir,
    /// An API token for `Authorization: Bearer`.
    pub token: String,
}

pub fn mado_command() -> Command {
    let bin = std::env::var_os("MADO_BIN").map_or_else(|| env!("CARGO_BIN_EXE_mado").into(), std::path::PathBuf::from);
    let mut cmd = Command::new(bin);
    cmd.env("MADO_LOG", "warn").env_remove("MADO_CONFIG");
    cmd
}

impl TestAuth {
    /// A fresh state directory with the known password and a token.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("mado-auth-").tempdir().unwrap();
        set_password(dir.path(), PASSWORD);
        let out = mado_command()
            .arg("--state-dir")
            .arg(dir.path())
            .args(["auth", "token", "create", "tests"])
            .output()
            .unwrap();
        assert!(out.status.success(), "mado auth token create: {out:?}");
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(token.starts_with("mado_"), "token {token:?}");
        Self { dir, token }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Points a `mado` command at this state directory.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("MADO_STATE_DIR", self.dir.path());
    }

    /// The `Authorization` header's value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// A ureq agent that sends the token with every request and does not
    /// treat 4xx/5xx as errors.
    pub fn agent(&self) -> ureq::Agent {
        agent_with(Some(self.bearer()))
    }

    /// Logs in at `base` with the password; returns the `Cookie` header
    /// value for the session.
    pub fn login(&self, base: &str) -> String {
        let resp = agent_with(None)
            .post(format!("{base}/api/login"))
            .header("content-type", "application/json")
            .send(format!("{{\"password\":\"{PASSWORD}\"}}"))
            .unwrap();
        assert_eq!(resp.status().as_u16(), 204, "login at {base}");
        let cookie = resp
            .headers()
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }
}

impl Default for TestAuth {
    fn default() -> Self {
        Self::new()
    }
}

/// An agent that keeps 4xx/5xx as answers, sending `authorization` if given.
pub fn agent_with(authorization: Option<String>) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0);
    match authorization {
        Some(value) => config
            .middleware(
                move |mut req: http::Request<ureq::SendBody>, next: ureq::middleware::MiddlewareNext| {
                    if !req.headers().contains_key("authorization") {
                        req.headers_mut().insert("authorization", value.parse().unwrap());
                    }
                    next.handle(req)
                },
            )
            .build()
            .into(),
        None => config.build().into(),
    }
}

/// Runs `mado auth set-password` in `dir` with `password` on standard input.
pub fn set_password(dir: &Path, password: &str) -> std::process::Output {
    let mut child = mado_command()
        .arg("--state-dir")
        .arg(dir)
        .args(["auth", "set-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if password.len() >= 8 {
        assert!(out.status.success(), "mado auth set-password: {out:?}");
    }
    out
}

/// One [`TestAuth`] for the whole test process, for helpers that have no
/// server object to keep it in (its directory is left in the temp dir).
pub fn shared() -> &'static TestAuth {
    static SHARED: std::sync::OnceLock<TestAuth> = std::sync::OnceLock::new();
    SHARED.get_or_init(TestAuth::new)
}
