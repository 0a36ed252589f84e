// The dashboard recovers by itself: a viewer refused by the viewer limit (503)
// gets in once a place is free, and a viewer whose server restarts comes back.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';

import { startMado, launchBrowser, openDashboard, snap, waitForDecoding, waitFor, getStatus, sleep, log } from './lib.mjs';

let server;
let browser;

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a viewer refused at the viewer limit gets in when a place frees up', { timeout: 120_000 }, async () => {
  server = await startMado({ size: '320x240', maxViewers: 1 });
  browser = await launchBrowser();
  const first = await openDashboard(browser.context, `${server.baseUrl}/`, browser.context.pages()[0]);
  await waitForDecoding(first, { what: 'the first viewer' });
  const second = await openDashboard(browser.context, `${server.baseUrl}/`);
  const refused = await waitFor(async () => {
    const s = await snap(second);
    return s.state === 'full' ? s : null;
  }, { timeoutMs: 15_000, message: 'the second viewer to be refused with 503 (state "full")' });
  log(`second viewer refused: ${refused.stateDetail}`);
  assert.equal((await getStatus(server.baseUrl)).viewers, 1, 'the server should count one viewer');

  await first.close({ runBeforeUnload: true });
  const t0 = Date.now();
  const s = await waitForDecoding(second, { frames: 30, timeoutMs: 30_000, what: 'the second viewer after the first left' });
  log(`second viewer decodes ${((Date.now() - t0) / 1000).toFixed(1)} s after the first left (${s.reconnects} attempts)`);
  await second.close();
  await browser.close();
  browser = null;
  await server.stop();
  server = null;
});

test('a viewer reconnects after the server restarts', { timeout: 150_000 }, async () => {
  server = await startMado({ size: '320x240' });
  const { port, udpPort } = server;
  browser = await launchBrowser();
  const page = await openDashboard(browser.context, `${server.baseUrl}/`, browser.context.pages()[0]);
  await waitForDecoding(page, { what: 'the viewer' });
  const before = await snap(page);

  // The restart keeps the state directory, as a device's does: the page's
  // session survives it.
  const { state } = server;
  server.keepState = true;
  await server.stop();
  await sleep(1000);
  const t0 = Date.now();
  server = await startMado({ size: '320x240', port, udpPort, state });
  const back = await waitFor(async () => {
    const s = await snap(page);
    return s.reconnects > before.reconnects && s.connectionState === 'connected' && s.framesDecoded >= 30 ? s : null;
  }, { timeoutMs: 60_000, intervalMs: 500, message: 'the viewer to reconnect and decode after the restart' });
  log(`viewer decodes again ${((Date.now() - t0) / 1000).toFixed(1)} s after the server came back (${back.reconnects} reconnect attempts)`);
  assert.equal(back.metaDecodeErrors, 0, 'metadata decode errors');
  await sleep(2000);
  const later = await snap(page);
  assert.ok(later.shownFramesWithMeta - back.shownFramesWithMeta >= 20,
    `after reconnecting, frames shown with their metadata grew only by ${later.shownFramesWithMeta - back.shownFramesWithMeta} in 2 s`);
  const st = await getStatus(server.baseUrl);
  assert.equal(st.viewers, 1, `the restarted server should count one viewer, not ${st.viewers}`);
});
