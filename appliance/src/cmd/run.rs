//! `mado run`: the appliance. The pipeline encodes on its own threads; one
//! async task (the media driver) owns the viewer [`Hub`] and feeds it
//! datagrams, encoded frames, HTTP commands and time.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_channel::{Receiver, TryRecvError};
use futures_lite::FutureExt as _;
use mado::adapt::RateController;
use mado::config::Config;
use mado::encode::EncodedFrame;
use mado::encode::BASE_LAYER_SHARE_PCT;
use mado::frame::VideoSize;
use mado::live::{EgressLatency, Hub, HubConfig, HubOutput};
use mado::pipeline::{Pace, Pipeline, StatsSnapshot};

use super::auth::{hostname, load_tls, state_dir, Store};
use super::http::{self, Command, HttpState};
use super::login::Gate;
use super::media_socket::{media_addresses, Datagram, Intake, KnownSources, MediaSockets};
use super::publish::{PublishWake, Publishing};
use super::status::{CameraState, EncoderStatus, Status};
use mado::config::AuthMode;

const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How often the viewers' link estimates are turned into an encoder target.
const ADAPT_EVERY: Duration = Duration::from_millis(500);
const LOG_EVERY: Duration = Duration::from_secs(30);
/// How often the interface addresses are read again (DHCP, a cable plugged
/// in), when `live.announce` does not fix them.
const ADDRESSES_EVERY: Duration = Duration::from_secs(5);

/// The most the driver takes from each source in one turn of its loop, so
/// a flood on one cannot starve the others: datagrams from known viewers,
/// STUN from strangers, encoded frames, HTTP commands. Timers are checked
/// every turn.
const KNOWN_PER_TURN: usize = 64;
const STRANGERS_PER_TURN: usize = 4;
const FRAMES_PER_TURN: usize = 2;
const COMMANDS_PER_TURN: usize = 4;
/// Queue lengths between the socket receivers and the driver.
const KNOWN_QUEUE: usize = 1024;
const STRANGERS_QUEUE: usize = 64;

/// The login gate and, when TLS is on, the acceptor: a first password is
/// made (and shown once in the log) when none is set, and the
/// certificate's fingerprint is logged.
fn login_and_tls(config: &Config, port: u16) -> anyhow::Result<(Gate, Option<futures_rustls::TlsAcceptor>)> {
    let store = Store::open(state_dir(config)?)?;
    match config.auth.mode {
        AuthMode::Password => {
            if let Some(generated) = store.ensure_password()? {
                tracing::warn!(
                    "no password was set: the dashboard's password is now {generated} (also in {}, readable by this user only; change it with `mado auth set-password`)",
                    store.initial_password_path().display()
                );
            }
        }
        AuthMode::None => tracing::warn!(
            "auth.mode = \"none\": NO LOGIN. Anyone who can reach {} can watch the camera and end its sessions",
            config.live.listen
        ),
    }
    let https = config.tls.enabled(config.live.listen.ip());
    let tls = if https {
        let tls = load_tls(config, &store)?;
        tracing::info!(
            "HTTPS with {}: SHA-256 fingerprint {} (compare it with the one the browser shows)",
            tls.cert_path.display(),
            tls.fingerprint
        );
        Some(futures_rustls::TlsAcceptor::from(tls.config))
    } else {
        tracing::info!("plain HTTP (tls.mode = \"off\", or \"auto\" on a loopback address)");
        None
    };
    let gate = Gate::new(config, store, https, hostname().as_deref(), port)?;
    Ok((gate, tls))
}

#[allow(clippy::disallowed_methods)] // the shell: the session's clock, threads and entropy live here
pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let live = &config.live;
    let mut sockets = MediaSockets::bind(&media_addresses(&live.announce)?, live.udp_port.get() as u16)?;
    let listener = std::net::TcpListener::bind(live.listen).with_context(|| format!("listening on {}", live.listen))?;
    let started = super::start_pipeline(
        config,
        Pace::RealTime {
            fps: config.source.fps.get() as u32,
        },
        None,
    )?;
    let pipeline = &started.pipeline;

    let bitrate = config.encoder.bitrate_kbps.get() as u32;
    let pacing_kbps = match live.pacing_kbps.get() as u32 {
        0 => bitrate.saturating_mul(3),
        kbps => kbps,
    };
    let hub_config = HubConfig {
        candidates: sockets.local_addrs(),
        max_viewers: live.max_viewers.get() as usize,
        keyframe_min_interval: Duration::from_millis(live.keyframe_min_interval_ms.get() as u64),
        pacing_kbps,
    };
    let http_addr = listener.local_addr()?;
    let (gate, tls) = login_and_tls(config, http_addr.port())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        "dashboard on {scheme}://{http_addr}/, media on {:?}",
        hub_config.candidates
    );
    eprintln!("mado: listening on {scheme}://{http_addr}/");
    let publishing = Publishing::new(&config.publish, hub_config.candidates.clone(), pacing_kbps)?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no entropy for session ids: {e}"))?;
    let hub = Hub::new(hub_config, seed);

    let ex = Arc::new(smol::Executor::new());
    let (commands_tx, commands) = async_channel::bounded(64);
    let zones_file = super::zones::path(&state_dir(config)?);
    let mut events_config = config.events.clone();
    if config.events.enabled {
        if let Some(zones) = super::zones::load(&zones_file)? {
            events_config.zones = zones;
        }
    }
    let events = match config.events.enabled {
        true => Some(super::events::Events::start(
            &events_config,
            config.source.fps.get() as u32,
            pipeline.recent_frames(),
        )?),
        false => None,
    };
    // The board's button resets the password here (a 10 s hold).
    let credentials = gate.store().clone();
    let state = Arc::new(HttpState {
        commands: commands_tx,
        // Known before the first status refresh.
        status: Mutex::new(Status {
            auth: gate.mode_name().to_owned(),
            ..Default::default()
        }),
        gate,
        clip_dir: config.events.enabled.then(|| super::events::clip_dir(&config.events)),
        zones_json: Mutex::new(serde_json::to_string(&events_config.zones).context("zones as JSON")?),
        zones_file,
    });
    let (known_tx, known) = async_channel::bounded(KNOWN_QUEUE);
    let (strangers_tx, strangers) = async_channel::bounded(STRANGERS_QUEUE);
    let intake = Intake {
        known: known_tx,
        strangers: strangers_tx,
        sources: KnownSources::default(),
        dropped: Arc::new(AtomicU64::new(0)),
    };
    sockets.start_receivers(&ex, intake.clone());
    let listener = smol::net::TcpListener::try_from(listener)?;
    ex.spawn(http::serve(listener, state.clone(), ex.clone(), tls)).detach();
    let mqtt = super::mqtt::Mqtt::start(&config.mqtt, &occupancy_classes(config), &ex)?;

    let settings = &started.settings;
    let adapt = config.adapt.enabled.then(|| {
        let base_share = match settings.temporal_layers {
            2 => f64::from(BASE_LAYER_SHARE_PCT) / 100.0,
            _ => 1.0,
        };
        let floor = config.adapt.floor_kbps.get() as u32;
        RateController::new(config.adapt.ladder.rungs().to_vec(), bitrate, floor, base_share)
    });
    let driver = Driver {
        hub,
        sockets,
        pipeline,
        source: &started.source,
        detection_off: started.detection_off.as_deref(),
        size: started.size,
        backend: settings.backend.to_string(),
        fps: settings.fps,
        state,
        started: Instant::now(),
        adapt,
        egress: EgressLatency::default(),
        sent_bytes: 0,
        follow_addresses: live.announce.is_empty(),
        intake,
        published_sources: None,
        publishing,
        ex: ex.clone(),
        service: super::service::Service::from_env(),
        board: super::board_io::BoardIo::start(
            &config.board,
            pipeline.motion_trigger(),
            credentials,
            events.as_ref().map(super::events::Events::request),
        ),
        mqtt,
        events,
    };
    // Two threads: one runs the executor for HTTP and sockets, this one the driver.
    let (stop, stopped) = async_channel::bounded::<()>(1);
    std::thread::scope(|scope| {
        let helper = ex.clone();
        scope.spawn(move || smol::block_on(helper.run(stopped.recv())));
        let inputs = Inputs {
            known,
            strangers,
            frames: started.pipeline.output().clone(),
            commands,
        };
        let result = smol::block_on(ex.run(driver.run(inputs)));
        drop(stop);
        result
    })?;
    started.pipeline.join()?;
    Ok(ExitCode::SUCCESS)
}

struct Driver<'a> {
    hub: Hub,
    sockets: MediaSockets,
    pipeline: &'a Pipeline,
    source: &'a str,
    /// Why no detector runs, if none does.
    detection_off: Option<&'a str>,
    size: VideoSize,
    backend: String,
    fps: u32,
    state: Arc<HttpState>,
    started: Instant,
    adapt: Option<RateController>,
    egress: EgressLatency,
    /// Bytes handed to the media sockets, to every viewer.
    sent_bytes: u64,
    /// Re-read the interface addresses now and then (no fixed `announce`).
    follow_addresses: bool,
    intake: Intake,
    /// The hub's generation of viewer addresses and the publishers' count of
    /// server addresses last given to the receivers.
    published_sources: Option<(u64, usize)>,
    /// WHIP endpoints fed the same frames as the viewers.
    publishing: Publishing,
    ex: Arc<smol::Executor<'static>>,
    /// systemd's notify socket: ready, status and the watchdog.
    service: super::service::Service,
    /// The board's GPIO features (status LED, relay, PIR, button).
    board: super::board_io::BoardIo,
    /// The MQTT broker (Home Assistant), when configured.
    mqtt: super::mqtt::Mqtt,
    /// Events, snapshots and clips, when `[events]` is enabled.
    events: Option<super::events::Events>,
}

/// Everything the driver waits on besides time.
struct Inputs {
    known: Receiver<Datagram>,
    strangers: Receiver<Datagram>,
    frames: Receiver<EncodedFrame>,
    commands: Receiver<Command>,
}

#[allow(
    clippy::large_enum_variant,
    reason = "one value at a time, moved straight into its handler"
)]
enum Wake {
    Datagram(Datagram),
    Frame(Box<EncodedFrame>),
    Command(Command),
    Timeout,
    PipelineEnded,
    Publish(PublishWake),
}

/// Takes at most `limit` waiting items from `rx` without waiting; false when it is closed.
fn take_ready<T>(rx: &Receiver<T>, limit: usize, mut handle: impl FnMut(T)) -> bool {
    for _ in 0..limit {
        match rx.try_recv() {
            Ok(item) => handle(item),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Closed) => return false,
        }
    }
    true
}

#[allow(clippy::disallowed_methods)] // the shell: the driver reads the clock
impl Driver<'_> {
    /// One turn: wait for anything (fairly: `race` picks at random among
    /// ready sources), then take a bounded number of what else is waiting
    /// from each source, then handle due timers, then send.
    async fn run(mut self, inputs: Inputs) -> anyhow::Result<()> {
        let mut next_status = Instant::now();
        let mut next_adapt = Instant::now();
        let mut next_log = Instant::now() + LOG_EVERY;
        let mut next_addresses = Instant::now() + ADDRESSES_EVERY;
        let mut last = (Instant::now(), self.pipeline.stats(), 0);
        loop {
            let deadline = self
                .hub
                .poll_timeout()
                .map_or(next_status, |t| t.min(next_status))
                .min(next_adapt)
                .min(self.publishing.poll_timeout().unwrap_or(next_adapt));
            let wake = futures_lite::future::race(
                async { inputs.known.recv().await.map_or(Wake::PipelineEnded, Wake::Datagram) },
                async {
                    inputs
                        .strangers
                        .recv()
                        .await
                        .map_or(Wake::PipelineEnded, Wake::Datagram)
                },
            )
            .race(futures_lite::future::race(
                async {
                    inputs
                        .frames
                        .recv()
                        .await
                        .map_or(Wake::PipelineEnded, |f| Wake::Frame(Box::new(f)))
                },
                async { inputs.commands.recv().await.map_or(Wake::PipelineEnded, Wake::Command) },
            ))
            .race(async { Wake::Publish(self.publishing.wake().await) })
            .or(async {
                smol::Timer::at(deadline).await;
                Wake::Timeout
            })
            .await;
            let now = Instant::now();
            match wake {
                Wake::Datagram(d) => self.on_datagram(now, d),
                Wake::Frame(frame) => self.on_frame(now, &frame),
                Wake::Command(command) => self.on_command(now, command),
                Wake::Publish(PublishWake::Answer(answer)) => self.publishing.handle_answer(now, answer),
                Wake::Publish(PublishWake::Shutdown) => {
                    tracing::info!("stopping");
                    self.finish_events();
                    self.publishing.shut_down(&mut self.hub, &self.sockets, &self.ex).await;
                    self.mqtt.shut_down().await;
                    self.pipeline.stop();
                    return Ok(());
                }
                Wake::Timeout => {}
                Wake::PipelineEnded => {
                    self.finish_events();
                    self.mqtt.shut_down().await;
                    return Ok(());
                }
            }
            let open = take_ready(&inputs.frames, FRAMES_PER_TURN, |f| self.on_frame(now, &f))
                && take_ready(&inputs.commands, COMMANDS_PER_TURN, |c| self.on_command(now, c))
                && take_ready(&inputs.known, KNOWN_PER_TURN, |d| self.on_datagram(now, d))
                && take_ready(&inputs.strangers, STRANGERS_PER_TURN, |d| self.on_datagram(now, d));
            if !open {
                self.finish_events();
                return Ok(());
            }
            if self.hub.poll_timeout().is_some_and(|t| t <= now) {
                self.hub.handle_timeout(now);
            }
            self.publishing.handle_timeout(now);
            if now >= next_adapt {
                self.adapt(now);
                next_adapt = now + ADAPT_EVERY;
            }
            if self.follow_addresses && now >= next_addresses {
                self.refresh_addresses();
                next_addresses = now + ADDRESSES_EVERY;
            }
            self.publish_sources();
            self.flush();
            if now >= next_status {
                if let Some(events) = &mut self.events {
                    let _updates = events.on_tick(mado::pipeline::wall_clock_us() / 1000);
                }
                let stats = self.pipeline.stats();
                self.publish_status(now, &stats, &last);
                let healthy = self.service.tick(now, &stats, &self.state);
                self.board.on_status(&stats, self.hub.connected_count(), healthy);
                if now >= next_log {
                    log_status(&self.state, self.intake.dropped.load(Ordering::Relaxed));
                    next_log = now + LOG_EVERY;
                }
                last = (now, stats, self.sent_bytes);
                next_status = now + STATUS_EVERY;
            }
        }
    }

    /// Ends open events and writes out their clips (SIGTERM, or the source ended).
    fn finish_events(&mut self) {
        if let Some(events) = &mut self.events {
            let updates = events.finish();
            self.mqtt.on_event_updates(&updates, &self.pipeline.recent_frames());
            events.join();
        }
    }

    /// A datagram goes to the WHIP publisher it belongs to, else to the hub.
    fn on_datagram(&mut self, now: Instant, d: Datagram) {
        if !self
            .publishing
            .handle_receive(now, d.source, d.destination, &d.contents)
        {
            self.hub.handle_receive(now, d.source, d.destination, &d.contents);
        }
    }

    fn on_frame(&mut self, now: Instant, frame: &EncodedFrame) {
        if let Some(events) = &mut self.events {
            let pipeline = self.pipeline;
            let updates = events.on_frame(frame, || pipeline.request_keyframe());
            if !updates.is_empty() {
                self.mqtt.on_event_updates(&updates, &pipeline.recent_frames());
            }
        }
        self.board.on_frame(frame);
        self.mqtt.on_frame(frame);
        self.egress.on_frame(now, frame);
        self.hub.handle_frame(now, frame);
        self.publishing.handle_frame(now, frame);
    }

    fn on_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::AddViewer { offer, reply } => {
                // The HTTP side gave up (the client left before its answer):
                // the slot is given back at once rather than at the connect deadline.
                if let Err(unsent) = reply.try_send(self.hub.add_viewer(now, offer)) {
                    if let Ok((id, _)) = unsent.into_inner() {
                        let _ = self.hub.remove_viewer(id);
                        tracing::info!("the client left before its answer: slot freed");
                    }
                }
            }
            Command::RemoveViewer { id, reply } => {
                let _ = reply.try_send(self.hub.remove_viewer(id));
            }
            Command::SetZones(zones) => {
                tracing::info!(zones = zones.len(), "event zones changed");
                if let Some(events) = &mut self.events {
                    events.set_zones(zones);
                }
                return;
            }
        }
        self.publish_viewers();
    }

    /// Binds the media port on new interface addresses and offers them to
    /// viewers from now on; drops the sockets of addresses that went away.
    fn refresh_addresses(&mut self) {
        let addresses = match media_addresses(&[]) {
            Ok(addresses) => addresses,
            Err(e) => {
                tracing::warn!("{e:#}");
                return;
            }
        };
        if !addresses.is_empty() && self.sockets.refresh(&addresses) {
            self.hub.set_candidates(self.sockets.local_addrs());
        }
    }

    /// Tells the socket receivers which sources are viewers or WHIP servers, when that changed.
    fn publish_sources(&mut self) {
        let generation = (self.hub.remote_addrs_generation(), self.publishing.remote_addrs_count());
        if self.published_sources == Some(generation) {
            return;
        }
        if let Ok(mut sources) = self.intake.sources.write() {
            *sources = self.hub.remote_addrs().into_iter().collect();
            sources.extend(self.publishing.remote_addrs());
            self.published_sources = Some(generation);
        }
    }

    fn flush(&mut self) {
        self.sent_bytes += self.publishing.flush(&mut self.hub, &self.sockets, &self.ex);
        while let Some(output) = self.hub.poll_output() {
            match output {
                HubOutput::Transmit {
                    source,
                    destination,
                    contents,
                } => {
                    self.sockets.send(source, destination, &contents);
                    self.sent_bytes += contents.len() as u64;
                    self.egress.on_transmit(Instant::now(), &contents);
                }
                HubOutput::ForceKeyframe => {
                    // A keyframe is forced when a viewer joins: its link
                    // counts from now, so the target follows it first and
                    // the keyframe is made at the rate that link can take.
                    self.adapt(Instant::now());
                    self.pipeline.request_keyframe();
                }
            }
        }
    }

    /// Turns the viewers' link estimates into the encoder's target.
    fn adapt(&mut self, now: Instant) {
        let Some(controller) = &mut self.adapt else {
            return;
        };
        let mut links = self.hub.links();
        links.extend(self.publishing.link_reports());
        if let Some(plan) = controller.handle_links(now, &links) {
            let rung = controller.rung();
            tracing::info!(
                kbps = plan.bitrate_kbps,
                scale = rung.scale,
                fps = rung.fps,
                "encoder target"
            );
            self.pipeline.set_target(plan.bitrate_kbps, rung);
        }
        self.hub.set_stream_kbps(now, controller.plan().bitrate_kbps);
        self.publishing.set_stream_kbps(controller.plan().bitrate_kbps);
    }

    /// Viewer counts change with every session; publish them at once.
    fn publish_viewers(&self) {
        if let Ok(mut shared) = self.state.status.lock() {
            shared.viewers = self.hub.viewer_count();
            shared.viewers_connected = self.hub.connected_count();
        }
    }

    fn publish_status(
        &self,
        now: Instant,
        stats: &StatsSnapshot,
        (then, before, sent): &(Instant, StatsSnapshot, u64),
    ) {
        let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
        let fps = (stats.encoded - before.encoded) as f64 / secs;
        let kbps = (stats.encoded_bytes - before.encoded_bytes) as f64 * 8.0 / secs / 1000.0;
        let sent_kbps = (self.sent_bytes - sent) as f64 * 8.0 / secs / 1000.0;
        let size = self.size;
        let (target_kbps, rung) = match &self.adapt {
            Some(c) => (Some(c.plan().bitrate_kbps), Some(c.rung())),
            None => (None, None),
        };
        let encoded_size = rung.map_or(size, |r| mado::scale::scaled_size(size, r.scale));
        let status = Status {
            uptime_s: self.started.elapsed().as_secs(),
            source: self.source.to_owned(),
            width: size.width(),
            height: size.height(),
            fps: (fps * 10.0).round() / 10.0,
            bitrate_kbps: kbps.round(),
            sent_kbps: sent_kbps.round(),
            viewers: self.hub.viewer_count(),
            viewers_connected: self.hub.connected_count(),
            max_viewers: self.hub.max_viewers(),
            frames_captured: stats.captured,
            frames_encoded: stats.encoded,
            frames_dropped: stats.dropped,
            encode_latency_ms: stats.last_latency_us as f64 / 1000.0,
            latency: self.egress.budget(),
            encoder: EncoderStatus {
                backend: self.backend.clone(),
                target_kbps,
                width: encoded_size.width(),
                height: encoded_size.height(),
                fps: rung.map(|r| r.fps.min(self.fps)),
            },
            links: self.hub.links(),
            publish: self.publishing.status(now),
            inference_ms: (stats.last_inference_us > 0).then(|| stats.last_inference_us as f64 / 1000.0),
            detections_run: stats.detections_run,
            detection_off: self.detection_off.map(str::to_owned),
            frames_bad: stats.bad_frames,
            gate: stats.gate,
            motion: stats.gate.map(|_| stats.moving),
            motion_frames: stats.motion_frames,
            camera: match (self.source.starts_with("camera"), stats.source_lost) {
                (false, _) => CameraState::None,
                (true, false) => CameraState::Ok,
                (true, true) => CameraState::Lost,
            },
            auth: self.state.gate.mode_name().to_owned(),
            mqtt: self.mqtt.status(),
            server_time_us: 0, // set when a request reads it
        };
        self.mqtt.on_status(&status);
        if let Ok(mut shared) = self.state.status.lock() {
            *shared = status;
        }
    }
}

/// The classes that get an occupancy count over MQTT: `[detect] classes`,
/// or `person` when that keeps every class.
fn occupancy_classes(config: &Config) -> Vec<String> {
    match config.detect.classes.as_slice() {
        [] => vec!["person".to_owned()],
        classes => classes.to_vec(),
    }
}

fn log_status(state: &HttpState, udp_refused: u64) {
    if let Ok(status) = state.status.lock() {
        tracing::info!(
            fps = status.fps,
            kbps = status.bitrate_kbps,
            viewers = status.viewers,
            dropped = status.frames_dropped,
            udp_refused,
            "streaming"
        );
    }
}
