// The detection timeline: per second and per class, the most detections of
// that class seen at once, over the last five minutes, and its legend.

import { S, $, TIMELINE_SECONDS, classColor } from './state.js';

const timelineCanvas = $('timeline');

/** Counts one frame's detections into the current second. */
export function timelineAdd(meta) {
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

export function drawTimeline() {
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

export function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
