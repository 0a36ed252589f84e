// Mado dashboard: live AV1 over WebRTC (WHEP), each frame shown together
// with the boxes from its own in-band metadata, a detection timeline and
// stream stats. The modules, by concern:
//   whep.js        the WHEP session, Encoded Transform, reconnects
//   compositor.js  picture and boxes composited together (or the overlay fallback)
//   timeline.js    the five-minute detection timeline
//   stats.js       getStats and /api/status polling, the stats object, the panel
//   events.js      the event list and clip playback with each frame's boxes
//   zones.js       event zones drawn on the picture, and their editor
//   account.js     API tokens and the password, for a person logged in
//   overlay-check.js  ?check=overlay only
//   test-hooks.js  window.madoTest, injected by the tests, never imported here
// See README.md.

import { S, $, BACKOFF_MIN_MS } from './state.js';
import { connect, scheduleReconnect, setState, watchdog, onVideoTrack } from './whep.js';
import { showTrack, startCompositor } from './compositor.js';
import { drawTimeline } from './timeline.js';
import { pollStats, pollStatus, renderStats } from './stats.js';
import { startEvents } from './events.js';
import { startZones } from './zones.js';
import { startAccount } from './account.js';

const TICK_MS = 1000; // stats and status polling

async function tick() {
  await Promise.all([pollStats(), pollStatus()]);
  watchdog();
  renderStats();
  drawTimeline();
}

$('logout').onclick = () => {
  fetch('/api/logout', { method: 'POST', cache: 'no-store' }).finally(() => location.assign('/login'));
};
$('reconnect').onclick = () => {
  S.backoffMs = BACKOFF_MIN_MS;
  scheduleReconnect('asked to reconnect', 'waiting', true);
};
$('fullscreen').onclick = () => {
  const stage = $('stage');
  if (document.fullscreenElement) document.exitFullscreen();
  else if (stage.requestFullscreen) stage.requestFullscreen().catch(() => {});
};

onVideoTrack(showTrack);
startCompositor();
setState('connecting');
renderStats();
drawTimeline();
setInterval(tick, TICK_MS);
tick();
connect();
startEvents();
startZones();
startAccount();
