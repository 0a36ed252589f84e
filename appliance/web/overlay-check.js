// Check mode (/?check=overlay), loaded only when asked for: reads back the
// pixels the page puts on screen and judges them with check.js alone: the
// frame number the picture spells, the red target, and the box drawn for it.
// What the metadata says is not consulted for the verdict, so the check
// fails whenever the screen would be wrong.

import { judgePicture } from './check.js';
import { S } from './state.js';

const MISSES_KEEP = 20;

function tally(verdict, meta, sourceWidth, where) {
  const oc = S.overlayCheck;
  if (!verdict.red || !meta) return;
  if (verdict.seq === null) {
    oc.unreadable++;
    return;
  }
  oc.checked++;
  // The picture shows another frame than the one whose boxes were drawn.
  const own = verdict.seq === Number(BigInt(meta.seq) & 0xffffn);
  if (!own) oc.otherFrame++;
  if (verdict.iou >= 0.5) {
    oc.hits++;
  } else {
    const round = (v) => Math.round(v * 1000) / 1000;
    oc.misses.push({ where, seq: String(meta.seq), shown: verdict.seq, red: verdict.red, box: verdict.box, iou: round(verdict.iou), sourceWidth });
    if (oc.misses.length > MISSES_KEEP) oc.misses.shift();
  }
}

/** Composited path: reads back the picture's rectangle of the canvas just drawn. */
export function checkComposited(ctx, cb, dpr, meta, sourceWidth) {
  const x = Math.round(cb.x * dpr);
  const y = Math.round(cb.y * dpr);
  const w = Math.round(cb.w * dpr);
  const h = Math.round(cb.h * dpr);
  if (w < 16 || h < 16) return;
  const data = ctx.getImageData(x, y, w, h).data;
  tally(judgePicture(data, w, h, sourceWidth), meta, sourceWidth, 'canvas');
}

let scratch = null;

/**
 * Overlay path: the video's current picture with the overlay canvas laid on
 * it, as the browser would composite them (it may do so a refresh apart).
 */
export function checkOverlay(video, overlay, md, meta) {
  const cw = video.clientWidth;
  const ch = video.clientHeight;
  if (!md.width || !md.height || !cw || !ch) return;
  const scale = Math.min(overlay.width / md.width, overlay.height / md.height);
  const w = Math.round(md.width * scale);
  const h = Math.round(md.height * scale);
  const x = Math.round((overlay.width - w) / 2);
  const y = Math.round((overlay.height - h) / 2);
  if (!scratch || scratch.canvas.width !== w || scratch.canvas.height !== h) {
    const canvas = document.createElement('canvas');
    canvas.width = w;
    canvas.height = h;
    scratch = canvas.getContext('2d', { willReadFrequently: true });
  }
  scratch.drawImage(video, 0, 0, w, h);
  scratch.drawImage(overlay, x, y, w, h, 0, 0, w, h);
  tally(judgePicture(scratch.getImageData(0, 0, w, h).data, w, h, md.width), meta, md.width, 'video+overlay');
}
