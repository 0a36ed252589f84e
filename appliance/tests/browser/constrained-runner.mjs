// Runs inside the viewer's network namespace made by
// constrained-link.test.mjs. Starts mado in the appliance's namespace, opens
// the dashboard in Chromium here, shapes the appliance's side of the veth
// pair with tc, and prints one line: `MADO-LINK-RESULT {json}`.
//
// argv: APP_NETNS APP_DEV APP_ADDR CONFIG SOURCE
import { spawn, spawnSync } from 'node:child_process';

import { rmSync } from 'node:fs';
import { madoBin, launchBrowser, openDashboard, getStatus, sleep, waitFor, makeStateDir, rememberToken } from './lib.mjs';

const [appNs, appDev, appAddr, config, source] = process.argv.slice(2);
const PORT = 8080;
const CONSTRAINED_S = 30;
const RECOVERY_S = 15;
const result = { ok: false, samples: [] };

function tc(...args) {
  const r = spawnSync('ip', ['netns', 'exec', appNs, 'tc', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tc ${args.join(' ')}: ${r.stderr || r.error}`);
}

/** Whether this kernel has the netem qdisc (many container kernels lack it). */
function haveNetem() {
  const r = spawnSync('ip', ['netns', 'exec', appNs, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
  spawnSync('ip', ['netns', 'exec', appNs, 'tc', 'qdisc', 'del', 'dev', 'lo', 'root']);
  return r.status === 0;
}

/**
 * The appliance's outgoing link: a token bucket at `rate`, then 50 ms and 1%
 * loss with netem. Without netem the delay and loss are applied where the
 * packets arrive, by Chromium's own WebRTC network emulation (see below).
 */
function shape(rate, verb, netem) {
  tc('qdisc', verb, 'dev', appDev, 'root', 'handle', '1:', 'tbf', 'rate', rate, 'burst', '32kb', 'latency', '200ms');
  if (verb === 'add' && netem) tc('qdisc', 'add', 'dev', appDev, 'parent', '1:1', 'handle', '10:', 'netem', 'delay', '50ms', 'loss', '1%');
}

let mado;
let state;
let browser;
let log = '';
try {
  result.netem = haveNetem();
  shape('1mbit', 'add', result.netem);
  state = makeStateDir();
  mado = spawn('ip', ['netns', 'exec', appNs, madoBin, '--config', config, 'run', '--source', source,
    '--listen', `${appAddr}:${PORT}`, '--tls', 'off'],
  { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MADO_LOG: 'info', MADO_STATE_DIR: state.dir } });
  mado.stdout.on('data', (d) => (log += d));
  mado.stderr.on('data', (d) => (log += d));
  const base = `http://${appAddr}:${PORT}`;
  rememberToken(base, state.token);
  await waitFor(() => getStatus(base).then(() => true, () => false), { timeoutMs: 30_000, message: 'mado to answer' });
  // WebRTC's degraded-call emulation delays and drops incoming RTP and RTCP
  // before the receiver (and its congestion feedback) sees them.
  const emulate = ['--force-fieldtrials=WebRTC-FakeNetworkReceiveConfig/queue_delay_ms:50,loss_percent:1/'];
  browser = await launchBrowser({ extraArgs: result.netem ? [] : emulate });
  const page = await openDashboard(browser.context, `${base}/`, browser.context.pages()[0]);
  // Every presented frame's time, from the page's own clock.
  await page.evaluate(() => window.madoTest.recordPresented());
  await waitFor(() => page.evaluate(() => window.madoTest.presented().length > 0), { timeoutMs: 30_000, message: 'a first frame' });
  const first = await page.evaluate(() => performance.now());
  const sample = async (phase) => {
    const s = await getStatus(base);
    const v = await page.evaluate(() => window.madoTest.refresh());
    result.samples.push({ phase, t: Math.round((await page.evaluate(() => performance.now())) - first), sent: s.sent_kbps, encoded: s.bitrate_kbps,
      target: s.encoder.target_kbps, size: `${s.encoder.width}x${s.encoder.height}`, fps: s.encoder.fps,
      estimate: s.links[0]?.estimate_kbps, loss: s.links[0]?.loss,
      // The receiver's side: packets lost, NACKs and PLIs sent, keyframes and freezes seen.
      rx: { lost: v.packetsLost, decoded: v.framesDecoded, ...v.recovery } });
  };
  for (let i = 0; i < CONSTRAINED_S; i++) {
    await sleep(1000);
    await sample('1mbit');
  }
  shape('10mbit', 'change', result.netem);
  const lifted = await page.evaluate(() => performance.now());
  for (let i = 0; i < RECOVERY_S; i++) {
    await sleep(1000);
    await sample('10mbit');
  }
  const presented = await page.evaluate(() => window.madoTest.presented());
  // Longest wait between presented frames in the first 5 s (while the
  // congestion controller finds the link) and after, and every wait over
  // 400 ms with the time it ended (ms after the first frame).
  const longest = { start: 0, after: 0 };
  const gaps = [];
  const end = await page.evaluate(() => performance.now());
  for (const [i, t] of [...presented.slice(1), end].entries()) {
    const gap = t - presented[i];
    const phase = t - first <= 5000 ? 'start' : 'after';
    longest[phase] = Math.max(longest[phase], gap);
    if (gap > 400) gaps.push({ endedAtMs: Math.round(t - first), gapMs: Math.round(gap) });
  }
  Object.assign(result, {
    ok: true,
    frames: presented.length,
    longestStartGapMs: Math.round(longest.start),
    longestGapMs: Math.round(longest.after),
    gaps,
    liftedAtMs: Math.round(lifted - first),
  });
} catch (e) {
  result.error = e.stack || String(e);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (mado) mado.kill('SIGTERM');
  if (state) rmSync(state.dir, { recursive: true, force: true });
  result.madoLog = log.length > 8000 ? `${log.slice(0, 4000)}\n[…]\n${log.slice(-4000)}` : log;
  console.log(`MADO-LINK-RESULT ${JSON.stringify(result)}`);
}
