// Shared helpers of the Chromium end-to-end tests: start the real `mado`
// server, launch headless Chromium, open dashboards and read their test hooks.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const madoBin = process.env.MADO_BIN || join(repoRoot, 'target', 'debug', 'mado');
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
export const vectorsPath = join(repoRoot, 'docs', 'metadata-vectors.json');

/** The password every test server gets (see makeStateDir). */
export const PASSWORD = 'mado-test-password';

/** API tokens of the servers started here, by base URL, for getStatus. */
const tokens = new Map();

/**
 * A state directory with the known PASSWORD and an API token, made with the
 * real `mado auth` commands. Returns {dir, token}. ONE place that knows how
 * tests log in: startMado uses it, openDashboard logs the page in.
 */
export function makeStateDir() {
  checkBinary();
  const dir = mkdtempSync(join(tmpdir(), 'mado-state-'));
  const set = spawnSync(madoBin, ['--state-dir', dir, 'auth', 'set-password'], { input: `${PASSWORD}\n`, encoding: 'utf8' });
  if (set.status !== 0) throw new Error(`mado auth set-password failed: ${set.stderr}`);
  const made = spawnSync(madoBin, ['--state-dir', dir, 'auth', 'token', 'create', 'tests'], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`mado auth token create failed: ${made.stderr}`);
  return { dir, token: made.stdout.trim() };
}

/** For a server started without startMado: getStatus and authHeaders send `token` to `baseUrl`. */
export function rememberToken(baseUrl, token) {
  tokens.set(new URL(baseUrl).origin, token);
}

/** Headers that authorize a request to `baseUrl` (a server from startMado). */
export function authHeaders(baseUrl) {
  const token = tokens.get(new URL(baseUrl).origin);
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * Logs a browser context in at `baseUrl` with the password: the session
 * cookie lands in the context, so its pages open the dashboard directly.
 */
export async function login(context, baseUrl, password = PASSWORD) {
  const res = await context.request.post(new URL('/api/login', baseUrl).href, { data: { password } });
  if (res.status() !== 204) throw new Error(`POST /api/login at ${baseUrl}: ${res.status()} ${await res.text()}`);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function log(...args) {
  console.log('[e2e]', ...args);
}

/** A TCP port that was free a moment ago on `host`. */
export function freeTcpPort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A UDP port that was free a moment ago on `host`. */
export function freeUdpPort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    sock.once('error', reject);
    sock.bind(0, host, () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

// Servers still running, killed if this process is told to stop.
const running = new Set();
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const proc of running) proc.kill('SIGKILL');
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  });
}

let helpChecked = false;
function checkBinary() {
  if (helpChecked) return;
  if (!existsSync(madoBin)) {
    throw new Error(`mado binary not found at ${madoBin}: run \`cargo build -p mado\` or set MADO_BIN`);
  }
  const help = spawnSync(madoBin, ['run', '--help'], { encoding: 'utf8' });
  const text = `${help.stdout}${help.stderr}`;
  if (!text.includes('--listen')) {
    throw new Error(`\`${madoBin} run --help\` does not list --listen; this build has no live server:\n${text}`);
  }
  helpChecked = true;
}

/**
 * Starts `mado run` (on the test pattern unless `source` says otherwise) and
 * waits until /api/status answers.
 * Returns {proc, pid, baseUrl, port, udpPort, logs(), stop()}.
 */
export async function startMado({
  source = 'testpattern',
  size = '640x480',
  fps = 30,
  host = '127.0.0.1',
  maxViewers,
  port = 0,
  udpPort = 0,
  extraArgs = [],
  timeoutMs = 60_000,
  state = null,
  tls = false,
} = {}) {
  checkBinary();
  // A fresh state directory unless one is passed (a restart keeps its sessions).
  const ownState = !state;
  state = state || makeStateDir();
  port = port || (await freeTcpPort(host));
  udpPort = udpPort || (await freeUdpPort(host));
  const args = [
    'run',
    '--source', source,
    '--size', size,
    '--fps', String(fps),
    '--listen', `${host}:${port}`,
    '--udp-port', String(udpPort),
  ];
  if (maxViewers !== undefined) args.push('--max-viewers', String(maxViewers));
  if (tls) args.push('--tls', 'on');
  args.push(...extraArgs);
  const proc = spawn(madoBin, args, {
    env: { ...process.env, MADO_LOG: process.env.MADO_LOG || 'info', MADO_STATE_DIR: state.dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 400_000) output = output.slice(-200_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  running.add(proc);
  const exitPromise = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      exited = { code, signal };
      running.delete(proc);
      resolve(exited);
    });
  });
  const killOnExit = () => {
    if (!exited) proc.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  const baseUrl = `${tls ? 'https' : 'http'}://${hostInUrl}:${port}`;
  tokens.set(new URL(baseUrl).origin, state.token);
  const server = {
    proc,
    state,
    pid: proc.pid,
    baseUrl,
    port,
    udpPort,
    args,
    logs: () => output,
    tail: (n = 40) => output.trim().split('\n').slice(-n).join('\n'),
    exited: () => exited,
    async stop() {
      process.removeListener('exit', killOnExit);
      if (exited) return exited;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => !exited && proc.kill('SIGKILL'), 5000);
      const result = await exitPromise;
      clearTimeout(timer);
      if (ownState && !server.keepState) rmSync(state.dir, { recursive: true, force: true });
      return result;
    },
  };

  const deadline = Date.now() + timeoutMs;
  let lastError = null;
  while (Date.now() < deadline) {
    if (exited) {
      throw new Error(`mado exited (${JSON.stringify(exited)}) before serving /api/status; args: ${args.join(' ')}\n${server.tail()}`);
    }
    try {
      const res = tls
        ? await httpsGet(`${baseUrl}/api/status`, readFileSync(join(state.dir, 'tls-cert.pem')), authHeaders(baseUrl))
        : await fetch(`${baseUrl}/api/status`, { headers: authHeaders(baseUrl), signal: AbortSignal.timeout(2000) });
      if (res.ok) {
        await res.json();
        log(`mado started: ${args.join(' ')} (pid ${proc.pid})`);
        return server;
      }
      lastError = `status ${res.status}`;
    } catch (e) {
      lastError = e.message;
    }
    await sleep(250);
  }
  await server.stop();
  throw new Error(`mado did not answer GET /api/status within ${timeoutMs / 1000} s (${lastError})\n${server.tail()}`);
}

/**
 * `mado run` on the test pattern at 320x240 with events on: the TOML
 * `lines` first, then `[events]` for the test pattern's red target with
 * `eventLines` and a clip directory in a scratch directory, and a zone
 * `floor` along the bottom of the picture, where the target walks.
 * `stop()` removes the scratch directory too.
 */
export async function startMadoWithEvents({ lines = [], eventLines = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mado-events-'));
  const config = join(dir, 'mado.toml');
  writeFileSync(
    config,
    [
      ...lines,
      '[events]',
      'enabled = true',
      'classes = ["target"]',
      ...eventLines,
      `clip_dir = ${JSON.stringify(join(dir, 'clips'))}`,
      '[[events.zones]]',
      'name = "floor"',
      'points = [[0, 0.85], [1, 0.85], [1, 1], [0, 1]]',
      '',
    ].join('\n'),
  );
  const server = await startMado({ size: '320x240', extraArgs: ['--config', config] }).catch((e) => {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  const stop = server.stop;
  server.stop = async () => {
    try {
      return await stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  return server;
}

/**
 * GET over HTTPS trusting only `ca` (a PEM certificate), as node's fetch
 * cannot; resolves to {ok, status, json()}.
 */
export function httpsGet(url, ca, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, headers, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ ok: res.statusCode >= 200 && res.statusCode < 300, status: res.statusCode, json: async () => JSON.parse(body) }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** GET `path` from the device as JSON (every test request to the API goes through here or getStatus). */
export async function getJson(baseUrl, path) {
  const res = await fetch(`${baseUrl}${path}`, { cache: 'no-store', headers: authHeaders(baseUrl), signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return res.json();
}

export async function getStatus(baseUrl) {
  const res = await fetch(`${baseUrl}/api/status`, { cache: 'no-store', headers: authHeaders(baseUrl), signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET /api/status: ${res.status}`);
  return res.json();
}

export const chromiumArgs = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
  '--use-fake-ui-for-media-stream',
  // Chromium names the decoder (inbound-rtp decoderImplementation) only while
  // the page captures media; madoTest.revealDecoder() briefly captures the
  // fake microphone for that.
  '--use-fake-device-for-media-stream',
  // Several dashboards at once in one browser: keep every page rendering.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/**
 * Chromium with a fresh profile: headless, or with `display` (an X display
 * such as ':99') a real window of `windowSize` [w, h] at the screen's top
 * left, with no browser chrome. Returns {context, close()}.
 */
export async function launchBrowser({ extraArgs = [], display = null, windowSize = [1280, 800] } = {}) {
  if (!existsSync(chromiumPath)) throw new Error(`Chromium not found at ${chromiumPath} (set CHROMIUM)`);
  const userDataDir = mkdtempSync(join(tmpdir(), 'mado-chromium-'));
  const [ww, wh] = windowSize;
  const windowed = display
    ? { headless: false, env: { ...process.env, DISPLAY: display }, viewport: null }
    : { headless: true, viewport: { width: ww, height: wh } };
  const args = display
    ? [...chromiumArgs.filter((a) => a !== '--headless=new'), '--kiosk', '--window-position=0,0', `--window-size=${ww},${wh}`]
    : chromiumArgs;
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    ...windowed,
    args: [...args, ...extraArgs],
  });
  return {
    context,
    userDataDir,
    async close() {
      try {
        await context.close();
      } finally {
        rmSync(userDataDir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Opens the dashboard in a page (reusing `page` when given), logged in with
 * the test password unless `{ login: false }`, and records the page's
 * console errors and uncaught exceptions in page.madoErrors.
 */
export async function openDashboard(context, url, page = null, { login: logIn = true } = {}) {
  const p = page || (await context.newPage());
  if (logIn) await login(context, url);
  if (!p.madoHooks) {
    // The dashboard's test hooks (window.madoTest) are a module the page
    // never loads by itself; add it to every document this page loads,
    // reloads included.
    await p.addInitScript(() => {
      document.addEventListener('DOMContentLoaded', () => {
        const s = document.createElement('script');
        s.type = 'module';
        s.src = '/test-hooks.js';
        document.head.append(s);
      });
    });
    p.madoHooks = true;
  }
  p.madoErrors = [];
  p.on('pageerror', (e) => p.madoErrors.push(`pageerror: ${e.message}`));
  p.on('console', (m) => {
    if (m.type() === 'error') p.madoErrors.push(`console.error: ${m.text()}`);
  });
  await p.goto(url, { waitUntil: 'load' });
  await p.waitForFunction(() => !!window.madoTest, null, { timeout: 15_000 });
  return p;
}

/** Fresh snapshot (getStats polled now) of the dashboard's test hooks. */
export function snap(page) {
  return page.evaluate(() => window.madoTest.refresh());
}

/** The glass-to-glass samples the dashboard took between two snapshots (of the last 300 the page keeps). */
export function latencySince(before, after) {
  const n = Math.min(after.latencyMs.length, after.latencyCount - before.latencyCount);
  return n > 0 ? after.latencyMs.slice(-n) : [];
}

/** Polls `fn` until it returns a truthy value; throws `message` on timeout. */
export async function waitFor(fn, { timeoutMs = 30_000, intervalMs = 250, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${message}`);
}

/** Waits until the page decodes at least `frames` frames; returns the snapshot. */
export async function waitForDecoding(page, { frames = 30, timeoutMs = 45_000, what = 'page' } = {}) {
  let last = null;
  try {
    return await waitFor(
      async () => {
        last = await snap(page);
        return last.framesDecoded >= frames ? last : null;
      },
      { timeoutMs, intervalMs: 500, message: `${what} to decode ${frames} frames` },
    );
  } catch (e) {
    const brief = last && {
      state: last.state,
      stateDetail: last.stateDetail,
      connectionState: last.connectionState,
      iceConnectionState: last.iceConnectionState,
      framesReceived: last.framesReceived,
      framesDecoded: last.framesDecoded,
      codec: last.codec,
      transformFrames: last.transformFrames,
      errors: page.madoErrors,
    };
    e.message += `; last snapshot: ${JSON.stringify(brief)}`;
    throw e;
  }
}

export function quantile(values, q) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export function readVectors() {
  return JSON.parse(readFileSync(vectorsPath, 'utf8'));
}

/** CPU time (user + system) of a process in seconds, from /proc/<pid>/stat. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / clockTicks();
}

/** CPU seconds per thread name (comm) of a process, from /proc/<pid>/task/<tid>/stat. */
export function cpuSecondsByThread(pid) {
  const out = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out[name] = (out[name] || 0) + (Number(fields[11]) + Number(fields[12])) / clockTicks();
  }
  return out;
}

let ticks = null;
function clockTicks() {
  if (ticks === null) {
    const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    ticks = Number(out.stdout.trim()) || 100;
  }
  return ticks;
}

/** Pids of a process and all its descendants, from /proc. */
export function processTree(rootPid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  const out = [];
  const todo = [rootPid];
  while (todo.length) {
    const pid = todo.pop();
    out.push(pid);
    todo.push(...(children.get(pid) || []));
  }
  return out;
}

/** The pid of the Chromium browser process using `userDataDir`; throws when there is none. */
export function chromiumPid(userDataDir) {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (cmd.includes(`--user-data-dir=${userDataDir}`) && !cmd.some((a) => a.startsWith('--type='))) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no Chromium browser process with --user-data-dir=${userDataDir}`);
}

/** CPU seconds of a process tree (processes that already ended are not counted). */
export function treeCpuSeconds(rootPid) {
  let sum = 0;
  for (const pid of processTree(rootPid)) {
    try {
      sum += cpuSeconds(pid);
    } catch {
      // ended meanwhile
    }
  }
  return sum;
}
