// Judging a shown picture of the test pattern on its pixels alone: where the
// red calibration square is, which frame number the pattern spells along
// its top edge, and where the box drawn for the square is. Used by the
// dashboard's check mode (/?check=overlay) on what it composites and by the
// screen-recorded test on every recorded screen frame. No DOM here, so node
// tests it (web/test/check.test.mjs) on synthetic pictures. `data` is RGBA,
// row by row, `w` pixels wide (ImageData.data).

const STRIDE = 2;

// The red square's samples (every STRIDE-th pixel of every STRIDE-th row
// with r > 150, g < 90, b < 90): {xs, ys, bounds}, or null when fewer than 4.
export function findRed(data, w, h) {
  const xs = [];
  const ys = [];
  let [x0, x1, y0, y1] = [Infinity, -1, Infinity, -1];
  for (let y = 0; y < h; y += STRIDE) {
    let i = y * w * 4;
    for (let x = 0; x < w; x += STRIDE, i += 4 * STRIDE) {
      if (data[i] > 150 && data[i + 1] < 90 && data[i + 2] < 90) {
        xs.push(x);
        ys.push(y);
        [x0, x1, y0, y1] = [Math.min(x0, x), Math.max(x1, x), Math.min(y0, y), Math.max(y1, y)];
      }
    }
  }
  if (xs.length < 4) return null;
  return { xs, ys, bounds: { x: x0, y: y0, w: x1 - x0 + STRIDE, h: y1 - y0 + STRIDE } };
}

// Whether a box in picture pixels ({x, y, w, h}, e.g. a metadata box) lies
// on the red square `red` (from findRed): the square's centroid inside the
// box, at least 80% of the box's samples red and at least 70% of the red
// inside the box. Used where a decoded picture is matched with its own
// metadata rather than with a drawn outline (the WHIP test through Janus).
export function boxOnRed(box, red) {
  const inBox = (x, y) => x >= box.x && x < box.x + box.w && y >= box.y && y < box.y + box.h;
  const n = red.xs.length;
  let sx = 0;
  let sy = 0;
  let inside = 0;
  for (let k = 0; k < n; k++) {
    sx += red.xs[k];
    sy += red.ys[k];
    if (inBox(red.xs[k], red.ys[k])) inside++;
  }
  const boxSamples = Math.max(1, Math.ceil(box.w / STRIDE) * Math.ceil(box.h / STRIDE));
  const cover = inside / boxSamples;
  const share = inside / n;
  const round = (v) => Math.round(v * 1000) / 1000; // for the report only
  return { hit: inBox(sx / n, sy / n) && cover >= 0.8 && share >= 0.7, cover: round(cover), inside: round(share) };
}

// The test pattern spells the low 16 bits of its frame number in a row of
// white (1) and black (0) blocks along the top edge, least significant bit
// first, each block floor(width / 32) pixels square (SeqStrip in
// appliance/src/source/testpattern.rs). Null when the strip cannot be read.
// `block` is the block's size in these pixels when the picture is scaled
// (floor(source width / 32) times the scale).
export function readSeqStrip(data, w, block = Math.floor(w / 32)) {
  const BITS = 16;
  if (block < 2) return null;
  const half = block / 2;
  let seq = 0;
  for (let bit = 0; bit < BITS; bit++) {
    const i = (Math.floor(half) * w + Math.floor(bit * block + half)) * 4;
    const level = (data[i] + data[i + 1] + data[i + 2]) / 3;
    if (level > 180) seq += 2 ** bit;
    else if (level >= 70) return null;
  }
  return seq;
}

/** The box drawn for the test pattern's target: the class colour of "target". */
export const TARGET_RGB = [37, 209, 244];

// The bounds of the red samples without their outer 2% on each side, so a
// thin sliver the encoder leaves beside the square does not stretch them.
export function redBounds(red) {
  const q = (values, p) => {
    const s = [...values].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))];
  };
  const x0 = q(red.xs, 0.02);
  const y0 = q(red.ys, 0.02);
  return { x: x0, y: y0, w: q(red.xs, 0.98) - x0 + STRIDE, h: q(red.ys, 0.98) - y0 + STRIDE };
}

// The rectangle outlined in `rgb` (each channel within `tol`): the bounds of
// every run of that colour at least `minRun` pixels long, across or down.
// Text in the same colour (labels) makes only short runs, and an edge cut
// off by the picture's border still leaves the other three. Null when there
// is no such run.
export function findOutline(data, w, h, rgb, { tol = 60, minRun = 24 } = {}) {
  const [r, g, b] = rgb;
  const on = new Uint8Array(w * h);
  for (let k = 0, i = 0; k < w * h; k++, i += 4) {
    on[k] = Math.abs(data[i] - r) <= tol && Math.abs(data[i + 1] - g) <= tol && Math.abs(data[i + 2] - b) <= tol ? 1 : 0;
  }
  let [x0, x1, y0, y1] = [Infinity, -1, Infinity, -1];
  const take = (xa, xb, ya, yb) => {
    [x0, x1, y0, y1] = [Math.min(x0, xa), Math.max(x1, xb), Math.min(y0, ya), Math.max(y1, yb)];
  };
  for (let y = 0; y < h; y++) {
    let run = 0;
    for (let x = 0, k = y * w; x <= w; x++, k++) {
      if (x < w && on[k]) run++;
      else {
        if (run >= minRun) take(x - run, x - 1, y, y);
        run = 0;
      }
    }
  }
  for (let x = 0; x < w; x++) {
    let run = 0;
    for (let y = 0, k = x; y <= h; y++, k += w) {
      if (y < h && on[k]) run++;
      else {
        if (run >= minRun) take(x, x, y - run, y - 1);
        run = 0;
      }
    }
  }
  if (x1 < 0) return null;
  return { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

/** Intersection over union of two {x, y, w, h} rectangles. */
export function iou(a, b) {
  const ix = Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x));
  const iy = Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));
  const inter = ix * iy;
  const union = a.w * a.h + b.w * b.h - inter;
  return union > 0 ? inter / union : 0;
}

// One picture as shown (`data`: RGBA of the picture's rectangle only, `w` x
// `h` pixels, showing a test pattern `sourceWidth` pixels wide): the frame
// number its strip spells, the red target's bounds, the target's drawn box
// and their IoU. `seq` is null when the strip cannot be read, `red` when no
// target is visible, `box` when no box is drawn.
export function judgePicture(data, w, h, sourceWidth) {
  const scale = w / sourceWidth;
  const seq = readSeqStrip(data, w, Math.floor(sourceWidth / 32) * scale);
  const found = findRed(data, w, h);
  const red = found ? redBounds(found) : null;
  const box = findOutline(data, w, h, TARGET_RGB, { minRun: Math.max(12, Math.round(0.4 * (sourceWidth / 8) * scale)) });
  return { seq, red, box, iou: red && box ? iou(red, box) : 0 };
}
