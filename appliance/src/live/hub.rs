//! Fan-out of one encoded stream to many WebRTC viewers, without I/O.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::Input;

use super::keyframes::KeyframeLimiter;
use super::viewer::{Viewer, ViewerEvent};
use super::whep::WhepError;
use crate::encode::EncodedFrame;

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Host candidates offered to viewers: the device's addresses with the media port.
    pub candidates: Vec<SocketAddr>,
    pub max_viewers: usize,
    /// Forced keyframes are at least this far apart.
    pub keyframe_min_interval: Duration,
    /// Rate at which each viewer's packets are paced out, so a keyframe is
    /// spread over time instead of sent in one burst.
    pub pacing_kbps: u32,
}

/// An unguessable session identifier, as it appears in the WHEP resource URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewerId(u64);

impl fmt::Display for ViewerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for ViewerId {
    type Err = WhepError;
    fn from_str(s: &str) -> Result<Self, WhepError> {
        if s.len() != 16 {
            return Err(WhepError::NotFound);
        }
        u64::from_str_radix(s, 16).map(Self).map_err(|_| WhepError::NotFound)
    }
}

/// One connected viewer's link, for the rate controller and the status page.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ViewerLink {
    pub estimate_kbps: u32,
    pub loss: f32,
    /// Gets only the base temporal layer (every other frame).
    pub base_only: bool,
}

/// What the hub asks of its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubOutput {
    /// Send a datagram.
    Transmit {
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// Make the next encoded frame a keyframe.
    ForceKeyframe,
}

pub struct Hub {
    config: HubConfig,
    viewers: BTreeMap<ViewerId, Viewer>,
    keyframes: KeyframeLimiter,
    out: VecDeque<HubOutput>,
    ids: fastrand::Rng,
}

impl Hub {
    /// `seed` makes session identifiers; give it entropy outside tests.
    pub fn new(config: HubConfig, seed: u64) -> Self {
        let keyframes = KeyframeLimiter::new(config.keyframe_min_interval);
        Self {
            config,
            viewers: BTreeMap::new(),
            keyframes,
            out: VecDeque::new(),
            ids: fastrand::Rng::with_seed(seed),
        }
    }

    /// Answers a viewer's offer.
    pub fn add_viewer(&mut self, now: Instant, offer: SdpOffer) -> Result<(ViewerId, SdpAnswer), WhepError> {
        if self.viewers.len() >= self.config.max_viewers {
            return Err(WhepError::ViewerLimit(self.config.max_viewers));
        }
        let (viewer, answer) = Viewer::answer(now, offer, &self.config)?;
        let id = loop {
            let id = ViewerId(self.ids.u64(..));
            if !self.viewers.contains_key(&id) {
                break id;
            }
        };
        self.viewers.insert(id, viewer);
        tracing::info!(viewer = %id, viewers = self.viewers.len(), "viewer added");
        Ok((id, answer))
    }

    /// Ends a viewer's session.
    pub fn remove_viewer(&mut self, id: ViewerId) -> Result<(), WhepError> {
        let mut viewer = self.viewers.remove(&id).ok_or(WhepError::NotFound)?;
        viewer.close();
        tracing::info!(viewer = %id, viewers = self.viewers.len(), "viewer removed");
        Ok(())
    }

    pub fn viewer_count(&self) -> usize {
        self.viewers.len()
    }

    pub fn max_viewers(&self) -> usize {
        self.config.max_viewers
    }

    pub fn connected_count(&self) -> usize {
        self.viewers.values().filter(|v| v.is_connected()).count()
    }

    /// The links of connected viewers that have a bandwidth estimate.
    pub fn links(&self) -> Vec<ViewerLink> {
        self.viewers
            .values()
            .filter(|v| v.is_connected())
            .filter_map(|v| {
                v.link().map(|l| ViewerLink {
                    estimate_kbps: l.estimate_kbps,
                    loss: l.loss,
                    base_only: v.base_only(),
                })
            })
            .collect()
    }

    /// The same links as the rate controller takes them.
    pub fn link_reports(&self) -> Vec<crate::adapt::LinkReport> {
        self.links()
            .iter()
            .map(|l| crate::adapt::LinkReport {
                estimate_kbps: l.estimate_kbps,
                loss: l.loss,
            })
            .collect()
    }

    /// The encoder now targets `kbps`: viewers whose links cannot take that
    /// get the base layer only, the others everything.
    pub fn set_stream_kbps(&mut self, kbps: u32) {
        for viewer in self.viewers.values_mut() {
            viewer.set_stream_kbps(kbps);
        }
    }

    /// A datagram arrived on the media socket.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let Some(input) = Viewer::receive_input(now, source, destination, contents) else {
            return; // not STUN, DTLS, RTP or RTCP
        };
        let Some((&id, _)) = self.viewers.iter().find(|(_, v)| v.accepts(&input)) else {
            return;
        };
        let mut events = Vec::new();
        if let Some(viewer) = self.viewers.get_mut(&id) {
            viewer.handle_input(input, &mut self.out, &mut events);
        }
        self.apply(now, id, events);
    }

    /// An encoded frame to send to every viewer that can use it.
    pub fn handle_frame(&mut self, now: Instant, frame: &EncodedFrame) {
        if frame.keyframe {
            self.keyframes.fired(now);
        }
        // One shared copy of the frame for every viewer.
        let data: Arc<[u8]> = frame.data.as_slice().into();
        let mut all_events = Vec::new();
        for (&id, viewer) in &mut self.viewers {
            let mut events = Vec::new();
            viewer.write_frame(frame, &data, &mut self.out, &mut events);
            all_events.push((id, events));
        }
        for (id, events) in all_events {
            self.apply(now, id, events);
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
            let mut events = Vec::new();
            if let Some(viewer) = self.viewers.get_mut(&id) {
                viewer.handle_input(Input::Timeout(now), &mut self.out, &mut events);
            }
            self.apply(now, id, events);
        }
    }

    /// When [`Hub::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.viewers
            .values()
            .map(Viewer::next_timeout)
            .chain(self.keyframes.poll_timeout())
            .min()
    }

    pub fn poll_output(&mut self) -> Option<HubOutput> {
        self.out.pop_front()
    }

    fn apply(&mut self, now: Instant, id: ViewerId, events: Vec<ViewerEvent>) {
        for event in events {
            match event {
                ViewerEvent::Connected | ViewerEvent::KeyframeWanted => {
                    if self.keyframes.request(now) {
                        self.out.push_back(HubOutput::ForceKeyframe);
                    }
                }
                ViewerEvent::Gone => {
                    if self.viewers.remove(&id).is_some() {
                        tracing::info!(viewer = %id, viewers = self.viewers.len(), "viewer gone");
                    }
                    return;
                }
            }
        }
    }
}
