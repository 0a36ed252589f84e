//! The GPIO character-device backend against a real kernel GPIO chip: the
//! SD image's own kernel (Debian's linux-image-arm64) on qemu's raspi3b,
//! whose GPIO block the kernel's pinctrl-bcm2835 driver runs
//! (`board/vm/run-pi`). The `gpio_check` example, cross-built static for
//! aarch64, opens the Pi's lines with no `/dev/gpiomem` (as on the image),
//! drives the LED and relay through `BoardLogic` and reads their levels back
//! from the kernel, and sees PIR motion, a short press and a 10 s hold. It
//! also checks the reasons given for a chip that is not there and for a
//! user without permission.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "aarch64-unknown-linux-gnu";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const GUEST_SCRIPT: &str = r#"set -u
echo "RESULT devices $(grep gpiochip /proc/devices)"
gpio_check open --chip no-such-chip
echo "RESULT nochip-exit $?"
gpio_check open --as-nobody
echo "RESULT nobody-exit $?"
gpio_check drive
echo "RESULT drive-exit $?"
"#;

/// Cross-builds the example, static (the VM has no C library), with the
/// image's cross toolchain (`board/image/cross-env` installs it if missing).
fn build_gpio_check() -> PathBuf {
    let target_dir = repo().join("target/vm/pi/build");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". board/image/cross-env >/dev/null && \"$0\" build -q -p board --example gpio_check --target {TARGET} --target-dir \"$1\""
        ))
        .arg(&cargo)
        .arg(&target_dir)
        .current_dir(repo())
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .expect("bash runs");
    assert!(status.success(), "the aarch64 build of gpio_check failed");
    target_dir.join(TARGET).join("debug/examples/gpio_check")
}

#[test]
fn the_character_device_backend_drives_and_reads_the_pi_gpio_chip_of_debians_kernel() {
    let have_qemu = Command::new("sh")
        .args(["-c", "command -v qemu-system-aarch64"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have_qemu,
        "qemu-system-aarch64 is missing: install qemu-system-arm (scripts/install-deps vm)"
    );
    let program = build_gpio_check();
    let script = repo().join("target/vm/pi/gpio-guest.sh");
    std::fs::write(&script, GUEST_SCRIPT).unwrap();
    let out = Command::new(repo().join("board/vm/run-pi"))
        .args(["--timeout", "600", "--"])
        .arg(&script)
        .arg(&program)
        .output()
        .expect("board/vm/run-pi starts");
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        out.status.success(),
        "the VM run failed ({}):\n{console}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<&str> = console.lines().filter_map(|l| l.strip_prefix("RESULT ")).collect();
    let all = |prefix: &str| -> Vec<&str> { results.iter().filter_map(|r| r.strip_prefix(prefix)).collect() };
    let one = |prefix: &str| {
        all(prefix)
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no RESULT {prefix}:\n{console}"))
    };

    // The name systemd's `DeviceAllow=char-gpiochip` matches (/proc/devices).
    assert!(one("devices ").ends_with(" gpiochip"), "{console}");

    // No such chip: every feature says which label was looked for and
    // which chips there are; nothing panics.
    assert_eq!(one("nochip-exit "), "0");
    let nochip: Vec<&str> = all("missing ").into_iter().take(4).collect();
    assert_eq!(nochip.len(), 4, "{console}");
    assert!(
        nochip[0].starts_with(
            "status LED: GPIO 17: no GPIO chip labelled no-such-chip (found: /dev/gpiochip0 pinctrl-bcm2835, /dev/gpiochip1 raspberrypi-exp-gpio)"
        ),
        "{nochip:?}"
    );
    // Without permission on the device nodes (root-only in the VM).
    assert_eq!(one("nobody-exit "), "0");
    let nobody: Vec<&str> = all("missing ").into_iter().skip(4).collect();
    let features: Vec<&str> = nobody.iter().map(|m| m.split(':').next().unwrap()).collect();
    assert_eq!(features, ["status LED", "relay", "PIR sensor", "button"], "{console}");
    for m in &nobody {
        assert!(m.contains("/dev/gpiochip0: ") && m.contains("ermission denied"), "{m}");
    }
    assert_eq!(all("inputs "), ["false", "false"]);

    // The real run: the chip found by its label, through the character device.
    assert_eq!(
        all("backend ").last().copied(),
        Some("Cdev(\"/dev/gpiochip0\")"),
        "{console}"
    );
    assert_eq!(one("drive-exit "), "0", "{console}");
    for (key, want) in [
        ("led on ", "out hi"),
        ("relay on ", "out hi"),
        ("relay off ", "out lo"),
        ("pir input ", "in lo"),
        ("button input ", "in hi"),
    ] {
        let line = one(key);
        assert!(line.contains("mado") && line.ends_with(want), "{key}: {line}");
    }
    assert_eq!(one("events-pir "), "[Motion]");
    assert_eq!(one("events-press "), "[Snapshot]");
    assert_eq!(one("events-hold "), "[ResetPassword]");
    let hold_ms: u64 = one("hold_ms ").parse().unwrap();
    assert!(
        (10_000..12_000).contains(&hold_ms),
        "the long press came after {hold_ms} ms"
    );
    assert!(results.contains(&"done"));
}
