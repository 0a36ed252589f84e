// Stream and device figures: the receiver's getStats (polled), the device's
// /api/status (polled, which also gives the clock offset and notices a
// restart), the one stats object built from them (`stats()`, which the panel
// renders and the test hooks return), and the panel itself.

import { S, caps, $, CHECK_OVERLAY, BACKOFF_MIN_MS, wallTime } from './state.js';
import { scheduleReconnect } from './whep.js';
import { glassSource } from './compositor.js';

const CLOCK_SAMPLES = 30;


/** Polls the receiver's getStats into S.inbound, with rates over about a second. */
export async function pollStats() {
  const conn = S.conn;
  if (!conn || !conn.pc || conn.closed) return;
  let report;
  try {
    report = await conn.pc.getStats();
  } catch {
    return;
  }
  if (conn !== S.conn) return;
  let inbound = null;
  report.forEach((r) => {
    if (r.type === 'inbound-rtp' && (r.kind === 'video' || r.mediaType === 'video')) inbound = r;
  });
  if (!inbound) return;
  const codec = inbound.codecId ? report.get(inbound.codecId) : null;
  const cur = {
    timestamp: inbound.timestamp,
    framesDecoded: inbound.framesDecoded || 0,
    framesDropped: inbound.framesDropped || 0,
    framesReceived: inbound.framesReceived || 0,
    bytesReceived: inbound.bytesReceived || 0,
    packetsLost: inbound.packetsLost || 0,
    // Recovery counters, for tests and diagnosis of a frozen picture.
    freezeCount: inbound.freezeCount || 0,
    freezesMs: Math.round(1000 * (inbound.totalFreezesDuration || 0)),
    pliCount: inbound.pliCount || 0,
    nackCount: inbound.nackCount || 0,
    keyFramesDecoded: inbound.keyFramesDecoded || 0,
    frameWidth: inbound.frameWidth || 0,
    frameHeight: inbound.frameHeight || 0,
    codec: codec ? codec.mimeType : null,
    codecFmtp: codec ? codec.sdpFmtpLine || '' : null,
    decoderImplementation: inbound.decoderImplementation || null,
    jitterBufferMs:
      inbound.jitterBufferEmittedCount > 0
        ? (1000 * inbound.jitterBufferDelay) / inbound.jitterBufferEmittedCount
        : null,
    fps: S.inbound ? S.inbound.fps : null,
    bitrateKbps: S.inbound ? S.inbound.bitrateKbps : null,
  };
  // Rates from deltas over about a second.
  const prev = conn.prev;
  if (!prev) {
    conn.prev = cur;
  } else if (cur.timestamp - prev.timestamp >= 900) {
    const dt = (cur.timestamp - prev.timestamp) / 1000;
    cur.fps = (cur.framesDecoded - prev.framesDecoded) / dt;
    cur.bitrateKbps = ((cur.bytesReceived - prev.bytesReceived) * 8) / dt / 1000;
    conn.prev = cur;
  }
  if (cur.decoderImplementation) S.decoderImplementation = cur.decoderImplementation;
  S.inbound = cur;
}

/** Polls /api/status into S.status, with the clock offset; reconnects after a device restart. */
export async function pollStatus() {
  const t0 = performance.now();
  try {
    const res = await fetch('/api/status', { cache: 'no-store' });
    if (res.status === 401) {
      // The session ended (logout elsewhere, expiry, a new password).
      location.assign('/login');
      return;
    }
    if (!res.ok) throw new Error(`GET /api/status: ${res.status}`);
    S.status = await res.json();
    const authWarning = document.getElementById('auth-warning');
    if (authWarning) authWarning.hidden = S.status.auth !== 'none';
    const t1 = performance.now();
    S.statusError = null;
    const body = S.status;
    if (typeof body.server_time_us === 'number') {
      // Device clock minus browser clock, at the middle of the round trip;
      // the sample with the shortest round trip is the best estimate.
      const mid = wallTime((t0 + t1) / 2);
      S.clock.samples.push({ rttMs: t1 - t0, offsetMs: body.server_time_us / 1000 - mid });
      if (S.clock.samples.length > CLOCK_SAMPLES) S.clock.samples.shift();
      const best = S.clock.samples.reduce((a, b) => (b.rttMs < a.rttMs ? b : a));
      S.clock.offsetMs = best.offsetMs;
      S.clock.rttMs = best.rttMs;
    }
    // Uptime going backwards: the device restarted and our session is gone.
    if (typeof body.uptime_s === 'number') {
      const restarted = S.lastUptime !== null && body.uptime_s + 1 < S.lastUptime;
      S.lastUptime = body.uptime_s;
      if (restarted && S.conn) {
        S.backoffMs = BACKOFF_MIN_MS;
        scheduleReconnect('server restarted', 'waiting', true);
      }
    }
  } catch (e) {
    S.statusError = String(e.message || e);
  }
}


/** Frames through the Encoded Transform, over every connection. */
function transformCounts() {
  const cur = S.conn ? S.conn.transformCounts : { frames: 0, withMeta: 0, errors: 0 };
  return {
    frames: S.transformBase.frames + cur.frames,
    withMeta: S.transformBase.withMeta + cur.withMeta,
    errors: S.transformBase.errors + cur.errors,
  };
}

function jsonSafe(value) {
  return JSON.parse(JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v)));
}

/**
 * Every figure the dashboard knows, as one plain object (u64 above 2^53 as
 * strings): the panel renders it and the test hooks return it. Fields are
 * described in README.md.
 */
export function stats() {
  const conn = S.conn;
  const ib = S.inbound || {};
  const t = transformCounts();
  return {
    state: S.state,
    stateDetail: S.stateDetail,
    connectionState: conn && conn.pc ? conn.pc.connectionState : 'closed',
    iceConnectionState: conn && conn.pc ? conn.pc.iceConnectionState : 'closed',
    session: conn ? conn.location : null,
    reconnects: S.reconnects,
    isSecureContext: caps.secureContext,
    loopback: caps.loopback,
    decoderImplementation: S.decoderImplementation,
    codec: ib.codec || null,
    codecFmtp: ib.codecFmtp || null,
    framesDecoded: ib.framesDecoded || 0,
    framesDropped: ib.framesDropped || 0,
    framesReceived: ib.framesReceived || 0,
    bytesReceived: ib.bytesReceived || 0,
    packetsLost: ib.packetsLost || 0,
    recovery: {
      nack: ib.nackCount || 0,
      pli: ib.pliCount || 0,
      keyFrames: ib.keyFramesDecoded || 0,
      freezes: ib.freezeCount || 0,
      freezesMs: ib.freezesMs || 0,
    },
    frameWidth: ib.frameWidth || 0,
    frameHeight: ib.frameHeight || 0,
    fps: ib.fps ?? null,
    bitrateKbps: ib.bitrateKbps ?? null,
    jitterBufferMs: ib.jitterBufferMs ?? null,
    compose: caps.compose,
    shownFrames: S.c.shownFrames,
    shownFramesWithMeta: S.c.shownFramesWithMeta,
    transformApi: caps.transformApi,
    transformWhere: conn ? conn.transformWhere : null,
    transformFrames: t.frames,
    transformFramesWithMeta: t.withMeta,
    metaDecodeErrors: t.errors,
    lastMetaError: S.lastMetaError,
    lastMeta: jsonSafe(S.lastMeta),
    overlay: {
      enabled: CHECK_OVERLAY,
      checked: S.overlayCheck.checked,
      hits: S.overlayCheck.hits,
      otherFrame: S.overlayCheck.otherFrame,
      unreadable: S.overlayCheck.unreadable,
      misses: S.overlayCheck.misses.slice(),
    },
    latencyMs: S.latency.slice(),
    latencyCount: S.latencyCount,
    latencyMode: caps.loopback ? 'exact' : 'estimate',
    glassSource: glassSource(),
    clockOffsetMs: S.clock.offsetMs,
    clockRttMs: S.clock.rttMs,
    status: S.status,
    statusError: S.statusError,
    caps: { ...caps },
  };
}

const fmt = (v, digits = 0, unit = '') =>
  v === null || v === undefined || Number.isNaN(v) ? '—' : `${Number(v).toFixed(digits)}${unit}`;

function median(values) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function setText(id, text, cls = '') {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
  if ((el.className || '') !== cls) el.className = cls;
}

function formatDuration(seconds) {
  if (typeof seconds !== 'number') return '—';
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

/** Renders the stats panel from one stats() object. */
export function renderStats(x = stats()) {
  setText('s-conn', `${x.connectionState}${x.reconnects ? ` · ${x.reconnects} reconnects` : ''}`, x.connectionState === 'connected' ? 'ok' : 'warn');
  const known = x.framesReceived > 0 || x.codec;
  setText('s-fps', known && x.fps !== null ? `${fmt(x.fps, 1)} fps` : '—');
  setText('s-bitrate', known && x.bitrateKbps !== null ? `${fmt(x.bitrateKbps, 0)} kbps` : '—');
  setText('s-res', x.frameWidth ? `${x.frameWidth}×${x.frameHeight}` : '—');
  setText('s-codec', x.codec ? `${x.codec}${x.codecFmtp ? ` (${x.codecFmtp})` : ''}` : '—');
  setText('s-dropped', known ? `${x.framesDropped} of ${x.framesReceived} · ${x.packetsLost} packets lost` : '—');
  setText('s-decoder', x.decoderImplementation || 'hidden by the browser', x.decoderImplementation ? '' : 'muted');

  const lat = median(x.latencyMs.slice(-30));
  if (lat === null) {
    setText('s-latency', x.loopback || x.clockOffsetMs !== null ? '—' : 'waiting for clock offset');
  } else if (x.loopback) {
    setText('s-latency', `${fmt(lat, 0)} ms · exact (same clock)`);
  } else {
    setText('s-latency', `≈ ${fmt(lat, 0)} ms · estimate (±${fmt(x.clockRttMs / 2, 0)} ms)`);
  }
  setText(
    's-offset',
    x.clockOffsetMs === null
      ? '—'
      : `${x.clockOffsetMs >= 0 ? '+' : ''}${fmt(x.clockOffsetMs, 1)} ms · rtt ${fmt(x.clockRttMs, 1)} ms${x.loopback ? ' (unused)' : ''}`,
  );
  const metaText =
    x.transformApi === 'none'
      ? 'no Encoded Transform in this browser'
      : `${x.transformFramesWithMeta}/${x.transformFrames} frames${x.metaDecodeErrors ? ` · ${x.metaDecodeErrors} errors (${x.lastMetaError.code})` : ''} · ${x.transformApi}`;
  setText('s-meta', metaText, x.metaDecodeErrors ? 'bad' : '');
  setText(
    's-compose',
    x.compose === 'composited' ? 'composited with their frame' : `boxes may lag the picture by a frame (${x.caps.composeWhy})`,
    x.compose === 'composited' ? 'ok' : 'warn',
  );

  const st = x.status;
  if (st) {
    setText('source', `${st.source} · ${fmt(st.fps, 1)} fps`);
    setText('s-viewers', `${st.viewers} of ${st.max_viewers}`);
    const captured = typeof st.frames_captured === 'number' ? st.frames_captured : st.frames_encoded + st.frames_dropped;
    const enc = st.encoder || {};
    const target = typeof enc.target_kbps === 'number' ? ` (target ${fmt(enc.target_kbps, 0)})` : '';
    setText('s-encoder', `${enc.backend || ''} ${enc.width}x${enc.height} · ${fmt(st.bitrate_kbps, 0)} kbps${target} · sent ${fmt(st.sent_kbps, 0)} kbps · dropped ${st.frames_dropped} of ${captured}`);
    const budget = st.latency || {};
    const q = (v) => (v ? `${fmt(v.median_ms, 1)} / ${fmt(v.p95_ms, 1)} ms` : '—');
    setText('s-budget', `to encoder out ${q(budget.capture_to_hub)} · to socket ${q(budget.capture_to_socket)}`);
    const bad = st.frames_bad ? ` · ${st.frames_bad} bad frames skipped` : '';
    setText('s-camera', `${st.camera}${bad}`, st.camera === 'ok' ? 'ok' : st.camera === 'lost' ? 'bad' : '');
    renderPublish(st.publish);
    renderMqtt(st.mqtt);
    setText('s-uptime', formatDuration(st.uptime_s));
  } else if (x.statusError) {
    setText('source', 'device unreachable');
  }
  const det = x.lastMeta && x.lastMeta.detections;
  if (det) {
    setText('s-inference', `${fmt(Number(det.inference_us) / 1000, 1)} ms${det.frame_seq !== x.lastMeta.seq ? ` (frame ${det.frame_seq})` : ''}`);
    setText('s-model', det.model);
  } else if (st && st.detection_off) {
    setText('s-inference', `detection off: ${st.detection_off}`, 'warn');
  } else if (st && typeof st.inference_ms === 'number') {
    setText('s-inference', `${fmt(st.inference_ms, 1)} ms`);
  } else {
    setText('s-inference', x.lastMeta ? 'no detector running' : '—');
  }
  renderMotion(x.lastMeta && x.lastMeta.motion, st);
  if (x.overlay.enabled) {
    const el = $('check');
    el.hidden = false;
    setText('check', `overlay check: ${x.overlay.hits}/${x.overlay.checked} hits`, 'muted');
  }
}

// The MQTT connection (Home Assistant): its state, the broker, for how long,
// and why the last attempt failed; green when connected.
function renderMqtt(m) {
  if (!m || m.state === 'off') {
    setText('s-mqtt', 'off');
    return;
  }
  const why = m.last_error ? ` · ${m.last_error}` : '';
  const cls = m.state === 'connected' ? 'ok' : m.state === 'retrying' ? 'bad' : 'warn';
  setText('s-mqtt', `${m.state} · ${m.broker} · for ${formatDuration(m.since_s)}${why}`, cls);
}

// The motion gate: from the newest frame's motion OBU (mode, regions, the
// detector's interval), with the device's counters from /api/status.
function renderMotion(motion, st) {
  const runs = st && typeof st.detections_run === 'number' ? ` · ${st.detections_run} detector runs` : '';
  if (motion) {
    const rate = motion.interval_ms > 0 ? `${fmt(1000 / motion.interval_ms, motion.interval_ms >= 1000 ? 1 : 0)}/s` : 'every frame';
    const moving = motion.moving ? ` · ${motion.regions.length} region${motion.regions.length === 1 ? '' : 's'} moving` : '';
    setText('s-motion', `${motion.mode} · detector ${rate}${moving}${runs}`, motion.mode === 'still' ? 'muted' : 'ok');
  } else if (st && st.gate) {
    setText('s-motion', `${st.gate}${st.motion ? ' · moving' : ''}${runs}`);
  } else {
    setText('s-motion', st ? `off${runs}` : '—');
  }
}

// One line per WHIP endpoint: its state, rate, round trip and how long it
// has been so; green when all are live, red when one was refused.
function renderPublish(endpoints) {
  if (!Array.isArray(endpoints) || endpoints.length === 0) {
    setText('s-publish', 'off');
    return;
  }
  const line = (p) => {
    const rate = typeof p.bitrate_kbps === 'number' ? ` · ${fmt(p.bitrate_kbps, 0)} kbps` : '';
    const rtt = typeof p.rtt_ms === 'number' ? ` · rtt ${fmt(p.rtt_ms, 0)} ms` : '';
    return `${p.name}: ${p.state}${rate}${rtt} · for ${formatDuration(p.since_s)}`;
  };
  const states = endpoints.map((p) => String(p.state));
  const cls = states.some((s) => s.startsWith('rejected')) ? 'bad' : states.every((s) => s === 'live') ? 'ok' : 'warn';
  setText('s-publish', endpoints.map(line).join('; '), cls);
}
