// Events: the list of recorded events (snapshot, class, time, duration) and
// clip playback with each frame's own boxes. The clip (WebM, AV1) plays in a
// hidden <video>; for every frame it presents (requestVideoFrameCallback),
// that frame and the boxes of the same frame are drawn together into one
// canvas, as the live view composites. The boxes come from the clip's own
// frames: /api/events/ID/index.json lists each frame's presentation time
// with the metadata read from its OBU, and the frame's media time picks the
// entry. `window.madoClipCheck(ctx, meta, width, height)` is called after
// each drawn frame when a test installs it.

import { $, classColor } from './state.js';
import { zoneList } from './zones.js';

const REFRESH_MS = 5000;
const player = { index: null, byTime: new Map(), id: null };

function fmtTime(ms) {
  return new Date(ms).toLocaleString();
}

function fmtDuration(e) {
  if (e.end_ms == null) return 'ongoing';
  return `${((e.end_ms - e.start_ms) / 1000).toFixed(1)} s`;
}

async function refresh() {
  let events;
  try {
    const res = await fetch('/api/events', { cache: 'no-store' });
    if (!res.ok || res.headers.get('x-mado-events') === 'off') {
      $('events').hidden = true; // events are off
      return;
    }
    events = await res.json();
  } catch {
    return;
  }
  $('events').hidden = false;
  const list = $('event-list');
  const ids = events.map((e) => `${e.id}:${e.clip_ready}:${e.snapshot_ready}:${e.end_ms}`).join(',');
  if (list.dataset.ids === ids) return;
  list.dataset.ids = ids;
  list.replaceChildren(
    ...events.map((e) => {
      const li = document.createElement('li');
      li.className = 'event';
      li.dataset.id = e.id;
      if (e.snapshot_ready) {
        const img = document.createElement('img');
        img.src = e.snapshot_url;
        img.alt = `${e.label} snapshot`;
        img.loading = 'lazy';
        li.append(img);
      }
      const text = document.createElement('div');
      const label = document.createElement('strong');
      label.textContent = e.label;
      label.style.color = classColor(e.label);
      const when = document.createElement('span');
      when.className = 'muted';
      when.textContent = ` ${fmtTime(e.start_ms)} · ${fmtDuration(e)} · ${Math.round(e.best_score * 100)}%`;
      text.append(label, when);
      li.append(text);
      if (e.clip_ready) {
        li.tabIndex = 0;
        li.classList.add('playable');
        li.onclick = () => play(e);
        li.onkeydown = (k) => k.key === 'Enter' && play(e);
      }
      return li;
    }),
  );
  $('events-empty').hidden = events.length > 0;
}

async function play(e) {
  const res = await fetch(`/api/events/${e.id}/index.json`, { cache: 'no-store' });
  if (!res.ok) return;
  const index = await res.json();
  player.index = index;
  player.id = e.id;
  player.byTime = new Map(index.frames.map((f) => [f.t_ms, f.meta]));
  $('event-player').hidden = false;
  $('clip-title').textContent = `${e.label}, ${fmtTime(e.start_ms)}`;
  const video = $('clip-video');
  video.src = e.clip_url;
  video.requestVideoFrameCallback(onFrame);
  await video.play().catch(() => {});
}

// The metadata of the frame shown at `mediaTime` (seconds): the entry at
// that millisecond, else the nearest one within a millisecond.
function metaAt(mediaTime) {
  const ms = Math.round(mediaTime * 1000);
  for (const t of [ms, ms - 1, ms + 1]) {
    if (player.byTime.has(t)) return player.byTime.get(t);
  }
  return null;
}

function onFrame(_now, md) {
  const video = $('clip-video');
  const canvas = $('clip-picture');
  const w = md.width || video.videoWidth;
  const h = md.height || video.videoHeight;
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext('2d', { willReadFrequently: !!window.madoClipCheck });
  // The picture and its time from one VideoFrame: the element may already
  // hold the next frame when this callback runs, and then its timestamp
  // says so, where md.mediaTime would name the previous one.
  let mediaTime = md.mediaTime;
  if (typeof VideoFrame === 'function') {
    const frame = new VideoFrame(video);
    mediaTime = frame.timestamp / 1e6;
    ctx.drawImage(frame, 0, 0, w, h);
    frame.close();
  } else {
    ctx.drawImage(video, 0, 0, w, h);
  }
  const meta = metaAt(mediaTime);
  if (window.madoClipCheck) window.madoClipCheck(ctx, meta, w, h, mediaTime);
  drawZones(ctx, w, h);
  drawBoxes(ctx, meta, w, h);
  video.requestVideoFrameCallback(onFrame);
}

// The zones in force (zones.js), dashed, with their names.
function drawZones(ctx, w, h) {
  const zones = zoneList();
  if (!zones.length) return;
  ctx.save();
  ctx.setLineDash([6, 4]);
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = 'rgba(255, 255, 255, 0.8)';
  ctx.fillStyle = 'rgba(255, 255, 255, 0.8)';
  ctx.font = '11px system-ui, sans-serif';
  for (const zone of zones) {
    ctx.beginPath();
    zone.points.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
    ctx.closePath();
    ctx.stroke();
    const [x0, y0] = zone.points[0];
    ctx.fillText(zone.name, x0 * w + 4, Math.max(12, y0 * h - 4));
  }
  ctx.restore();
}

// Boxes from the index are fractions of the picture.
function drawBoxes(ctx, meta, w, h) {
  if (!meta || !meta.detections || !$('show-boxes').checked) return;
  ctx.font = '600 12px system-ui, sans-serif';
  ctx.textBaseline = 'top';
  ctx.lineWidth = 2;
  for (const item of meta.detections.items) {
    const [x, y, bw, bh] = item.box;
    const color = classColor(item.label);
    ctx.strokeStyle = color;
    ctx.strokeRect(x * w, y * h, bw * w, bh * h);
    const text = `${item.label} ${Math.round(item.score * 100)}%`;
    const ty = Math.min((y + bh) * h + 2, h - 16);
    ctx.fillStyle = 'rgba(0, 0, 0, 0.65)';
    ctx.fillRect(x * w - 1, ty, ctx.measureText(text).width + 8, 16);
    ctx.fillStyle = color;
    ctx.fillText(text, x * w + 3, ty + 2);
  }
}

export function startEvents() {
  $('clip-close').onclick = () => {
    const video = $('clip-video');
    video.pause();
    video.removeAttribute('src');
    video.load();
    $('event-player').hidden = true;
  };
  $('clip-play').onclick = () => {
    const video = $('clip-video');
    if (video.paused) video.play().catch(() => {});
    else video.pause();
  };
  refresh();
  setInterval(refresh, REFRESH_MS);
}
