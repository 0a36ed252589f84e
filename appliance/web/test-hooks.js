// Test hooks (window.madoTest). The dashboard never imports this module: the
// browser tests inject it (appliance/tests/browser/lib.mjs, openDashboard),
// so the production page has no code that opens the microphone.

import { S, caps, BACKOFF_MIN_MS } from './state.js';
import { pollStats, renderStats, stats } from './stats.js';
import { scheduleReconnect } from './whep.js';
import { findRed, boxOnRed, readSeqStrip } from './check.js';

// The browser reports decoderImplementation only while the page captures
// media; capture the microphone just long enough for a getStats call.
async function revealDecoder() {
  if (!caps.getUserMedia) throw new Error('getUserMedia is unavailable in this context');
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  try {
    for (let i = 0; i < 10 && !S.decoderImplementation; i++) {
      await pollStats();
      if (!S.decoderImplementation) await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    for (const track of stream.getTracks()) track.stop();
  }
  renderStats();
  return S.decoderImplementation;
}

// Every frame's sequence number and capture time seen since the last call,
// for measuring glass to glass from a screen recording.
const captured = new Map();
function collectCaptures() {
  for (const meta of S.meta.values()) captured.set(String(meta.seq), Number(meta.capture_us));
  if (captured.size > 20000) captured.clear();
  return Object.fromEntries(captured);
}

// Which fields of /api/status the dashboard reads: once watching, S.status
// hands out a proxy that notes every key read (nested ones as `a.b`) and
// those the served object lacks.
const statusReads = { watching: false, raw: null, read: new Set(), missing: new Set() };

function watched(target, prefix) {
  return new Proxy(target, {
    get(obj, key) {
      const value = obj[key];
      // An array's items, length and methods are not field names.
      if (typeof key !== 'string' || Array.isArray(obj)) return value;
      const path = prefix + key;
      statusReads.read.add(path);
      if (!(key in obj)) statusReads.missing.add(path);
      return value !== null && typeof value === 'object' ? watched(value, `${path}.`) : value;
    },
  });
}

function watchStatusReads() {
  if (statusReads.watching) return;
  statusReads.watching = true;
  statusReads.raw = S.status;
  Object.defineProperty(S, 'status', {
    get: () => (statusReads.raw ? watched(statusReads.raw, '') : statusReads.raw),
    set: (v) => (statusReads.raw = v),
  });
}

// The figures, with the served status itself rather than the watching proxy.
function snapshot() {
  const x = stats();
  if (statusReads.watching) x.status = statusReads.raw;
  return x;
}

// When new frames reached the page's picture: the time of every animation
// frame that followed a new frame, whichever path shows them.
const presented = { on: false, times: [], seen: 0 };
function recordPresented() {
  if (presented.on) return;
  presented.on = true;
  presented.seen = S.c.shownFrames;
  const onFrame = (now) => {
    requestAnimationFrame(onFrame);
    if (S.c.shownFrames !== presented.seen) {
      presented.seen = S.c.shownFrames;
      presented.times.push(now);
    }
  };
  requestAnimationFrame(onFrame);
}

// Clip playback (events.js): for every frame drawn, before its boxes, the
// frame number the test pattern spells on the picture against the seq of
// the metadata drawn with it, and the metadata's box against the red target.
const clipChecks = [];
function checkClips() {
  window.madoClipCheck = (ctx, meta, w, h, mediaTime) => {
    const data = ctx.getImageData(0, 0, w, h).data;
    const red = findRed(data, w, h);
    const item = meta && meta.detections && meta.detections.items[0];
    const box = item && { x: item.box[0] * w, y: item.box[1] * h, w: item.box[2] * w, h: item.box[3] * h };
    clipChecks.push({
      mediaTime,
      seq: meta ? meta.seq : null,
      shownSeq: readSeqStrip(data, w),
      hit: !!(red && box && boxOnRed(box, red).hit),
    });
  };
}

window.madoTest = {
  /** Starts checking each clip frame the event player draws (see checkClips). */
  checkClips,
  /** The checks so far: {mediaTime, seq, shownSeq, hit} per drawn frame. */
  clipChecks: () => clipChecks.slice(),
  /** Latest figures, synchronously (stats are polled every second). */
  snapshot,
  /** Polls getStats now, then returns the figures. */
  async refresh() {
    await pollStats();
    return snapshot();
  },
  /** Starts noting when new frames are shown. */
  recordPresented,
  /** performance.now() of each animation frame that showed a new picture since recordPresented(). */
  presented: () => presented.times.slice(),
  /** Starts noting which /api/status fields the dashboard reads. */
  watchStatusReads,
  /** {read, missing}: status fields read since watchStatusReads(), and those the device did not serve. */
  statusReads: () => ({ read: [...statusReads.read].sort(), missing: [...statusReads.missing].sort() }),
  /** Captures the microphone briefly so the browser names the decoder. */
  revealDecoder,
  /** Drops the session and connects again at once. */
  reconnect() {
    S.backoffMs = BACKOFF_MIN_MS;
    scheduleReconnect('asked to reconnect', 'waiting', true);
  },
  /** seq -> capture_us of every frame whose metadata the page has seen (since load). */
  captures: collectCaptures,
};
