// Mado dashboard: live AV1 over WebRTC (WHEP), boxes from the in-band
// metadata drawn on the exact frame, a detection timeline and stream stats.
//
// Frame-accurate overlay: an Encoded Transform (worker.js) reads each
// received frame's metadata OBU and posts it keyed by RTP timestamp; each
// requestVideoFrameCallback() gives the RTP timestamp of the frame being
// shown, which selects the boxes to draw. See README.md for the test hooks.

import { inspectEncodedFrame, boxToPixels, NORM16_MAX } from './meta.js';
import { findRed, readSeqStrip, boxOnRed } from './check.js';

const params = new URLSearchParams(location.search);
const CHECK_OVERLAY = params.get('check') === 'overlay';

const META_KEEP = 300; // RTP timestamps remembered
const LATENCY_KEEP = 300; // latency samples kept
const TIMELINE_SECONDS = 300;
const TICK_MS = 1000; // stats and status polling
const DISCONNECT_GRACE_MS = 3000;
const STALL_MS = 6000; // connected but no frame received
const CONNECT_TIMEOUT_MS = 15000;
const ICE_GATHER_TIMEOUT_MS = 5000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const CLOCK_SAMPLES = 30;
const MISSES_KEEP = 20;

const $ = (id) => document.getElementById(id);
const video = $('video');
const overlay = $('overlay');
const overlayCtx = overlay.getContext('2d');
const timelineCanvas = $('timeline');

function isLoopbackHost(hostname) {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    /^127\.\d+\.\d+\.\d+$/.test(host) ||
    host === '::1' ||
    host === '0:0:0:0:0:0:0:1'
  );
}

// What this browser offers, in this context: over plain HTTP from a LAN
// address the page is not a secure context, so getUserMedia (and with it the
// decoder name, see revealDecoder) is missing; the rest is looked up too.
const hasScriptTransform = typeof globalThis.RTCRtpScriptTransform === 'function' && typeof Worker === 'function';
const hasEncodedStreams =
  typeof globalThis.RTCRtpReceiver === 'function' &&
  typeof RTCRtpReceiver.prototype.createEncodedStreams === 'function';
// ?transform=createEncodedStreams or ?transform=none forces a fallback (tests).
const forcedTransform = params.get('transform');
const caps = {
  secureContext: !!globalThis.isSecureContext,
  loopback: isLoopbackHost(location.hostname),
  rtc: typeof globalThis.RTCPeerConnection === 'function',
  rvfc: typeof HTMLVideoElement.prototype.requestVideoFrameCallback === 'function',
  worker: typeof Worker === 'function',
  getUserMedia: !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia),
  transformApi: hasScriptTransform ? 'RTCRtpScriptTransform' : hasEncodedStreams ? 'createEncodedStreams' : 'none',
};
if (forcedTransform === 'none' || (forcedTransform === 'createEncodedStreams' && hasEncodedStreams)) {
  caps.transformApi = forcedTransform;
}

const S = {
  state: 'new',
  stateDetail: '',
  conn: null,
  nextConnId: 1,
  reconnects: 0,
  backoffMs: BACKOFF_MIN_MS,
  reconnectTimer: 0,
  hidden: false,
  // cumulative over all connections
  c: { rvfcFrames: 0, rvfcFramesWithMeta: 0 },
  transformBase: { frames: 0, withMeta: 0, errors: 0 },
  meta: new Map(), // rtpTimestamp -> meta
  lastMeta: null,
  lastMetaError: null,
  latency: [],
  latencyCount: 0, // samples ever taken
  overlayCheck: { checked: 0, hits: 0, otherFrame: 0, unreadable: 0, misses: [] },
  inbound: null,
  decoderImplementation: null,
  status: null,
  statusError: null,
  lastUptime: null,
  clock: { samples: [], offsetMs: null, rttMs: null },
  timeline: new Map(), // second -> Map(label -> max simultaneous count)
  classes: new Map(), // label -> color
  capture: null,
};

// ---------------------------------------------------------------- connection

function setState(state, detail = '') {
  S.state = state;
  S.stateDetail = detail;
  const badge = $('conn');
  badge.dataset.state = state;
  badge.textContent = detail ? `${state}: ${detail}` : state;
  const notice = $('notice');
  const showNotice = state !== 'connected';
  notice.hidden = !showNotice;
  if (showNotice) notice.textContent = detail ? `${state} — ${detail}` : state;
}

function preferAv1(transceiver) {
  if (typeof transceiver.setCodecPreferences !== 'function' || !RTCRtpReceiver.getCapabilities) return;
  const codecs = (RTCRtpReceiver.getCapabilities('video') || {}).codecs || [];
  const isAv1 = (c) => c.mimeType.toLowerCase() === 'video/av1';
  const av1 = codecs.filter(isAv1);
  if (!av1.length) return;
  try {
    transceiver.setCodecPreferences([...av1, ...codecs.filter((c) => !isAv1(c))]);
  } catch (e) {
    console.warn('setCodecPreferences failed', e);
  }
}

function onTransformMessage(conn, msg) {
  if (!msg || conn !== S.conn) return;
  if (msg.type === 'frame') {
    if (msg.session !== undefined && msg.session !== conn.id) return;
    conn.transformCounts = msg.counts;
    if (msg.meta) rememberMeta(msg.rtpTimestamp, msg.meta);
    if (msg.error) {
      S.lastMetaError = { ...msg.error, rtpTimestamp: msg.rtpTimestamp };
      console.warn('metadata decode error', msg.error);
    }
  } else if (msg.type === 'pipe-closed' && !conn.closed) {
    console.warn('encoded transform pipe closed', msg.reason);
  }
}

// Same work as worker.js, on this thread: used only when streams from
// createEncodedStreams() cannot be transferred to the worker.
function pipeOnMainThread(readable, writable, conn) {
  const counts = { frames: 0, withMeta: 0, errors: 0 };
  const transform = new TransformStream({
    transform(frame, controller) {
      const found = inspectEncodedFrame(frame, counts);
      onTransformMessage(conn, { type: 'frame', session: conn.id, ...found, counts: { ...counts } });
      controller.enqueue(frame);
    },
  });
  readable.pipeThrough(transform).pipeTo(writable).catch(() => {});
}

function attachTransform(receiver, conn) {
  conn.transformWhere = 'none';
  if (caps.transformApi === 'none') return;
  conn.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'mado-transform' });
  conn.worker.onmessage = (e) => onTransformMessage(conn, e.data);
  conn.worker.onerror = (e) => console.error('transform worker error', e.message || e);
  if (caps.transformApi === 'RTCRtpScriptTransform') {
    receiver.transform = new RTCRtpScriptTransform(conn.worker, { session: conn.id });
    conn.transformWhere = 'worker';
    return;
  }
  const { readable, writable } = receiver.createEncodedStreams();
  try {
    conn.worker.postMessage({ type: 'streams', readable, writable, session: conn.id }, [readable, writable]);
    conn.transformWhere = 'worker';
  } catch {
    pipeOnMainThread(readable, writable, conn);
    conn.transformWhere = 'main thread';
  }
}

function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve();
    };
    const check = () => pc.iceGatheringState === 'complete' && done();
    const onCandidate = (e) => !e.candidate && done();
    const timer = setTimeout(done, ICE_GATHER_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

class HttpError extends Error {
  constructor(status, text) {
    super(`POST /whep: ${status}${text ? ` ${text.trim().slice(0, 200)}` : ''}`);
    this.status = status;
  }
}

async function connect() {
  clearTimeout(S.reconnectTimer);
  if (S.hidden) return;
  if (!caps.rtc) {
    setState('failed', 'this browser has no WebRTC');
    return;
  }
  const conn = {
    id: S.nextConnId++,
    pc: null,
    worker: null,
    location: null,
    closed: false,
    startedAt: performance.now(),
    connectedAt: 0,
    transformCounts: { frames: 0, withMeta: 0, errors: 0 },
    discTimer: 0,
    prev: null,
    lastFramesReceived: 0,
    lastFrameProgressAt: performance.now(),
  };
  S.conn = conn;
  S.inbound = null;
  setState('connecting');

  try {
    const config = { iceServers: [] };
    // Only the legacy createEncodedStreams() path needs this flag.
    if (caps.transformApi === 'createEncodedStreams') config.encodedInsertableStreams = true;
    const pc = new RTCPeerConnection(config);
    conn.pc = pc;
    const transceiver = pc.addTransceiver('video', { direction: 'recvonly' });
    preferAv1(transceiver);
    // Before setRemoteDescription, so that no frame goes by unread.
    attachTransform(transceiver.receiver, conn);
    pc.ontrack = (e) => {
      if (conn !== S.conn) return;
      video.srcObject = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
      video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => onPeerState(conn);

    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringComplete(pc);
    if (conn.closed) return;

    const res = await fetch('/whep', {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
      cache: 'no-store',
    });
    const text = await res.text();
    if (res.status !== 201) throw new HttpError(res.status, text);
    const where = res.headers.get('Location');
    if (where) conn.location = new URL(where, res.url).href;
    if (conn.closed) {
      deleteSession(conn);
      return;
    }
    if (!where) throw new Error('POST /whep: 201 without a Location header');
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
    if (pc.connectionState !== 'connected') setState('connecting', 'ICE and DTLS');
  } catch (e) {
    if (conn.closed) return;
    console.warn('connect failed', e);
    if (e instanceof HttpError && e.status === 503) {
      const max = S.status && S.status.max_viewers;
      scheduleReconnect(`viewer limit reached${max ? ` (${max})` : ''}`, 'full');
    } else if (e instanceof TypeError) {
      scheduleReconnect('server unreachable');
    } else {
      scheduleReconnect(e.message || String(e));
    }
  }
}

function deleteSession(conn) {
  if (!conn.location) return;
  const url = conn.location;
  conn.location = null;
  // keepalive lets the request outlive the page on pagehide.
  fetch(url, { method: 'DELETE', keepalive: true, cache: 'no-store' }).catch(() => {});
}

function teardown(conn) {
  if (!conn || conn.closed) return;
  conn.closed = true;
  clearTimeout(conn.discTimer);
  const t = conn.transformCounts;
  S.transformBase.frames += t.frames;
  S.transformBase.withMeta += t.withMeta;
  S.transformBase.errors += t.errors;
  conn.transformCounts = { frames: 0, withMeta: 0, errors: 0 };
  if (conn.pc) {
    conn.pc.onconnectionstatechange = null;
    conn.pc.ontrack = null;
    conn.pc.close();
  }
  if (conn.worker) conn.worker.terminate();
  deleteSession(conn);
  if (S.conn === conn) S.conn = null;
}

function scheduleReconnect(reason, state = 'waiting', immediate = false) {
  teardown(S.conn);
  clearTimeout(S.reconnectTimer);
  if (S.hidden) return;
  const delay = immediate ? 0 : S.backoffMs;
  if (!immediate) S.backoffMs = Math.min(S.backoffMs * 2, BACKOFF_MAX_MS);
  S.reconnects++;
  setState(state, `${reason}; retrying in ${(delay / 1000).toFixed(1)} s`);
  S.reconnectTimer = setTimeout(connect, delay);
}

function onPeerState(conn) {
  if (conn !== S.conn || conn.closed) return;
  const st = conn.pc.connectionState;
  if (st === 'connected') {
    clearTimeout(conn.discTimer);
    conn.discTimer = 0;
    if (!conn.connectedAt) conn.connectedAt = performance.now();
    conn.lastFrameProgressAt = performance.now();
    setState('connected');
  } else if (st === 'failed' || st === 'closed') {
    scheduleReconnect(`peer connection ${st}`, 'failed');
  } else if (st === 'disconnected') {
    setState('disconnected', 'waiting for the network');
    clearTimeout(conn.discTimer);
    conn.discTimer = setTimeout(() => {
      if (conn === S.conn && !conn.closed && conn.pc.connectionState !== 'connected') {
        scheduleReconnect(`disconnected for more than ${DISCONNECT_GRACE_MS / 1000} s`, 'disconnected');
      }
    }, DISCONNECT_GRACE_MS);
  }
}

// Watchdogs run once a second from tick().
function watchdog() {
  const conn = S.conn;
  if (!conn || conn.closed) return;
  const now = performance.now();
  const st = conn.pc ? conn.pc.connectionState : 'new';
  if (st !== 'connected' && !conn.connectedAt && now - conn.startedAt > CONNECT_TIMEOUT_MS) {
    scheduleReconnect(`no connection after ${CONNECT_TIMEOUT_MS / 1000} s`);
    return;
  }
  if (st === 'connected') {
    const received = S.inbound ? S.inbound.framesReceived : 0;
    if (received !== conn.lastFramesReceived) {
      conn.lastFramesReceived = received;
      conn.lastFrameProgressAt = now;
    } else if (now - conn.lastFrameProgressAt > STALL_MS && !(S.status && S.status.camera === 'lost')) {
      scheduleReconnect(`no video for ${STALL_MS / 1000} s`);
      return;
    }
    // A connection that has carried video for a while resets the backoff.
    if (received > 0 && now - conn.connectedAt > 5000) S.backoffMs = BACKOFF_MIN_MS;
  }
}

addEventListener('pagehide', () => {
  S.hidden = true;
  clearTimeout(S.reconnectTimer);
  teardown(S.conn);
});

addEventListener('pageshow', (e) => {
  if (e.persisted && S.hidden) {
    S.hidden = false;
    connect();
  }
});

// ------------------------------------------------------------------ metadata

function rememberMeta(rtpTimestamp, meta) {
  if (rtpTimestamp === null || rtpTimestamp === undefined) return;
  if (S.meta.has(rtpTimestamp)) S.meta.delete(rtpTimestamp);
  S.meta.set(rtpTimestamp, meta);
  while (S.meta.size > META_KEEP) S.meta.delete(S.meta.keys().next().value);
  S.lastMeta = meta;
  timelineAdd(meta);
}

function classColor(label) {
  let color = S.classes.get(label);
  if (!color) {
    let h = 0;
    for (const ch of label) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    color = label === 'target' ? 'hsl(190 90% 55%)' : `hsl(${h % 360} 75% 60%)`;
    S.classes.set(label, color);
  }
  return color;
}

// ------------------------------------------------------------------- overlay

function contentBox(frameW, frameH) {
  const cw = video.clientWidth;
  const ch = video.clientHeight;
  if (!frameW || !frameH || !cw || !ch) return null;
  // object-fit: contain
  const scale = Math.min(cw / frameW, ch / frameH);
  const w = frameW * scale;
  const h = frameH * scale;
  return { x: (cw - w) / 2, y: (ch - h) / 2, w, h, scale };
}

function sizeOverlay() {
  const dpr = devicePixelRatio || 1;
  const w = Math.round(overlay.clientWidth * dpr);
  const h = Math.round(overlay.clientHeight * dpr);
  if (overlay.width !== w || overlay.height !== h) {
    overlay.width = w;
    overlay.height = h;
  }
  return dpr;
}

function drawOverlay(meta, frameW, frameH) {
  const dpr = sizeOverlay();
  const ctx = overlayCtx;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (!meta || !meta.detections || !$('show-boxes').checked) return;
  const cb = contentBox(frameW, frameH);
  if (!cb) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.font = '600 12px system-ui, sans-serif';
  ctx.textBaseline = 'top';
  for (const item of meta.detections.items) {
    const p = boxToPixels(item.box, frameW, frameH);
    const x = cb.x + p.x * cb.scale;
    const y = cb.y + p.y * cb.scale;
    const w = p.w * cb.scale;
    const h = p.h * cb.scale;
    const color = classColor(item.label);
    ctx.lineWidth = 2;
    ctx.strokeStyle = color;
    ctx.strokeRect(x, y, w, h);
    const text = `${item.label} ${Math.round((item.score / NORM16_MAX) * 100)}%`;
    const tw = ctx.measureText(text).width + 8;
    const ty = y >= cb.y + 16 ? y - 16 : y;
    ctx.fillStyle = color;
    ctx.fillRect(x - 1, ty, tw, 16);
    ctx.fillStyle = '#000';
    ctx.fillText(text, x + 3, ty + 2);
  }
}

function recordLatency(meta, md) {
  if (typeof md.expectedDisplayTime !== 'number') return;
  const displayWallMs = performance.timeOrigin + md.expectedDisplayTime;
  const captureMs = Number(meta.capture_us) / 1000;
  let latency;
  if (caps.loopback) latency = displayWallMs - captureMs;
  else if (S.clock.offsetMs !== null) latency = displayWallMs + S.clock.offsetMs - captureMs;
  else return;
  if (!Number.isFinite(latency)) return;
  S.latency.push(Math.round(latency * 10) / 10);
  S.latencyCount++;
  if (S.latency.length > LATENCY_KEEP) S.latency.splice(0, S.latency.length - LATENCY_KEEP);
}

// ?check=overlay: find the red calibration target in the decoded frame and
// compare it with the box drawn for that frame.
const check = { canvas: null, ctx: null };

function checkOverlay(meta, md) {
  const w = md.width;
  const h = md.height;
  if (!w || !h) return;
  if (!check.canvas || check.canvas.width !== w || check.canvas.height !== h) {
    check.canvas = document.createElement('canvas');
    check.canvas.width = w;
    check.canvas.height = h;
    check.ctx = check.canvas.getContext('2d', { willReadFrequently: true });
  }
  check.ctx.drawImage(video, 0, 0, w, h);
  const data = check.ctx.getImageData(0, 0, w, h).data;
  const red = findRed(data, w, h);
  if (!red || !meta) return;
  const oc = S.overlayCheck;
  // drawImage() takes the video's current picture, which on a busy machine
  // can already be a newer frame than the one this callback reports: only a
  // picture that shows this callback's own frame number is checked.
  const shown = readSeqStrip(data, w);
  if (shown === null) {
    oc.unreadable++;
    return;
  }
  if (shown !== Number(BigInt(meta.seq) & 0xffffn)) {
    oc.otherFrame++;
    return;
  }
  oc.checked++;
  const target = meta.detections ? meta.detections.items.find((d) => d.label === 'target') : null;
  const box = target ? boxToPixels(target.box, w, h) : null;
  const verdict = box ? boxOnRed(box, red) : { hit: false };
  if (verdict.hit) {
    oc.hits++;
  } else {
    oc.misses.push({ rtpTimestamp: md.rtpTimestamp, seq: String(meta.seq), red: red.bounds, box, ...verdict });
    if (oc.misses.length > MISSES_KEEP) oc.misses.shift();
  }
}

function onVideoFrame(now, md) {
  video.requestVideoFrameCallback(onVideoFrame);
  S.c.rvfcFrames++;
  const meta = md.rtpTimestamp !== undefined ? S.meta.get(md.rtpTimestamp) : undefined;
  if (meta) {
    S.c.rvfcFramesWithMeta++;
    recordLatency(meta, md);
  }
  drawOverlay(meta, md.width, md.height);
  if (CHECK_OVERLAY) {
    try {
      checkOverlay(meta, md);
    } catch (e) {
      console.warn('overlay check failed', e);
    }
  }
}

function onAnimationFrame() {
  // Without requestVideoFrameCallback the frame on screen is unknown: draw
  // the newest boxes, which may lead the picture slightly.
  requestAnimationFrame(onAnimationFrame);
  if (video.videoWidth) drawOverlay(S.lastMeta, video.videoWidth, video.videoHeight);
}

// ------------------------------------------------------------------ timeline

function timelineAdd(meta) {
  const second = Math.floor(Date.now() / 1000);
  let bucket = S.timeline.get(second);
  if (!bucket) {
    bucket = new Map();
    S.timeline.set(second, bucket);
    for (const key of S.timeline.keys()) {
      if (key > second - TIMELINE_SECONDS) break;
      S.timeline.delete(key);
    }
  }
  if (!meta.detections) return;
  const perClass = new Map();
  for (const item of meta.detections.items) perClass.set(item.label, (perClass.get(item.label) || 0) + 1);
  for (const [label, n] of perClass) {
    classColor(label);
    if (n > (bucket.get(label) || 0)) bucket.set(label, n);
  }
}

function drawTimeline() {
  const dpr = devicePixelRatio || 1;
  const cssW = timelineCanvas.clientWidth;
  const labels = [...S.classes.keys()];
  const rowH = 18;
  const axisH = 14;
  const cssH = Math.max(1, labels.length) * rowH + axisH;
  timelineCanvas.style.height = `${cssH}px`;
  const w = Math.round(cssW * dpr);
  const h = Math.round(cssH * dpr);
  if (timelineCanvas.width !== w || timelineCanvas.height !== h) {
    timelineCanvas.width = w;
    timelineCanvas.height = h;
  }
  const ctx = timelineCanvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  const nowSec = Math.floor(Date.now() / 1000);
  const colW = cssW / TIMELINE_SECONDS;
  ctx.fillStyle = '#8b959c';
  ctx.font = '10px system-ui, sans-serif';
  ctx.textBaseline = 'bottom';
  for (let m = 0; m <= 5; m++) {
    const x = cssW - (m * 60) / TIMELINE_SECONDS * cssW;
    ctx.fillRect(Math.min(x, cssW - 1), labels.length * rowH, 1, 4);
    const text = m === 0 ? 'now' : `−${m} min`;
    ctx.textAlign = m === 0 ? 'right' : m === 5 ? 'left' : 'center';
    ctx.fillText(text, x, cssH);
  }
  labels.forEach((label, row) => {
    let rowMax = 1;
    for (const bucket of S.timeline.values()) rowMax = Math.max(rowMax, bucket.get(label) || 0);
    ctx.fillStyle = 'rgba(255,255,255,0.04)';
    ctx.fillRect(0, row * rowH, cssW, rowH - 2);
    ctx.fillStyle = S.classes.get(label);
    for (const [second, bucket] of S.timeline) {
      const n = bucket.get(label);
      if (!n) continue;
      const age = nowSec - second;
      if (age < 0 || age >= TIMELINE_SECONDS) continue;
      const x = cssW - (age + 1) * colW;
      const bh = Math.max(3, ((rowH - 2) * n) / rowMax);
      ctx.fillRect(x, row * rowH + (rowH - 2 - bh), Math.max(1, colW), bh);
    }
  });
  const legend = $('legend');
  const latest = S.lastMeta && S.lastMeta.detections ? S.lastMeta.detections.items : [];
  const html = labels
    .map((label) => {
      const n = latest.filter((d) => d.label === label).length;
      return `<span><i style="background:${S.classes.get(label)}"></i>${escapeHtml(label)} (${n})</span>`;
    })
    .join('');
  if (legend.dataset.html !== html) {
    legend.innerHTML = html || '<span class="muted">no detections yet</span>';
    legend.dataset.html = html;
  }
}

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// ------------------------------------------------------------- stats, status

async function pollStats() {
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

async function pollStatus() {
  const t0 = performance.now();
  try {
    const res = await fetch('/api/status', { cache: 'no-store' });
    if (!res.ok) throw new Error(`GET /api/status: ${res.status}`);
    const body = await res.json();
    const t1 = performance.now();
    S.status = body;
    S.statusError = null;
    if (typeof body.server_time_us === 'number') {
      // Device clock minus browser clock, at the middle of the round trip;
      // the sample with the shortest round trip is the best estimate.
      const mid = performance.timeOrigin + (t0 + t1) / 2;
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

function renderStats() {
  const conn = S.conn;
  const pcState = conn && conn.pc ? conn.pc.connectionState : 'closed';
  setText('s-conn', `${pcState}${S.reconnects ? ` · ${S.reconnects} reconnects` : ''}`, pcState === 'connected' ? 'ok' : 'warn');
  const ib = S.inbound;
  setText('s-fps', ib && ib.fps !== null ? `${fmt(ib.fps, 1)} fps` : '—');
  setText('s-bitrate', ib && ib.bitrateKbps !== null ? `${fmt(ib.bitrateKbps, 0)} kbps` : '—');
  setText('s-res', ib && ib.frameWidth ? `${ib.frameWidth}×${ib.frameHeight}` : video.videoWidth ? `${video.videoWidth}×${video.videoHeight}` : '—');
  setText('s-codec', ib && ib.codec ? `${ib.codec}${ib.codecFmtp ? ` (${ib.codecFmtp})` : ''}` : '—');
  setText('s-dropped', ib ? `${ib.framesDropped} of ${ib.framesReceived} · ${ib.packetsLost} packets lost` : '—');
  renderDecoder();

  const lat = median(S.latency.slice(-30));
  if (lat === null) {
    setText('s-latency', caps.loopback || S.clock.offsetMs !== null ? '—' : 'waiting for clock offset');
  } else if (caps.loopback) {
    setText('s-latency', `${fmt(lat, 0)} ms · exact (same clock)`);
  } else {
    setText('s-latency', `≈ ${fmt(lat, 0)} ms · estimate (±${fmt(S.clock.rttMs / 2, 0)} ms)`);
  }
  setText(
    's-offset',
    S.clock.offsetMs === null
      ? '—'
      : `${S.clock.offsetMs >= 0 ? '+' : ''}${fmt(S.clock.offsetMs, 1)} ms · rtt ${fmt(S.clock.rttMs, 1)} ms${caps.loopback ? ' (unused)' : ''}`,
  );
  const t = transformCounts();
  const metaText =
    caps.transformApi === 'none'
      ? 'no Encoded Transform in this browser'
      : `${t.withMeta}/${t.frames} frames${t.errors ? ` · ${t.errors} errors (${S.lastMetaError.code})` : ''} · ${caps.transformApi}`;
  setText('s-meta', metaText, t.errors ? 'bad' : '');

  const st = S.status;
  if (st) {
    setText('source', `${st.source} · ${fmt(st.fps, 1)} fps`);
    setText('s-viewers', `${st.viewers} of ${st.max_viewers}`);
    const captured = typeof st.frames_captured === 'number' ? st.frames_captured : st.frames_encoded + st.frames_dropped;
    const enc = st.encoder || {};
    const target = typeof enc.target_kbps === 'number' ? ` (target ${fmt(enc.target_kbps, 0)})` : '';
    setText('s-encoder', `${enc.backend || ''} ${enc.width}x${enc.height} · ${fmt(st.bitrate_kbps, 0)} kbps${target} · sent ${fmt(st.sent_kbps, 0)} kbps · dropped ${st.frames_dropped} of ${captured}`);
    const budget = st.latency || {};
    const q = (x) => (x ? `${fmt(x.median_ms, 1)} / ${fmt(x.p95_ms, 1)} ms` : '—');
    setText('s-budget', `to encoder out ${q(budget.capture_to_hub)} · to socket ${q(budget.capture_to_socket)}`);
    setText('s-camera', st.camera, st.camera === 'ok' ? 'ok' : st.camera === 'lost' ? 'bad' : '');
    setText('s-uptime', formatDuration(st.uptime_s));
  } else if (S.statusError) {
    setText('source', 'device unreachable');
  }
  const det = S.lastMeta && S.lastMeta.detections;
  if (det) {
    setText('s-inference', `${fmt(det.inference_us / 1000, 1)} ms${det.frame_seq !== S.lastMeta.seq ? ` (frame ${det.frame_seq})` : ''}`);
    setText('s-model', det.model);
  } else if (st && typeof st.inference_ms === 'number') {
    setText('s-inference', `${fmt(st.inference_ms, 1)} ms`);
  } else {
    setText('s-inference', S.lastMeta ? 'no detector running' : '—');
  }
  if (CHECK_OVERLAY) {
    const oc = S.overlayCheck;
    const el = $('check');
    el.hidden = false;
    el.textContent = `overlay check: ${oc.hits}/${oc.checked} hits`;
  }
}

function renderDecoder() {
  const dd = $('s-decoder');
  if (S.decoderImplementation) {
    if (dd.dataset.mode !== 'known' || dd.textContent !== S.decoderImplementation) {
      dd.dataset.mode = 'known';
      dd.textContent = S.decoderImplementation;
    }
    return;
  }
  const mode = caps.getUserMedia ? 'reveal' : 'hidden';
  if (dd.dataset.mode === mode) return;
  dd.dataset.mode = mode;
  dd.textContent = '';
  const note = document.createElement('span');
  note.className = 'muted';
  // Browsers name the decoder only while the page captures media (webrtc-stats,
  // "limiting exposure of hardware capabilities").
  note.textContent = 'hidden by the browser ';
  dd.append(note);
  if (mode === 'reveal') {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'linkish';
    b.textContent = 'reveal';
    b.title = 'Briefly opens the microphone (nothing is recorded or sent): the browser names the decoder only while a page captures media.';
    b.onclick = () => revealDecoder().catch((e) => (note.textContent = `not revealed: ${e.message || e} `));
    dd.append(b);
  } else {
    note.title = 'Needs media capture, which is unavailable over plain HTTP from a LAN address.';
    note.textContent = 'hidden by the browser (needs a secure context)';
  }
}

// The browser reports decoderImplementation only while the page is
// capturing media; capture the microphone just long enough for one getStats.
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

function formatDuration(seconds) {
  if (typeof seconds !== 'number') return '—';
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s} s`;
}

function transformCounts() {
  const cur = S.conn ? S.conn.transformCounts : { frames: 0, withMeta: 0, errors: 0 };
  return {
    frames: S.transformBase.frames + cur.frames,
    withMeta: S.transformBase.withMeta + cur.withMeta,
    errors: S.transformBase.errors + cur.errors,
  };
}

async function tick() {
  await Promise.all([pollStats(), pollStatus()]);
  watchdog();
  renderStats();
  drawTimeline();
}

// ---------------------------------------------------------------- test hooks

function jsonSafe(value) {
  return JSON.parse(JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v)));
}

function snapshot() {
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
    frameWidth: ib.frameWidth || 0,
    frameHeight: ib.frameHeight || 0,
    fps: ib.fps ?? null,
    bitrateKbps: ib.bitrateKbps ?? null,
    jitterBufferMs: ib.jitterBufferMs ?? null,
    rvfcFrames: S.c.rvfcFrames,
    rvfcFramesWithMeta: S.c.rvfcFramesWithMeta,
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
    clockOffsetMs: S.clock.offsetMs,
    clockRttMs: S.clock.rttMs,
    status: S.status,
    caps: { ...caps },
  };
}

window.madoTest = {
  /** Latest figures, synchronously (stats are polled every second). */
  snapshot,
  /** Polls getStats now, then returns snapshot(). */
  async refresh() {
    await pollStats();
    return snapshot();
  },
  /** Captures the microphone briefly so the browser names the decoder. */
  revealDecoder,
  /** Drops the session and connects again at once. */
  reconnect() {
    S.backoffMs = BACKOFF_MIN_MS;
    scheduleReconnect('asked to reconnect', 'waiting', true);
  },
};

// ---------------------------------------------------------------------- start

$('reconnect').onclick = () => window.madoTest.reconnect();
$('fullscreen').onclick = () => {
  const stage = $('stage');
  if (document.fullscreenElement) document.exitFullscreen();
  else if (stage.requestFullscreen) stage.requestFullscreen().catch(() => {});
};
$('show-boxes').onchange = () => drawOverlay(null, 0, 0);

if (caps.rvfc) video.requestVideoFrameCallback(onVideoFrame);
else requestAnimationFrame(onAnimationFrame);
if (typeof ResizeObserver === 'function') new ResizeObserver(() => sizeOverlay()).observe(overlay);

setState('connecting');
renderStats();
drawTimeline();
setInterval(tick, TICK_MS);
tick();
connect();
