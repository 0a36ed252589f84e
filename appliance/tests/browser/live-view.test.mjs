// One dashboard in ?check=overlay mode against the real server: AV1 decodes
// without drops, every shown frame has its metadata, and in the pixels the
// page composites (read back from its canvas) the box covers the red
// calibration target of that same picture. The <video> plus overlay
// fallback warns that boxes may lag.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startMado, launchBrowser, openDashboard, snap, waitForDecoding, readVectors, getStatus, sleep, log } from './lib.mjs';

const FPS = 30;
const WINDOW_S = 10;

let server;
let browser;
let page;

// The overlay check between two snapshots. otherFrame counts pictures that
// show another frame number than the metadata whose boxes were drawn; on
// the composited path that should not happen at all.
function overlayBetween(a, b) {
  const keys = ['checked', 'hits', 'otherFrame', 'unreadable'];
  return Object.fromEntries(keys.map((k) => [k, b.overlay[k] - a.overlay[k]]));
}

function assertOverlay(o, b, minChecked) {
  const sampled = o.checked + o.otherFrame + o.unreadable;
  const detail = `${JSON.stringify(o)}; last misses: ${JSON.stringify(b.overlay.misses.slice(-3))}`;
  assert.ok(o.unreadable <= sampled * 0.05, `the frame-number strip was unreadable too often: ${detail}`);
  assert.ok(o.otherFrame <= sampled * 0.5,
    `most sampled pictures were not the frame the callback reported: ${detail}`);
  assert.ok(o.checked >= minChecked, `overlay checked only ${o.checked} frames (need at least ${minChecked}): ${detail}`);
  assert.ok(o.hits / o.checked >= 0.95, `overlay box matched the red target in ${o.hits} of ${o.checked} frames (need 95%): ${detail}`);
}

before(async () => {
  // 320x240 keeps the encoder well ahead of 30 fps on a 2-core machine that
  // also runs Chromium; the latency benchmark covers the larger sizes.
  // The overlay check compares the box with the red target's pixels, so the
  // picture quality must not depend on a loopback congestion estimate that
  // a busy machine can disturb: adaptation is off here and tested on its own
  // (constrained-link.test.mjs).
  const dir = mkdtempSync(join(tmpdir(), 'mado-live-'));
  const config = join(dir, 'mado.toml');
  writeFileSync(config, '[adapt]\nenabled = false\n');
  server = await startMado({ size: '320x240', fps: FPS, extraArgs: ['--config', config] });
  rmSync(dir, { recursive: true, force: true }); // read at start-up
  browser = await launchBrowser();
  page = await openDashboard(browser.context, `${server.baseUrl}/?check=overlay`, browser.context.pages()[0]);
});

after(async () => {
  if (page && page.madoErrors.length) log('page errors:', page.madoErrors);
  await browser?.close();
  const exit = await server?.stop();
  if (server) log('mado exit:', JSON.stringify(exit));
});

test('live view decodes AV1 and draws each frame\'s boxes on that frame', { timeout: 180_000 }, async () => {
  const first = await waitForDecoding(page, { frames: 30, what: 'the dashboard' });
  log(`decoding: ${first.framesDecoded} frames, codec ${first.codec}, transform ${first.transformApi}`);
  assert.equal(first.transformApi, 'RTCRtpScriptTransform', 'Chromium should use RTCRtpScriptTransform');

  const decoder = await page.evaluate(() => window.madoTest.revealDecoder());
  log(`decoderImplementation: ${decoder}`);

  // Let the first seconds (keyframe, jitter buffer) settle, then measure.
  await sleep(2000);
  const [a, sa] = await Promise.all([snap(page), getStatus(server.baseUrl)]);
  await sleep(WINDOW_S * 1000);
  const [b, sb] = await Promise.all([snap(page), getStatus(server.baseUrl)]);

  const decoded = b.framesDecoded - a.framesDecoded;
  const dropped = b.framesDropped - a.framesDropped;
  const rvfc = b.shownFrames - a.shownFrames;
  const rvfcMeta = b.shownFramesWithMeta - a.shownFramesWithMeta;
  const transformFrames = b.transformFrames - a.transformFrames;
  const transformMeta = b.transformFramesWithMeta - a.transformFramesWithMeta;
  const lat = b.latencyMs.slice(-Math.min(b.latencyMs.length, 300)).sort((x, y) => x - y);
  const median = lat.length ? lat[Math.floor(lat.length / 2)] : NaN;
  const figures = {
    windowS: WINDOW_S,
    decoded,
    dropped,
    received: b.framesReceived - a.framesReceived,
    rvfc,
    rvfcMeta,
    rvfcMetaRatio: rvfc ? +(rvfcMeta / rvfc).toFixed(4) : 0,
    transformFrames,
    transformMeta,
    overlay: overlayBetween(a, b),
    metaDecodeErrors: b.metaDecodeErrors,
    latencyMedianMs: median,
    decoder: b.decoderImplementation,
    codec: `${b.codec} ${b.codecFmtp || ''}`.trim(),
    resolution: `${b.frameWidth}x${b.frameHeight}`,
    reconnects: b.reconnects,
    server: {
      fps: sb.fps,
      encoded: sb.frames_encoded - sa.frames_encoded,
      dropped: sb.frames_dropped - sa.frames_dropped,
      encodeLatencyMs: sb.encode_latency_ms,
      bitrateKbps: sb.bitrate_kbps,
    },
  };
  log('figures:', JSON.stringify(figures));
  if (b.overlay.misses.length) log('last overlay misses:', JSON.stringify(b.overlay.misses.slice(-5)));

  assert.ok(typeof b.decoderImplementation === 'string' && b.decoderImplementation.length > 0,
    `inbound-rtp decoderImplementation should be reported, got ${JSON.stringify(b.decoderImplementation)}`);
  assert.equal(b.codec, 'video/AV1', `negotiated codec should be AV1, got ${b.codec}`);
  assert.equal(b.reconnects, 0, `the session should not have reconnected (${b.stateDetail})`);
  assert.equal(dropped, 0, `framesDropped grew by ${dropped} in ${WINDOW_S} s`);
  assert.ok(decoded >= WINDOW_S * FPS * 0.8,
    `framesDecoded grew by ${decoded} in ${WINDOW_S} s; expected at least ${WINDOW_S * FPS * 0.8} ` +
      `(server meanwhile encoded ${figures.server.encoded} and dropped ${figures.server.dropped} frames)`);
  assert.ok(rvfc > 0 && rvfcMeta / rvfc >= 0.95,
    `only ${rvfcMeta} of ${rvfc} displayed frames had metadata for their RTP timestamp (need 95%)`);
  assert.equal(b.metaDecodeErrors, 0, `metadata decode errors: ${b.metaDecodeErrors} (last: ${JSON.stringify(b.lastMetaError)})`);
  assertOverlay(figures.overlay, b, 100);
  assert.deepEqual(page.madoErrors, [], 'the page logged errors');
  // The latency budget: capture to encoder out to the last packet on the wire.
  const budget = sb.latency;
  log('latency budget:', JSON.stringify(budget));
  assert.ok(budget.capture_to_hub && budget.capture_to_socket, `no latency budget in /api/status: ${JSON.stringify(budget)}`);
  assert.ok(budget.capture_to_socket.median_ms >= budget.capture_to_hub.median_ms,
    'a frame cannot leave the socket before the encoder hands it over');
  assert.ok(budget.capture_to_socket.p95_ms >= budget.capture_to_socket.median_ms && budget.capture_to_socket.p95_ms < 1000,
    `implausible capture-to-socket figures: ${JSON.stringify(budget.capture_to_socket)}`);
  const shown = await page.textContent('#s-budget');
  assert.match(shown, /to socket \d+(\.\d)? \/ \d+(\.\d)? ms/, `the dashboard shows no budget: ${shown}`);
});

test('meta.js passes the spec vectors inside Chromium', { timeout: 60_000 }, async () => {
  const vectors = readVectors();
  const result = await page.evaluate(async (vectors) => {
    const { parseMetadataObu } = await import('/meta.js');
    const fromHex = (hex) => Uint8Array.from(hex.match(/../g) || [], (h) => parseInt(h, 16));
    const out = { valid: [], invalid: [] };
    for (const v of vectors.valid) {
      try {
        out.valid.push({ name: v.name, got: JSON.stringify(parseMetadataObu(fromHex(v.hex))), want: v.meta });
      } catch (e) {
        out.valid.push({ name: v.name, error: `${e.code}: ${e.message}`, want: v.meta });
      }
    }
    for (const v of vectors.invalid) {
      try {
        parseMetadataObu(fromHex(v.hex));
        out.invalid.push({ name: v.name, want: v.error, got: 'decoded' });
      } catch (e) {
        out.invalid.push({ name: v.name, want: v.error, got: e.code });
      }
    }
    return out;
  }, vectors);
  for (const v of result.valid) {
    assert.ok(!v.error, `vector ${v.name} failed to decode in Chromium: ${v.error}`);
    assert.deepEqual(JSON.parse(v.got), v.want, `vector ${v.name} decodes differently in Chromium`);
  }
  for (const v of result.invalid) assert.equal(v.got, v.want, `invalid vector ${v.name} in Chromium`);
  log(`Chromium: ${result.valid.length} valid and ${result.invalid.length} invalid vectors pass`);
});

test('the createEncodedStreams() fallback reads the metadata too', { timeout: 90_000 }, async () => {
  await openDashboard(browser.context, `${server.baseUrl}/?check=overlay&transform=createEncodedStreams`, page);
  await waitForDecoding(page, { frames: 30, what: 'the dashboard with createEncodedStreams' });
  const a = await snap(page);
  await sleep(5000);
  const b = await snap(page);
  const rvfc = b.shownFrames - a.shownFrames;
  const rvfcMeta = b.shownFramesWithMeta - a.shownFramesWithMeta;
  const overlay = overlayBetween(a, b);
  log('createEncodedStreams:', JSON.stringify({ where: b.transformWhere, rvfc, rvfcMeta, overlay, errors: b.metaDecodeErrors }));
  assert.equal(b.transformApi, 'createEncodedStreams');
  assert.ok(rvfc > 0 && rvfcMeta / rvfc >= 0.95, `only ${rvfcMeta} of ${rvfc} displayed frames had metadata`);
  assertOverlay(overlay, b, 50);
  assert.equal(b.metaDecodeErrors, 0, 'metadata decode errors');
});

test('without the composited path the dashboard says boxes may lag, and still draws them', { timeout: 90_000 }, async () => {
  await openDashboard(browser.context, `${server.baseUrl}/?check=overlay&compose=overlay`, page);
  await waitForDecoding(page, { frames: 30, what: 'the dashboard on the overlay path' });
  const a = await snap(page);
  await sleep(4000);
  const b = await snap(page);
  const shown = b.shownFrames - a.shownFrames;
  const withMeta = b.shownFramesWithMeta - a.shownFramesWithMeta;
  const overlay = overlayBetween(a, b);
  const notice = await page.textContent('#s-compose');
  log('overlay path:', JSON.stringify({ shown, withMeta, overlay, notice }));
  assert.equal(b.compose, 'overlay');
  assert.match(notice, /boxes may lag/, `the dashboard does not warn that boxes may lag: ${notice}`);
  assert.ok(shown > 0 && withMeta / shown >= 0.95, `only ${withMeta} of ${shown} shown frames had metadata`);
  // The check reads back the video's picture with the overlay laid on it.
  assert.ok(overlay.checked >= 30, `the overlay path's check judged only ${overlay.checked} pictures`);
  const onComposited = await page.evaluate(() => document.getElementById('stage').dataset.compose);
  assert.equal(onComposited, 'overlay');
});
