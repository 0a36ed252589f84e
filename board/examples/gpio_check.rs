//! Drives the board's GPIO features through `BoardPins` and `BoardLogic` on
//! a real kernel GPIO chip and checks what the kernel reports. Written for
//! the Pi VM (`board/vm/run-pi`: qemu's raspi3b with Debian's arm64
//! kernel), where the chip is `pinctrl-bcm2835` on qemu's model of the
//! BCM2835 GPIO block.
//!
//! * `gpio_check drive`: opens the Pi's default lines (LED 17, relay 27,
//!   PIR 22, button 23 active low) on the chip found by its label, drives
//!   the outputs through the logic and reads their level back from the
//!   kernel (debugfs), then moves the inputs and checks the logic sees a
//!   PIR motion, a short press and a 10 s hold. qemu's model sets an input
//!   line's level when its GPSET/GPCLR bit is written, which stands in for
//!   the sensor and the button here (through `/dev/mem`; the VM boots with
//!   `iomem=relaxed` for that).
//! * `gpio_check open [--chip CHIP] [--as-nobody]`: only opens the lines
//!   and prints the backend and the reasons of what is not available.
//!
//! Prints `RESULT key value` lines; exits 1 on the first failed check.
#![allow(clippy::disallowed_methods, reason = "a test program on the real clock")]

use std::time::{Duration, Instant};

use board::gpio::{ApplianceState, BoardLogic, BoardOutput, BoardPins, LogicConfig, Profile};

/// BCM2835 GPIO registers in qemu's raspi3b (BCM2837) address map.
const GPIO_BASE: libc::off_t = 0x3f20_0000;
const GPSET0: usize = 0x1c;
const GPCLR0: usize = 0x28;
const LED: u32 = 17;
const RELAY: u32 = 27;
const PIR: u32 = 22;
const BUTTON: u32 = 23;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("drive") => drive(),
        Some("open") => open_only(&args[1..]),
        _ => fail("usage: gpio_check drive | open [--chip CHIP] [--as-nobody]"),
    }
}

fn fail(why: &str) -> ! {
    println!("FAIL {why}");
    std::process::exit(1);
}

fn open_only(args: &[String]) {
    let chip = args.iter().position(|a| a == "--chip").and_then(|i| args.get(i + 1));
    if args.iter().any(|a| a == "--as-nobody") {
        // SAFETY: plain system calls; nothing else runs in this process.
        let dropped = unsafe { libc::setgid(65534) == 0 && libc::setuid(65534) == 0 };
        if !dropped {
            fail("cannot become nobody");
        }
    }
    let (pins, missing, backend) = BoardPins::open(&Profile::Pi4.default_lines(), chip.map(String::as_str));
    println!("RESULT backend {backend:?}");
    for m in &missing {
        println!("RESULT missing {}: {}", m.feature, m.reason);
    }
    println!("RESULT inputs {}", pins.has_inputs());
}

/// The board: the pins, the logic and the outputs seen.
struct Rig {
    pins: BoardPins,
    logic: BoardLogic,
    led: Option<bool>,
    relay: Option<bool>,
    events: Vec<BoardOutput>,
}

impl Rig {
    /// Runs the shell's loop for `span`: timeouts, input samples every 10 ms.
    fn run(&mut self, span: Duration) {
        let end = Instant::now() + span;
        while Instant::now() < end {
            let now = Instant::now();
            self.logic.handle_timeout(now);
            for sample in self.pins.samples() {
                self.logic.handle_input(now, sample);
            }
            self.apply();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn apply(&mut self) {
        while let Some(output) = self.logic.poll_output() {
            match output {
                BoardOutput::Led(lit) => {
                    self.pins.set_led(lit);
                    self.led = Some(lit);
                }
                BoardOutput::Relay(on) => {
                    self.pins.set_relay(on);
                    self.relay = Some(on);
                }
                event => self.events.push(event),
            }
        }
    }

    fn take_events(&mut self) -> Vec<BoardOutput> {
        std::mem::take(&mut self.events)
    }
}

fn drive() {
    let regs = Registers::map();
    // The inputs at rest before the lines are opened: no motion, button up.
    regs.set_level(PIR, false);
    regs.set_level(BUTTON, true);
    let (pins, missing, backend) = BoardPins::open(&Profile::Pi4.default_lines(), None);
    println!("RESULT backend {backend:?}");
    if !missing.is_empty() {
        fail(&format!("not available: {missing:?}"));
    }
    let config = LogicConfig {
        relay_classes: vec!["Person".into()],
        relay_hold: Duration::from_millis(500),
        pir_settle: Duration::from_millis(100),
    };
    let mut rig = Rig {
        pins,
        logic: BoardLogic::new(Instant::now(), config),
        led: None,
        relay: None,
        events: Vec::new(),
    };

    // Outputs: the LED steady on while streaming, the relay on a detection
    // and off after the hold; each level as the kernel reports it.
    rig.logic
        .handle_state(Instant::now(), ApplianceState::Streaming { viewers: 0 });
    rig.run(Duration::from_millis(100));
    expect_line("led on", LED, rig.led, Some(true), "out hi");
    rig.logic.handle_detections(Instant::now(), ["Person"]);
    rig.apply();
    expect_line("relay on", RELAY, rig.relay, Some(true), "out hi");
    rig.run(Duration::from_millis(1000));
    expect_line("relay off", RELAY, rig.relay, Some(false), "out lo");
    rig.logic.handle_state(Instant::now(), ApplianceState::Error);
    rig.run(Duration::from_millis(50));
    let lit = rig.led;
    expect_line(
        "led blinks",
        LED,
        lit,
        lit,
        if lit == Some(true) { "out hi" } else { "out lo" },
    );
    rig.logic
        .handle_state(Instant::now(), ApplianceState::Streaming { viewers: 0 });

    // Inputs: pulls and directions as the kernel has them.
    expect_line("pir input", PIR, None, None, "in lo");
    expect_line("button input", BUTTON, None, None, "in hi");
    rig.run(Duration::from_millis(200));
    if !rig.take_events().is_empty() {
        fail("events with the inputs at rest");
    }
    regs.set_level(PIR, true);
    rig.run(Duration::from_millis(400));
    regs.set_level(PIR, false);
    expect_events("events-pir", rig.take_events(), &[BoardOutput::Motion]);
    regs.set_level(BUTTON, false);
    rig.run(Duration::from_millis(300));
    regs.set_level(BUTTON, true);
    rig.run(Duration::from_millis(200));
    expect_events("events-press", rig.take_events(), &[BoardOutput::Snapshot]);
    let held = Instant::now();
    regs.set_level(BUTTON, false);
    while rig.events.is_empty() && held.elapsed() < Duration::from_secs(15) {
        rig.run(Duration::from_millis(100));
    }
    println!("RESULT hold_ms {}", held.elapsed().as_millis());
    regs.set_level(BUTTON, true);
    rig.run(Duration::from_millis(200));
    expect_events("events-hold", rig.take_events(), &[BoardOutput::ResetPassword]);
    println!("RESULT done");
}

fn expect_events(key: &str, got: Vec<BoardOutput>, want: &[BoardOutput]) {
    println!("RESULT {key} {got:?}");
    if got != want {
        fail(&format!("{key}: events {got:?}, want {want:?}"));
    }
}

/// Checks the level the logic last asked for and the kernel's view of the
/// line (`/sys/kernel/debug/gpio`: direction and level, ` out hi`).
fn expect_line(key: &str, offset: u32, asked: Option<bool>, want: Option<bool>, kernel: &str) {
    // Spaces pad the columns ("in  lo"): one between words.
    let seen = kernel_line(offset).split_whitespace().collect::<Vec<_>>().join(" ");
    println!("RESULT {key} {seen}");
    if asked != want {
        fail(&format!("{key}: the logic asked for {asked:?}, want {want:?}"));
    }
    if !seen.ends_with(kernel) {
        fail(&format!("{key}: the kernel reports {seen:?}, want {kernel:?}"));
    }
}

/// The debugfs line of `offset` on the `pinctrl-bcm2835` chip.
fn kernel_line(offset: u32) -> String {
    let text = std::fs::read_to_string("/sys/kernel/debug/gpio").unwrap_or_else(|e| fail(&format!("debugfs: {e}")));
    // "gpiochip0: GPIOs 458-511, parent: platform/3f200000.gpio, pinctrl-bcm2835:"
    let base: u32 = text
        .lines()
        .find(|l| l.ends_with("pinctrl-bcm2835:"))
        .and_then(|l| l.split("GPIOs ").nth(1))
        .and_then(|l| l.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| fail(&format!("no pinctrl-bcm2835 in debugfs:\n{text}")));
    let name = format!(" gpio-{} ", base + offset);
    text.lines()
        .find(|l| l.starts_with(&name))
        .map(str::to_owned)
        .unwrap_or_else(|| fail(&format!("line {offset} not in debugfs (not requested?)")))
}

/// The GPIO block's registers through `/dev/mem`.
struct Registers {
    base: *mut u32,
}

impl Registers {
    fn map() -> Self {
        // SAFETY: maps one page of device memory; the pointer is only used
        // for volatile writes to two registers inside it.
        let base = unsafe {
            let fd = libc::open(c"/dev/mem".as_ptr(), libc::O_RDWR | libc::O_SYNC);
            if fd < 0 {
                fail(&format!("/dev/mem: {}", std::io::Error::last_os_error()));
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                GPIO_BASE,
            );
            if p == libc::MAP_FAILED {
                fail(&format!("mmap of the GPIO block: {}", std::io::Error::last_os_error()));
            }
            p.cast::<u32>()
        };
        Self { base }
    }

    /// qemu's model: writing a line's GPSET/GPCLR bit sets its level, input or not.
    fn set_level(&self, line: u32, high: bool) {
        let register = if high { GPSET0 } else { GPCLR0 };
        // SAFETY: inside the mapped page, aligned.
        unsafe { self.base.add(register / 4).write_volatile(1 << line) };
    }
}
