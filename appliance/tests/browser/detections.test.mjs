// Real footage with the real detector: `mado run` on the street scene with
// the SSD model (exact mode), one dashboard in Chromium. For each frame
// the page composites, it must draw with that picture exactly the boxes and
// labels of that frame's own metadata (People among them), the strokes must
// be on the canvas's pixels, and the picture must be the footage frame the
// metadata's sequence number names. The motion regions of each frame's
// motion OBU are drawn (dashed) with that frame too.
//
// Needs target/footage/ (scripts/fetch-footage) and the LiteRT library
// (scripts/models/fetch-runtime, or MADO_LITERT_LIB); fails saying so
// without them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, openSync, readSync, closeSync, fstatSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { boxToPixels, NORM16_MAX } from '../../web/meta.js';
import { startMado, launchBrowser, openDashboard, snap, waitForDecoding, getStatus, sleep, log, repoRoot } from './lib.mjs';

const FOOTAGE = join(repoRoot, 'target', 'footage', 'vtest-640x480.y4m');
const MANIFEST = join(repoRoot, 'models', 'ssd_mobilenetv2_oidv4.toml');
const LIBRARY = process.env.MADO_LITERT_LIB || join(repoRoot, 'target', 'litert', 'libLiteRtRuntimeCApi.so');
const FPS = 30;
const WINDOW_S = 10;
// Pictures are compared at this size (the footage is 640x480).
const THUMB_W = 80;
const THUMB_H = 60;

let dir;
let server;
let browser;
let page;

// Installed before the dashboard's own scripts. It records, for every
// VideoFrame the page draws into its picture canvas, the metadata the
// transform worker posted for that frame's RTP timestamp, every strokeRect
// and fillText the page makes on the canvas before the next frame, whether
// the canvas's pixels show each stroke, and now and then a small grey copy
// of the frame.
function instrument({ thumbW, thumbH }) {
  const rec = { on: false, frames: [], meta: new Map(), drawing: null, thumbEvery: 4, sinceThumb: 0 };
  window.__madoDrawn = rec;

  const NativeWorker = window.Worker;
  window.Worker = class extends NativeWorker {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        const m = e.data;
        if (!m || m.type !== 'frame' || !m.meta) return;
        rec.meta.set(m.rtpTimestamp, m.meta);
        if (rec.meta.size > 600) rec.meta.delete(rec.meta.keys().next().value);
      });
    }
  };

  const proto = CanvasRenderingContext2D.prototype;
  const { strokeRect, fillText } = proto;
  proto.strokeRect = function (x, y, w, h) {
    if (rec.drawing && this.canvas.id === 'picture') {
      const t = this.getTransform();
      // Motion regions are the dashed strokes; detection boxes are solid.
      const into = this.getLineDash().length > 0 ? rec.drawing.motion : rec.drawing.rects;
      into.push({ x, y, w, h, color: String(this.strokeStyle), scale: t.a });
    }
    return strokeRect.call(this, x, y, w, h);
  };
  proto.fillText = function (text, ...rest) {
    if (rec.drawing && this.canvas.id === 'picture') rec.drawing.texts.push(String(text));
    return fillText.call(this, text, ...rest);
  };

  const hex = (c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
  // Does the overlay show `color` near the middle of the rectangle's left edge?
  function painted(canvas, r) {
    const ctx = canvas.getContext('2d');
    const px = Math.round(r.x * r.scale);
    const py = Math.round((r.y + r.h / 2) * r.scale);
    const data = ctx.getImageData(px - 2, py - 2, 5, 5).data;
    const want = hex(r.color);
    for (let i = 0; i < data.length; i += 4) {
      const close = want.every((v, k) => Math.abs(data[i + k] - v) <= 40);
      if (data[i + 3] >= 200 && close) return true;
    }
    return false;
  }

  let thumb = null;
  function greyThumbnail(frame) {
    if (!thumb) {
      const canvas = document.createElement('canvas');
      canvas.width = thumbW;
      canvas.height = thumbH;
      thumb = canvas.getContext('2d', { willReadFrequently: true });
      thumb.imageSmoothingQuality = 'high';
    }
    thumb.drawImage(frame, 0, 0, thumbW, thumbH);
    const d = thumb.getImageData(0, 0, thumbW, thumbH).data;
    const grey = new Array(thumbW * thumbH);
    // BT.601 limited-range luma, the footage's Y plane.
    for (let i = 0, j = 0; i < d.length; i += 4, j++) {
      grey[j] = Math.round(16 + (65.481 * d[i] + 128.553 * d[i + 1] + 24.966 * d[i + 2]) / 255);
    }
    return grey;
  }

  // The dashboard draws each VideoFrame into the picture canvas, then that
  // frame's boxes and labels, all in one task: a drawing starts with the
  // frame and ends in the microtask after it, when the strokes are checked
  // on the canvas's pixels.
  const finish = () => {
    const drawing = rec.drawing;
    if (!drawing) return;
    rec.drawing = null;
    const picture = document.getElementById('picture');
    drawing.painted = drawing.rects.map((r) => painted(picture, r));
    rec.frames.push(drawing);
  };
  rec.finish = finish;
  const { drawImage } = proto;
  proto.drawImage = function (image, ...rest) {
    if (this.canvas.id === 'picture' && image instanceof VideoFrame && rec.on) {
      finish();
      const md = image.metadata();
      const meta = rec.meta.get(md.rtpTimestamp);
      const drawing = {
        rtp: md.rtpTimestamp,
        width: image.displayWidth,
        height: image.displayHeight,
        cw: this.canvas.clientWidth,
        ch: this.canvas.clientHeight,
        rects: [],
        motion: [],
        texts: [],
      };
      drawing.meta = meta
        ? {
            seq: String(meta.seq),
            width: meta.width,
            height: meta.height,
            detections: meta.detections && {
              frameSeq: String(meta.detections.frame_seq),
              items: meta.detections.items.map((d) => ({ label: d.label, score: d.score, box: d.box })),
            },
            motion: meta.motion && { mode: meta.motion.mode, regions: meta.motion.regions },
          }
        : null;
      if (meta && ++rec.sinceThumb >= rec.thumbEvery) {
        rec.sinceThumb = 0;
        drawing.thumb = greyThumbnail(image);
      }
      rec.drawing = drawing;
      queueMicrotask(finish);
    }
    return drawImage.call(this, image, ...rest);
  };
}

/** Each frame's Y plane of a Y4M file, averaged down to THUMB_W x THUMB_H. */
function footageThumbnails(path) {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(256);
    readSync(fd, head, 0, head.length, 0);
    const headerEnd = head.indexOf(10) + 1;
    const fields = head.subarray(0, headerEnd).toString().trim().split(' ');
    const w = Number(fields.find((f) => f.startsWith('W')).slice(1));
    const h = Number(fields.find((f) => f.startsWith('H')).slice(1));
    const frameBytes = (w * h * 3) / 2;
    const luma = Buffer.alloc(w * h);
    const line = Buffer.alloc(64);
    const out = [];
    for (let pos = headerEnd; pos < size; ) {
      readSync(fd, line, 0, line.length, pos);
      pos += line.indexOf(10) + 1; // past "FRAME...\n"
      readSync(fd, luma, 0, luma.length, pos);
      pos += frameBytes;
      const bw = w / THUMB_W;
      const bh = h / THUMB_H;
      const grey = new Float64Array(THUMB_W * THUMB_H);
      for (let y = 0; y < h; y++) {
        const row = Math.floor(y / bh) * THUMB_W;
        for (let x = 0; x < w; x++) grey[row + Math.floor(x / bw)] += luma[y * w + x];
      }
      out.push(grey.map((v) => v / (bw * bh)));
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Mean absolute difference of two pictures after removing each one's mean brightness. */
function distance(a, b) {
  const mean = (p) => p.reduce((s, v) => s + v, 0) / p.length;
  const ma = mean(a);
  const mb = mean(b);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - ma - (b[i] - mb));
  return sum / a.length;
}

/** Where the page should draw `item` of a `frameW` x `frameH` frame shown in a cw x ch video element. */
function expectedRect(item, frameW, frameH, cw, ch) {
  const scale = Math.min(cw / frameW, ch / frameH); // object-fit: contain
  const x0 = (cw - frameW * scale) / 2;
  const y0 = (ch - frameH * scale) / 2;
  const p = boxToPixels(item.box, frameW, frameH);
  return { x: x0 + p.x * scale, y: y0 + p.y * scale, w: p.w * scale, h: p.h * scale };
}

before(async () => {
  for (const [what, path, fix] of [
    ['footage', FOOTAGE, 'scripts/fetch-footage'],
    ['LiteRT library', LIBRARY, 'scripts/models/fetch-runtime'],
  ]) {
    if (!existsSync(path)) throw new Error(`no ${what} at ${path}: run ${fix}`);
  }
  dir = mkdtempSync(join(tmpdir(), 'mado-detections-'));
  const config = join(dir, 'mado.toml');
  // Exact mode: a frame the detector looks at carries its own result. One
  // inference thread and 10 a second leave the encoder and Chromium room on
  // two cores.
  writeFileSync(
    config,
    `[detect]\nmodel = ${JSON.stringify(MANIFEST)}\nruntime = ${JSON.stringify(LIBRARY)}\n` +
      'mode = "exact"\nmax_rate = 10.0\nthreads = 1\n',
  );
  server = await startMado({ source: `file:${FOOTAGE}`, fps: FPS, extraArgs: ['--config', config] });
  browser = await launchBrowser();
  const first = browser.context.pages()[0];
  await first.addInitScript(instrument, { thumbW: THUMB_W, thumbH: THUMB_H });
  page = await openDashboard(browser.context, server.baseUrl, first);
});

after(async () => {
  if (page && page.madoErrors.length) log('page errors:', page.madoErrors);
  await browser?.close();
  const exit = await server?.stop();
  if (server) log('mado exit:', JSON.stringify(exit));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the dashboard draws the detector\'s Person boxes of each shown frame on that frame', { timeout: 180_000 }, async () => {
  const footage = footageThumbnails(FOOTAGE);
  log(`footage: ${footage.length} frames`);
  await waitForDecoding(page, { frames: 30, what: 'the dashboard' });
  await sleep(2000);
  await page.evaluate(() => {
    window.__madoDrawn.on = true;
  });
  const s0 = await getStatus(server.baseUrl);
  await sleep(WINDOW_S * 1000);
  const [frames, layout, b, s1] = await Promise.all([
    page.evaluate(() => {
      const rec = window.__madoDrawn;
      rec.on = false;
      rec.finish();
      return rec.frames;
    }),
    page.evaluate(() => {
      const box = (id) => {
        const r = document.getElementById(id).getBoundingClientRect();
        return [r.x, r.y, r.width, r.height].map(Math.round);
      };
      return { stage: box('stage'), picture: box('picture'), compose: document.getElementById('stage').dataset.compose };
    }),
    snap(page),
    getStatus(server.baseUrl),
  ]);

  let withMeta = 0;
  let withPerson = 0;
  let ownResult = 0; // frames whose detections are their own (exact mode)
  let personBoxes = 0;
  let drawnOk = 0;
  let strokes = 0;
  let strokesPainted = 0;
  let withMotion = 0; // frames carrying a motion OBU (the gate is on by default)
  let motionOk = 0; // frames whose dashed regions are exactly their own motion OBU's
  let motionDrawn = 0;
  const wrong = [];
  const pictures = { compared: 0, matched: 0, offsets: [] };
  for (const f of frames) {
    const items = f.meta?.detections?.items ?? [];
    if (f.meta) withMeta++;
    const people = items.filter((d) => d.label === 'Person');
    if (people.length) withPerson++;
    if (people.length && f.meta.detections.frameSeq === f.meta.seq) ownResult++;
    personBoxes += people.length;
    strokes += f.rects.length;
    strokesPainted += f.painted.filter(Boolean).length;

    // Exactly one box and one label per detection, where the metadata puts it.
    const want = items.map((d) => ({
      rect: expectedRect(d, f.width, f.height, f.cw, f.ch),
      text: `${d.label} ${Math.round((d.score / NORM16_MAX) * 100)}%`,
    }));
    const close = (r, e) => ['x', 'y', 'w', 'h'].every((k) => Math.abs(r[k] - e[k]) <= 0.5);
    const ok =
      f.rects.length === want.length &&
      f.texts.length === want.length &&
      want.every((e, i) => close(f.rects[i], e.rect) && f.texts[i] === e.text) &&
      (!f.meta || (f.meta.width === f.width && f.meta.height === f.height));
    if (ok) drawnOk++;

    // Exactly one dashed rectangle per motion region of this frame's own
    // motion OBU (drawn half a pixel inside the region's edges).
    const regions = f.meta?.motion?.regions ?? [];
    if (f.meta?.motion) withMotion++;
    motionDrawn += f.motion.length;
    const wantMotion = regions.map((box) => expectedRect({ box }, f.width, f.height, f.cw, f.ch));
    if (f.motion.length === wantMotion.length &&
        wantMotion.every((e, i) => ['x', 'y', 'w', 'h'].every((k) => Math.abs(f.motion[i][k] - e[k]) <= 1.01))) motionOk++;
    else if (wrong.length < 5) wrong.push({ seq: f.meta?.seq, motionDrawn: f.motion, wantMotion });
    else if (wrong.length < 5) wrong.push({ seq: f.meta?.seq, drawn: f.rects, texts: f.texts, want });

    // The picture shown is the footage frame the metadata's seq names.
    if (f.thumb) {
      const expected = Number(BigInt(f.meta.seq) % BigInt(footage.length));
      let best = 0;
      let bestD = Infinity;
      footage.forEach((g, i) => {
        const d = distance(f.thumb, g);
        if (d < bestD) [best, bestD] = [i, d];
      });
      const n = footage.length;
      const offset = ((best - expected + n + n / 2) % n) - n / 2;
      pictures.compared++;
      if (Math.abs(offset) <= 1) pictures.matched++;
      pictures.offsets.push(offset);
    }
  }
  const shown = frames.length;
  const figures = {
    windowS: WINDOW_S,
    shown,
    withMeta,
    withPerson,
    ownResult,
    personBoxes,
    drawnOk,
    strokes,
    strokesPainted,
    withMotion,
    motionOk,
    motionDrawn,
    pictures: { compared: pictures.compared, matched: pictures.matched },
    layout,
    decoded: b.framesDecoded,
    dropped: b.framesDropped,
    server: {
      encoded: s1.frames_encoded - s0.frames_encoded,
      dropped: s1.frames_dropped - s0.frames_dropped,
      detections: s1.detections_run - s0.detections_run,
    },
  };
  log('figures:', JSON.stringify(figures));
  log('picture offsets (footage frame found minus the one seq names):', pictures.offsets.join(' '));
  if (wrong.length) log('frames drawn wrongly:', JSON.stringify(wrong));

  assert.ok(shown >= WINDOW_S * FPS * 0.5, `only ${shown} frames shown in ${WINDOW_S} s`);
  assert.ok(withMeta / shown >= 0.95, `only ${withMeta} of ${shown} shown frames had metadata`);
  assert.ok(withPerson / shown >= 0.8,
    `a Person in the metadata of only ${withPerson} of ${shown} shown frames (need 80%)`);
  assert.ok(ownResult >= 20, `only ${ownResult} shown frames carried a Person from their own detection`);
  assert.equal(layout.compose, 'composited', 'Chromium should get the composited picture');
  assert.ok(layout.picture[2] > 0 && layout.picture[3] > 0, `the picture canvas is not shown: ${JSON.stringify(layout)}`);
  assert.equal(drawnOk, shown,
    `the overlay matched the frame's metadata on ${drawnOk} of ${shown} frames; first wrong: ${JSON.stringify(wrong)}`);
  assert.ok(strokes >= personBoxes && personBoxes > 0, `${strokes} boxes drawn for ${personBoxes} Person detections`);
  // A box of another class drawn later may cover a sampled edge now and then.
  assert.ok(strokesPainted >= strokes * 0.98,
    `only ${strokesPainted} of ${strokes} drawn boxes show on the overlay's pixels`);
  assert.ok(withMotion / shown >= 0.95, `only ${withMotion} of ${shown} shown frames carried a motion OBU`);
  assert.equal(motionOk, shown, `motion regions matched the frame's own motion OBU on ${motionOk} of ${shown} frames`);
  assert.ok(motionDrawn > 0, 'no motion region drawn on a street where people walk');
  assert.ok(pictures.compared >= 20, `only ${pictures.compared} pictures compared with the footage`);
  assert.ok(pictures.matched / pictures.compared >= 0.9,
    `only ${pictures.matched} of ${pictures.compared} shown pictures are the footage frame their seq names (within a frame)`);
  assert.equal(b.metaDecodeErrors, 0, `metadata decode errors: ${JSON.stringify(b.lastMetaError)}`);
  assert.deepEqual(page.madoErrors, [], 'the page logged errors');
});
