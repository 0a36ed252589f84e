// The motion OBU in the browser decoder, against the `motion` part of
// docs/metadata-vectors.json (written by the Rust tests), and the proof that
// the detections reader (findInTemporalUnit, the version 1 reader) reads
// units that carry a motion OBU exactly as before.
// Run from the repository root: node --test appliance/web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import {
  findInTemporalUnit,
  findMotionInTemporalUnit,
  inspectEncodedFrame,
  parseMetadataObu,
  parseMotionObu,
  MOTION_ID,
  MetaError,
} from '../meta.js';

const vectors = JSON.parse(readFileSync(new URL('../../../docs/metadata-vectors.json', import.meta.url), 'utf8'));
const motion = vectors.motion;
const fromHex = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));

test('motion vectors have the expected shape', () => {
  assert.deepEqual(Uint8Array.from(MOTION_ID), fromHex(motion.identifier_hex));
  assert.equal(motion.version, 1);
  assert.ok(motion.valid.length >= 3 && motion.invalid.length >= 5);
});

for (const v of motion.valid) {
  test(`motion vector ${v.name} decodes`, () => {
    assert.deepStrictEqual(parseMotionObu(fromHex(v.hex)), v.motion);
    assert.deepStrictEqual(findMotionInTemporalUnit(fromHex(v.hex)), v.motion);
    // A motion OBU alone is not a detections OBU: the v1 reader skips it.
    assert.equal(findInTemporalUnit(fromHex(v.hex)), null);
    assert.throws(() => parseMetadataObu(fromHex(v.hex)), (e) => e instanceof MetaError && e.code === 'not-mado');
  });
}

for (const v of motion.invalid) {
  test(`motion vector ${v.name} is rejected with ${v.error}`, () => {
    assert.throws(() => parseMotionObu(fromHex(v.hex)), (e) => e instanceof MetaError && e.code === v.error);
  });
}

test('a unit with both OBUs: the v1 reader gets the detections, the motion reader the motion', () => {
  const tu = fromHex(motion.temporal_unit.hex);
  assert.deepStrictEqual(findInTemporalUnit(tu), motion.temporal_unit.meta);
  assert.deepStrictEqual(findMotionInTemporalUnit(tu), motion.temporal_unit.motion);
  // What the dashboard gets per frame: the meta with its motion beside it.
  const counts = { frames: 0, withMeta: 0, errors: 0 };
  const seen = inspectEncodedFrame({ data: tu.buffer, timestamp: 7 }, counts);
  assert.deepStrictEqual(seen.meta, { ...motion.temporal_unit.meta, motion: motion.temporal_unit.motion });
  assert.deepEqual(counts, { frames: 1, withMeta: 1, errors: 0 });
  // A unit from an appliance without a gate: motion is null.
  const old = fromHex(vectors.valid[1].hex);
  assert.equal(inspectEncodedFrame({ data: old.buffer, timestamp: 7 }, counts).meta.motion, null);
});

test('every truncation of a motion OBU fails only with a coded error', () => {
  const bytes = fromHex(motion.valid[1].hex);
  for (let cut = 0; cut < bytes.length; cut++) {
    assert.throws(() => parseMotionObu(bytes.subarray(0, cut)), (e) => e instanceof MetaError);
  }
});
