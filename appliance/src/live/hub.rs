//! Fan-out of one encoded stream to many WebRTC viewers, without I/O: the
//! [`Hub`] state machine, which owns the viewers and the keyframe limiter.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::Input;

use super::keyframes::KeyframeLimiter;
use super::viewer::{Viewer, ViewerConfig, ViewerOutput};
use super::whep::WhepError;
use crate::adapt::LinkReport;
use crate::encode::EncodedFrame;

/// What the hub needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Host candidates offered to viewers: the device's addresses with the media port.
    pub candidates: Vec<SocketAddr>,
    /// Viewers served at once; more get [`WhepError::ViewerLimit`].
    pub max_viewers: usize,
    /// Forced keyframes are at least this far apart.
    pub keyframe_min_interval: Duration,
    /// Rate at which each viewer's packets are paced out, so a keyframe is
    /// spread over time instead of sent in one burst.
    pub pacing_kbps: u32,
}

/// An unguessable session identifier, as it appears in the WHEP resource
/// URL: 128 bits from a cryptographic generator. Whoever knows it can end
/// the session, so it is never logged (logs name viewers by a serial number).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewerId(u128);

impl fmt::Display for ViewerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Debug output hides the value, so a stray `{:?}` cannot log it.
impl fmt::Debug for ViewerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ViewerId(..)")
    }
}

impl FromStr for ViewerId {
    type Err = WhepError;
    fn from_str(s: &str) -> Result<Self, WhepError> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(WhepError::NotFound);
        }
        u128::from_str_radix(s, 16).map(Self).map_err(|_| WhepError::NotFound)
    }
}

/// What the hub asks of its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubOutput {
    /// Send a datagram.
    Transmit {
        /// The local address to send from.
        source: SocketAddr,
        /// The viewer's address.
        destination: SocketAddr,
        /// The datagram.
        contents: Vec<u8>,
    },
    /// Make the next encoded frame a keyframe.
    ForceKeyframe,
}

/// The viewers of one encoded stream: a sans-IO state machine in the manner
/// of str0m's `Rtc` and quinn-proto's `Connection`.
///
/// # Driving it
///
/// The hub owns no socket, thread or clock. Its shell loops:
///
/// 1. feed whatever happened with a `handle_*` call, passing the current
///    instant: [`Hub::add_viewer`] / [`Hub::remove_viewer`] (WHEP),
///    [`Hub::handle_receive`] (a datagram), [`Hub::handle_frame`] (an encoded
///    frame), or [`Hub::handle_timeout`] (the deadline passed);
/// 2. call [`Hub::poll_output`] until it returns `None`, sending each
///    [`HubOutput::Transmit`] and forwarding [`HubOutput::ForceKeyframe`] to
///    the encoder;
/// 3. wait until [`Hub::poll_timeout`] (or the next input) and start again.
///
/// Time only moves forward: every instant passed in must be at or after the
/// one before. Given the same inputs at the same instants the hub does the
/// same thing, which is how its tests run many viewers on a simulated clock.
///
/// ```
/// use std::time::{Duration, Instant};
/// use mado::live::{Hub, HubConfig, HubOutput};
/// use str0m::media::{Direction, MediaKind};
///
/// let mut now = Instant::now(); // a simulated clock starts anywhere
/// let config = HubConfig {
///     candidates: vec!["127.0.0.1:8189".parse()?],
///     max_viewers: 4,
///     keyframe_min_interval: Duration::from_millis(300),
///     pacing_kbps: 3000,
/// };
/// let mut hub = Hub::new(config, [7; 32]);
///
/// // A browser's offer, made here by a str0m peer.
/// let mut browser = str0m::Rtc::builder().enable_av1(true).build(now);
/// let mut change = browser.sdp_api();
/// change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
/// let (offer, _pending) = change.apply().expect("an offer");
/// let (id, _answer) = hub.add_viewer(now, offer)?;
///
/// for _ in 0..5 {
///     while let Some(output) = hub.poll_output() {
///         match output {
///             HubOutput::Transmit { destination, contents, .. } => {
///                 let _ = (destination, contents); // the shell sends it
///             }
///             HubOutput::ForceKeyframe => {} // the shell tells the encoder
///         }
///     }
///     let Some(deadline) = hub.poll_timeout() else { break };
///     now = now.max(deadline); // time only moves forward
///     hub.handle_timeout(now);
/// }
/// assert_eq!((hub.viewer_count(), hub.connected_count()), (1, 0), "no ICE yet");
/// hub.remove_viewer(id)?;
/// assert_eq!(hub.viewer_count(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Hub {
    config: HubConfig,
    viewers: BTreeMap<ViewerId, Viewer>,
    keyframes: KeyframeLimiter,
    out: VecDeque<HubOutput>,
    /// Session identifiers: ChaCha20, a cryptographic generator.
    ids: ChaCha20Rng,
    /// Viewers added so far; each viewer's number in the logs.
    added: u64,
    /// Changes whenever the set of viewers' source addresses changes.
    remotes_generation: u64,
    /// Sizes of the frames sent in the last [`RATE_WINDOW`], to know the
    /// rate the stream really has (easy pictures come in under the target).
    recent_frames: VecDeque<(Instant, usize)>,
}

/// The stream's actual rate is measured over this long.
const RATE_WINDOW: Duration = Duration::from_secs(2);
/// A viewer is held to the stream's actual rate times this, not to the
/// encoder's target: its link need not carry bits the encoder never makes.
const ACTUAL_RATE_MARGIN: f64 = 1.25;

impl Hub {
    /// `seed` keys the session identifier generator: 32 bytes from the
    /// operating system's random source outside tests.
    pub fn new(config: HubConfig, seed: [u8; 32]) -> Self {
        let keyframes = KeyframeLimiter::new(config.keyframe_min_interval);
        Self {
            config,
            viewers: BTreeMap::new(),
            keyframes,
            out: VecDeque::new(),
            ids: ChaCha20Rng::from_seed(seed),
            added: 0,
            remotes_generation: 0,
            recent_frames: VecDeque::new(),
        }
    }

    /// New host candidates (the device's addresses changed); viewers that
    /// join from now on are offered these.
    pub fn set_candidates(&mut self, candidates: Vec<SocketAddr>) {
        self.config.candidates = candidates;
    }

    /// The host candidates new viewers are offered.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.config.candidates
    }

    /// Every address a current viewer's datagrams came from: the shell lets
    /// these through ahead of strangers.
    pub fn remote_addrs(&self) -> Vec<SocketAddr> {
        self.viewers
            .values()
            .flat_map(|v| v.remotes().iter().copied())
            .collect()
    }

    /// Changes whenever [`Hub::remote_addrs`] does.
    pub fn remote_addrs_generation(&self) -> u64 {
        self.remotes_generation
    }

    /// Answers a viewer's offer.
    pub fn add_viewer(&mut self, now: Instant, offer: SdpOffer) -> Result<(ViewerId, SdpAnswer), WhepError> {
        if self.viewers.len() >= self.config.max_viewers {
            return Err(WhepError::ViewerLimit(self.config.max_viewers));
        }
        let config = ViewerConfig {
            candidates: &self.config.candidates,
            pacing_kbps: self.config.pacing_kbps,
        };
        let (mut viewer, answer) = Viewer::answer(now, offer, &config)?;
        let id = loop {
            let mut bytes = [0u8; 16];
            self.ids.fill_bytes(&mut bytes);
            let id = ViewerId(u128::from_le_bytes(bytes));
            if !self.viewers.contains_key(&id) {
                break id;
            }
        };
        self.added += 1;
        viewer.serial = self.added;
        self.viewers.insert(id, viewer);
        tracing::info!(viewer = self.added, viewers = self.viewers.len(), "viewer added");
        Ok((id, answer))
    }

    /// Ends a viewer's session.
    pub fn remove_viewer(&mut self, id: ViewerId) -> Result<(), WhepError> {
        let mut viewer = self.viewers.remove(&id).ok_or(WhepError::NotFound)?;
        viewer.close();
        self.remotes_generation += 1;
        tracing::info!(viewer = viewer.serial, viewers = self.viewers.len(), "viewer removed");
        Ok(())
    }

    /// Viewers with a session, connected or not.
    pub fn viewer_count(&self) -> usize {
        self.viewers.len()
    }

    /// The most viewers served at once.
    pub fn max_viewers(&self) -> usize {
        self.config.max_viewers
    }

    /// Viewers whose ICE and DTLS are up.
    pub fn connected_count(&self) -> usize {
        self.viewers.values().filter(|v| v.is_connected()).count()
    }

    /// The links of connected viewers that have a bandwidth estimate.
    #[must_use]
    pub fn links(&self) -> Vec<LinkReport> {
        self.viewers
            .values()
            .filter(|v| v.is_connected())
            .filter_map(Viewer::link)
            .collect()
    }

    /// The encoder now targets `kbps`: viewers whose links cannot take the
    /// stream get the base layer only, the others everything. The stream is
    /// the target, or what the encoder actually made over the last two
    /// seconds (with a margin) when that is less: on easy pictures the
    /// encoder stays well under its target, and a viewer whose link carries
    /// what is really sent must not lose half its frames.
    pub fn set_stream_kbps(&mut self, now: Instant, kbps: u32) {
        let stream = self.actual_kbps(now).map_or(kbps, |actual| {
            let with_margin = (f64::from(actual) * ACTUAL_RATE_MARGIN) as u32;
            kbps.min(with_margin)
        });
        for viewer in self.viewers.values_mut() {
            viewer.set_stream_kbps(stream);
        }
    }

    /// The rate of the frames sent over the last two seconds, once
    /// frames have been sent for that long.
    pub fn actual_kbps(&mut self, now: Instant) -> Option<u32> {
        while self
            .recent_frames
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > RATE_WINDOW)
        {
            self.recent_frames.pop_front();
        }
        let (first, _) = self.recent_frames.front()?;
        if now.saturating_duration_since(*first) < RATE_WINDOW / 2 {
            return None;
        }
        let span = now.saturating_duration_since(*first).as_secs_f64();
        let bytes: usize = self.recent_frames.iter().map(|(_, n)| n).sum();
        Some((bytes as f64 * 8.0 / span / 1000.0) as u32)
    }

    /// A datagram arrived on the media socket.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let Some(input) = Viewer::receive_input(now, source, destination, contents) else {
            return; // not STUN, DTLS, RTP or RTCP
        };
        let Some((&id, _)) = self.viewers.iter().find(|(_, v)| v.accepts(&input)) else {
            return;
        };
        let mut outputs = Vec::new();
        if let Some(viewer) = self.viewers.get_mut(&id) {
            if viewer.note_remote(source) {
                self.remotes_generation += 1;
            }
            viewer.handle_input(input, &mut outputs);
        }
        self.apply(now, id, outputs);
    }

    /// An encoded frame to send to every viewer that can use it.
    pub fn handle_frame(&mut self, now: Instant, frame: &EncodedFrame) {
        if frame.keyframe {
            self.keyframes.fired(now);
        }
        self.recent_frames.push_back((now, frame.data.len()));
        if self.recent_frames.len() > 1024 {
            self.recent_frames.pop_front();
        }
        // One shared copy of the frame for every viewer.
        let data: Arc<[u8]> = frame.data.as_slice().into();
        let mut all_outputs = Vec::new();
        for (&id, viewer) in &mut self.viewers {
            let mut outputs = Vec::new();
            viewer.write_frame(frame, &data, &mut outputs);
            all_outputs.push((id, outputs));
        }
        for (id, outputs) in all_outputs {
            self.apply(now, id, outputs);
        }
    }

    /// Asks for a keyframe through the same rate limit as viewers' joins and
    /// PLI/FIR (a publish endpoint's requests come this way).
    pub fn request_keyframe(&mut self, now: Instant) {
        if self.keyframes.request(now) {
            self.out.push_back(HubOutput::ForceKeyframe);
        }
    }

    /// Time has passed; `now` is at or after [`Hub::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.keyframes.handle_timeout(now) {
            self.out.push_back(HubOutput::ForceKeyframe);
        }
        let due: Vec<ViewerId> = self
            .viewers
            .iter()
            .filter(|(_, v)| v.next_timeout() <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let mut outputs = Vec::new();
            if let Some(viewer) = self.viewers.get_mut(&id) {
                if viewer.connect_expired(now) {
                    tracing::info!(viewer = viewer.serial, "viewer never connected: slot freed");
                    outputs.push(ViewerOutput::Gone);
                } else {
                    viewer.handle_input(Input::Timeout(now), &mut outputs);
                }
            }
            self.apply(now, id, outputs);
        }
    }

    /// When [`Hub::handle_timeout`] wants to be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.viewers
            .values()
            .map(Viewer::next_timeout)
            .chain(self.keyframes.poll_timeout())
            .min()
    }

    /// The next thing the shell should do, or `None` when there is nothing
    /// left; call it until `None` after every `handle_*` call.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<HubOutput> {
        self.out.pop_front()
    }

    /// Carries out what viewer `id` asked for: datagrams go out in order;
    /// keyframe wishes pass the viewer's own budget and the shared rate
    /// limit; a viewer that has gone is removed.
    fn apply(&mut self, now: Instant, id: ViewerId, outputs: Vec<ViewerOutput>) {
        let mut gone = false;
        for output in outputs {
            match output {
                ViewerOutput::Transmit {
                    source,
                    destination,
                    contents,
                } => self.out.push_back(HubOutput::Transmit {
                    source,
                    destination,
                    contents,
                }),
                ViewerOutput::Connected | ViewerOutput::KeyframeWanted if !gone => {
                    // Each viewer's requests come out of its own budget, so
                    // one viewer cannot turn everyone's stream into keyframes.
                    let Some(viewer) = self.viewers.get_mut(&id) else {
                        continue;
                    };
                    if !viewer.keyframe_budget.take(now) {
                        tracing::debug!(viewer = viewer.serial, "keyframe request over budget: ignored");
                        continue;
                    }
                    if self.keyframes.request(now) {
                        self.out.push_back(HubOutput::ForceKeyframe);
                    }
                }
                ViewerOutput::Connected | ViewerOutput::KeyframeWanted => {}
                ViewerOutput::Gone => {
                    if !gone {
                        if let Some(viewer) = self.viewers.remove(&id) {
                            self.remotes_generation += 1;
                            tracing::info!(viewer = viewer.serial, viewers = self.viewers.len(), "viewer gone");
                        }
                    }
                    gone = true;
                }
            }
        }
    }
}
