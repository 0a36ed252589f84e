// Benchmark, not part of `npm test`: node screen.bench.mjs
//
// 1. True glass to glass from a screen recording (screen.mjs): the wall-clock
//    time x11grab grabbed the first screen frame showing each frame number,
//    against that frame's capture time in its metadata; median and p95 at
//    640x480 and 1280x720, for the composited path and for the <video> plus
//    overlay canvas path (?compose=overlay), beside the figure the
//    dashboard itself reports over the same seconds.
// 2. Chromium's CPU per viewer for each path: CPU seconds of the whole
//    browser process tree (headless, so every page renders) over 10 s with 1
//    and with 3 dashboards open, at 640x480; the per-viewer cost is the
//    difference over 2, and the ratio composited / overlay is printed.
// 3. The display path alone (displayLag in screen.mjs): how long a plain
//    canvas of each picture size, repainted whole every animation frame,
//    takes from the page's animation frame to the recorded screen, measured
//    before and after, so what the machine (X server, recorder) adds at each
//    size can be told from what the dashboard adds.
// 4. A slower device, as far as one can be emulated here: Chromium's own CPU
//    throttling (DevTools' Emulation.setCPUThrottlingRate, 4x and 6x, the
//    rates its mobile presets use) slows the page's main thread, where the
//    composited path draws; frames shown per second for each path and size.
//    It does not slow the decoder or the GPU process, so it is a lower bound
//    on a phone's cost, not a phone.
// 5. A smaller CPU budget for the whole browser (cpu-quota.mjs): Chromium's
//    process tree (decoder, compositor, page) in a cgroup capped at 1, 0.5
//    and 0.25 of one core; frames shown per second, the dashboard's glass to
//    glass and the CPU used, for each path and size. A stand-in for a
//    small board's or a phone's budget, not a model of one: each thread
//    still runs at this machine's speed while it runs, and such devices
//    composite on a GPU, which here is software.
// `node screen.bench.mjs [glass] [cpu] [throttled] [capped]` runs the parts
// named (glass: parts 1 and 3); none named runs all.
// Prints markdown tables. Chromium shares the 2 cores with mado (and with
// whatever else runs), so the figures include that contention.
import { screenRun, displayLag } from './screen.mjs';
import { capTree, cpuCapUnavailable } from './cpu-quota.mjs';
import {
  startMado, launchBrowser, openDashboard, waitForDecoding, snap, sleep, log, quantile, chromiumPid, treeCpuSeconds, latencySince,
} from './lib.mjs';

const RECORD_S = 10;
const CPU_WINDOW_S = 10;
const fmt = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
const PATHS = [
  ['composited', ''],
  ['overlay', '?compose=overlay'],
];

async function glassRows() {
  const rows = [];
  for (const size of ['640x480', '1280x720']) {
    for (const [path, query] of PATHS) {
      const run = await screenRun({ size, seconds: RECORD_S, query });
      const v = run.verdict;
      rows.push({ size, path, g2g: run.g2g, dash: run.dashboard, share: v.share, both: v.both, page: run.page, recorder: run.recorder, recorded: v.recorded });
      log(`${size} ${path}: screen ${fmt(run.g2g.median)} / ${fmt(run.g2g.p95)} ms (${run.g2g.frames} frames), dashboard ${fmt(run.dashboard.median)} / ${fmt(run.dashboard.p95)} ms, box on target ${fmt(v.share * 100)}%`);
    }
  }
  return rows;
}

/** Runs `body(pages, browser)` with `viewers` dashboards decoding mado's `size` test pattern. */
async function withDashboards({ query, viewers = 1, size = '640x480' }, body) {
  const server = await startMado({ size, fps: 30 });
  const browser = await launchBrowser();
  try {
    const pages = [];
    for (let i = 0; i < viewers; i++) {
      pages.push(await openDashboard(browser.context, `${server.baseUrl}/${query}`, i === 0 ? browser.context.pages()[0] : null));
    }
    for (const p of pages) await waitForDecoding(p, { frames: 30 });
    return await body(pages, browser);
  } finally {
    await browser.close();
    await server.stop();
  }
}

async function cpuRun(query, viewers) {
  return withDashboards({ query, viewers }, async (pages, browser) => {
    await sleep(2000);
    const pid = chromiumPid(browser.userDataDir);
    const before = await Promise.all(pages.map(snap));
    const c0 = treeCpuSeconds(pid);
    await sleep(CPU_WINDOW_S * 1000);
    const c1 = treeCpuSeconds(pid);
    const after = await Promise.all(pages.map(snap));
    const shown = after.reduce((s, a, i) => s + a.shownFrames - before[i].shownFrames, 0) / viewers / CPU_WINDOW_S;
    const hidden = (await Promise.all(pages.map((p) => p.evaluate(() => document.visibilityState)))).filter((v) => v !== 'visible').length;
    return { cpu: (c1 - c0) / CPU_WINDOW_S, shownFps: shown, compose: after[0].compose, hidden };
  });
}

/** Chromium with one blank page: what the browser costs before any dashboard. */
async function idleCpu() {
  const browser = await launchBrowser();
  try {
    await sleep(2000);
    const pid = chromiumPid(browser.userDataDir);
    const c0 = treeCpuSeconds(pid);
    await sleep(CPU_WINDOW_S * 1000);
    return (treeCpuSeconds(pid) - c0) / CPU_WINDOW_S;
  } finally {
    await browser.close();
  }
}

async function throttledRun(query, size, rate) {
  return withDashboards({ query, size }, async ([page], browser) => {
    const cdp = await browser.context.newCDPSession(page);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate });
    await sleep(2000);
    const before = await snap(page);
    await sleep(CPU_WINDOW_S * 1000);
    const after = await snap(page);
    return { shownFps: (after.shownFrames - before.shownFrames) / CPU_WINDOW_S, compose: after.compose };
  });
}

async function throttledRows() {
  const rows = [];
  for (const size of ['640x480', '1280x720']) {
    for (const rate of [4, 6]) {
      const row = { size, rate };
      for (const [path, query] of PATHS) row[path] = await throttledRun(query, size, rate);
      rows.push(row);
      log(`${size} at ${rate}x slower: composited ${fmt(row.composited.shownFps)} fps, overlay ${fmt(row.overlay.shownFps)} fps`);
    }
  }
  return rows;
}

// Two rounds, the paths alternating, medians of the two (the machine is shared).
const CPU_ROUNDS = 2;
async function cpuRows() {
  const runs = { idle: [] };
  for (const [path] of PATHS) runs[path] = { one: [], three: [] };
  for (let round = 0; round < CPU_ROUNDS; round++) {
    runs.idle.push(await idleCpu());
    for (const [path, query] of PATHS) {
      runs[path].one.push(await cpuRun(query, 1));
      runs[path].three.push(await cpuRun(query, 3));
    }
  }
  const idle = quantile(runs.idle, 0.5);
  const med = (rs, key) => quantile(rs.map((r) => r[key]), 0.5);
  const rows = [];
  for (const [path] of PATHS) {
    const { one, three } = runs[path];
    const row = {
      path,
      idle,
      one: { cpu: med(one, 'cpu'), shownFps: med(one, 'shownFps'), hidden: Math.max(...one.map((r) => r.hidden)) },
      three: { cpu: med(three, 'cpu'), shownFps: med(three, 'shownFps'), hidden: Math.max(...three.map((r) => r.hidden)) },
    };
    row.dashboard = row.one.cpu - idle;
    row.perViewer = (row.three.cpu - row.one.cpu) / 2;
    rows.push(row);
    log(`${path}: idle browser ${fmt(idle, 3)} CPU s/s, 1 viewer ${fmt(row.one.cpu, 3)}, 3 viewers ${fmt(row.three.cpu, 3)}, per extra viewer ${fmt(row.perViewer, 3)}`);
  }
  return rows;
}

/** One dashboard with Chromium's whole process tree capped at `share` of a core. */
async function cappedRun(query, size, share) {
  return withDashboards({ query, size }, async ([page], browser) => {
    const pid = chromiumPid(browser.userDataDir);
    const cap = await capTree(pid, share);
    try {
      await sleep(3000);
      const before = await snap(page);
      const c0 = treeCpuSeconds(pid);
      await sleep(CPU_WINDOW_S * 1000);
      const c1 = treeCpuSeconds(pid);
      const after = await snap(page);
      const g2g = latencySince(before, after);
      return {
        shownFps: (after.shownFrames - before.shownFrames) / CPU_WINDOW_S,
        decodedFps: (after.framesDecoded - before.framesDecoded) / CPU_WINDOW_S,
        cpu: (c1 - c0) / CPU_WINDOW_S,
        g2g: { median: quantile(g2g, 0.5), p95: quantile(g2g, 0.95) },
        compose: after.compose,
      };
    } finally {
      await cap.release();
    }
  });
}

const SHARES = [1, 0.5, 0.25];
async function cappedRows() {
  const rows = [];
  for (const size of ['640x480', '1280x720']) {
    for (const share of SHARES) {
      for (const [path, query] of PATHS) {
        const r = await cappedRun(query, size, share);
        rows.push({ size, share, path, ...r });
        log(`${size} ${path}, Chromium capped at ${share} core: ${fmt(r.shownFps)} fps shown, glass to glass ${fmt(r.g2g.median)} / ${fmt(r.g2g.p95)} ms, CPU ${fmt(r.cpu * 100, 0)}%`);
      }
    }
  }
  return rows;
}

const SIZES = [[640, 480], [1280, 720]];
const PARTS = ['glass', 'cpu', 'throttled', 'capped'];
const named = process.argv.slice(2);
for (const n of named) if (!PARTS.includes(n)) throw new Error(`unknown part ${n}: choose from ${PARTS.join(', ')}`);
const wanted = (part) => named.length === 0 || named.includes(part);

if (wanted('glass')) {
  const lagBefore = [];
  for (const size of SIZES) lagBefore.push(await displayLag(5, size));
  const glass = await glassRows();
  const lagAfter = [];
  for (const size of SIZES) lagAfter.push(await displayLag(5, size));
  console.log('\n| size | path | glass to glass on screen, median / p95 | dashboard reports, median / p95 (how it finds the glass) | box on target (screen frames) | frames decoded | recorder: screen frames, CPU, behind at the end |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of glass) {
    console.log(`| ${r.size} | ${r.path} | ${fmt(r.g2g.median)} / ${fmt(r.g2g.p95)} ms (${r.g2g.frames} frames) | ${fmt(r.dash.median)} / ${fmt(r.dash.p95)} ms (${r.page.glassSource}) | ${fmt(r.share * 100)}% of ${r.both} | ${r.page.decoded} in ${RECORD_S} s | ${r.recorder.codec}: ${r.recorded}, ${fmt(r.recorder.cpu * 100, 0)}% of a core, ${fmt(r.recorder.behindMs, 0)} ms |`);
  }
  console.log('\n| display path alone (a canvas painting Date.now()), median / p95 | page to recorded screen, before | after | of which page to presented (Chromium), after | presented to recorded (X server, recorder), after |');
  console.log('|---|---|---|---|---|');
  SIZES.forEach(([w, h], i) => {
    const [b, a] = [lagBefore[i], lagAfter[i]];
    console.log(`| ${w}x${h} | ${fmt(b.median, 0)} / ${fmt(b.p95, 0)} ms | ${fmt(a.median, 0)} / ${fmt(a.p95, 0)} ms | ${fmt(a.presented.median, 0)} / ${fmt(a.presented.p95, 0)} ms | ${fmt(a.afterPresented.median, 0)} / ${fmt(a.afterPresented.p95, 0)} ms (${a.afterPresented.frames} frames) |`);
  });
}

if (wanted('cpu')) {
  const cpu = await cpuRows();
  console.log(`\nChromium with one blank page: ${fmt(cpu[0].idle * 100, 1)}% of a core`);
  console.log('\n| path (640x480) | Chromium CPU, 1 viewer | of which the dashboard (less the blank browser) | 3 viewers | per extra viewer | frames shown per viewer, 1 / 3 | per extra viewer per frame shown a second |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of cpu) {
    const hidden = r.three.hidden ? ` (${r.three.hidden} page(s) hidden)` : '';
    console.log(`| ${r.path} | ${fmt(r.one.cpu * 100, 1)}% | ${fmt(r.dashboard * 100, 1)}% | ${fmt(r.three.cpu * 100, 1)}% | ${fmt(r.perViewer * 100, 1)}% | ${fmt(r.one.shownFps, 1)} / ${fmt(r.three.shownFps, 1)} fps${hidden} | ${fmt((r.perViewer * 100) / r.three.shownFps, 2)}% |`);
  }
  const [c, o] = cpu;
  console.log(`\ncomposited / overlay (CPU as a share of one core): ${fmt(c.one.cpu / o.one.cpu, 2)} for the browser with one dashboard, ${fmt(c.dashboard / o.dashboard, 2)} for the dashboard alone, ${fmt(c.perViewer / o.perViewer, 2)} per extra viewer (${fmt(c.perViewer / c.three.shownFps / (o.perViewer / o.three.shownFps), 2)} per frame shown)`);
}

if (wanted('throttled')) {
  const throttled = await throttledRows();
  console.log('\n| size | CPU throttling | composited: frames shown per second | overlay |');
  console.log('|---|---|---|---|');
  for (const r of throttled) {
    console.log(`| ${r.size} | ${r.rate}x | ${fmt(r.composited.shownFps)} (${r.composited.compose}) | ${fmt(r.overlay.shownFps)} |`);
  }
}

if (wanted('capped')) {
  const why = cpuCapUnavailable();
  if (why) {
    console.log(`\nChromium under a CPU cap: skipped (${why})`);
  } else {
    const capped = await cappedRows();
    console.log('\n| size | Chromium capped at | path | frames shown per second (decoded) | dashboard glass to glass, median / p95 | CPU used |');
    console.log('|---|---|---|---|---|---|');
    for (const r of capped) {
      console.log(`| ${r.size} | ${r.share} core | ${r.path} (${r.compose}) | ${fmt(r.shownFps)} (${fmt(r.decodedFps)}) | ${fmt(r.g2g.median)} / ${fmt(r.g2g.p95)} ms | ${fmt(r.cpu * 100, 0)}% |`);
    }
  }
}
