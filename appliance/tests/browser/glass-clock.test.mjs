// The dashboard's glass to glass stays true when the browser's clocks
// disagree. The device stamps capture_us on the wall clock; the page's
// frame times are on performance.now()'s monotonic clock. Taking
// `performance.timeOrigin + t` as the wall clock of `t` trusts a value fixed
// at page load, and a system clock being slewed after boot (5 ms a second on
// the test machine) moves the wall clock away from it: the figure falls by
// that much for every second the page is open, to below zero. Here the
// page's timeOrigin is set a second off, as a page open for about 200 s on
// that machine would see it, and the figure must still be a glass-to-glass
// time: above zero and well under a second, on both paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { startMado, launchBrowser, openDashboard, waitForDecoding, snap, sleep, log, quantile, latencySince } from './lib.mjs';

const SKEW_MS = 1000;

/** The dashboard's glass-to-glass samples over 3 s on a page whose timeOrigin is SKEW_MS behind. */
async function skewedGlass(browser, url) {
  const page = await browser.context.newPage();
  await page.addInitScript((skew) => {
    const origin = performance.timeOrigin - skew;
    Object.defineProperty(performance, 'timeOrigin', { get: () => origin, configurable: true });
  }, SKEW_MS);
  try {
    await openDashboard(browser.context, url, page);
    await waitForDecoding(page, { frames: 30 });
    const skewSeen = await page.evaluate(() => Date.now() - (performance.timeOrigin + performance.now()));
    const before = await snap(page);
    await sleep(3000);
    const after = await snap(page);
    return { skewSeen, samples: latencySince(before, after), compose: after.compose, glassSource: after.glassSource };
  } finally {
    await page.close();
  }
}

test('glass to glass ignores a drifted performance.timeOrigin, on both paths', { timeout: 90_000 }, async () => {
  const server = await startMado({ size: '320x240', fps: 30 });
  const browser = await launchBrowser();
  try {
    for (const [path, query] of [['composited', ''], ['overlay', '?compose=overlay']]) {
      const r = await skewedGlass(browser, `${server.baseUrl}/${query}`);
      const median = quantile(r.samples, 0.5);
      log(`${path}: timeOrigin ${r.skewSeen.toFixed(0)} ms behind the wall clock; glass to glass median ${median} ms over ${r.samples.length} frames (${r.glassSource})`);
      assert.equal(r.compose, path);
      assert.ok(r.skewSeen > SKEW_MS * 0.9, `the page's timeOrigin was not moved (${r.skewSeen} ms)`);
      assert.ok(r.samples.length >= 45, `${path}: only ${r.samples.length} glass-to-glass samples in 3 s`);
      assert.ok(median > 0 && median < 500, `${path}: glass to glass median ${median} ms with timeOrigin ${SKEW_MS} ms off: the page reads the wall clock from timeOrigin`);
    }
  } finally {
    await browser.close();
    await server.stop();
  }
});
