//! `mado run`: the appliance. The pipeline encodes on its own threads; one
//! async task (the media driver) owns the viewer [`Hub`] and feeds it
//! datagrams, encoded frames, HTTP commands and time.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_lite::FutureExt as _;
use mado::adapt::RateController;
use mado::config::Config;
use mado::encode::EncodedFrame;
use mado::encode::BASE_LAYER_SHARE_PCT;
use mado::frame::VideoSize;
use mado::live::{EgressLatency, Hub, HubConfig, HubOutput};
use mado::pipeline::{Pace, Pipeline, StatsSnapshot};
use serde_json::json;

use super::http::{self, Command, HttpState};
use super::media_socket::{media_addresses, Datagram, MediaSockets};

const STATUS_EVERY: Duration = Duration::from_secs(1);
/// How often the viewers' link estimates are turned into an encoder target.
const ADAPT_EVERY: Duration = Duration::from_millis(500);
const LOG_EVERY: Duration = Duration::from_secs(30);

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let live = &config.live;
    let sockets = MediaSockets::bind(&media_addresses(&live.announce)?, live.udp_port.get() as u16)?;
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
    tracing::info!("dashboard on http://{http_addr}/, media on {:?}", hub_config.candidates);
    eprintln!("mado: listening on http://{http_addr}/");
    let hub = Hub::new(hub_config, fastrand::u64(..));

    let ex = Arc::new(smol::Executor::new());
    let (commands_tx, commands) = async_channel::bounded(64);
    let state = Arc::new(HttpState {
        commands: commands_tx,
        status: Mutex::new(Default::default()),
    });
    let (datagrams_tx, datagrams) = async_channel::bounded(1024);
    sockets.spawn_receivers(&ex, datagrams_tx);
    let listener = smol::net::TcpListener::try_from(listener)?;
    ex.spawn(http::serve(listener, state.clone(), ex.clone())).detach();

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
        size: started.size,
        backend: settings.backend.to_string(),
        fps: settings.fps,
        state,
        started: Instant::now(),
        adapt,
        egress: EgressLatency::default(),
        sent_bytes: 0,
        service: super::service::Service::from_env(),
        board: super::board_io::BoardIo::start(&config.board),
    };
    // Two threads: one runs the executor for HTTP and sockets, this one the driver.
    let (stop, stopped) = async_channel::bounded::<()>(1);
    std::thread::scope(|scope| {
        let helper = ex.clone();
        scope.spawn(move || smol::block_on(helper.run(stopped.recv())));
        let result = smol::block_on(ex.run(driver.run(datagrams, commands)));
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
    size: VideoSize,
    backend: String,
    fps: u32,
    state: Arc<HttpState>,
    started: Instant,
    adapt: Option<RateController>,
    egress: EgressLatency,
    /// Bytes handed to the media sockets, to every viewer.
    sent_bytes: u64,
    /// systemd's notify socket: ready, status and the watchdog.
    service: super::service::Service,
    /// The board's GPIO features (status LED, relay, PIR, button).
    board: super::board_io::BoardIo,
}

enum Wake {
    Datagram(Datagram),
    Frame(EncodedFrame),
    Command(Command),
    Timeout,
    PipelineEnded,
}

impl Driver<'_> {
    async fn run(
        mut self,
        datagrams: async_channel::Receiver<Datagram>,
        commands: async_channel::Receiver<Command>,
    ) -> anyhow::Result<()> {
        let frames = self.pipeline.output().clone();
        let mut next_status = Instant::now();
        let mut next_adapt = Instant::now();
        let mut next_log = Instant::now() + LOG_EVERY;
        let mut last = (Instant::now(), self.pipeline.stats(), 0);
        loop {
            let deadline = self
                .hub
                .poll_timeout()
                .map_or(next_status, |t| t.min(next_status))
                .min(next_adapt);
            let wake = async { datagrams.recv().await.map_or(Wake::PipelineEnded, Wake::Datagram) }
                .or(async { frames.recv().await.map_or(Wake::PipelineEnded, Wake::Frame) })
                .or(async { commands.recv().await.map_or(Wake::PipelineEnded, Wake::Command) })
                .or(async {
                    smol::Timer::at(deadline).await;
                    Wake::Timeout
                })
                .await;
            let now = Instant::now();
            match wake {
                Wake::Datagram(d) => self.hub.handle_receive(now, d.source, d.destination, &d.contents),
                Wake::Frame(frame) => {
                    self.board.on_frame(&frame);
                    self.egress.on_frame(now, &frame);
                    self.hub.handle_frame(now, &frame);
                }
                Wake::Command(Command::AddViewer { offer, reply }) => {
                    let _ = reply.try_send(self.hub.add_viewer(now, offer));
                    self.publish_viewers();
                }
                Wake::Command(Command::RemoveViewer { id, reply }) => {
                    let _ = reply.try_send(self.hub.remove_viewer(id));
                    self.publish_viewers();
                }
                Wake::Timeout => {
                    if self.hub.poll_timeout().is_some_and(|t| t <= now) {
                        self.hub.handle_timeout(now);
                    }
                }
                Wake::PipelineEnded => return Ok(()),
            }
            if now >= next_adapt {
                self.adapt(now);
                next_adapt = now + ADAPT_EVERY;
            }
            self.flush();
            if now >= next_status {
                let stats = self.pipeline.stats();
                self.publish_status(now, &stats, &last);
                let healthy = self.service.tick(now, &stats, &self.state);
                self.board.on_status(&stats, self.hub.connected_count(), healthy);
                if now >= next_log {
                    log_status(&self.state);
                    next_log = now + LOG_EVERY;
                }
                last = (now, stats, self.sent_bytes);
                next_status = now + STATUS_EVERY;
            }
        }
    }

    fn flush(&mut self) {
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
                HubOutput::ForceKeyframe => self.pipeline.request_keyframe(),
            }
        }
    }

    /// Turns the viewers' link estimates into the encoder's target.
    fn adapt(&mut self, now: Instant) {
        let Some(controller) = &mut self.adapt else {
            return;
        };
        if let Some(plan) = controller.handle_links(now, &self.hub.link_reports()) {
            let rung = controller.rung();
            tracing::info!(
                kbps = plan.bitrate_kbps,
                scale = rung.scale,
                fps = rung.fps,
                "encoder target"
            );
            self.pipeline.set_target(plan.bitrate_kbps, rung);
        }
        self.hub.set_stream_kbps(controller.plan().bitrate_kbps);
    }

    /// Viewer counts change with every session; publish them at once.
    fn publish_viewers(&self) {
        if let Ok(mut shared) = self.state.status.lock() {
            shared.insert("viewers".into(), self.hub.viewer_count().into());
            shared.insert("viewers_connected".into(), self.hub.connected_count().into());
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
        let status = json!({
            "uptime_s": self.started.elapsed().as_secs(),
            "source": self.source,
            "width": size.width(),
            "height": size.height(),
            "fps": (fps * 10.0).round() / 10.0,
            "bitrate_kbps": kbps.round(),
            "sent_kbps": sent_kbps.round(),
            "viewers": self.hub.viewer_count(),
            "viewers_connected": self.hub.connected_count(),
            "max_viewers": self.hub.max_viewers(),
            "frames_captured": stats.captured,
            "frames_encoded": stats.encoded,
            "frames_dropped": stats.dropped,
            "encode_latency_ms": stats.last_latency_us as f64 / 1000.0,
            "latency": self.egress.budget(),
            "encoder": {
                "backend": self.backend,
                "target_kbps": target_kbps,
                "width": encoded_size.width(),
                "height": encoded_size.height(),
                "fps": rung.map(|r| r.fps.min(self.fps)),
            },
            "links": self.hub.links(),
            "inference_ms": (stats.last_inference_us > 0).then(|| stats.last_inference_us as f64 / 1000.0),
            "detections_run": stats.detections_run,
            "camera": match (self.source.starts_with("camera"), stats.source_lost) {
                (false, _) => "none",
                (true, false) => "ok",
                (true, true) => "lost",
            },
        });
        if let (Ok(mut shared), serde_json::Value::Object(fields)) = (self.state.status.lock(), status) {
            *shared = fields;
        }
    }
}

fn log_status(state: &HttpState) {
    if let Ok(status) = state.status.lock() {
        let get = |key: &str| status.get(key).cloned().unwrap_or_default();
        tracing::info!(
            fps = %get("fps"),
            kbps = %get("bitrate_kbps"),
            viewers = %get("viewers"),
            dropped = %get("frames_dropped"),
            "streaming"
        );
    }
}
