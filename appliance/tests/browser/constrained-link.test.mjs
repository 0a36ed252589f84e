// The stream over a narrow, lossy link. Two network namespaces made here
// (appliance and viewer) are joined by a veth pair in the documentation
// range 198.51.100.0/24; the appliance's side is shaped with tc: a 1 Mbit/s
// token bucket, 50 ms delay and 1% loss. Chromium must keep decoding, the
// sent bitrate must settle below the cap, and when the cap lifts to
// 10 Mbit/s the bitrate must climb back within 15 s. The scenario itself
// runs in constrained-runner.mjs, inside the viewer's namespace.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { log, quantile, repoRoot } from './lib.mjs';

const APP = '198.51.100.1';
const VIEW = '198.51.100.2';
const CAP_KBPS = 1000;
const tag = `mado${process.pid}`;
const [appNs, viewNs, appDev, viewDev] = [`${tag}-app`, `${tag}-view`, `${tag}a`, `${tag}v`];
const runner = fileURLToPath(new URL('./constrained-runner.mjs', import.meta.url));
const footage = join(repoRoot, 'target', 'footage', 'vtest-640x480.y4m');

const ip = (...args) => spawnSync('ip', args, { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'mado-link-'));
let child = null;
after(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  ip('netns', 'del', appNs);
  ip('netns', 'del', viewNs);
  rmSync(dir, { recursive: true, force: true });
});

function setUpNamespaces() {
  for (const args of [
    ['netns', 'add', appNs],
    ['netns', 'add', viewNs],
    ['link', 'add', appDev, 'type', 'veth', 'peer', 'name', viewDev],
    ['link', 'set', appDev, 'netns', appNs],
    ['link', 'set', viewDev, 'netns', viewNs],
    ['-n', appNs, 'addr', 'add', `${APP}/24`, 'dev', appDev],
    ['-n', viewNs, 'addr', 'add', `${VIEW}/24`, 'dev', viewDev],
    ['-n', appNs, 'link', 'set', appDev, 'up'],
    ['-n', viewNs, 'link', 'set', viewDev, 'up'],
    ['-n', appNs, 'link', 'set', 'lo', 'up'],
    ['-n', viewNs, 'link', 'set', 'lo', 'up'],
  ]) {
    const r = ip(...args);
    assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr || r.error} (this test needs root for network namespaces and tc)`);
  }
}

test('over 1 Mbit/s with 50 ms delay and 1% loss the stream keeps playing, then climbs when the cap lifts', { timeout: 240_000 }, async () => {
  assert.ok(existsSync(footage), `${footage} is missing: run scripts/fetch-footage`);
  setUpNamespaces();
  const config = join(dir, 'mado.toml');
  writeFileSync(config, [
    '[encoder]',
    'bitrate_kbps = 3000', // the ceiling: well above the cap, so adaptation has work to do
    'min_quantizer = 0',
    '[live]',
    `announce = ["${APP}"]`,
  ].join('\n'));
  child = spawn('ip', ['netns', 'exec', viewNs, process.execPath, runner, appNs, appDev, APP, config, `file:${footage}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  await new Promise((resolve) => child.once('exit', resolve));
  const line = out.split('\n').find((l) => l.startsWith('MADO-LINK-RESULT '));
  assert.ok(line, `the runner printed no result.\nstdout:\n${out}\nstderr:\n${err}`);
  const r = JSON.parse(line.slice('MADO-LINK-RESULT '.length));
  assert.ok(r.ok, `the run failed: ${r.error}\nmado:\n${r.madoLog}\nstderr:\n${err}`);
  const brief = (s) => `${s.t}ms sent ${s.sent} encoded ${s.encoded} target ${s.target} ${s.size}@${s.fps} est ${s.estimate} loss ${s.loss} | rx ${JSON.stringify(s.rx)}`;
  log('samples:\n' + r.samples.map(brief).join('\n'));

  const constrained = r.samples.filter((s) => s.phase === '1mbit');
  const settled = quantile(constrained.slice(-10).map((s) => s.sent), 0.5);
  const recovered = Math.max(...r.samples.filter((s) => s.phase === '10mbit').map((s) => s.sent));
  log(`frames ${r.frames}, longest gap ${r.longestStartGapMs} ms in the first 5 s and ${r.longestGapMs} ms after, settled ${settled} kbps, after the lift up to ${recovered} kbps; netem ${r.netem}`);
  log(`gaps over 400 ms (ended at, ms after the first frame; the cap lifted at ${r.liftedAtMs}): ${JSON.stringify(r.gaps)}`);
  if (r.longestGapMs > 1000 || r.longestStartGapMs > 2000) log(`mado's log:\n${r.madoLog}`);
  // While the congestion controller finds the link, its first probes (short
  // bursts a token bucket lets through whole) overrate it and the queue
  // overflows once: a stutter of 0.5 to 1.5 s (measured on a loaded machine),
  // repaired by resends.
  // A join that froze until the next keyframe (2 to 4 s) fails here.
  assert.ok(r.longestStartGapMs <= 2000, `the picture froze for ${r.longestStartGapMs} ms in the first 5 s`);
  assert.ok(r.longestGapMs <= 1000, `the picture froze for ${r.longestGapMs} ms`);
  assert.ok(settled < CAP_KBPS, `the sent bitrate settled at ${settled} kbps, above the ${CAP_KBPS} kbps cap`);
  assert.ok(
    recovered > Math.max(1.5 * settled, CAP_KBPS),
    `15 s after the cap lifted the bitrate reached only ${recovered} kbps (settled at ${settled})`,
  );
});
