// What reaches the screen: the picture and the boxes of that very picture
// (and the event zones, zones.js, drawn on it with every frame).
//
// Composited (the default where MediaStreamTrackProcessor exists): every
// decoded VideoFrame is read from the track, its metadata found by the RTP
// timestamp the frame carries (worker.js posted it), and frame and boxes are
// drawn together into one canvas, so the browser can only ever show them
// together. Labels and scores follow the same rule: nothing drawn from
// metadata is drawn anywhere but with its own frame.
//
// Overlay (fallback, or `?compose=overlay`): a <video> with a canvas over it,
// boxes drawn in requestVideoFrameCallback. The browser composites the two
// layers on its own schedule and can show a box a refresh after its picture;
// the dashboard says so.

import { boxToPixels, NORM16_MAX } from './meta.js';
import { S, caps, $, LATENCY_KEEP, CHECK_OVERLAY, classColor, wallTime } from './state.js';
import { drawZones } from './zones.js';

const video = $('video');
const overlay = $('overlay');
const picture = $('picture');
const LABEL_H = 16;
/** Motion regions: dashed amber, apart from every class colour of the boxes. */
export const MOTION_COLOR = '#ffc400';

/** Where a `frameW` x `frameH` picture lies in a `cw` x `ch` box (object-fit: contain), in CSS pixels. */
export function contentBox(frameW, frameH, cw, ch) {
  if (!frameW || !frameH || !cw || !ch) return null;
  const scale = Math.min(cw / frameW, ch / frameH);
  const w = frameW * scale;
  const h = frameH * scale;
  return { x: (cw - w) / 2, y: (ch - h) / 2, w, h, scale };
}

// Sizes a canvas to its CSS box in device pixels; returns the device pixel ratio.
function sizeCanvas(canvas) {
  const dpr = devicePixelRatio || 1;
  const w = Math.round(canvas.clientWidth * dpr);
  const h = Math.round(canvas.clientHeight * dpr);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  return dpr;
}

// Boxes, labels and scores of one frame's metadata, in CSS pixels of the
// content box `cb` (the context's transform maps CSS to device pixels).
// Labels sit on a dark chip in the class colour, so the only long runs of
// that colour on the picture are the boxes' edges.
function drawDetections(ctx, meta, frameW, frameH, cb) {
  if (!meta || !meta.detections || !$('show-boxes').checked) return;
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
    // Below the box (above it would cover the top of the picture, where
    // the test pattern spells its frame number), else above, else inside.
    const below = y + h + 2;
    const above = y - LABEL_H - 2;
    const ty = below + LABEL_H <= cb.y + cb.h ? below : above >= cb.y ? above : y + 2;
    ctx.fillStyle = 'rgba(0, 0, 0, 0.65)';
    ctx.fillRect(x - 1, ty, tw, LABEL_H);
    ctx.fillStyle = color;
    ctx.fillText(text, x + 3, ty + 2);
  }
}

function recordLatency(meta, shownWallMs) {
  const captureMs = Number(meta.capture_us) / 1000;
  let latency;
  if (caps.loopback) latency = shownWallMs - captureMs;
  else if (S.clock.offsetMs !== null) latency = shownWallMs + S.clock.offsetMs - captureMs;
  else return;
  if (!Number.isFinite(latency)) return;
  S.latency.push(Math.round(latency * 10) / 10);
  S.latencyCount++;
  if (S.latency.length > LATENCY_KEEP) S.latency.splice(0, S.latency.length - LATENCY_KEEP);
}

// Check mode (?check=overlay) is loaded only when asked for.
let checker = null;
if (CHECK_OVERLAY) {
  import('./overlay-check.js').then((m) => (checker = m)).catch((e) => console.warn('overlay check unavailable', e));
}

function runCheck(ctx, cb, dpr, meta, frameW) {
  if (!checker) return;
  try {
    checker.checkComposited(ctx, cb, dpr, meta, frameW);
  } catch (e) {
    console.warn('overlay check failed', e);
  }
}

// --------------------------------------------------------------- composited

const pictureCtx = caps.compose === 'composited' ? picture.getContext('2d', { alpha: false, willReadFrequently: CHECK_OVERLAY }) : null;
let reader = null; // of the current track
let pending = null; // the frame drawn since the last animation frame
// Motion regions of one frame (its motion OBU), dashed and thin so they
// never pass for detection boxes; in CSS pixels of the content box `cb`.
function drawMotion(ctx, meta, frameW, frameH, cb) {
  if (!meta || !meta.motion || !$('show-motion').checked) return;
  ctx.save();
  ctx.lineWidth = 1;
  ctx.setLineDash([6, 4]);
  ctx.strokeStyle = MOTION_COLOR;
  for (const region of meta.motion.regions) {
    const p = boxToPixels(region, frameW, frameH);
    ctx.strokeRect(cb.x + p.x * cb.scale + 0.5, cb.y + p.y * cb.scale + 0.5, p.w * cb.scale - 1, p.h * cb.scale - 1);
  }
  ctx.restore();
}

// The glass in glass-to-glass. Where the browser reports when a rendering
// update reached the screen (Element Timing with presentation times, as in
// Chromium), every composited frame with metadata adds a one-character
// marker element in the task that draws it, so marker and canvas are painted
// in the same update; the marker's entry then carries the moment that update
// was presented. A slow compositor (software, a large picture) can show a
// frame several refreshes after its animation frame; an estimate from the
// animation frame cannot see that. Where there is no such report, the
// estimate is used: the next animation frame plus one refresh.
//
// A marker stays in the page until its entry arrives (the browser drops the
// entry of an element removed before its frame is presented), stacked on
// the others in one small box in the viewport's corner (style.css); at most
// MARKS_KEEP wait.
const MARKS_KEEP = 64;
const marks = new Map(); // marker identifier -> {meta, element}
let markSeq = 0;
let markerBox = null;
const presentedByMarks = (() => {
  if (caps.compose !== 'composited' || typeof PerformanceObserver !== 'function') return false;
  if (!(PerformanceObserver.supportedEntryTypes || []).includes('element')) return false;
  markerBox = document.createElement('div');
  markerBox.className = 'glass-marker';
  markerBox.setAttribute('aria-hidden', 'true');
  document.body.append(markerBox);
  new PerformanceObserver((list) => {
    // Two frames drawn before one update share its presentation: only the
    // later was seen, so only it counts (as a screen recording would).
    const shownLast = new Map(); // presentation time -> the last mark drawn for it
    for (const entry of list.getEntries()) {
      const mark = marks.get(entry.identifier);
      if (!mark) continue;
      marks.delete(entry.identifier);
      mark.element.remove();
      const shown = entry.presentationTime || entry.renderTime;
      if (shown > 0 && !(shownLast.get(shown)?.seq > mark.seq)) shownLast.set(shown, mark);
    }
    for (const [shown, mark] of shownLast) recordLatency(mark.meta, wallTime(shown));
  }).observe({ type: 'element' });
  return true;
})();

/** How the dashboard's glass-to-glass finds the moment a frame is shown. */
export function glassSource() {
  if (caps.compose === 'composited') return presentedByMarks ? 'presented' : 'next refresh';
  return caps.rvfc ? 'expected display time' : 'none';
}

function markPresented(meta) {
  const id = `glass-${++markSeq}`;
  const element = document.createElement('div');
  element.setAttribute('elementtiming', id);
  element.textContent = '.';
  markerBox.append(element);
  marks.set(id, { meta, element, seq: markSeq });
  if (marks.size > MARKS_KEEP) {
    const [oldest, mark] = marks.entries().next().value;
    marks.delete(oldest);
    mark.element.remove();
  }
}

let lastRaf = 0;
let refreshMs = 1000 / 60;

function composite(frame) {
  const rtp = frame.metadata().rtpTimestamp;
  const meta = rtp !== undefined ? S.meta.get(rtp) : undefined;
  S.c.shownFrames++;
  if (meta) S.c.shownFramesWithMeta++;
  const dpr = sizeCanvas(picture);
  const fw = frame.displayWidth;
  const fh = frame.displayHeight;
  const cb = contentBox(fw, fh, picture.clientWidth, picture.clientHeight);
  const ctx = pictureCtx;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, picture.width, picture.height);
  if (!cb) return;
  ctx.drawImage(frame, cb.x * dpr, cb.y * dpr, cb.w * dpr, cb.h * dpr);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  drawZones(ctx, cb);
  drawMotion(ctx, meta, fw, fh, cb);
  drawDetections(ctx, meta, fw, fh, cb);
  if (meta && presentedByMarks) markPresented(meta);
  else if (meta) pending = meta;
  if (CHECK_OVERLAY) runCheck(ctx, cb, dpr, meta, fw);
}

// Without presentation reports: a canvas drawn now is composited in the
// next rendering update, whose animation frame time is the vsync it starts
// from, and is taken to reach the screen one refresh later.
function onAnimationFrame(now) {
  requestAnimationFrame(onAnimationFrame);
  if (lastRaf && now - lastRaf > 4 && now - lastRaf < 50) refreshMs += (now - lastRaf - refreshMs) / 30;
  lastRaf = now;
  if (pending) {
    recordLatency(pending, wallTime(now + refreshMs));
    pending = null;
  }
}

async function readFrames(track, stream) {
  if (reader) reader.cancel().catch(() => {});
  let own;
  try {
    // A queue of two: a busy page drops a frame rather than falling behind.
    // One and three were tried with Chromium held to a quarter of a core
    // (cpu-quota.mjs), interleaved with two over three rounds: one showed
    // fewer frames (1280x720: 11-13 fps against 15-16); three, about as
    // many (640x480 27-30 against 26-29, 1280x720 12-17 against 15-16)
    // with a deeper queue's frame of delay.
    own = new MediaStreamTrackProcessor({ track, maxBufferSize: 2 }).readable.getReader();
  } catch (e) {
    console.warn('MediaStreamTrackProcessor refused the track; showing it under the overlay instead', e);
    caps.compose = 'overlay';
    caps.composeWhy = `MediaStreamTrackProcessor failed: ${e.message || e}`;
    startPath();
    showTrack(track, stream);
    return;
  }
  reader = own;
  for (;;) {
    let next;
    try {
      next = await own.read();
    } catch {
      break;
    }
    if (next.done) break;
    const frame = next.value;
    try {
      if (own === reader) composite(frame);
    } finally {
      frame.close();
    }
  }
}

// ------------------------------------------------------------------ overlay

const overlayCtx = overlay.getContext('2d');

function drawOverlay(meta, frameW, frameH) {
  const dpr = sizeCanvas(overlay);
  const ctx = overlayCtx;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const cb = contentBox(frameW, frameH, video.clientWidth, video.clientHeight);
  if (!cb) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  drawZones(ctx, cb);
  drawMotion(ctx, meta, frameW, frameH, cb);
  drawDetections(ctx, meta, frameW, frameH, cb);
}

function onVideoFrame(now, md) {
  video.requestVideoFrameCallback(onVideoFrame);
  S.c.shownFrames++;
  const meta = md.rtpTimestamp !== undefined ? S.meta.get(md.rtpTimestamp) : undefined;
  if (meta) {
    S.c.shownFramesWithMeta++;
    if (typeof md.expectedDisplayTime === 'number') recordLatency(meta, wallTime(md.expectedDisplayTime));
  }
  drawOverlay(meta, md.width, md.height);
  if (CHECK_OVERLAY && checker) {
    try {
      checker.checkOverlay(video, overlay, md, meta);
    } catch (e) {
      console.warn('overlay check failed', e);
    }
  }
}

function onOverlayAnimationFrame() {
  // Without requestVideoFrameCallback the frame on screen is unknown: draw
  // the newest boxes, which may lead the picture slightly.
  requestAnimationFrame(onOverlayAnimationFrame);
  if (video.videoWidth) drawOverlay(S.lastMeta, video.videoWidth, video.videoHeight);
}

// -------------------------------------------------------------------- start

/** Shows a connection's video track, composited or under the overlay. */
export function showTrack(track, stream) {
  if (caps.compose === 'composited') {
    readFrames(track, stream);
  } else {
    video.srcObject = stream;
    video.play().catch(() => {});
  }
}

function startPath() {
  $('stage').dataset.compose = caps.compose;
  if (caps.compose === 'composited') {
    requestAnimationFrame(onAnimationFrame);
  } else if (caps.rvfc) {
    video.requestVideoFrameCallback(onVideoFrame);
  } else {
    requestAnimationFrame(onOverlayAnimationFrame);
  }
}

/** Prepares the stage for the chosen path; call once. */
export function startCompositor() {
  startPath();
  if (typeof ResizeObserver === 'function') new ResizeObserver(() => sizeCanvas(overlay)).observe(overlay);
  $('show-boxes').onchange = () => caps.compose === 'overlay' && drawOverlay(null, 0, 0);
}
