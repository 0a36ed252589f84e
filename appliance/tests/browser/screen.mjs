// What reaches the screen, measured on a real X server: Xvfb, a headful
// Chromium window showing the dashboard, and ffmpeg's x11grab recording the
// picture's rectangle of the screen losslessly at 60 fps. Each recorded
// screen frame is then judged on its pixels alone (../../web/check.js): the
// frame number the test pattern spells, the red target and the box drawn on
// it. Shared by screen.test.mjs and screen.bench.mjs.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { judgePicture } from '../../web/check.js';
import { startMado, launchBrowser, openDashboard, waitForDecoding, snap, sleep, log, quantile, latencySince } from './lib.mjs';

export const SCREEN = [1280, 800];
export const RECORD_FPS = 60;

function need(cmd, pkg) {
  const found = spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
  if (!found) throw new Error(`${cmd} not found: install Debian's ${pkg} (scripts/install-deps test)`);
}

/** Starts Xvfb on a free display number. Returns {display, stop()}. */
export async function startXvfb([w, h] = SCREEN) {
  need('Xvfb', 'xvfb');
  need('ffmpeg', 'ffmpeg');
  for (let n = 90; n < 140; n++) {
    if (existsSync(`/tmp/.X11-unix/X${n}`) || existsSync(`/tmp/.X${n}-lock`)) continue;
    const display = `:${n}`;
    const proc = spawn('Xvfb', [display, '-screen', '0', `${w}x${h}x24`, '-nolisten', 'tcp'], { stdio: 'ignore' });
    let exited = false;
    proc.once('exit', () => (exited = true));
    for (let i = 0; i < 50 && !exited && !existsSync(`/tmp/.X11-unix/X${n}`); i++) await sleep(100);
    if (exited) continue; // taken meanwhile
    const killOnExit = () => proc.kill('SIGKILL');
    process.once('exit', killOnExit);
    return {
      display,
      async stop() {
        process.removeListener('exit', killOnExit);
        if (exited) return;
        const done = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await done;
      },
    };
  }
  throw new Error('no free X display number between :90 and :139');
}

/**
 * The picture's rectangle on screen, in screen pixels (the window is at the
 * top left, no decorations, device pixel ratio 1), slightly inside the
 * letterboxed picture so no border pixel is grabbed.
 */
export async function pictureRect(page) {
  return page.evaluate(() => {
    const picture = document.getElementById('picture');
    const el = picture && getComputedStyle(picture).display !== 'none' ? picture : document.getElementById('video');
    const video = document.getElementById('video');
    const s = window.madoTest.snapshot();
    const fw = s.frameWidth || video.videoWidth;
    const fh = s.frameHeight || video.videoHeight;
    const r = el.getBoundingClientRect();
    const scale = Math.min(r.width / fw, r.height / fh);
    const w = fw * scale;
    const h = fh * scale;
    const x = r.x + (r.width - w) / 2;
    const y = r.y + (r.height - h) / 2;
    const even = (v) => v - (v % 2);
    const x0 = Math.ceil(x) + 1;
    const y0 = Math.ceil(y) + 1;
    return {
      x: x0,
      y: y0,
      w: even(Math.floor(x + w) - 1 - x0),
      h: even(Math.floor(y + h) - 1 - y0),
      sourceWidth: fw,
      sourceHeight: fh,
      path: el.id,
      dpr: devicePixelRatio,
    };
  });
}

/**
 * How the screen is recorded: `x264` (libx264rgb at qp 0, lossless, small
 * files, the encoder's CPU shared with Chromium and mado) or `raw` (the
 * grabbed pixels as they are, in a NUT file: mostly 6-19% of a core
 * against x264's 19-28% here, but 4 bytes a pixel, about 120 MB a second
 * for the 1280x720 picture's 936x524 on screen). MADO_SCREEN_RECORDER picks one; by
 * default raw where /dev/shm has room for it, else x264.
 */
export function recorderFor(rect, seconds) {
  const asked = process.env.MADO_SCREEN_RECORDER;
  if (asked === 'raw' || asked === 'x264') return { codec: asked, dir: asked === 'raw' ? rawDir(rect, seconds) || tmpdir() : tmpdir() };
  if (asked) throw new Error(`MADO_SCREEN_RECORDER=${asked}: choose raw or x264`);
  const dir = rawDir(rect, seconds);
  return dir ? { codec: 'raw', dir } : { codec: 'x264', dir: tmpdir() };
}

// /dev/shm when it has twice the raw recording's size free.
function rawDir(rect, seconds) {
  const bytes = rect.w * rect.h * 4 * RECORD_FPS * seconds;
  try {
    const fs = statfsSync('/dev/shm');
    return fs.bavail * fs.bsize > 2 * bytes ? '/dev/shm' : null;
  } catch {
    return null;
  }
}

/**
 * Records `rect` of the X display for `seconds` at 60 fps, lossless; `codec`
 * from recorderFor. x11grab stamps each grab with the wall-clock time it was
 * due (steps of 1/60 s from the first), so the stamps are the grab times
 * only while the recorder keeps up: `endedAt` (the wall clock when ffmpeg
 * exited) against the last stamp tells how far behind it ended.
 */
export async function record(display, rect, seconds, file, codec = 'x264') {
  const encode = codec === 'raw' ? ['-c:v', 'rawvideo', '-f', 'nut'] : ['-c:v', 'libx264rgb', '-qp', '0', '-preset', 'ultrafast', '-bf', '0'];
  const args = [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'x11grab', '-framerate', String(RECORD_FPS), '-draw_mouse', '0',
    '-video_size', `${rect.w}x${rect.h}`, '-t', String(seconds), '-i', `${display}+${rect.x},${rect.y}`,
    '-copyts',
    ...encode,
    file,
  ];
  // bash's `times` reports the CPU the recorder used (user and system).
  const proc = spawn('bash', ['-c', '"$@" </dev/null >/dev/null; rc=$?; times; exit $rc', 'record', 'ffmpeg', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  proc.stderr.on('data', (c) => (err += c));
  proc.stdout.on('data', (c) => (out += c));
  const code = await new Promise((r) => proc.once('exit', r));
  if (code !== 0) throw new Error(`ffmpeg x11grab failed (${code}): ${err.trim()}`);
  const children = out.trim().split('\n').pop().split(/\s+/);
  const secs = (t) => Number(t.match(/(\d+)m([\d.]+)s/)?.slice(1).reduce((m, s) => m * 60 + Number(s)));
  return { cpuSeconds: secs(children[0]) + secs(children[1]), endedAt: Date.now() };
}

/** Wall-clock time in ms each frame of `file` was due to be grabbed, in order. */
function frameTimes(file) {
  const out = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (out.status !== 0) throw new Error(`ffprobe failed: ${out.stderr}`);
  return out.stdout
    .trim()
    .split('\n')
    .map((l) => Number(l) * 1000)
    .sort((a, b) => a - b);
}

/**
 * Judges every frame of the recording: [{t, seq, red, box, iou}], `t` the
 * wall-clock time of the grab in ms.
 */
export async function analyse(file, rect) {
  const times = frameTimes(file);
  const proc = spawn('ffmpeg', ['-v', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgba', '-'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const size = rect.w * rect.h * 4;
  const frames = [];
  let buf = Buffer.alloc(0);
  for await (const chunk of proc.stdout) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= size) {
      const data = buf.subarray(0, size);
      const v = judgePicture(data, rect.w, rect.h, rect.sourceWidth);
      frames.push({ t: times[frames.length], ...v });
      buf = buf.subarray(size);
    }
  }
  return frames;
}

/** The share of frames showing both target and box whose box is on the target, with figures. */
export function boxVerdict(frames) {
  const both = frames.filter((f) => f.red && f.box);
  const hits = both.filter((f) => f.iou >= 0.5);
  const misses = both.filter((f) => f.iou < 0.5);
  return {
    recorded: frames.length,
    withTarget: frames.filter((f) => f.red).length,
    both: both.length,
    hits: hits.length,
    share: both.length ? hits.length / both.length : 0,
    firstMisses: misses.slice(0, 5).map((f) => ({ seq: f.seq, red: f.red, box: f.box, iou: +f.iou.toFixed(3) })),
  };
}

/**
 * True glass to glass: for each frame number, the first screen frame showing
 * it, against that frame's capture time from its metadata (`captures`:
 * seq -> capture_us, from the page). Same clock: loopback.
 */
export function glassToGlass(frames, captures) {
  const bySeq = new Map();
  for (const [seq, us] of Object.entries(captures)) bySeq.set(Number(BigInt(seq) & 0xffffn), us / 1000);
  const seen = new Set();
  const ms = [];
  for (const f of frames) {
    if (f.seq === null || seen.has(f.seq) || f.t === undefined) continue;
    seen.add(f.seq);
    const captured = bySeq.get(f.seq);
    if (captured !== undefined) ms.push(f.t - captured);
  }
  return { frames: ms.length, median: quantile(ms, 0.5), p95: quantile(ms, 0.95), samples: ms };
}

/**
 * One run: `mado run` on the test pattern at `size`, the dashboard (with
 * `query`) in a headful Chromium on a fresh Xvfb, `seconds` of the picture
 * recorded and analysed. Returns {rect, frames, verdict, g2g, page stats}.
 */
export async function screenRun({ size, seconds = 10, query = '', madoArgs = [], keep = false }) {
  let dir = null;
  const xvfb = await startXvfb();
  let server;
  let browser;
  try {
    server = await startMado({ size, fps: 30, extraArgs: madoArgs });
    browser = await launchBrowser({ display: xvfb.display, windowSize: SCREEN });
    const page = await openDashboard(browser.context, `${server.baseUrl}/${query}`, browser.context.pages()[0]);
    await waitForDecoding(page, { frames: 60, what: `the dashboard at ${size}` });
    await sleep(1500);
    const rect = await pictureRect(page);
    log(`recording ${seconds} s of the ${rect.path} at ${rect.w}x${rect.h}+${rect.x}+${rect.y} (${size})`);
    const before = await snap(page);
    const recorder = recorderFor(rect, seconds);
    dir = mkdtempSync(join(recorder.dir, 'mado-screen-'));
    const file = join(dir, recorder.codec === 'raw' ? 'screen.nut' : 'screen.mkv');
    const captures = {};
    let recording;
    const poll = setInterval(async () => {
      try {
        Object.assign(captures, await page.evaluate(() => (window.madoTest.captures ? window.madoTest.captures() : {})));
      } catch {
        // the page is busy or closing; the next poll gets them
      }
    }, 2000);
    try {
      recording = await record(xvfb.display, rect, seconds, file, recorder.codec);
    } finally {
      clearInterval(poll);
    }
    Object.assign(captures, await page.evaluate(() => (window.madoTest.captures ? window.madoTest.captures() : {})));
    const after = await snap(page);
    await browser.close();
    browser = null;
    await server.stop();
    server = null;
    const frames = await analyse(file, rect);
    const verdict = boxVerdict(frames);
    const g2g = glassToGlass(frames, captures);
    const dash = latencySince(before, after);
    return {
      size,
      rect,
      frames,
      verdict,
      g2g,
      dashboard: { median: quantile(dash, 0.5), p95: quantile(dash, 0.95), samples: dash.length },
      page: { compose: after.compose, glassSource: after.glassSource, decoded: after.framesDecoded - before.framesDecoded, dropped: after.framesDropped - before.framesDropped },
      recorder: { codec: recorder.codec, cpu: recording.cpuSeconds / seconds, behindMs: behind(recording.endedAt, frames) },
      file: keep ? file : null,
    };
  } finally {
    await browser?.close();
    await server?.stop();
    await xvfb.stop();
    if (dir && !keep) rmSync(dir, { recursive: true, force: true });
  }
}

// How far behind the recorder ended: ffmpeg's exit against the last grab's stamp.
function behind(endedAt, frames) {
  const last = frames.findLast((f) => f.t !== undefined);
  return last ? Math.round(endedAt - last.t) : null;
}

/**
 * The display path alone, without video: a page in the same window paints
 * Date.now() as 32 black or white blocks in every animation frame, and the
 * recording's grab times are compared with the times the screen shows. What
 * this measures (median, p95 in ms) is Chromium plus the X server (and the
 * recorder) on this machine, the same for any page. `[w, h]`: the canvas and
 * the recorded rectangle, a strip by default; at a video picture's size it
 * shows what that size costs the display path alone.
 */
export async function displayLag(seconds = 5, [w, h] = [640, 40]) {
  const rect = { x: 0, y: 0, w, h };
  const recorder = recorderFor(rect, seconds);
  const dir = mkdtempSync(join(recorder.dir, 'mado-screen-'));
  const xvfb = await startXvfb();
  let browser;
  try {
    browser = await launchBrowser({ display: xvfb.display, windowSize: SCREEN });
    const page = browser.context.pages()[0];
    // The clock's 32 bits in the top 40 rows; below them the whole canvas
    // changes colour every frame, so the compositor and the recorder move as
    // many pixels as a video picture of that size.
    // Each frame also adds a marker element, as the dashboard does, so
    // Chromium reports when that frame was presented (window.presented:
    // [painted clock, presented wall time] pairs): the lag splits into
    // Chromium's part and what the X server and the recorder add after it.
    await page.setContent(`<body style="margin:0;background:#000"><canvas id="c" width="${w}" height="${h}"></canvas>
    <div id="m" style="position:fixed;right:0;bottom:0;width:8px;height:12px;overflow:hidden;font:8px/12px monospace;color:rgba(0,0,0,0.01)"></div><script>
      const ctx = document.getElementById('c').getContext('2d');
      const box = document.getElementById('m');
      const marks = new Map();
      window.presented = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
          const m = marks.get(e.identifier);
          if (!m) continue;
          marks.delete(e.identifier);
          m.el.remove();
          if (e.presentationTime > 0) window.presented.push([m.t, Date.now() - (performance.now() - e.presentationTime)]);
        }
      }).observe({ type: 'element' });
      let n = 0;
      let k = 0;
      function paint() {
        requestAnimationFrame(paint);
        const t = Date.now() % 2 ** 32;
        const el = document.createElement('div');
        el.style.cssText = 'position:absolute;left:0;top:0';
        el.setAttribute('elementtiming', 'm' + ++k);
        el.textContent = '.';
        box.append(el);
        marks.set('m' + k, { t, el });
        n = (n + 1) % 64;
        ctx.fillStyle = 'rgb(' + n * 2 + ',' + (127 - n * 2) + ',64)';
        ctx.fillRect(0, 40, ${w}, ${Math.max(0, h - 40)});
        for (let i = 0; i < 32; i++) {
          ctx.fillStyle = Math.floor(t / 2 ** i) % 2 ? '#fff' : '#000';
          ctx.fillRect(i * 20, 0, 20, 40);
        }
      }
      paint();
    </script></body>`);
    await sleep(1000);
    const file = join(dir, recorder.codec === 'raw' ? 'clock.nut' : 'clock.mkv');
    await record(xvfb.display, rect, seconds, file, recorder.codec);
    const presentedAt = new Map(await page.evaluate(() => window.presented));
    await browser.close();
    browser = null;
    const times = frameTimes(file);
    const raw = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { maxBuffer: 1 << 30 });
    const size = rect.w * rect.h * 3;
    const lags = [];
    const afterPresented = [];
    const seen = new Set();
    for (let k = 0; (k + 1) * size <= raw.stdout.length && k < times.length; k++) {
      const d = raw.stdout.subarray(k * size, (k + 1) * size);
      let shown = 0;
      for (let i = 0; i < 32; i++) if (d[(20 * rect.w + i * 20 + 10) * 3] > 128) shown += 2 ** i;
      const grabbed = Math.round(times[k]) % 2 ** 32;
      lags.push(grabbed - shown);
      // The first screen frame showing each painted frame, against when
      // Chromium said that frame was presented.
      const presented = presentedAt.get(shown);
      if (presented !== undefined && !seen.has(shown)) {
        seen.add(shown);
        afterPresented.push(grabbed - (Math.round(presented) % 2 ** 32));
      }
    }
    const toPresented = [...presentedAt].map(([t, at]) => (at % 2 ** 32) - t);
    return {
      frames: lags.length,
      median: quantile(lags, 0.5),
      p95: quantile(lags, 0.95),
      // Page to presented, as Chromium reports it; presented to recorded.
      presented: { median: quantile(toPresented, 0.5), p95: quantile(toPresented, 0.95) },
      afterPresented: { frames: afterPresented.length, median: quantile(afterPresented, 0.5), p95: quantile(afterPresented, 0.95) },
    };
  } finally {
    await browser?.close();
    await xvfb.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
