// Unit tests of check mode's pixel logic (check.js) on synthetic pictures
// drawn the way the test pattern draws them. Run from the repository root:
// node --test appliance/web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { findRed, readSeqStrip, findOutline, iou, judgePicture, boxOnRed, TARGET_RGB } from '../check.js';

// An RGBA picture: grey background, the frame-number strip for `seq` along
// the top edge, and red rectangles.
function picture(w, h, { seq = 0, reds = [] } = {}) {
  const data = new Uint8ClampedArray(w * h * 4);
  const paint = (x0, y0, rw, rh, [r, g, b]) => {
    for (let y = y0; y < y0 + rh; y++) {
      for (let x = x0; x < x0 + rw; x++) data.set([r, g, b, 255], (y * w + x) * 4);
    }
  };
  paint(0, 0, w, h, [120, 125, 118]);
  const block = Math.floor(w / 32);
  for (let bit = 0; bit < 16; bit++) {
    const level = Math.floor(seq / 2 ** bit) % 2 ? 235 : 16;
    paint(bit * block, 0, block, block, [level, level, level]);
  }
  for (const r of reds) paint(r.x, r.y, r.w, r.h, [240, 20, 25]);
  return data;
}

test('the frame-number strip reads back at several widths', () => {
  for (const [w, h] of [[320, 240], [640, 480], [1280, 720], [160, 120]]) {
    for (const seq of [0, 1, 361, 0xa5c3, 0xffff]) {
      assert.equal(readSeqStrip(picture(w, h, { seq }), w), seq, `${w}x${h} frame ${seq}`);
    }
  }
});

test('a strip that is neither black nor white is unreadable', () => {
  const w = 320;
  const data = picture(w, 240, { seq: 5 });
  const i = (5 * w + 1 * 10 + 5) * 4; // centre of bit 1's block
  data.set([128, 128, 128], i);
  assert.equal(readSeqStrip(data, w), null);
  assert.equal(readSeqStrip(picture(40, 30), 40), null, 'too narrow for a strip');
});

test('findRed finds the square and nothing in a picture without one', () => {
  const square = { x: 118, y: 166, w: 30, h: 30 };
  const red = findRed(picture(320, 240, { reds: [square] }), 320, 240);
  assert.deepEqual(red.bounds, square);
  assert.equal(red.xs.length, 15 * 15);
  assert.equal(findRed(picture(320, 240), 320, 240), null);
});

// The target's box as the dashboard draws it: a 2-pixel outline in the
// target colour, and a label chip below it with short strokes of that colour.
function outline(data, w, r, { label = true } = {}) {
  const px = (x, y) => x >= 0 && y >= 0 && x < w && data.set([...TARGET_RGB, 255], (y * w + x) * 4);
  for (let t = -1; t < 1; t++) {
    for (let x = r.x - 1; x <= r.x + r.w; x++) [px(x, r.y + t), px(x, r.y + r.h + t)];
    for (let y = r.y - 1; y <= r.y + r.h; y++) [px(r.x + t, y), px(r.x + r.w + t, y)];
  }
  if (!label) return;
  for (let k = 0; k < 8; k++) for (let y = 0; y < 9; y++) px(r.x + 3 + k * 6, r.y + r.h + 4 + y); // glyph stems
}

test('a box drawn on the shown frame\'s square is found and matches; the next frame\'s does not', () => {
  const [w, h] = [640, 480];
  const square = { x: 200, y: 150, w: 60, h: 60 };
  const data = picture(w, h, { seq: 77, reds: [square] });
  outline(data, w, square);
  const own = judgePicture(data, w, h, w);
  assert.equal(own.seq, 77);
  assert.ok(own.iou >= 0.8, `own box: ${JSON.stringify(own)}`);
  const next = picture(w, h, { seq: 77, reds: [square] });
  outline(next, w, { ...square, x: square.x + 36, y: square.y + 10 });
  assert.ok(judgePicture(next, w, h, w).iou < 0.5, 'a box one frame ahead misses');
});

test('a scaled picture reads its strip and still matches', () => {
  // 640x480 shown at 700x524, as on the recorded screen.
  const [w, h] = [700, 524];
  const scale = w / 640;
  const data = new Uint8ClampedArray(w * h * 4);
  const fill = (x0, y0, rw, rh, rgb) => {
    for (let y = Math.round(y0); y < Math.round(y0 + rh); y++) for (let x = Math.round(x0); x < Math.round(x0 + rw); x++) data.set([...rgb, 255], (y * w + x) * 4);
  };
  fill(0, 0, w, h, [110, 120, 115]);
  const seq = 0xbeef;
  for (let bit = 0; bit < 16; bit++) fill(bit * 20 * scale, 0, 20 * scale, 20 * scale, Math.floor(seq / 2 ** bit) % 2 ? [235, 235, 235] : [16, 16, 16]);
  const square = { x: Math.round(300 * scale), y: Math.round(200 * scale), w: Math.round(60 * scale), h: Math.round(60 * scale) };
  fill(square.x, square.y, square.w, square.h, [240, 20, 25]);
  outline(data, w, square);
  const v = judgePicture(data, w, h, 640);
  assert.equal(v.seq, seq);
  assert.ok(v.iou >= 0.8, JSON.stringify(v));
});

test('a sliver left where the square was, or an edge cut off by the border, does not spoil a match', () => {
  const [w, h] = [640, 480];
  const square = { x: 0, y: 300, w: 60, h: 60 }; // left edge at the border
  const data = picture(w, h, { reds: [square, { x: 100, y: 320, w: 2, h: 16 }] });
  outline(data, w, square);
  const v = judgePicture(data, w, h, w);
  assert.ok(v.iou >= 0.8, JSON.stringify(v));
  assert.equal(iou({ x: 0, y: 0, w: 10, h: 10 }, { x: 5, y: 0, w: 10, h: 10 }), 50 / 150);
});

test('labels alone are no box, and a picture without the target has no red', () => {
  const [w, h] = [640, 480];
  const data = picture(w, h);
  assert.equal(findOutline(data, w, h, TARGET_RGB), null);
  const r = { x: 100, y: 100, w: 60, h: 60 };
  outline(data, w, r);
  // Only the chip's strokes: wipe the outline, keep the label.
  const bare = picture(w, h);
  const px = (x, y) => bare.set([...TARGET_RGB, 255], (y * w + x) * 4);
  for (let k = 0; k < 8; k++) for (let y = 0; y < 9; y++) px(r.x + 3 + k * 6, r.y + r.h + 4 + y);
  assert.equal(findOutline(bare, w, h, TARGET_RGB), null);
  const v = judgePicture(data, w, h, w);
  assert.equal(v.red, null);
  assert.ok(v.box);
});

test('a metadata box on the square matches; one a frame off, mostly grey or too small does not', () => {
  const square = { x: 118, y: 166, w: 30, h: 30 };
  const red = findRed(picture(320, 240, { reds: [square] }), 320, 240);
  assert.equal(boxOnRed(square, red).hit, true);
  assert.equal(boxOnRed({ ...square, x: square.x + 18, y: square.y + 5 }, red).hit, false, 'the next frame\'s box misses');
  assert.equal(boxOnRed({ x: 70, y: 120, w: 120, h: 120 }, red).hit, false, 'mostly not red');
  assert.equal(boxOnRed({ x: 128, y: 176, w: 10, h: 10 }, red).hit, false, 'most red outside');
});
