// Unit tests of the browser metadata decoder against docs/metadata-vectors.json.
// Run from the repository root: node --test appliance/web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import {
  parseMetadataObu,
  findInTemporalUnit,
  boxToPixels,
  MetaError,
  MADO_ID,
} from '../meta.js';

const vectorsUrl = new URL('../../../docs/metadata-vectors.json', import.meta.url);
const vectors = JSON.parse(readFileSync(vectorsUrl, 'utf8'));

const CODES = new Set([
  'malformed-obu',
  'not-metadata-obu',
  'extra-bytes',
  'other-metadata-type',
  'not-mado',
  'unsupported-version',
  'malformed-body',
  'missing-trailing-bits',
]);

const fromHex = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));

function leb128(value) {
  const out = [];
  let v = BigInt(value);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return out;
}

function obu(type, payload) {
  return [(type << 3) | 0x02, ...leb128(payload.length), ...payload];
}

// A postcard encoder of FrameMeta, to build inputs the vectors do not cover.
function encodeBody(meta) {
  const out = [...leb128(meta.seq), ...leb128(meta.capture_us), ...leb128(meta.width), ...leb128(meta.height)];
  const str = (s) => {
    const b = typeof s === 'string' ? [...new TextEncoder().encode(s)] : s;
    return [...leb128(b.length), ...b];
  };
  if (meta.detections === null) {
    out.push(0);
  } else {
    const d = meta.detections;
    out.push(1, ...leb128(d.frame_seq), ...leb128(d.inference_us), ...str(d.model), ...leb128(d.items.length));
    for (const it of d.items) {
      out.push(...leb128(it.class_id), ...str(it.label), ...leb128(it.score));
      for (const n of it.box) out.push(...leb128(n));
    }
  }
  return out;
}

function madoObu(meta, { trailing = [0x80], version = 1, type = 25, id = [...MADO_ID] } = {}) {
  return Uint8Array.from(obu(5, [...leb128(type), ...id, version, ...encodeBody(meta), ...trailing]));
}

function target(box = [100, 200, 300, 400], label = 'target') {
  return { class_id: 0, label, score: 65535, box };
}

function metaWith(items, extra = {}) {
  return {
    seq: 7,
    capture_us: 1_763_769_600_000_000,
    width: 640,
    height: 480,
    detections: { frame_seq: 7, inference_us: 1234, model: 'testpattern', items },
    ...extra,
  };
}

function assertCode(fn, code, message) {
  let thrown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown, `${message}: expected error ${code}, but it decoded`);
  assert.ok(thrown instanceof MetaError, `${message}: threw ${thrown} instead of a MetaError`);
  assert.equal(thrown.code, code, `${message}: wrong error code (${thrown.message})`);
}

test('vectors file has the expected shape', () => {
  assert.equal(vectors.metadata_type, 25);
  assert.deepEqual(Uint8Array.from(MADO_ID), fromHex(vectors.identifier_hex));
  assert.ok(vectors.valid.length >= 3, 'valid vectors');
  assert.ok(vectors.invalid.length >= 7, 'invalid vectors');
});

for (const v of vectors.valid) {
  test(`valid vector ${v.name} decodes to its meta`, () => {
    const bytes = fromHex(v.hex);
    assert.deepStrictEqual(parseMetadataObu(bytes), v.meta);
    // Also accepted as an ArrayBuffer and as a view into a larger buffer.
    assert.deepStrictEqual(parseMetadataObu(bytes.slice().buffer), v.meta);
    const padded = new Uint8Array(bytes.length + 8);
    padded.set(bytes, 4);
    assert.deepStrictEqual(parseMetadataObu(padded.subarray(4, 4 + bytes.length)), v.meta);
    // The same OBU is found in a one-OBU temporal unit.
    assert.deepStrictEqual(findInTemporalUnit(bytes), v.meta);
  });
}

for (const v of vectors.invalid) {
  test(`invalid vector ${v.name} is rejected with ${v.error}`, () => {
    assert.ok(CODES.has(v.error), `unknown code ${v.error} in vectors`);
    assertCode(() => parseMetadataObu(fromHex(v.hex)), v.error, v.name);
  });
}

test('findInTemporalUnit finds the Mado OBU between a sequence header and a frame', () => {
  const v = vectors.valid.find((x) => x.name === 'calibration-target') ?? vectors.valid[0];
  const seqHeader = obu(1, [0x00, 0x00, 0x00, 0x02, 0xaf, 0xff, 0x9b, 0x5f, 0x30, 0x08]);
  const frame = obu(6, Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff));
  const otherType = obu(5, [4, 1, 2, 3, 0x80]); // metadata_type 4 (ITU-T T.35)
  const otherId = obu(5, [25, ...'not-mado-at-all\0'.split('').map((c) => c.charCodeAt(0)), 1, 0x80]);
  const withExt = [(6 << 3) | 0x06, 0x00, ...leb128(3), 1, 2, 3]; // frame OBU with an extension header

  const tu = Uint8Array.from([...seqHeader, ...fromHex(v.hex), ...frame]);
  assert.deepStrictEqual(findInTemporalUnit(tu), v.meta);

  const skipping = Uint8Array.from([...seqHeader, ...otherType, ...otherId, ...fromHex(v.hex), ...frame]);
  assert.deepStrictEqual(findInTemporalUnit(skipping), v.meta, 'skips other metadata OBUs');

  const first = vectors.valid[0];
  const two = Uint8Array.from([...fromHex(v.hex), ...fromHex(first.hex), ...frame]);
  assert.deepStrictEqual(findInTemporalUnit(two), v.meta, 'uses the first Mado OBU');

  assert.equal(findInTemporalUnit(Uint8Array.from([...seqHeader, ...otherType, ...withExt, ...frame])), null);
  assert.equal(findInTemporalUnit(new Uint8Array(0)), null, 'empty unit');

  // A malformed Mado OBU inside a unit throws with its code.
  const bad = vectors.invalid.find((x) => x.error === 'missing-trailing-bits');
  assertCode(
    () => findInTemporalUnit(Uint8Array.from([...seqHeader, ...fromHex(bad.hex), ...frame])),
    'missing-trailing-bits',
    'bad Mado OBU in a unit',
  );
  const future = vectors.invalid.find((x) => x.error === 'unsupported-version');
  assertCode(
    () => findInTemporalUnit(Uint8Array.from([...fromHex(future.hex), ...frame])),
    'unsupported-version',
    'future version in a unit',
  );
  // OBUs without a size field cannot be walked.
  assertCode(() => findInTemporalUnit(Uint8Array.from([6 << 3, 1, 2, 3])), 'malformed-obu', 'no size field');
  assertCode(() => findInTemporalUnit(Uint8Array.from([0x80 | 0x32, 0])), 'malformed-obu', 'forbidden bit');
});

test('every truncation and single-byte corruption fails only with a coded error', () => {
  const v = vectors.valid.find((x) => x.name === 'street-latest-mode') ?? vectors.valid.at(-1);
  const full = Uint8Array.from([...obu(1, [1, 2, 3, 4]), ...fromHex(v.hex), ...obu(6, [9, 9, 9, 9, 9, 9])]);
  const check = (fn, what) => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof MetaError && CODES.has(e.code), `${what}: threw ${e && e.stack}`);
    }
  };
  for (let cut = 0; cut < full.length; cut++) {
    check(() => findInTemporalUnit(full.subarray(0, cut)), `unit cut at ${cut}`);
  }
  const one = fromHex(v.hex);
  for (let cut = 0; cut < one.length; cut++) {
    assert.throws(() => parseMetadataObu(one.subarray(0, cut)), (e) => e instanceof MetaError && CODES.has(e.code),
      `OBU cut at ${cut} must fail with a coded error`);
  }
  for (let at = 0; at < one.length; at++) {
    for (const value of [0x00, 0x7f, 0x80, 0xff, one[at] ^ 0x01]) {
      const bytes = one.slice();
      bytes[at] = value;
      check(() => parseMetadataObu(bytes), `byte ${at} set to ${value}`);
    }
  }
});

test('decoding checks and bounds', () => {
  const ok = metaWith([target()]);
  assert.deepStrictEqual(parseMetadataObu(madoObu(ok)), ok);

  // Extra zero bytes after 0x80 are more trailing bits; anything else is not.
  assert.deepStrictEqual(parseMetadataObu(madoObu(ok, { trailing: [0x80, 0, 0, 0] })), ok);
  assertCode(() => parseMetadataObu(madoObu(ok, { trailing: [0x80, 0, 1] })), 'missing-trailing-bits', 'junk after trailing');
  assertCode(() => parseMetadataObu(madoObu(ok, { trailing: [] })), 'missing-trailing-bits', 'no trailing');
  assertCode(() => parseMetadataObu(madoObu(ok, { trailing: [0x40] })), 'missing-trailing-bits', 'wrong trailing');

  // A buffer meant to hold one OBU must hold only that.
  assertCode(() => parseMetadataObu(Uint8Array.from([...madoObu(ok), 0])), 'extra-bytes', 'byte after OBU');
  assertCode(() => parseMetadataObu(new Uint8Array(0)), 'malformed-obu', 'empty');
  assertCode(() => parseMetadataObu(Uint8Array.from([0x2a])), 'malformed-obu', 'header only');
  assertCode(() => parseMetadataObu(Uint8Array.from([0x28, 0x01, 0x19])), 'malformed-obu', 'no size field');
  assertCode(() => parseMetadataObu(Uint8Array.from([0x2a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00])),
    'malformed-obu', 'size leb128 over 8 bytes');
  assertCode(() => parseMetadataObu(Uint8Array.from([0x2a, 0x01, 0x80])), 'malformed-obu', 'unterminated metadata_type');
  assertCode(() => parseMetadataObu(madoObu(ok, { id: [...MADO_ID].slice(0, 10) })), 'not-mado', 'short identifier');
  assertCode(() => parseMetadataObu(Uint8Array.from(obu(5, [25, ...MADO_ID]))), 'malformed-body', 'no version byte');
  assertCode(() => parseMetadataObu(madoObu(ok, { type: 25 + 128 })), 'other-metadata-type', 'type 153');

  // Bounds: items, label, model, box.
  const sixteen = metaWith(Array.from({ length: 16 }, (_, i) => target([i, i, 10, 10], `class-${i}`)));
  assert.deepStrictEqual(parseMetadataObu(madoObu(sixteen)), sixteen, '16 detections are allowed');
  assertCode(() => parseMetadataObu(madoObu(metaWith(Array.from({ length: 17 }, () => target())))),
    'malformed-body', '17 detections');
  assert.equal(parseMetadataObu(madoObu(metaWith([target(undefined, 'x'.repeat(20))]))).detections.items[0].label.length, 20);
  assertCode(() => parseMetadataObu(madoObu(metaWith([target(undefined, 'x'.repeat(21))]))), 'malformed-body', 'label 21');
  assert.equal(parseMetadataObu(madoObu(metaWith([target(undefined, 'é'.repeat(10))]))).detections.items[0].label, 'é'.repeat(10));
  assertCode(() => parseMetadataObu(madoObu(metaWith([target(undefined, 'é'.repeat(11))]))), 'malformed-body', 'label 22 bytes');
  assertCode(() => parseMetadataObu(madoObu(metaWith([target(undefined, [0x74, 0xff, 0x74])]))), 'malformed-body', 'bad UTF-8');
  assertCode(() => parseMetadataObu(madoObu(metaWith([target(undefined, [0xed, 0xa0, 0x80])]))), 'malformed-body', 'surrogate');
  const longModel = metaWith([target()]);
  longModel.detections.model = 'm'.repeat(24);
  assert.deepStrictEqual(parseMetadataObu(madoObu(longModel)), longModel);
  longModel.detections.model = 'm'.repeat(25);
  assertCode(() => parseMetadataObu(madoObu(longModel)), 'malformed-body', 'model 25');
  assert.deepStrictEqual(parseMetadataObu(madoObu(metaWith([target([65535, 0, 0, 65535])]))).detections.items[0].box, [65535, 0, 0, 65535]);
  assertCode(() => parseMetadataObu(madoObu(metaWith([target([65535, 0, 1, 10])]))), 'malformed-body', 'x+w > 65535');
  assertCode(() => parseMetadataObu(madoObu(metaWith([target([0, 40000, 10, 30000])]))), 'malformed-body', 'y+h > 65535');

  // Option tag and varint limits.
  const noDet = { seq: 1, capture_us: 2, width: 3, height: 4, detections: null };
  const raw = (body) => Uint8Array.from(obu(5, [25, ...MADO_ID, 1, ...body, 0x80]));
  assert.deepStrictEqual(parseMetadataObu(raw([1, 2, 3, 4, 0])), noDet);
  assertCode(() => parseMetadataObu(raw([1, 2, 3, 4, 2])), 'malformed-body', 'option tag 2');
  assert.equal(parseMetadataObu(raw([1, 2, 0xff, 0xff, 0x03, 4, 0])).width, 65535, 'u16 max');
  assertCode(() => parseMetadataObu(raw([1, 2, 0x80, 0x80, 0x04, 4, 0])), 'malformed-body', 'u16 overflow');
  assertCode(() => parseMetadataObu(raw([1, 2, 0x80, 0x80, 0x80, 0x00, 4, 0])), 'malformed-body', 'u16 four bytes');
  assert.equal(parseMetadataObu(raw([1, 2, 0x83, 0x00, 4, 0])).width, 3, 'non-minimal varint, as postcard accepts');
});

test('u64 beyond Number.MAX_SAFE_INTEGER decodes as BigInt', () => {
  const big = { seq: 2n ** 64n - 1n, capture_us: 2 ** 53 - 1, width: 1, height: 1, detections: null };
  const got = parseMetadataObu(madoObu(big));
  assert.equal(got.seq, 2n ** 64n - 1n);
  assert.equal(typeof got.capture_us, 'number');
  assert.equal(got.capture_us, Number.MAX_SAFE_INTEGER);
  assert.equal(parseMetadataObu(madoObu({ ...big, seq: 2n ** 53n })).seq, 2n ** 53n);
  const bytes = Uint8Array.from(obu(5, [25, ...MADO_ID, 1, ...Array(9).fill(0xff), 0x02, 0, 1, 1, 0, 0x80]));
  assertCode(() => parseMetadataObu(bytes), 'malformed-body', 'u64 overflow');
});

test('boxToPixels rounds each edge', () => {
  // calibration-target at 1280x720: 16384/65535*1280 = 320.0049 -> 320
  assert.deepEqual(boxToPixels([16384, 32768, 8192, 16384], 1280, 720), { x: 320, y: 360, w: 160, h: 180 });
  assert.deepEqual(boxToPixels([0, 0, 65535, 65535], 640, 480), { x: 0, y: 0, w: 640, h: 480 });
  // Round trip of a pixel rectangle the way the Rust side builds boxes.
  const frac = (v, t) => Math.floor((v * 65535 + Math.floor(t / 2)) / t);
  for (const [x, y, s, W, H] of [[36, 12, 60, 640, 480], [578, 418, 60, 640, 480], [290, 210, 30, 320, 240]]) {
    const b = [frac(x, W), frac(y, H), frac(x + s, W) - frac(x, W), frac(y + s, H) - frac(y, H)];
    assert.deepEqual(boxToPixels(b, W, H), { x, y, w: s, h: s });
  }
});
