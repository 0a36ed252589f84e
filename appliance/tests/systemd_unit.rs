//! The systemd units the SD image installs, checked by systemd's own tools:
//! `systemd-analyze verify` finds no error and `systemd-analyze security`
//! rates mado.service's exposure under 2.0 ("OK"); the sysusers entry
//! creates the `mado` user in the camera and GPIO groups.

use std::path::Path;
use std::process::Command;

mod common;

const UNITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd");

/// A root directory like the image's: the host's own system units (targets
/// the units refer to), Mado's units, and this build's `mado` binary.
fn image_like_root() -> tempfile::TempDir {
    common::require_tool("systemd-analyze", "systemd");
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let units = r.join("usr/lib/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    for entry in std::fs::read_dir("/usr/lib/systemd/system").unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), units.join(entry.file_name())).unwrap();
        }
    }
    for unit in ["mado.service", "mado-first-boot.service"] {
        std::fs::copy(Path::new(UNITS).join(unit), units.join(unit)).unwrap();
    }
    std::fs::create_dir_all(r.join("usr/bin")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_mado"), r.join("usr/bin/mado")).unwrap();
    let first_boot = r.join("usr/lib/mado/first-boot");
    std::fs::create_dir_all(first_boot.parent().unwrap()).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../board/image/first-boot"),
        &first_boot,
    )
    .unwrap();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    root
}

fn analyze(root: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(format!("--root={}", root.display()))
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("running systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_units_verify_clean() {
    let root = image_like_root();
    let (ok, text) = analyze(root.path(), &["verify", "mado.service", "mado-first-boot.service"]);
    assert!(ok && text.trim().is_empty(), "systemd-analyze verify:\n{text}");
}

#[test]
fn the_service_exposure_is_ok_under_2() {
    let root = image_like_root();
    let (_, text) = analyze(
        root.path(),
        &["security", "--offline=yes", "--no-pager", "mado.service"],
    );
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for mado.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    eprintln!("systemd-analyze security mado.service: {score}");
    assert!(score < 2.0, "exposure {score}:\n{text}");
}

#[test]
fn the_service_is_a_notify_service_with_a_watchdog_and_no_capabilities() {
    let unit = std::fs::read_to_string(Path::new(UNITS).join("mado.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "DevicePolicy=closed",
        "StateDirectory=mado",
        "ConfigurationDirectory=mado",
        "User=mado",
    ] {
        assert!(has(line), "mado.service lacks {line}");
    }
    assert!(unit.lines().any(|l| l.starts_with("MemoryMax=")));
    let devices: Vec<&str> = unit.lines().filter_map(|l| l.strip_prefix("DeviceAllow=")).collect();
    assert!(
        devices
            .iter()
            .all(|d| ["char-video4linux", "char-gpiochip", "/dev/gpiomem"]
                .iter()
                .any(|p| d.starts_with(p))),
        "devices other than video and GPIO: {devices:?}"
    );
    assert!(
        devices.contains(&"char-gpiochip rw"),
        "the GPIO character devices (any chip number) are not allowed: {devices:?}"
    );
}

#[test]
fn sysusers_creates_the_mado_user_in_the_video_and_gpio_groups() {
    common::require_tool("systemd-sysusers", "systemd");
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    // The image has Debian's video group before mado's entry runs.
    std::fs::write(etc.join("group"), "root:x:0:\nvideo:x:44:\n").unwrap();
    std::fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(Path::new(UNITS).join("mado.sysusers"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap();
    let group = std::fs::read_to_string(etc.join("group")).unwrap();
    let user = passwd.lines().find(|l| l.starts_with("mado:")).expect("mado user");
    assert!(user.ends_with(":/var/lib/mado:/usr/sbin/nologin"), "{user}");
    for g in ["video", "gpio"] {
        let line = group.lines().find(|l| l.starts_with(&format!("{g}:"))).unwrap();
        assert!(line.ends_with(":mado"), "{line}");
    }
}
