//! `mado run` told it is on a Pi 4 on a machine with no GPIO at all: each
//! GPIO feature is reported once as not available, with the reason, and
//! the appliance streams as usual.
#![allow(
    clippy::disallowed_methods,
    reason = "integration test drives a real process in real time"
)]

mod common;

use std::time::{Duration, Instant};

use common::live::Server;

#[test]
fn without_gpio_each_feature_says_why_once_and_the_appliance_runs() {
    let has_gpio = ["/dev/gpiomem", "/dev/gpiomem0", "/dev/gpiochip0"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    if has_gpio {
        eprintln!("skipped: this machine has GPIO");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mado.toml");
    std::fs::write(&config, "[board]\nprofile = \"pi4\"\n").unwrap();
    let server = Server::start_with(&[], |c| {
        c.env("MADO_CONFIG", &config);
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.status()["frames_encoded"].as_u64().unwrap_or(0) < 10 {
        assert!(Instant::now() < deadline, "no frames encoded");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let log = server.log.lock().unwrap().clone();
    let reasons: Vec<&str> = log.lines().filter(|l| l.contains("not available")).collect();
    assert_eq!(reasons.len(), 4, "one line per feature:\n{log}");
    for feature in ["status LED", "relay", "PIR sensor", "button"] {
        let line = reasons
            .iter()
            .find(|l| l.contains(&format!("board: {feature} not available")))
            .unwrap_or_else(|| panic!("{feature} not reported:\n{log}"));
        assert!(line.contains("no GPIO chip labelled pinctrl-bcm2711"), "{line}");
    }
}
