// The dashboard's check mode (/?check=overlay), on pixels alone: where the
// test pattern's red calibration square is, which frame number the pattern
// spells along its top edge, and whether a box sits on the square. No DOM
// here, so node tests it (web/test/check.test.mjs) on synthetic pictures.
// `data` is RGBA, row by row, `w` pixels wide (ImageData.data).

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

// The test pattern spells the low 16 bits of its frame number in a row of
// white (1) and black (0) blocks along the top edge, least significant bit
// first, each block floor(width / 32) pixels square (SeqStrip in
// appliance/src/source/testpattern.rs). Null when the strip cannot be read.
export function readSeqStrip(data, w) {
  const BITS = 16;
  const block = Math.floor(w / (2 * BITS));
  if (block < 2) return null;
  const half = Math.floor(block / 2);
  let seq = 0;
  for (let bit = 0; bit < BITS; bit++) {
    const i = (half * w + bit * block + half) * 4;
    const level = (data[i] + data[i + 1] + data[i + 2]) / 3;
    if (level > 180) seq += 2 ** bit;
    else if (level >= 70) return null;
  }
  return seq;
}

// Does `box` ({x, y, w, h} in pixels) sit on the red square? The centroid of
// the red samples must be inside it, at least 80% of its samples red
// (`cover`) and at least 70% of the red samples in it (`inside`). The square
// moves about its own width per frame, so a box one frame off fails, while
// a thin red sliver the encoder now and then leaves where the square was
// does not.
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
