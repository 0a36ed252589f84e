// A remote viewer through Janus: subscribes to the VideoRoom feed over
// Janus's HTTP API (signalling from node), receives and decodes the AV1 in
// headless Chromium, and reads each encoded frame's metadata with the
// dashboard's decoder (appliance/web/meta.js) in an encoded-frame transform.
// When the stream stops (Janus gone) it tears down and joins again, every
// second, until it gets frames.
//
// With a mado dashboard URL as well, a second page watches mado directly
// over the LAN (WHEP), and mado's publish state is read from its status API.
//
// The dashboard's frame-exact overlay check (web/check.js) runs on every
// picture shown through Janus: the frame number the test pattern spells in
// the picture must be its metadata's, and the target box on the red square
// (`overlay`); the LAN page runs the same check (`?check=overlay`, `lanOverlay`).
//
// Both ways it also times each frame from its capture (the metadata's
// capture_us, mado's wall clock on the same machine) to its arrival in the
// browser's encoded-frame transform, before decoding (`janus`, `lan`); and
// to the screen: through Janus to the refresh the <video> element shows the
// picture in (requestVideoFrameCallback's expectedDisplayTime,
// `janusShown`), on the LAN the dashboard's own glass-to-glass figure for
// its composited picture (`lanDashboard`): `latency` in the stats.
//
// Usage: node janus-viewer.mjs JANUS_URL ROOM SECONDS [MADO_URL]
// Prints `stats JSON` every second: totals since the start (`decoded` and
// the metadata counts through Janus, `lan` frames decoded on the LAN page,
// `publish` mado's endpoint state).

import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [janusUrl, room, seconds, madoUrl] = [
  process.argv[2],
  Number(process.argv[3] ?? 1234),
  Number(process.argv[4] ?? 30),
  process.argv[5],
];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const metaJs = readFileSync(new URL('../../web/meta.js', import.meta.url), 'utf8');
const checkJs = readFileSync(new URL('../../web/check.js', import.meta.url), 'utf8');

let tx = 0;
async function janus(path, body) {
  const response = await fetch(`${janusUrl}${path}`, {
    method: body ? 'POST' : 'GET',
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify({ transaction: `t${++tx}`, ...body }) : undefined,
    signal: AbortSignal.timeout(5000),
  });
  const json = await response.json();
  if (json.janus === 'error') throw new Error(`janus: ${JSON.stringify(json.error)}`);
  return json;
}

/** One subscription: returns the JSEP offer Janus made, with session and handle. */
async function subscribe() {
  const session = (await janus('', { janus: 'create' })).data.id;
  const handle = (await janus(`/${session}`, { janus: 'attach', plugin: 'janus.plugin.videoroom' })).data.id;
  const list = await janus(`/${session}/${handle}`, { janus: 'message', body: { request: 'listparticipants', room } });
  const feed = list.plugindata?.data?.participants?.find((p) => p.publisher);
  if (!feed) throw new Error('no publisher in the room yet');
  await janus(`/${session}/${handle}`, {
    janus: 'message',
    body: { request: 'join', ptype: 'subscriber', room, streams: [{ feed: feed.id }] },
  });
  for (let i = 0; i < 10; i++) {
    const event = await janus(`/${session}?maxev=1&rid=${Date.now()}`);
    if (event.jsep) return { session, handle, offer: event.jsep };
  }
  throw new Error('no offer from Janus');
}

const dir = mkdtempSync(join(tmpdir(), 'publish-chromium-'));
const context = await chromium.launchPersistentContext(dir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
});
const page = context.pages()[0] ?? (await context.newPage());
await page.setContent('<html><body><video autoplay muted playsinline></video></body></html>');
await page.addScriptTag({ type: 'module', content: `${metaJs}\nObject.assign(window, { findInTemporalUnit, boxToPixels });` });
await page.addScriptTag({
  type: 'module',
  content: `${checkJs}\nObject.assign(window, { findRed, readSeqStrip, boxOnRed });`,
});
await page.waitForFunction(() => typeof window.findInTemporalUnit === 'function' && typeof window.boxOnRed === 'function');
await page.evaluate(() => {
  window.totals = { frames: 0, withMeta: 0, own: 0, withDetections: 0, errors: 0 };
  window.lat = { janus: [], lan: [], janusShown: [] };
  window.metaByRtp = new Map();
  // Capture to the refresh that shows the picture.
  // Wall clock of a performance.now() time, both clocks read now (the
  // dashboard's state.js wallTime: timeOrigin drifts from the wall clock).
  const wallTime = (t) => Date.now() - (performance.now() - t);
  const shownAfter = (md, meta) => wallTime(md.expectedDisplayTime) - Number(meta.capture_us) / 1000;
  window.overlay = { checked: 0, hits: 0, otherFrame: 0, unreadable: 0, noMeta: 0 };
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const video = document.querySelector('video');
  const onFrame = (_, md) => {
    video.requestVideoFrameCallback(onFrame);
    const o = window.overlay;
    const meta = window.metaByRtp.get(md.rtpTimestamp);
    if (!meta) {
      o.noMeta++;
      return;
    }
    window.lat.janusShown.push(shownAfter(md, meta));
    const [w, h] = [md.width, md.height];
    if (canvas.width !== w || canvas.height !== h) [canvas.width, canvas.height] = [w, h];
    ctx.drawImage(video, 0, 0, w, h);
    const data = ctx.getImageData(0, 0, w, h).data;
    const red = window.findRed(data, w, h);
    const shown = window.readSeqStrip(data, w);
    if (!red || shown === null) {
      o.unreadable++;
      return;
    }
    // drawImage() may already hold a newer picture than this callback's.
    if (shown !== Number(BigInt(meta.seq) & 0xffffn)) {
      o.otherFrame++;
      return;
    }
    o.checked++;
    const target = meta.detections?.items.find((d) => d.label === 'target');
    if (target && window.boxOnRed(window.boxToPixels(target.box, w, h), red).hit) o.hits++;
  };
  video.requestVideoFrameCallback(onFrame);
  const now = () => Date.now();
  // Median and p95 of the last 300 samples (null without any).
  window.summarize = (all) => {
    const v = all.slice(-300).sort((a, b) => a - b);
    if (!v.length) return null;
    const at = (q) => Math.round(v[Math.min(v.length - 1, Math.floor(q * v.length))] * 10) / 10;
    return { median: at(0.5), p95: at(0.95), n: v.length };
  };
  window.latencies = () => {
    const [l, summary] = [window.lat, window.summarize];
    return { janus: summary(l.janus), lan: summary(l.lan), janusShown: summary(l.janusShown) };
  };
  // A second, plain WHEP session straight to mado, timed the same way.
  window.connectLan = async () => {
    const pc = new RTCPeerConnection({ encodedInsertableStreams: true });
    window.lanPc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.ontrack = (event) => {
      const { readable, writable } = event.receiver.createEncodedStreams();
      readable
        .pipeThrough(new TransformStream({
          transform(frame, controller) {
            try {
              const meta = window.findInTemporalUnit(new Uint8Array(frame.data));
              if (meta) window.lat.lan.push(now() - Number(meta.capture_us) / 1000);
            } catch {}
            controller.enqueue(frame);
          },
        }))
        .pipeTo(writable);
    };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
      setTimeout(resolve, 2000);
    });
    return pc.localDescription.sdp;
  };
  window.connect = async (offer) => {
    if (window.pc) window.pc.close();
    const pc = new RTCPeerConnection({ encodedInsertableStreams: true });
    window.pc = pc;
    window.session = { frames: 0, withMeta: 0 };
    // A live camera track makes Chromium name its decoder and gather as a browser does.
    try {
      const cam = await navigator.mediaDevices.getUserMedia({ video: true });
      window.keepAlive = cam;
    } catch {}
    pc.ontrack = (event) => {
      if (event.track.kind !== 'video') return;
      document.querySelector('video').srcObject = new MediaStream([event.track]);
      const { readable, writable } = event.receiver.createEncodedStreams();
      readable
        .pipeThrough(new TransformStream({
          transform(frame, controller) {
            const t = window.totals;
            t.frames++;
            window.session.frames++;
            try {
              const meta = window.findInTemporalUnit(new Uint8Array(frame.data));
              if (meta) {
                window.lat.janus.push(now() - Number(meta.capture_us) / 1000);
                window.metaByRtp.set(frame.getMetadata().rtpTimestamp, meta);
                if (window.metaByRtp.size > 300) window.metaByRtp.delete(window.metaByRtp.keys().next().value);
                t.withMeta++;
                window.session.withMeta++;
                if (meta.detections) t.withDetections++;
                // Janus rewrites RTP timestamps by a constant per session: each
                // frame's capture time keeps the same offset from its timestamp.
                const rtp = Number((BigInt(meta.capture_us) * 9n) / 100n) % 2 ** 32;
                const offset = (frame.getMetadata().rtpTimestamp - rtp + 2 ** 32) % 2 ** 32;
                window.session.offset ??= offset;
                if (offset === window.session.offset) t.own++;
              }
            } catch {
              t.errors++;
            }
            controller.enqueue(frame);
          },
        }))
        .pipeTo(writable);
    };
    await pc.setRemoteDescription(offer);
    await pc.setLocalDescription(await pc.createAnswer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
      setTimeout(resolve, 2000);
    });
    return { type: 'answer', sdp: pc.localDescription.sdp };
  };
  window.decoded = async () => {
    if (!window.pc) return 0;
    let n = 0;
    (await window.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') n = s.framesDecoded ?? 0;
    });
    return n;
  };
});

let lan = null;
if (madoUrl) {
  lan = await context.newPage();
  // The dashboard's test hooks (window.madoTest) are a module the page never
  // loads by itself; add it as the browser tests' openDashboard does.
  await lan.addInitScript(() => {
    document.addEventListener('DOMContentLoaded', () => {
      const s = document.createElement('script');
      s.type = 'module';
      s.src = '/test-hooks.js';
      document.head.append(s);
    });
  });
  // Log the LAN page in (the session cookie goes to the whole context).
  const login = await lan.request.post(`${madoUrl}api/login`, { data: { password: process.env.MADO_PASSWORD } });
  if (login.status() !== 204) throw new Error(`login at ${madoUrl}: ${login.status()}`);
  await lan.goto(`${madoUrl}?check=overlay`);
  await lan.waitForFunction(() => window.madoTest !== undefined);
  const offer = await page.evaluate(() => window.connectLan());
  const response = await fetch(`${madoUrl}whep`, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp', authorization: `Bearer ${process.env.MADO_TOKEN}` },
    body: offer,
  });
  const answer = await response.text();
  await page.evaluate((sdp) => window.lanPc.setRemoteDescription({ type: 'answer', sdp }), answer);
}

async function madoState() {
  try {
    const status = await (await fetch(`${madoUrl}api/status`, {
      headers: { authorization: `Bearer ${process.env.MADO_TOKEN}` },
      signal: AbortSignal.timeout(2000),
    })).json();
    return status.publish?.[0]?.state ?? null;
  } catch {
    return null;
  }
}

const start = Date.now();
let current = null;
let decodedBefore = 0;
let lastFrames = 0;
let quietSince = Date.now();
let joins = 0;
while (Date.now() - start < seconds * 1000) {
  if (!current) {
    try {
      const sub = await subscribe();
      const answer = await page.evaluate((offer) => window.connect(offer), sub.offer);
      await janus(`/${sub.session}/${sub.handle}`, { janus: 'message', body: { request: 'start', room }, jsep: answer });
      current = sub;
      joins++;
      quietSince = Date.now();
    } catch (e) {
      console.log(`join failed: ${e.message}`);
    }
  }
  await sleep(1000);
  const totals = await page.evaluate(() => window.totals);
  const decoded = current ? await page.evaluate(() => window.decoded()) : 0;
  if (totals.frames > lastFrames) quietSince = Date.now();
  lastFrames = totals.frames;
  const extra = {};
  extra.latency = await page.evaluate(() => window.latencies());
  if (lan) {
    const snapshot = await lan.evaluate(() => window.madoTest.refresh());
    extra.lan = snapshot.framesDecoded;
    extra.lanOverlay = { checked: snapshot.overlay.checked, hits: snapshot.overlay.hits };
    extra.publish = await madoState();
    const lanDashboard = await page.evaluate((samples) => window.summarize(samples), snapshot.latencyMs);
    if (lanDashboard) extra.latency.lanDashboard = lanDashboard;
  }
  extra.overlay = await page.evaluate(() => window.overlay);
  const line = { t: (Date.now() - start) / 1000, joins, decoded: decodedBefore + decoded, ...totals, ...extra };
  console.log(`stats ${JSON.stringify(line)}`);
  if (!current) continue;
  try {
    await janus(`/${current.session}`, { janus: 'keepalive' });
  } catch {
    quietSince = 0; // Janus is gone
  }
  if (Date.now() - quietSince > 3000) {
    console.log('stream stopped: joining again');
    decodedBefore += decoded;
    await page.evaluate(() => window.pc && window.pc.close());
    current = null;
  }
}
await context.close();
rmSync(dir, { recursive: true, force: true });
