//! The `mado` binary: command line, logging and the I/O shell.

#[allow(
    clippy::disallowed_methods,
    reason = "the commands are the shell: they own the clock, sockets and threads"
)]
mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use mado::config::{CameraFormat, Config, Ranged, TlsMode};
use mado::frame::VideoSize;
use mado::source::SourceSpec;

#[derive(Parser)]
#[command(name = "mado", version, about = "Edge camera: live AV1 with on-device detections")]
struct Cli {
    /// TOML config file; without one every setting takes its default.
    #[arg(long, global = true, env = "MADO_CONFIG")]
    config: Option<PathBuf>,
    /// Where the password hash, API tokens and TLS certificate are kept
    /// (overrides `state_dir` in the config).
    #[arg(long, global = true, env = "MADO_STATE_DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance (the default command).
    Run(RunArgs),
    /// Record the encoded stream, metadata included, to an IVF file.
    Record(RecordArgs),
    /// Print each frame's metadata from an IVF file or an event clip (WebM) as one JSON line.
    Inspect {
        /// The IVF or WebM file to read.
        file: PathBuf,
    },
    /// Print the settings in effect (defaults plus the config file) as TOML.
    PrintConfig,
    /// List the cameras (V4L2 capture devices), their formats, sizes and frame rates, as JSON lines.
    Cameras,
    /// The dashboard's password, API tokens and TLS certificate (in the state directory).
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Create what is missing: a password (printed once) and the self-signed certificate. Changes nothing that exists.
    Init,
    /// Set the password to the first line of standard input (at least 8 characters).
    SetPassword,
    /// Reset the password to the first-boot state: a new generated one, printed once and kept in the state directory's `initial-password`; every session ends, API tokens stay. The board's button does the same when held 10 s.
    ResetPassword,
    /// API tokens for scripts and WHEP clients (`Authorization: Bearer <token>`).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token called NAME and print it (it is shown only this once).
    Create {
        /// A name to revoke it by (letters, digits, '-', '_', '.').
        name: String,
    },
    /// Revoke the token called NAME.
    Revoke {
        /// The token's name.
        name: String,
    },
    /// List the tokens' names.
    List,
}

/// Overrides of the `[source]` settings.
#[derive(Args, Default)]
struct SourceArgs {
    /// auto, testpattern or file:PATH.y4m
    #[arg(long)]
    source: Option<SourceSpec>,
    /// Picture size, such as 1280x720 (test pattern and camera).
    #[arg(long)]
    size: Option<VideoSize>,
    /// Frames per second.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=120))]
    fps: Option<u16>,
    /// Camera pixel format: auto, YU12, NV12, YUYV or MJPG.
    #[arg(long, value_parser = parse_camera_format)]
    camera_format: Option<CameraFormat>,
}

fn parse_camera_format(s: &str) -> Result<CameraFormat, String> {
    toml::Value::String(s.to_owned())
        .try_into()
        .map_err(|_| format!("{s:?}: expected auto, YU12, NV12, YUYV or MJPG"))
}

#[derive(Args, Default)]
struct RunArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Address of the dashboard and WHEP endpoint, such as 0.0.0.0:8080.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// UDP port for all viewers' media; 0 picks a free one.
    #[arg(long)]
    udp_port: Option<u16>,
    /// Most viewers at once.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    max_viewers: Option<u16>,
    /// HTTPS on the listen port: auto (on unless loopback), on or off.
    #[arg(long, value_parser = parse_tls_mode)]
    tls: Option<TlsMode>,
}

fn parse_tls_mode(s: &str) -> Result<TlsMode, String> {
    toml::Value::String(s.to_owned())
        .try_into()
        .map_err(|_| format!("{s:?}: expected auto, on or off"))
}

#[derive(Args)]
struct RecordArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Number of frames to record.
    #[arg(long)]
    frames: u64,
    /// Where to write the IVF file.
    #[arg(long, short)]
    output: PathBuf,
    /// realtime: frames at the configured rate, the oldest dropped if the
    /// encoder falls behind; fast: as fast as the encoder goes, none dropped.
    #[arg(long, value_enum, default_value_t = Pace::Realtime)]
    pace: Pace,
}

#[derive(Clone, Copy, ValueEnum)]
enum Pace {
    Realtime,
    Fast,
}

impl SourceArgs {
    fn apply(&self, config: &mut Config) -> anyhow::Result<()> {
        if let Some(source) = &self.source {
            config.source.kind = source.clone();
        }
        if let Some(size) = self.size {
            config.source.size = size;
        }
        if let Some(format) = self.camera_format {
            config.source.camera_format = format;
        }
        if let Some(fps) = self.fps {
            config.source.fps = Ranged::try_from(i64::from(fps)).map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MADO_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mado: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref()).context("loading the configuration")?;
    if let Some(dir) = cli.state_dir {
        config.state_dir = dir.to_string_lossy().into_owned();
    }
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Run(args) => {
            args.source.apply(&mut config)?;
            if let Some(listen) = args.listen {
                config.live.listen = listen;
            }
            if let Some(port) = args.udp_port {
                config.live.udp_port = Ranged::try_from(i64::from(port)).map_err(anyhow::Error::msg)?;
            }
            if let Some(tls) = args.tls {
                config.tls.mode = tls;
            }
            if let Some(max) = args.max_viewers {
                config.live.max_viewers = Ranged::try_from(i64::from(max)).map_err(anyhow::Error::msg)?;
            }
            cmd::run::run(&config)
        }
        Command::Record(args) => {
            args.source.apply(&mut config)?;
            let pace = match args.pace {
                Pace::Realtime => mado::pipeline::Pace::RealTime {
                    fps: config.source.fps.get() as u32,
                },
                Pace::Fast => mado::pipeline::Pace::AsFastAsPossible,
            };
            cmd::record::record(&config, args.frames, &args.output, pace)
        }
        Command::Inspect { file } => cmd::inspect::inspect(&file),
        Command::Cameras => cmd::cameras::list(),
        Command::Auth { command } => {
            use cmd::auth::AuthCommand as A;
            let command = match command {
                AuthCommand::Init => A::Init,
                AuthCommand::SetPassword => A::SetPassword,
                AuthCommand::ResetPassword => A::ResetPassword,
                AuthCommand::Token { command } => match command {
                    TokenCommand::Create { name } => A::TokenCreate(name),
                    TokenCommand::Revoke { name } => A::TokenRevoke(name),
                    TokenCommand::List => A::TokenList,
                },
            };
            cmd::auth::command(&config, command)
        }
        Command::PrintConfig => {
            print!("{}", toml::to_string_pretty(&config)?);
            if let Some((path, fingerprint)) = cmd::auth::existing_fingerprint(&config) {
                println!(
                    "\n# TLS certificate {}\n# SHA-256 fingerprint {fingerprint}",
                    path.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
