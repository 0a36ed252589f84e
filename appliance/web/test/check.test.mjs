// Unit tests of check mode's pixel logic (check.js) on synthetic pictures
// drawn the way the test pattern draws them. Run from the repository root:
// node --test appliance/web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { findRed, readSeqStrip, boxOnRed } from '../check.js';

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

test('the box of the shown frame hits; the box of the next frame misses', () => {
  // At 320x240 the square moves 18 px across and 5 px down per frame.
  const square = { x: 118, y: 166, w: 30, h: 30 };
  const red = findRed(picture(320, 240, { reds: [square] }), 320, 240);
  const own = boxOnRed(square, red);
  assert.deepEqual(own, { hit: true, cover: 1, inside: 1 });
  for (const [dx, dy] of [[18, 5], [-18, -5], [18, 0], [0, 16]]) {
    const off = boxOnRed({ ...square, x: square.x + dx, y: square.y + dy }, red);
    assert.equal(off.hit, false, `box off by (${dx}, ${dy}): ${JSON.stringify(off)}`);
  }
});

test('a sliver left where the square was does not turn a hit into a miss', () => {
  // Seen in real decoded frames: a 4 px red column some 40 px behind.
  const square = { x: 118, y: 166, w: 30, h: 30 };
  const sliver = { x: 78, y: 166, w: 4, h: 30 };
  const red = findRed(picture(320, 240, { reds: [square, sliver] }), 320, 240);
  assert.equal(red.bounds.w, 70, 'the red region now spans both');
  assert.equal(boxOnRed(square, red).hit, true);
  assert.equal(boxOnRed({ ...square, x: 136, y: 171 }, red).hit, false, 'the next frame\'s box still misses');
});

test('a box much larger or smaller than the square misses', () => {
  const square = { x: 100, y: 100, w: 30, h: 30 };
  const red = findRed(picture(320, 240, { reds: [square] }), 320, 240);
  assert.equal(boxOnRed({ x: 70, y: 70, w: 90, h: 90 }, red).hit, false, 'mostly not red');
  assert.equal(boxOnRed({ x: 110, y: 110, w: 10, h: 10 }, red).hit, false, 'most red outside');
});
