// Event clips in the dashboard: `mado run` on the test pattern with events
// on (the red target walking into a zone at the bottom makes an event every
// few seconds), one dashboard in headless Chromium. The event list shows the
// snapshot, class, time and duration; clicking an event plays its clip
// (WebM, AV1) and, for every frame the player draws, the frame number the
// test pattern spells on that picture must be the seq of the metadata drawn
// with it, and that metadata's box must lie on the red target: boxes on the
// frames they belong to, read from the clip's own frames.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startMadoWithEvents, launchBrowser, openDashboard, getJson, sleep, log } from './lib.mjs';

let server;
let browser;

before(async () => {
  server = await startMadoWithEvents({
    lines: ['[adapt]', 'enabled = false', '[encoder]', 'bitrate_kbps = 800'],
    eventLines: ['min_frames = 2', 'quiet_ms = 700', 'pre_roll_ms = 1000', 'post_roll_ms = 500'],
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a clip plays in the dashboard with each frame drawn with its own boxes', async () => {
  const deadline = Date.now() + 120_000;
  let event;
  while (!event) {
    const events = await getJson(server.baseUrl, '/api/events');
    event = events.find((e) => e.clip_ready && e.snapshot_ready && e.end_ms != null);
    if (!event) {
      assert.ok(Date.now() < deadline, `no complete event: ${JSON.stringify(events)}\n${server.tail()}`);
      await sleep(500);
    }
  }
  const index = await getJson(server.baseUrl, `/api/events/${event.id}/index.json`);
  const frames = index.frames.length;
  log(`event ${event.id}: ${frames} frames`);

  const page = await openDashboard(browser.context, `${server.baseUrl}/`);
  await page.evaluate(() => window.madoTest.checkClips());
  const item = page.locator(`#event-list li[data-id="${event.id}"]`);
  await item.waitFor({ timeout: 30_000 });
  // The list entry: its snapshot loaded, the class, and a duration.
  await page.waitForFunction(
    (id) => {
      const img = document.querySelector(`#event-list li[data-id="${id}"] img`);
      return img && img.complete && img.naturalWidth === 320;
    },
    event.id,
    { timeout: 15_000 },
  );
  const text = await item.innerText();
  assert.match(text, /target/);
  assert.match(text, /\d+\.\d s/);

  await item.click();
  await page.waitForFunction(() => document.getElementById('clip-video').ended, null, { timeout: 60_000 });
  const checks = await page.evaluate(() => window.madoTest.clipChecks());
  log(`${checks.length} frames drawn of ${frames}`);
  assert.ok(checks.length >= frames * 0.5, `only ${checks.length} of ${frames} frames drawn`);
  const wrong = checks.filter((c) => c.seq === null || c.shownSeq !== (c.seq & 0xffff) || !c.hit);
  assert.deepEqual(wrong, [], 'every drawn frame: its own metadata, the box on the target');
  assert.deepEqual(page.madoErrors.filter((e) => !/WebRTC|whep|ICE/i.test(e)), []);
});
