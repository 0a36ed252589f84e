// Decoder of Mado's detection metadata OBU, version 1 (docs/metadata.md).
//
// Used by the dashboard (in the Encoded Transform worker and on the page) and
// by the node unit tests, so it depends on nothing but the web platform
// (Uint8Array, TextDecoder, BigInt). It never throws anything but MetaError,
// whose `.code` is one of the spec's error codes:
//   malformed-obu, not-metadata-obu, extra-bytes, other-metadata-type,
//   not-mado, unsupported-version, malformed-body, missing-trailing-bits.
//
// The checks and their order follow the Rust decoder (appliance/src/meta/).

export const OBU_METADATA = 5;
export const METADATA_TYPE = 25;
/** ASCII "mado-detections" and a NUL. */
export const MADO_ID = Uint8Array.of(
  0x6d, 0x61, 0x64, 0x6f, 0x2d, 0x64, 0x65, 0x74, 0x65, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x73, 0x00,
);
export const VERSION = 1;
/** ASCII "mado-motion" and five NULs: the motion OBU (docs/metadata.md, "Motion"). */
export const MOTION_ID = Uint8Array.of(
  0x6d, 0x61, 0x64, 0x6f, 0x2d, 0x6d, 0x6f, 0x74, 0x69, 0x6f, 0x6e, 0x00, 0x00, 0x00, 0x00, 0x00,
);
export const MOTION_VERSION = 1;
export const MAX_REGIONS = 8;
export const GATE_MODES = ['still', 'motion', 'tracking'];
export const MAX_DETECTIONS = 16;
export const MAX_LABEL = 20;
export const MAX_MODEL = 24;
export const NORM16_MAX = 65535;

export class MetaError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = 'MetaError';
    this.code = code;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function asBytes(input) {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new MetaError('malformed-obu', 'input is not a byte array');
}

/**
 * AV1 leb128() (spec 4.10.5): at most 8 bytes, value below 2^32.
 * Returns [value, length] or null.
 */
function readLeb128(bytes, pos, end) {
  let value = 0;
  for (let i = 0; i < 8 && pos + i < end; i++) {
    const byte = bytes[pos + i];
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return value <= 0xffffffff ? [value, i + 1] : null;
  }
  return null;
}

/**
 * One OBU at `start` in the low-overhead format (a size field is required).
 * Returns {type, start, payload, end}; throws malformed-obu.
 */
function obuAt(bytes, start) {
  if (start >= bytes.length) throw new MetaError('malformed-obu', `OBU header truncated at byte ${start}`);
  const header = bytes[start];
  if (header & 0x80) throw new MetaError('malformed-obu', `OBU forbidden bit set at byte ${start}`);
  if ((header & 0x02) === 0) throw new MetaError('malformed-obu', `OBU at byte ${start} has no size field`);
  const type = (header >> 3) & 0x0f;
  const sizeAt = start + 1 + ((header & 0x04) ? 1 : 0);
  if (sizeAt > bytes.length) throw new MetaError('malformed-obu', `OBU header truncated at byte ${start}`);
  const size = readLeb128(bytes, sizeAt, bytes.length);
  if (!size) throw new MetaError('malformed-obu', `OBU size field at byte ${sizeAt} is not a valid leb128 value`);
  const payload = sizeAt + size[1];
  const left = bytes.length - payload;
  if (size[0] > left) {
    throw new MetaError('malformed-obu', `OBU at byte ${start} claims ${size[0]} payload bytes but only ${left} remain`);
  }
  return { type, start, payload, end: payload + size[0] };
}

function startsWithId(bytes, pos, end, id = MADO_ID) {
  if (end - pos < id.length) return false;
  for (let i = 0; i < id.length; i++) if (bytes[pos + i] !== id[i]) return false;
  return true;
}

/** postcard reader over bytes[pos, end); every failure is malformed-body. */
class Body {
  constructor(bytes, pos, end) {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
  }

  fail(what) {
    return new MetaError('malformed-body', `${what} at byte ${this.pos}`);
  }

  byte(what) {
    if (this.pos >= this.end) throw this.fail(`body ends early reading ${what}`);
    return this.bytes[this.pos++];
  }

  // postcard varint: at most `maxBytes` bytes; the last one may only carry
  // the bits the type has left (`lastMax`). Returns a Number (exact below 2^53).
  varint(maxBytes, lastMax, what) {
    let value = 0;
    for (let i = 0; i < maxBytes; i++) {
      const byte = this.byte(what);
      value += (byte & 0x7f) * 2 ** (7 * i);
      if ((byte & 0x80) === 0) {
        if (i === maxBytes - 1 && byte > lastMax) throw this.fail(`${what} varint overflows`);
        return value;
      }
    }
    throw this.fail(`${what} varint too long`);
  }

  u16(what) {
    return this.varint(3, 0x03, what);
  }

  u32(what) {
    return this.varint(5, 0x0f, what);
  }

  // u64 as Number when it is a safe integer, else BigInt.
  u64(what) {
    const start = this.pos;
    let value = 0n;
    for (let i = 0; i < 10; i++) {
      const byte = this.byte(what);
      if ((byte & 0x80) === 0) {
        if (i === 9 && byte > 0x01) throw this.fail(`${what} varint overflows`);
        if (i < 7) {
          // At most 49 bits: exact as a Number.
          let n = 0;
          for (let j = 0; j <= i; j++) n += (this.bytes[start + j] & 0x7f) * 2 ** (7 * j);
          return n;
        }
        for (let j = i; j >= 0; j--) value = (value << 7n) | BigInt(this.bytes[start + j] & 0x7f);
        return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
      }
    }
    throw this.fail(`${what} varint too long`);
  }

  str(max, what) {
    const len = this.u64(`${what} length`);
    if (typeof len !== 'number' || len > max) throw this.fail(`${what} is longer than ${max} bytes`);
    if (len > this.end - this.pos) throw this.fail(`body ends early in ${what}`);
    const view = this.bytes.subarray(this.pos, this.pos + len);
    let text;
    try {
      text = utf8.decode(view);
    } catch {
      throw this.fail(`${what} is not UTF-8`);
    }
    this.pos += len;
    return text;
  }

  option(what) {
    const tag = this.byte(`${what} option tag`);
    if (tag > 1) throw this.fail(`${what} option tag ${tag} is invalid`);
    return tag === 1;
  }
}

function readDetection(body) {
  const class_id = body.u16('class_id');
  const label = body.str(MAX_LABEL, 'label');
  const score = body.u16('score');
  const x = body.u16('box x');
  const y = body.u16('box y');
  const w = body.u16('box w');
  const h = body.u16('box h');
  if (x + w > NORM16_MAX || y + h > NORM16_MAX) throw body.fail('detection box leaves the frame');
  return { class_id, label, score, box: [x, y, w, h] };
}

function readFrameMeta(body) {
  const seq = body.u64('seq');
  const capture_us = body.u64('capture_us');
  const width = body.u16('width');
  const height = body.u16('height');
  let detections = null;
  if (body.option('detections')) {
    const frame_seq = body.u64('frame_seq');
    const inference_us = body.u32('inference_us');
    const model = body.str(MAX_MODEL, 'model');
    const count = body.u64('items length');
    if (typeof count !== 'number' || count > MAX_DETECTIONS) {
      throw body.fail(`more than ${MAX_DETECTIONS} detections`);
    }
    const items = [];
    for (let i = 0; i < count; i++) items.push(readDetection(body));
    detections = { frame_seq, inference_us, model, items };
  }
  return { seq, capture_us, width, height, detections };
}

function readBox(body, what) {
  const x = body.u16(`${what} x`);
  const y = body.u16(`${what} y`);
  const w = body.u16(`${what} w`);
  const h = body.u16(`${what} h`);
  if (x + w > NORM16_MAX || y + h > NORM16_MAX) throw body.fail(`${what} leaves the frame`);
  return [x, y, w, h];
}

function readMotionMeta(body) {
  const modeIndex = body.u32('mode');
  if (modeIndex >= GATE_MODES.length) throw body.fail(`gate mode ${modeIndex} is unknown`);
  const movingByte = body.byte('moving');
  if (movingByte > 1) throw body.fail(`moving ${movingByte} is not a bool`);
  const interval_ms = body.u32('interval_ms');
  const count = body.u64('regions length');
  if (typeof count !== 'number' || count > MAX_REGIONS) throw body.fail(`more than ${MAX_REGIONS} regions`);
  const regions = [];
  for (let i = 0; i < count; i++) regions.push(readBox(body, 'region'));
  return { mode: GATE_MODES[modeIndex], moving: movingByte === 1, interval_ms, regions };
}

function checkTrailingBits(bytes, pos, end) {
  if (pos >= end || bytes[pos] !== 0x80) {
    throw new MetaError('missing-trailing-bits', 'payload does not end in AV1 trailing bits');
  }
  for (pos += 1; pos < end; pos++) {
    if (bytes[pos] !== 0) throw new MetaError('missing-trailing-bits', `non-zero byte after the trailing bits at byte ${pos}`);
  }
}

// The two Mado records, each in a metadata OBU of its own: what identifies
// it, its version, how its errors name it, and how its body is read.
const DETECTIONS = {
  id: MADO_ID,
  version: VERSION,
  idName: 'the Mado identifier',
  versionName: 'metadata schema version',
  read: readFrameMeta,
};
const MOTION = {
  id: MOTION_ID,
  version: MOTION_VERSION,
  idName: 'the Mado motion identifier',
  versionName: 'motion version',
  read: readMotionMeta,
};

/**
 * Decodes the `record` payload of the metadata OBU `obu` (from obuAt), whose
 * metadata_type `mdType` was read at `dataAt`.
 */
function decodeRecord(record, bytes, obu, mdType, dataAt) {
  if (mdType !== METADATA_TYPE) {
    throw new MetaError('other-metadata-type', `metadata_type ${mdType} is not Mado's (${METADATA_TYPE})`);
  }
  if (!startsWithId(bytes, dataAt, obu.end, record.id)) {
    throw new MetaError('not-mado', `payload does not start with ${record.idName}`);
  }
  const versionAt = dataAt + record.id.length;
  if (versionAt >= obu.end) throw new MetaError('malformed-body', 'payload ends before the version byte');
  const version = bytes[versionAt];
  if (version !== record.version) {
    throw new MetaError('unsupported-version', `${record.versionName} ${version} is not supported (this reads ${record.version})`);
  }
  const body = new Body(bytes, versionAt + 1, obu.end);
  const value = record.read(body);
  checkTrailingBits(bytes, body.pos, obu.end);
  return value;
}

function metadataType(bytes, obu) {
  const mt = readLeb128(bytes, obu.payload, obu.end);
  if (!mt) throw new MetaError('malformed-obu', `metadata_type at byte ${obu.payload} is not a valid leb128 value`);
  return mt;
}

/** Decodes a buffer holding exactly one metadata OBU carrying `record`. */
function parseRecordObu(record, input) {
  const bytes = asBytes(input);
  const obu = obuAt(bytes, 0);
  if (obu.type !== OBU_METADATA) throw new MetaError('not-metadata-obu', `obu_type ${obu.type} is not 5 (metadata)`);
  if (obu.end !== bytes.length) {
    throw new MetaError('extra-bytes', `metadata OBU has ${bytes.length - obu.end} bytes after it`);
  }
  const [mdType, len] = metadataType(bytes, obu);
  return decodeRecord(record, bytes, obu, mdType, obu.payload + len);
}

/**
 * Walks the OBUs of one temporal unit (every OBU with a size field; the RTP
 * depacketizer has removed the temporal delimiter) and decodes the first
 * metadata OBU carrying `record`; others are skipped. Null when there is none.
 */
function findRecordInTemporalUnit(record, input) {
  const bytes = asBytes(input);
  let pos = 0;
  while (pos < bytes.length) {
    const obu = obuAt(bytes, pos);
    if (obu.type === OBU_METADATA) {
      const [mdType, len] = metadataType(bytes, obu);
      const dataAt = obu.payload + len;
      if (mdType === METADATA_TYPE && startsWithId(bytes, dataAt, obu.end, record.id)) {
        return decodeRecord(record, bytes, obu, mdType, dataAt);
      }
    }
    pos = obu.end;
  }
  return null;
}

/**
 * Decodes a buffer holding exactly one Mado motion OBU.
 * @param {Uint8Array} input
 * @returns {{mode, moving, interval_ms, regions}}
 * @throws {MetaError}
 */
export function parseMotionObu(input) {
  return parseRecordObu(MOTION, input);
}

/**
 * The motion metadata of one temporal unit, or null when it carries none
 * (a stream without a motion gate, or from an older appliance).
 * @throws {MetaError} when the unit or its motion OBU is malformed
 */
export function findMotionInTemporalUnit(input) {
  return findRecordInTemporalUnit(MOTION, input);
}

/**
 * Decodes a buffer holding exactly one Mado metadata OBU.
 * @param {Uint8Array} input
 * @returns {{seq, capture_us, width, height, detections}}
 * @throws {MetaError}
 */
export function parseMetadataObu(input) {
  return parseRecordObu(DETECTIONS, input);
}

/**
 * The first Mado metadata OBU of one temporal unit, decoded; metadata OBUs
 * of another type or identifier are skipped.
 * @param {Uint8Array} input
 * @returns {object|null} the meta, or null when the unit carries none
 * @throws {MetaError} when the unit or its Mado OBU is malformed
 */
export function findInTemporalUnit(input) {
  return findRecordInTemporalUnit(DETECTIONS, input);
}

/**
 * Pixel rectangle of a Norm16 box in a width x height picture: each edge is
 * round(n * size / 65535).
 */
export function boxToPixels(box, width, height) {
  const edge = (n, size) => Math.round((n * size) / NORM16_MAX);
  const x0 = edge(box[0], width);
  const y0 = edge(box[1], height);
  const x1 = edge(box[0] + box[2], width);
  const y1 = edge(box[1] + box[3], height);
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

/**
 * Reads the Mado metadata of one encoded video frame from an Encoded
 * Transform, keyed by its RTP timestamp, and tallies the outcome in `counts`
 * ({frames, withMeta, errors}). Used by the transform worker and by the
 * page's main-thread fallback alike.
 */
export function inspectEncodedFrame(frame, counts) {
  counts.frames++;
  let meta = null;
  let error = null;
  try {
    const bytes = new Uint8Array(frame.data);
    meta = findInTemporalUnit(bytes);
    if (meta) {
      counts.withMeta++;
      // The motion OBU rides beside it (null from an appliance without a gate).
      meta.motion = findMotionInTemporalUnit(bytes);
    }
  } catch (e) {
    counts.errors++;
    error = { code: e && e.code ? e.code : 'exception', message: String(e && e.message ? e.message : e) };
  }
  return { rtpTimestamp: rtpTimestampOf(frame), meta, error };
}

function rtpTimestampOf(frame) {
  try {
    const md = frame.getMetadata ? frame.getMetadata() : null;
    if (md && typeof md.rtpTimestamp === 'number') return md.rtpTimestamp;
  } catch {
    // fall through
  }
  return typeof frame.timestamp === 'number' ? frame.timestamp : null;
}
