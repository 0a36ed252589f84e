// Test hooks (window.madoTest). The dashboard never imports this module: the
// browser tests inject it (appliance/tests/browser/lib.mjs, openDashboard),
// so the production page has no code that opens the microphone.

import { S, caps, BACKOFF_MIN_MS } from './state.js';
import { pollStats, renderStats, stats } from './stats.js';
import { scheduleReconnect } from './whep.js';

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

window.madoTest = {
  /** Latest figures, synchronously (stats are polled every second). */
  snapshot: stats,
  /** Polls getStats now, then returns the figures. */
  async refresh() {
    await pollStats();
    return stats();
  },
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
