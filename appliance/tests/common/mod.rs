//! Helpers shared by the integration tests: running the `mado` binary and the
//! real AV1 decoders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod auth;
pub mod live;

use mado::av1::ivf::{IvfFrame, IvfHeader, IvfReader};

/// A `mado` command from this build. Its state directory (password,
/// certificate) is a scratch one of this test process, never the home
/// directory's; a test that logs in uses [`auth::TestAuth`] instead.
pub fn mado() -> Command {
    static SCRATCH: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let scratch = SCRATCH.get_or_init(|| tempfile::Builder::new().prefix("mado-state-").tempdir().unwrap());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mado"));
    cmd.env("MADO_LOG", "warn")
        .env_remove("MADO_CONFIG")
        .env("MADO_STATE_DIR", scratch.path());
    cmd
}

/// The workspace's root, above `appliance/`.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/footage/NAME`, failing the test when `scripts/fetch-footage` has not made it.
pub fn footage(name: &str) -> PathBuf {
    let path = workspace().join("target/footage").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-footage",
        path.display()
    );
    path
}

/// The `[detect]` lines for the general detector (SSD MobileNetV2) on the
/// LiteRT library, failing the test when `scripts/models/fetch-runtime` has
/// not fetched it. More `[detect]` keys may follow.
pub fn ssd_detect_config() -> String {
    let library = mado::detect::litert_library(&workspace());
    assert!(
        library.exists(),
        "{} is missing: run scripts/models/fetch-runtime",
        library.display()
    );
    let manifest = workspace().join("models/ssd_mobilenetv2_oidv4.toml");
    format!(
        "[detect]\nmodel = {:?}\nruntime = {:?}\n",
        manifest.display().to_string(),
        library.display().to_string()
    )
}

/// Runs a command and returns its output, failing the test when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Records `frames` frames of the test pattern at `size` into `dir/name`, losing none.
pub fn record_testpattern(dir: &Path, name: &str, size: &str, frames: u64) -> PathBuf {
    record_with(dir, name, size, frames, "")
}

/// Records the test pattern with `config` (TOML text) as the configuration.
pub fn record_with(dir: &Path, name: &str, size: &str, frames: u64, config: &str) -> PathBuf {
    let path = dir.join(name);
    let config_path = dir.join(format!("{name}.toml"));
    std::fs::write(&config_path, config).unwrap();
    run_ok(
        mado()
            .arg("--config")
            .arg(&config_path)
            .args(["record", "--source", "testpattern", "--pace", "fast", "--size", size])
            .args([
                "--frames".as_ref(),
                frames.to_string().as_ref(),
                "--output".as_ref(),
                path.as_os_str(),
            ]),
    );
    path
}

pub fn read_ivf(path: &Path) -> (IvfHeader, Vec<IvfFrame>) {
    let reader = IvfReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let header = reader.header();
    (header, reader.collect::<Result<_, _>>().unwrap())
}

/// Fails with a clear message when an external tool the test relies on is missing.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is missing: install the Debian package `{package}` (scripts/test-all does)"
    );
}
