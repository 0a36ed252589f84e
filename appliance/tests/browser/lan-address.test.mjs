// The dashboard opened by a LAN address over plain HTTP, which makes the page
// an insecure context. A private network namespace (unshare -n, as root)
// holds a veth pair with 198.51.100.1/24 and 198.51.100.2/24 (documentation
// range): nothing leaves the namespace. The server and Chromium both run in
// it, driven by lan-runner.mjs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { log } from './lib.mjs';

const HOST = '198.51.100.1';
const runner = fileURLToPath(new URL('./lan-runner.mjs', import.meta.url));

const setup = [
  'set -e',
  'ip link set lo up',
  'ip link add mado-lan0 type veth peer name mado-lan1',
  `ip addr add ${HOST}/24 dev mado-lan0`,
  'ip addr add 198.51.100.2/24 dev mado-lan1',
  'ip link set mado-lan0 up',
  'ip link set mado-lan1 up',
  `exec "$0" "$1" ${HOST}`,
].join('\n');

let child = null;
after(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
});

test('dashboard works from a LAN address over plain HTTP (insecure context)', { timeout: 180_000 }, async () => {
  const probe = spawnSync('unshare', ['-n', 'true'], { encoding: 'utf8' });
  assert.ok(
    probe.status === 0,
    `this test needs \`unshare -n\` (root, or CAP_SYS_ADMIN) to make a private network namespace; ` +
      `\`unshare -n true\` failed: ${probe.error ? probe.error.message : (probe.stderr || '').trim() || `status ${probe.status}`}`,
  );

  child = spawn('unshare', ['-n', 'sh', '-c', setup, process.execPath, runner], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: process.env,
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  const line = out.split('\n').find((l) => l.startsWith('MADO-LAN-RESULT '));
  assert.ok(line, `lan-runner printed no result (exit ${code}).\nstdout:\n${out}\nstderr:\n${err}`);
  const r = JSON.parse(line.slice('MADO-LAN-RESULT '.length));
  const { serverLog, ...brief } = r;
  log('in-namespace result:', JSON.stringify(brief));
  assert.ok(r.ok, `the in-namespace run failed: ${r.error}\nserver log:\n${serverLog || ''}\nstderr:\n${err}`);
  assert.equal(r.isSecureContext, false, `a page from http://${HOST}/ should not be a secure context`);
  assert.ok(!r.waitError, `${r.waitError}: ${JSON.stringify(brief)}`);
  assert.ok(r.framesDecoded > 30, `only ${r.framesDecoded} frames decoded from ${r.url}`);
  assert.ok(r.shownFramesWithMeta > 0, `no displayed frame had metadata (transform: ${r.transformApi}, ${r.transformFramesWithMeta} frames with metadata)`);
  assert.equal(r.metaDecodeErrors, 0, 'metadata decode errors');
  assert.equal(r.latencyMode, 'estimate', 'latency over a LAN address must be labelled an estimate');
  assert.deepEqual(r.pageErrors, [], 'the page logged errors');
});
