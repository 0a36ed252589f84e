// The dashboard and /api/status agree on field names: a real `mado run`
// serves every field the dashboard reads (status-fields.js), and the
// dashboard, watched while it renders, reads no field the device lacks and
// none missing from that list. A rename on either side fails here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { STATUS_FIELDS } from '../../web/status-fields.js';
import { startMado, launchBrowser, openDashboard, waitForDecoding, getStatus, sleep, log } from './lib.mjs';

let server;
let browser;

before(async () => {
  server = await startMado({ size: '320x240', fps: 30 });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

function has(obj, path) {
  let cur = obj;
  for (const key of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || !(key in cur)) return false;
    cur = cur[key];
  }
  return true;
}

test('every /api/status field the dashboard reads is served, under the same name', { timeout: 90_000 }, async () => {
  const page = await openDashboard(browser.context, `${server.baseUrl}/`, browser.context.pages()[0]);
  await waitForDecoding(page, { frames: 30 });
  await page.evaluate(() => window.madoTest.watchStatusReads());
  await sleep(3500); // three polls and renders
  const reads = await page.evaluate(() => window.madoTest.statusReads());
  const served = await getStatus(server.baseUrl);
  log('dashboard reads:', reads.read.join(' '));

  const unserved = STATUS_FIELDS.filter((f) => !has(served, f));
  assert.deepEqual(unserved, [], `mado run does not serve these fields the dashboard reads; it serves ${JSON.stringify(Object.keys(served))}`);
  assert.deepEqual(reads.missing, [], 'the dashboard read fields the device does not serve');
  const listed = new Set(STATUS_FIELDS.flatMap((f) => f.split('.').map((_, i, parts) => parts.slice(0, i + 1).join('.'))));
  const unlisted = reads.read.filter((f) => !listed.has(f));
  assert.deepEqual(unlisted, [], 'the dashboard reads fields not in status-fields.js');
  const leaves = new Set(reads.read);
  assert.ok(['source', 'viewers', 'server_time_us', 'encoder.backend'].every((f) => leaves.has(f)), `the watch saw too little: ${reads.read}`);
});
