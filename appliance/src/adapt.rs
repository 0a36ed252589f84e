//! Bandwidth adaptation as a plain state machine: the viewers' link
//! estimates and the time go in, the encoder's plan (bitrate and ladder rung)
//! comes out. No clocks or sockets; see `docs/adaptation.md` for the policy.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One rung of the ladder: used while the target bitrate is at least `min_kbps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// The rung applies while the target bitrate is at least this.
    pub min_kbps: u32,
    /// Width and height are divided by this (1, 2 or 4).
    pub scale: u8,
    /// Frames per second, at most the source's.
    pub fps: u32,
}

/// What one viewer's link can carry, as its sender sees it, and whether the
/// viewer gets only the base layer for it. The hub reports these; the rate
/// controller and the status page read them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinkReport {
    /// The congestion controller's estimate (transport-wide feedback).
    pub estimate_kbps: u32,
    /// Fraction of packets the viewer reports lost, 0 to 1.
    pub loss: f32,
    /// The viewer gets only the base temporal layer (every other frame).
    pub base_only: bool,
}

impl LinkReport {
    /// The media rate this link can take: the estimate less room for
    /// retransmissions and packet overhead, and less again for heavy loss.
    pub fn usable_kbps(&self) -> u32 {
        let loss = if self.loss > 0.02 { self.loss.min(0.5) } else { 0.0 };
        (f64::from(self.estimate_kbps) * HEADROOM * (1.0 - f64::from(loss))).round() as u32
    }
}

/// Share of a link's estimate the media may use: the rest is room for
/// retransmissions, packet headers, and the congestion controller probing
/// past what the path carries before it backs off.
const HEADROOM: f64 = 0.8;
/// A higher rung is taken only once the target has cleared its floor by this much ...
const UP_MARGIN: f64 = 1.25;
/// ... for this long.
const UP_HOLD: Duration = Duration::from_secs(4);
/// Smaller bitrate changes are not worth a reconfiguration.
const MIN_CHANGE: f64 = 0.05;
/// The target falls at once but rises by at most this share of itself per
/// second since it last changed (counting at most one second): str0m's
/// first probes put a new viewer's estimate at twice a 1 Mbit/s path for
/// a moment, and an encoder that followed sent 60% of its packets into a
/// full queue.
const RISE_PER_S: f64 = 0.3;
/// However weak one viewer's link, it lowers the target to no less than this
/// share of what the strongest viewer could take: below that, the weak
/// viewer stays on the base layer and the target follows the others. A
/// viewer on a poor link (or one that withholds its feedback) cannot pull
/// everyone down to the floor.
pub const MAX_PULL_DOWN: f64 = 1.0 / 3.0;

/// What the encoder should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The encoder's target bitrate.
    pub bitrate_kbps: u32,
    /// Index into the ladder, 0 the top.
    pub rung: usize,
}

/// The bandwidth adaptation state machine: feed it link reports with [`RateController::handle_links`], read the plan back.
#[derive(Debug, Clone)]
pub struct RateController {
    ladder: Vec<Rung>,
    ceiling_kbps: u32,
    floor_kbps: u32,
    /// Share of the bitrate in the base temporal layer, 0 to 1 (1 without layers).
    base_share: f64,
    plan: Plan,
    /// Since when the target has been high enough for the rung above.
    up_since: Option<Instant>,
    /// When the bitrate last changed, for the limit on rising.
    changed_at: Option<Instant>,
}

impl RateController {
    /// `ladder` from the top rung down; the top rung's floor is ignored.
    pub fn new(ladder: Vec<Rung>, ceiling_kbps: u32, floor_kbps: u32, base_share: f64) -> Self {
        assert!(!ladder.is_empty(), "the config refuses an empty ladder");
        Self {
            ladder,
            ceiling_kbps,
            floor_kbps: floor_kbps.min(ceiling_kbps),
            base_share: base_share.clamp(0.1, 1.0),
            plan: Plan {
                bitrate_kbps: ceiling_kbps,
                rung: 0,
            },
            up_since: None,
            changed_at: None,
        }
    }

    /// The plan in force now.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// The ladder rung of the current plan.
    pub fn rung(&self) -> Rung {
        self.ladder[self.plan.rung]
    }

    /// The encoder's target for these links: as high as the strongest viewer
    /// can take, but no higher than lets the weakest take the base layer,
    /// and never below [`MAX_PULL_DOWN`] of the strongest's rate.
    pub fn target_kbps(&self, links: &[LinkReport]) -> u32 {
        let usable = links.iter().map(LinkReport::usable_kbps);
        let (Some(strongest), Some(weakest)) = (usable.clone().max(), usable.min()) else {
            return self.ceiling_kbps;
        };
        let top = strongest.min(self.ceiling_kbps);
        let weakest_allows = (f64::from(weakest) / self.base_share) as u32;
        let lowest_allowed = (f64::from(top) * MAX_PULL_DOWN) as u32;
        top.min(weakest_allows.max(lowest_allowed))
            .clamp(self.floor_kbps, self.ceiling_kbps)
    }

    /// Takes the links' latest reports; returns the new plan when it changed.
    pub fn handle_links(&mut self, now: Instant, links: &[LinkReport]) -> Option<Plan> {
        let target = self.rise_limited(now, self.target_kbps(links));
        let fits = |rung: &Rung| rung.min_kbps <= target;
        let best = self.ladder.iter().position(fits).unwrap_or(self.ladder.len() - 1);
        let mut rung = self.plan.rung;
        if best > rung {
            rung = best; // down at once
            self.up_since = None;
        } else if best < rung {
            let above = &self.ladder[rung - 1];
            if f64::from(target) >= f64::from(above.min_kbps) * UP_MARGIN {
                let since = *self.up_since.get_or_insert(now);
                if now.duration_since(since) >= UP_HOLD {
                    rung -= 1; // up one rung at a time
                    self.up_since = None;
                }
            } else {
                self.up_since = None;
            }
        } else {
            self.up_since = None;
        }
        let current = f64::from(self.plan.bitrate_kbps);
        let changed = (f64::from(target) - current).abs() > current * MIN_CHANGE;
        if rung == self.plan.rung && !changed {
            return None;
        }
        if changed {
            self.changed_at = Some(now);
        }
        self.plan = Plan {
            bitrate_kbps: if changed { target } else { self.plan.bitrate_kbps },
            rung,
        };
        Some(self.plan)
    }

    /// `target`, or less when it is more than the bitrate may rise to by
    /// `now` (see [`RISE_PER_S`]).
    fn rise_limited(&self, now: Instant, target: u32) -> u32 {
        let Some(at) = self.changed_at else {
            return target;
        };
        let seconds = now.saturating_duration_since(at).as_secs_f64().min(1.0);
        let most = f64::from(self.plan.bitrate_kbps) * (1.0 + RISE_PER_S * seconds);
        target.min(most as u32)
    }
}

/// Whether a viewer should get only the base temporal layer of a stream sent
/// at `stream_kbps`, given whether it does now. A viewer leaves the full
/// stream only when its usable rate falls below [`DEMOTE_BELOW`] of the
/// stream (its estimate well under what is sent), and comes back once it
/// reaches [`RETURN_AT`]: congestion estimates swing by a fifth or more on
/// a perfectly good path (a busy receiver, probing), and a viewer must not
/// lose half its frames to that.
pub fn base_layer_only(now_base_only: bool, link: &LinkReport, stream_kbps: u32) -> bool {
    let usable = f64::from(link.usable_kbps());
    let stream = f64::from(stream_kbps);
    if now_base_only {
        usable < stream * RETURN_AT
    } else {
        usable < stream * DEMOTE_BELOW
    }
}

/// See [`base_layer_only`]: with the 0.8 headroom, an estimate below 7/8 of
/// the stream demotes, one at the stream's rate brings the viewer back.
pub const DEMOTE_BELOW: f64 = 0.7;
/// See [`base_layer_only`].
pub const RETURN_AT: f64 = 0.8;

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Vec<Rung> {
        vec![
            Rung {
                min_kbps: 600,
                scale: 1,
                fps: 30,
            },
            Rung {
                min_kbps: 250,
                scale: 2,
                fps: 30,
            },
            Rung {
                min_kbps: 0,
                scale: 2,
                fps: 15,
            },
        ]
    }

    fn link(kbps: u32) -> LinkReport {
        LinkReport {
            estimate_kbps: kbps,
            loss: 0.0,
            base_only: false,
        }
    }

    #[test]
    fn no_viewers_means_the_ceiling_and_the_top_rung() {
        let mut c = RateController::new(ladder(), 2000, 100, 0.6);
        assert_eq!(c.handle_links(Instant::now(), &[]), None);
        assert_eq!(
            c.plan(),
            Plan {
                bitrate_kbps: 2000,
                rung: 0
            }
        );
    }

    #[test]
    fn a_narrow_link_steps_down_at_once_and_back_up_only_after_holding() {
        let t0 = Instant::now();
        let mut c = RateController::new(ladder(), 2000, 100, 1.0);
        // 400 kbps estimate: 320 usable, below the top rung's 600.
        assert_eq!(
            c.handle_links(t0, &[link(400)]),
            Some(Plan {
                bitrate_kbps: 320,
                rung: 1
            })
        );
        // 200 kbps: the bottom rung.
        assert_eq!(c.handle_links(t0, &[link(200)]).unwrap().rung, 2);
        // Back to 2000: the bitrate climbs (see the next test) and the
        // rungs come back one at a time, each after its floor has been
        // cleared by 25% for 4 s.
        let mut rungs = vec![(0, c.plan().rung)];
        let mut cleared: [Option<u64>; 2] = [None, None];
        for s in 1..=20 {
            let plan = c
                .handle_links(t0 + Duration::from_secs(s), &[link(2000)])
                .unwrap_or(c.plan());
            for (rung, floor) in [(0, 600.0 * 1.25), (1, 250.0 * 1.25)] {
                if f64::from(plan.bitrate_kbps) >= floor {
                    cleared[rung].get_or_insert(s);
                }
            }
            if plan.rung != rungs.last().unwrap().1 {
                rungs.push((s, plan.rung));
            }
        }
        let [Some(top_cleared), Some(middle_cleared)] = cleared else {
            panic!("the bitrate never climbed: {rungs:?}");
        };
        // One rung at a time, 4 s apart, each 4 s after its floor was cleared.
        let [(_, 2), (middle_at, 1), (top_at, 0)] = rungs[..] else {
            panic!("rungs {rungs:?}");
        };
        assert!(
            middle_at >= middle_cleared + 4 && middle_at <= middle_cleared + 5,
            "{rungs:?}"
        );
        assert!(
            top_at >= top_cleared + 4 && top_at >= middle_at + 4 && top_at <= middle_at + 5,
            "{rungs:?}"
        );
        assert_eq!(c.plan().bitrate_kbps, 1600);
    }

    #[test]
    fn the_bitrate_falls_at_once_and_rises_by_at_most_30_percent_a_second() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut c = RateController::new(ladder(), 3000, 100, 1.0);
        assert_eq!(c.handle_links(at(0), &[link(1000)]).unwrap().bitrate_kbps, 800);
        // A probe's spike to 2.5 Mbit/s half a second later: 15% more, not 2000.
        assert_eq!(c.handle_links(at(500), &[link(2500)]).unwrap().bitrate_kbps, 919);
        // Back down to 1000 at once.
        assert_eq!(c.handle_links(at(600), &[link(1000)]).unwrap().bitrate_kbps, 800);
        // A steady 2500 is reached step by step, never more than 30% a second.
        let mut kbps = 800;
        let mut ms = 600;
        while kbps < 2000 {
            ms += 500;
            let next = c.handle_links(at(ms), &[link(2500)]).unwrap().bitrate_kbps;
            assert!(
                next > kbps && f64::from(next) <= f64::from(kbps) * 1.15 + 1.0,
                "{kbps} -> {next}"
            );
            kbps = next;
        }
        assert_eq!(kbps, 2000);
        assert!(ms <= 600 + 4000, "2000 kbps only after {ms} ms");
    }

    #[test]
    fn a_dip_shorter_than_the_hold_does_not_climb() {
        let t0 = Instant::now();
        let mut c = RateController::new(ladder(), 2000, 100, 1.0);
        c.handle_links(t0, &[link(400)]);
        c.handle_links(t0 + Duration::from_secs(1), &[link(2000)]);
        c.handle_links(t0 + Duration::from_secs(3), &[link(500)]); // not enough for the top rung
        c.handle_links(t0 + Duration::from_secs(4), &[link(2000)]);
        c.handle_links(t0 + Duration::from_secs(6), &[link(2000)]);
        assert_eq!(c.plan().rung, 1);
    }

    #[test]
    fn small_changes_are_ignored_and_the_floor_and_ceiling_hold() {
        let mut c = RateController::new(ladder(), 2000, 100, 1.0);
        let t = Instant::now();
        assert_eq!(c.handle_links(t, &[link(2450)]), None); // 1960 usable: within 5% of 2000
        assert_eq!(c.handle_links(t, &[link(50)]).unwrap().bitrate_kbps, 100);
        let mut later = t;
        while c.plan().bitrate_kbps < 2000 {
            later += Duration::from_secs(1);
            c.handle_links(later, &[link(90_000)]);
        }
        assert_eq!(c.plan().bitrate_kbps, 2000);
    }

    #[test]
    fn a_weak_viewer_only_pulls_the_target_down_to_what_its_base_layer_needs() {
        let c = RateController::new(ladder(), 3000, 100, 0.6);
        // Strong 2000 usable; weak 600 usable allows 1000.
        let links = [link(2500), link(750)];
        assert_eq!(c.target_kbps(&links), 1000);
        // A weak viewer that can take 60% of the strong one's rate costs the strong one nothing.
        assert_eq!(c.target_kbps(&[link(2500), link(1500)]), 2000);
        // Without layers the weakest sets the rate.
        let flat = RateController::new(ladder(), 3000, 100, 1.0);
        assert_eq!(flat.target_kbps(&links), 666);
        assert_eq!(flat.target_kbps(&[link(2500), link(1500)]), 1200);
    }

    #[test]
    fn one_viewer_cannot_pull_the_others_to_the_floor() {
        let c = RateController::new(ladder(), 3000, 100, 0.6);
        // A 50 kbit/s viewer alone sets the floor: nobody else is hurt.
        assert_eq!(c.target_kbps(&[link(50)]), 100);
        // Beside a 2000-usable viewer it lowers the target to a third of that, no further.
        assert_eq!(c.target_kbps(&[link(2500), link(50)]), 666);
        assert_eq!(c.target_kbps(&[link(2500), link(50), link(2400)]), 666);
        // The third is of what the encoder can send, not of a huge link.
        assert_eq!(c.target_kbps(&[link(90_000), link(50)]), 1000);
    }

    #[test]
    fn loss_above_two_percent_lowers_what_a_link_can_take() {
        let clean = link(1000);
        let lossy = LinkReport {
            loss: 0.10,
            ..link(1000)
        };
        assert_eq!(clean.usable_kbps(), 800);
        assert_eq!(lossy.usable_kbps(), 720);
        let slight = LinkReport { loss: 0.01, ..lossy };
        assert_eq!(slight.usable_kbps(), 800);
    }

    #[test]
    fn base_layer_choice_has_hysteresis() {
        let stream = 1000;
        // 850 kbps estimate = 680 usable: below 70% of the stream.
        assert!(base_layer_only(false, &link(850), stream));
        // 900 = 720 usable: enough to stay on all frames, not enough to come back.
        assert!(!base_layer_only(false, &link(900), stream));
        assert!(base_layer_only(true, &link(900), stream));
        // An estimate at the stream's rate brings it back.
        assert!(!base_layer_only(true, &link(1000), stream));
    }
}
