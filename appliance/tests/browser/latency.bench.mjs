// Benchmark, not part of `npm test`: node latency.bench.mjs
//
// 1. Glass-to-glass latency (capture on the device to expected display in
//    Chromium; same clock, loopback) at 640x480 and 1280x720, one viewer, 15 s.
// 2. CPU cost of the mado process per additional viewer at 640x480: CPU time
//    from /proc/<pid>/stat over 10 s windows with 1, 2 and 4 viewers.
// Prints a markdown table. Chromium shares the machine's cores with mado, so
// the figures include that contention.
import { getStatus, startMado, launchBrowser, openDashboard, snap, waitForDecoding, cpuSeconds, cpuSecondsByThread, quantile, sleep, log } from './lib.mjs';

const FPS = 30;
const LATENCY_S = 15;
const CPU_WINDOW_S = 10;
const CPU_WINDOWS = 3;
const VIEWERS = [1, 2, 4];

const fmt = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
const median = (xs) => quantile(xs, 0.5);

async function latencyRun(size) {
  const server = await startMado({ size, fps: FPS });
  const browser = await launchBrowser();
  try {
    const page = await openDashboard(browser.context, `${server.baseUrl}/`, browser.context.pages()[0]);
    await waitForDecoding(page, { frames: 30, what: `${size} viewer` });
    await page.evaluate(() => window.madoTest.revealDecoder());
    await sleep(2000);
    // latencyMs keeps the last 300 samples (10 s at 30 fps): read it often
    // and keep the samples added since the last read.
    const samples = [];
    let seen = (await snap(page)).latencyCount;
    const start = await snap(page);
    const end = Date.now() + LATENCY_S * 1000;
    let last = start;
    while (Date.now() < end) {
      await sleep(Math.min(3000, Math.max(0, end - Date.now())));
      last = await snap(page);
      const fresh = Math.min(last.latencyCount - seen, last.latencyMs.length);
      if (fresh > 0) samples.push(...last.latencyMs.slice(-fresh));
      seen = last.latencyCount;
    }
    const seconds = (last.framesDecoded - start.framesDecoded) / LATENCY_S;
    return {
      size,
      samples: samples.length,
      median: median(samples),
      p95: quantile(samples, 0.95),
      min: Math.min(...samples),
      max: Math.max(...samples),
      fps: seconds,
      dropped: last.framesDropped - start.framesDropped,
      jitterBufferMs: last.jitterBufferMs,
      decoder: last.decoderImplementation,
      status: last.status,
    };
  } finally {
    await browser.close();
    await server.stop();
  }
}

async function cpuRun() {
  const server = await startMado({ size: '640x480', fps: FPS });
  const browser = await launchBrowser();
  const rows = [];
  try {
    const measure = async (viewers) => {
      await sleep(3000); // settle
      const pcts = [];
      const media = [];
      const encoded = [];
      for (let w = 0; w < CPU_WINDOWS; w++) {
        const c0 = cpuSeconds(server.pid);
        const th0 = cpuSecondsByThread(server.pid);
        const s0 = await getStatus(server.baseUrl);
        const t0 = performance.now();
        await sleep(CPU_WINDOW_S * 1000);
        const c1 = cpuSeconds(server.pid);
        const th1 = cpuSecondsByThread(server.pid);
        const s1 = await getStatus(server.baseUrl);
        const dt = (performance.now() - t0) / 1000;
        pcts.push((100 * (c1 - c0)) / dt);
        // Threads other than the source and the encoder: HTTP, WebRTC, sockets.
        let other = 0;
        for (const [name, sec] of Object.entries(th1)) {
          if (!/source|encode/.test(name)) other += sec - (th0[name] || 0);
        }
        media.push((100 * other) / dt);
        encoded.push((s1.frames_encoded - s0.frames_encoded) / dt);
      }
      rows.push({ viewers, cpu: median(pcts), media: median(media), encodedFps: median(encoded), windows: pcts });
      log(`${viewers} viewer(s): mado CPU ${pcts.map((p) => fmt(p)).join(', ')} %; ` +
        `non-encoder threads ${media.map((p) => fmt(p, 2)).join(', ')} %; encoded fps ${encoded.map((f) => fmt(f)).join(', ')}`);
    };
    await measure(0);
    const pages = [];
    for (const n of VIEWERS) {
      while (pages.length < n) {
        const p = await openDashboard(browser.context, `${server.baseUrl}/`, pages.length === 0 ? browser.context.pages()[0] : null);
        pages.push(p);
      }
      for (const p of pages) await waitForDecoding(p, { frames: 30, what: `viewer ${pages.indexOf(p)}` });
      await measure(n);
    }
    const snaps = await Promise.all(pages.map(snap));
    return { rows, fps: snaps.map((s) => s.fps) };
  } finally {
    await browser.close();
    await server.stop();
  }
}

const lat = [];
for (const size of ['640x480', '1280x720']) {
  const r = await latencyRun(size);
  log(`latency ${size}: median ${fmt(r.median)} ms, p95 ${fmt(r.p95)} ms over ${r.samples} frames`);
  lat.push(r);
}
const cpu = await cpuRun();

console.log('\n## Glass-to-glass latency (loopback, same clock, one viewer, %d s)\n', LATENCY_S);
console.log('| size | frames | median ms | p95 ms | min ms | max ms | decoded fps | dropped | jitter buffer ms | device encode ms | decoder |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of lat) {
  console.log(`| ${r.size} | ${r.samples} | ${fmt(r.median)} | ${fmt(r.p95)} | ${fmt(r.min)} | ${fmt(r.max)} | ${fmt(r.fps)} | ${r.dropped} | ${fmt(r.jitterBufferMs)} | ${fmt(r.status?.encode_latency_ms)} | ${r.decoder ?? 'hidden'} |`);
}

const one = cpu.rows.find((r) => r.viewers === 1);
const base = cpu.rows.find((r) => r.viewers === 0);
console.log('\n## mado CPU per viewer (640x480, %d fps, median of %d windows of %d s; 100%% = one core)\n', FPS, CPU_WINDOWS, CPU_WINDOW_S);
console.log('Total is the whole process; "media threads" leaves out the source and encoder threads, so it shows the per-viewer work (WebRTC, SRTP, sockets, HTTP) without the encoder\'s noise.\n');
console.log('| viewers | encoded fps | mado CPU % | vs 1 viewer | media threads CPU % | media threads, increment per viewer beyond the first |');
console.log('|---|---|---|---|---|---|');
const increments = [];
for (const r of cpu.rows) {
  let inc = '—';
  if (r.viewers > 1) {
    const per = (r.media - one.media) / (r.viewers - 1);
    increments.push(per);
    inc = fmt(per, 2);
  } else if (r.viewers === 1) {
    inc = `first viewer: ${fmt(r.media - base.media, 2)}`;
  }
  const ratio = r.viewers >= 1 ? fmt(r.cpu / one.cpu, 2) : '—';
  console.log(`| ${r.viewers} | ${fmt(r.encodedFps)} | ${fmt(r.cpu)} | ${ratio} | ${fmt(r.media, 2)} | ${inc} |`);
}
console.log(`\nMedian increment per additional viewer (media threads): ${fmt(median(increments), 2)} CPU %; ` +
  `viewers' decoded fps at the end: ${cpu.fps.map((f) => fmt(f)).join(', ')}; machine load average: ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`);
