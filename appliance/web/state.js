// The dashboard's shared state: what the browser offers (`caps`), the page's
// options from its URL, and the one mutable state object `S` the other
// modules read and update. No side effects besides reading the environment.

export const params = new URLSearchParams(location.search);
/** `?check=overlay`: check every composited frame's box against its picture. */
export const CHECK_OVERLAY = params.get('check') === 'overlay';

export const META_KEEP = 300; // RTP timestamps remembered
export const LATENCY_KEEP = 300; // latency samples kept
export const TIMELINE_SECONDS = 300;
export const BACKOFF_MIN_MS = 500;

export const $ = (id) => document.getElementById(id);

/**
 * The wall-clock time (ms since the epoch, Date.now()'s clock, which the
 * device's capture_us is on) of `t`, a performance.now() time. Not
 * `performance.timeOrigin + t`: the monotonic clock behind performance.now()
 * and the wall clock can run apart, and timeOrigin was fixed when the page
 * loaded. A wall clock being slewed (the test machine's, in its first hour
 * after boot) gained 5 ms a second on the monotonic clock: 50 ms of false
 * glass to glass on a page ten seconds old. Both clocks read now: the error
 * is Date.now()'s millisecond.
 */
export function wallTime(t) {
  return Date.now() - (performance.now() - t);
}

export function isLoopbackHost(hostname) {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    /^127\.\d+\.\d+\.\d+$/.test(host) ||
    host === '::1' ||
    host === '0:0:0:0:0:0:0:1'
  );
}

// What this browser offers, in this context. Over plain HTTP from a LAN
// address the page is not a secure context, so getUserMedia is missing.
const hasScriptTransform = typeof globalThis.RTCRtpScriptTransform === 'function' && typeof Worker === 'function';
const hasEncodedStreams =
  typeof globalThis.RTCRtpReceiver === 'function' &&
  typeof RTCRtpReceiver.prototype.createEncodedStreams === 'function';
const hasTrackProcessor =
  typeof globalThis.MediaStreamTrackProcessor === 'function' &&
  typeof globalThis.VideoFrame === 'function' &&
  typeof VideoFrame.prototype.metadata === 'function';
// ?transform=createEncodedStreams or ?transform=none forces a fallback, and
// ?compose=overlay the <video> plus overlay canvas path (tests, benchmarks).
const forcedTransform = params.get('transform');
export const caps = {
  secureContext: !!globalThis.isSecureContext,
  loopback: isLoopbackHost(location.hostname),
  rtc: typeof globalThis.RTCPeerConnection === 'function',
  rvfc: typeof HTMLVideoElement.prototype.requestVideoFrameCallback === 'function',
  worker: typeof Worker === 'function',
  getUserMedia: !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia),
  transformApi: hasScriptTransform ? 'RTCRtpScriptTransform' : hasEncodedStreams ? 'createEncodedStreams' : 'none',
  // How picture and boxes reach the screen: `composited` (each VideoFrame
  // drawn with its own boxes into one canvas) or `overlay` (a <video> with
  // a canvas over it, which can show the boxes a refresh late).
  compose: hasTrackProcessor && params.get('compose') !== 'overlay' ? 'composited' : 'overlay',
  composeWhy: hasTrackProcessor ? 'asked for with ?compose=overlay' : 'this browser has no MediaStreamTrackProcessor',
};
if (forcedTransform === 'none' || (forcedTransform === 'createEncodedStreams' && hasEncodedStreams)) {
  caps.transformApi = forcedTransform;
}

export const S = {
  state: 'new',
  stateDetail: '',
  conn: null,
  nextConnId: 1,
  reconnects: 0,
  backoffMs: BACKOFF_MIN_MS,
  reconnectTimer: 0,
  hidden: false,
  // cumulative over all connections
  c: { shownFrames: 0, shownFramesWithMeta: 0 },
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
};

/** The colour a class is drawn in, on the picture and on the timeline. */
export function classColor(label) {
  let color = S.classes.get(label);
  if (!color) {
    let h = 0;
    for (const ch of label) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    color = label === 'target' ? TARGET_COLOR : `hsl(${h % 360} 75% 60%)`;
    S.classes.set(label, color);
  }
  return color;
}

/** The test pattern's target is drawn in this cyan (check mode looks for it). */
export const TARGET_COLOR = 'rgb(37, 209, 244)';
