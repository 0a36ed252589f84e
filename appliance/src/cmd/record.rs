//! `mado record`: the encoded stream, metadata included, to an IVF file.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use mado::av1::ivf::{IvfHeader, IvfWriter};
use mado::config::Config;
use mado::pipeline::Pace;

pub fn record(config: &Config, frames: u64, output: &Path, pace: Pace) -> anyhow::Result<ExitCode> {
    let file = File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let pipeline = super::start_pipeline(config, pace, Some(frames))?.pipeline;
    let mut writer = None;
    let mut written = 0u64;
    while let Ok(packet) = pipeline.output().recv_blocking() {
        let ivf = match &mut writer {
            Some(ivf) => ivf,
            None => {
                let size = packet.info.size;
                let header = IvfHeader::av1(
                    size.width() as u16,
                    size.height() as u16,
                    config.source.fps.get() as u32,
                );
                writer.insert(IvfWriter::new(BufWriter::new(file.try_clone()?), header)?)
            }
        };
        ivf.write_frame(packet.info.seq, &packet.data)
            .with_context(|| format!("writing {}", output.display()))?;
        written += 1;
    }
    let stats = pipeline.join().context("recording")?;
    if let Some(ivf) = writer {
        ivf.finish()
            .with_context(|| format!("finishing {}", output.display()))?;
    }
    eprintln!(
        "mado: recorded {written} frames to {} ({} dropped by the encoder queue)",
        output.display(),
        stats.dropped
    );
    if stats.dropped > 0 {
        eprintln!("mado: the encoder fell behind real time; `--pace fast` records every frame");
    }
    Ok(ExitCode::SUCCESS)
}
