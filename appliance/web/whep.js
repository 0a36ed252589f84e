// The WHEP session: one RTCPeerConnection that receives the appliance's AV1
// video (`POST /whep` with the whole offer, no trickle; `DELETE` on
// `pagehide`), the receiver's Encoded Transform that reads each frame's
// metadata (worker.js, keyed by RTP timestamp), and reconnection with
// backoff when the peer fails, stays disconnected for more than 3 s, shows
// no video for 6 s, or the device restarts.

import { inspectEncodedFrame } from './meta.js';
import { S, caps, $, META_KEEP, BACKOFF_MIN_MS } from './state.js';
import { timelineAdd } from './timeline.js';

const DISCONNECT_GRACE_MS = 3000;
const STALL_MS = 6000; // connected but no frame received
const CONNECT_TIMEOUT_MS = 15000;
const ICE_GATHER_TIMEOUT_MS = 5000;
const BACKOFF_MAX_MS = 10000;

// Called with each new connection's video track.
let trackSink = () => {};

/** Sets who receives the video track of each new connection. */
export function onVideoTrack(sink) {
  trackSink = sink;
}

/** Remembers a frame's metadata under its RTP timestamp, for the frame's drawing. */
export function rememberMeta(rtpTimestamp, meta) {
  if (rtpTimestamp === null || rtpTimestamp === undefined) return;
  if (S.meta.has(rtpTimestamp)) S.meta.delete(rtpTimestamp);
  S.meta.set(rtpTimestamp, meta);
  while (S.meta.size > META_KEEP) S.meta.delete(S.meta.keys().next().value);
  S.lastMeta = meta;
  timelineAdd(meta);
}

export function setState(state, detail = '') {
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

export async function connect() {
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
      trackSink(e.track, e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]));
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
    if (res.status === 401) {
      location.assign('/login');
      return;
    }
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

export function scheduleReconnect(reason, state = 'waiting', immediate = false) {
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

/** The watchdogs; app.js runs them once a second. */
export function watchdog() {
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
