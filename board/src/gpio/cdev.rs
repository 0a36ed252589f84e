//! The kernel's GPIO character device (`/dev/gpiochipN`, uAPI v2) through
//! gpiocdev: used where there is no `/dev/gpiomem` (Debian's own kernel on
//! a Pi), or when `[board] gpio_chip` names a chip. Lines are offsets on the
//! chip, which on the Pi's main chip are the BCM numbers.

use std::path::{Path, PathBuf};

use gpiocdev::line::{Bias, Value};
use gpiocdev::request::Request;
use gpiocdev::Chip;

/// The labels of the Pi's main GPIO chip, in the order they are looked for:
/// BCM2711 (Pi 4, 400, CM4), BCM2835 to BCM2837 (older Pis, Zero 2 W), RP1 (Pi 5).
pub const PI_CHIP_LABELS: [&str; 3] = ["pinctrl-bcm2711", "pinctrl-bcm2835", "pinctrl-rp1"];

/// The name this program's lines carry in the kernel (`gpioinfo`, debugfs).
const CONSUMER: &str = "mado";

/// Why a chip or a line could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CdevError {
    /// No chip carries the label looked for.
    #[error("no GPIO chip labelled {wanted} (found: {found})")]
    NoChip {
        /// The label or labels looked for.
        wanted: String,
        /// The chips there are, `path label` each, or `none`.
        found: String,
    },
    /// A chip could not be opened or asked its label (no permission, say).
    #[error("{}: {source}", path.display())]
    Chip {
        /// The chip's device node.
        path: PathBuf,
        /// What the kernel said.
        source: gpiocdev::Error,
    },
    /// The line could not be requested (in use, no such offset).
    #[error("line {offset} of {}: {source}", path.display())]
    Line {
        /// The chip's device node.
        path: PathBuf,
        /// The line's offset on the chip.
        offset: u32,
        /// What the kernel said.
        source: gpiocdev::Error,
    },
}

/// Finds the chip: `choice` is a device path (starting with `/`), a label,
/// or `None` for the Pi's main chip by its known labels.
pub fn find_chip(choice: Option<&str>) -> Result<PathBuf, CdevError> {
    if let Some(path) = choice.filter(|c| c.starts_with('/')) {
        let path = Path::new(path);
        return Chip::from_path(path)
            .map(|_| path.to_path_buf())
            .map_err(|source| CdevError::Chip {
                path: path.to_path_buf(),
                source,
            });
    }
    let wanted: Vec<&str> = choice.map_or_else(|| PI_CHIP_LABELS.to_vec(), |label| vec![label]);
    let paths = gpiocdev::chip::chips().unwrap_or_default();
    let mut found = Vec::new();
    let mut first_error = None;
    for path in paths {
        match Chip::from_path(&path).and_then(|chip| chip.info()) {
            Ok(info) => found.push((path, info.label)),
            Err(source) => {
                first_error.get_or_insert(CdevError::Chip { path, source });
            }
        }
    }
    for label in &wanted {
        if let Some((path, _)) = found.iter().find(|(_, l)| l == label) {
            return Ok(path.clone());
        }
    }
    // A chip that could not be opened may be the one: say why, rather than
    // that there is none.
    if let Some(error) = first_error {
        return Err(error);
    }
    let found = if found.is_empty() {
        "none".to_owned()
    } else {
        found
            .iter()
            .map(|(p, l)| format!("{} {l}", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(CdevError::NoChip {
        wanted: wanted.join(" or "),
        found,
    })
}

/// One requested line; released when dropped.
#[derive(Debug)]
pub struct CdevLine {
    request: Request,
    offset: u32,
}

impl CdevLine {
    /// Requests `offset` as an output at the physical level `high`.
    pub fn output(chip: &Path, offset: u32, high: bool) -> Result<Self, CdevError> {
        let request = Request::builder()
            .on_chip(chip)
            .with_consumer(CONSUMER)
            .with_line(offset)
            .as_output(level(high))
            .request()
            .map_err(|source| line_error(chip, offset, source))?;
        Ok(Self { request, offset })
    }

    /// Requests `offset` as an input pulled towards `pull_high` (or left
    /// floating when the chip cannot set a pull).
    pub fn input(chip: &Path, offset: u32, pull_high: bool) -> Result<Self, CdevError> {
        let bias = if pull_high { Bias::PullUp } else { Bias::PullDown };
        let request = |bias: Option<Bias>| {
            Request::builder()
                .on_chip(chip)
                .with_consumer(CONSUMER)
                .with_line(offset)
                .as_input()
                .with_bias(bias)
                .request()
        };
        let request = request(Some(bias))
            .or_else(|_| request(None))
            .map_err(|source| line_error(chip, offset, source))?;
        Ok(Self { request, offset })
    }

    /// Sets an output's physical level; a failure is logged (the line was
    /// requested, so this only fails if the chip goes away).
    pub fn set(&self, high: bool) {
        if let Err(e) = self.request.set_value(self.offset, level(high)) {
            tracing::warn!(offset = self.offset, "GPIO line: cannot set: {e}");
        }
    }

    /// The physical level (true: high); low when it cannot be read.
    pub fn get(&self) -> bool {
        match self.request.value(self.offset) {
            Ok(value) => value == Value::Active,
            Err(e) => {
                tracing::warn!(offset = self.offset, "GPIO line: cannot read: {e}");
                false
            }
        }
    }
}

fn level(high: bool) -> Value {
    if high {
        Value::Active
    } else {
        Value::Inactive
    }
}

fn line_error(chip: &Path, offset: u32, source: gpiocdev::Error) -> CdevError {
    CdevError::Line {
        path: chip.to_path_buf(),
        offset,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_chip_path_or_label_says_what_was_looked_for() {
        let err = find_chip(Some("/nonexistent/gpiochip9")).unwrap_err();
        assert!(matches!(err, CdevError::Chip { .. }), "{err}");
        assert!(err.to_string().starts_with("/nonexistent/gpiochip9: "), "{err}");
        if gpiocdev::chip::chips().unwrap_or_default().is_empty() {
            let err = find_chip(Some("no-such-label")).unwrap_err();
            assert_eq!(err.to_string(), "no GPIO chip labelled no-such-label (found: none)");
            let err = find_chip(None).unwrap_err();
            assert_eq!(
                err.to_string(),
                "no GPIO chip labelled pinctrl-bcm2711 or pinctrl-bcm2835 or pinctrl-rp1 (found: none)"
            );
        }
    }
}
