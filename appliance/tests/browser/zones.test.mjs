// Event zones edited on the dashboard: `mado run` on the test pattern with
// events on, one dashboard in headless Chromium. "Edit zones", corners added
// by clicking the live picture, the zone named and closed, saved: a zone the
// server refuses (a blank name) shows the server's message; the good one is
// stored, returned by GET /api/events/zones, and after a reload listed and
// drawn on the live picture (its outline's pixels on the canvas).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startMadoWithEvents, launchBrowser, openDashboard, getJson, waitForDecoding, waitFor, log } from './lib.mjs';

let server;
let browser;

before(async () => {
  server = await startMadoWithEvents();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

// The page point of normalized picture point (x, y): the picture's content
// box in its stage (the frame letterboxed, as compositor.js draws it).
async function pagePoint(page, x, y) {
  const box = await page.evaluate(() => {
    const stage = document.getElementById('stage');
    const r = stage.getBoundingClientRect();
    const fw = 320;
    const fh = 240;
    const cw = stage.clientWidth;
    const ch = stage.clientHeight;
    const scale = Math.min(cw / fw, ch / fh);
    return { left: r.left + stage.clientLeft + (cw - fw * scale) / 2, top: r.top + stage.clientTop + (ch - fh * scale) / 2, w: fw * scale, h: fh * scale };
  });
  return [box.left + x * box.w, box.top + y * box.h];
}

async function clickCorners(page, corners) {
  for (const [x, y] of corners) {
    const [px, py] = await pagePoint(page, x, y);
    await page.mouse.click(px, py);
  }
}

// Of `samples` points along the segment from a to b (normalized), how many
// have the zone colour on the live picture canvas within a pixel of the line.
function outlineHits(page, a, b, samples) {
  return page.evaluate(
    ({ a, b, samples }) => {
      const stage = document.getElementById('stage');
      const canvas = document.getElementById(stage.dataset.compose === 'composited' ? 'picture' : 'overlay');
      const ctx = canvas.getContext('2d');
      const dpr = canvas.width / canvas.clientWidth;
      const scale = Math.min(canvas.clientWidth / 320, canvas.clientHeight / 240);
      const cb = { x: (canvas.clientWidth - 320 * scale) / 2, y: (canvas.clientHeight - 240 * scale) / 2, w: 320 * scale, h: 240 * scale };
      let hits = 0;
      for (let i = 1; i <= samples; i++) {
        const t = i / (samples + 1);
        const x = Math.round((cb.x + (a[0] + (b[0] - a[0]) * t) * cb.w) * dpr);
        const y = Math.round((cb.y + (a[1] + (b[1] - a[1]) * t) * cb.h) * dpr);
        const d = ctx.getImageData(x - 1, y - 1, 3, 3).data;
        let hit = false;
        for (let p = 0; p < d.length; p += 4) {
          // rgb(255, 64, 160), allowing for antialiasing.
          if (d[p] > 200 && d[p + 1] < 130 && d[p + 2] > 110 && d[p + 2] < 210) hit = true;
        }
        if (hit) hits++;
      }
      return hits;
    },
    { a, b, samples },
  );
}

test('a zone drawn by clicking the picture is saved, refused with the server message when bad, and drawn after a reload', async () => {
  const page = await openDashboard(browser.context, `${server.baseUrl}/`);
  await waitForDecoding(page, { frames: 10 });
  await page.locator('#zones-edit').click();
  await page.locator('#zone-editor').waitFor({ state: 'visible' });

  // A blank name is the server's to refuse: its message is shown.
  await clickCorners(page, [
    [0.1, 0.1],
    [0.3, 0.1],
    [0.2, 0.3],
  ]);
  assert.equal(await page.locator('#zone-corners').textContent(), '3 corners');
  await page.locator('#zone-name').fill(' ');
  await page.locator('#zone-close').click();
  await page.locator('#zone-save').click();
  await page.waitForFunction(() => /needs a name/.test(document.getElementById('zone-error').textContent));
  log(`refused: ${await page.locator('#zone-error').textContent()}`);

  // Delete both (the config's floor and the blank one); draw "porch".
  for (const name of ['floor', ' ']) {
    await page.locator(`#zone-list li[data-name="${name}"] button`).click();
  }
  const corners = [
    [0.2, 0.3],
    [0.8, 0.3],
    [0.8, 0.7],
    [0.2, 0.7],
  ];
  await clickCorners(page, corners);
  await page.locator('#zone-name').fill('porch');
  await page.locator('#zone-close').click();
  await page.locator('#zone-save').click();
  await page.locator('#zone-editor').waitFor({ state: 'hidden' });

  const zones = await getJson(server.baseUrl, '/api/events/zones');
  assert.equal(zones.length, 1, JSON.stringify(zones));
  assert.equal(zones[0].name, 'porch');
  zones[0].points.forEach(([x, y], i) => {
    assert.ok(Math.abs(x - corners[i][0]) < 0.02 && Math.abs(y - corners[i][1]) < 0.02, `corner ${i}: ${x}, ${y}`);
  });

  await page.reload({ waitUntil: 'load' });
  await page.waitForFunction(() => !!window.madoTest, null, { timeout: 15_000 });
  await page.locator('#zone-list li[data-name="porch"]').waitFor({ timeout: 15_000 });
  assert.equal(await page.locator('#zone-list li').count(), 1);
  await waitForDecoding(page, { frames: 10 });
  const [p0, p1, p2, p3] = zones[0].points;
  const edges = [
    [p0, p1],
    [p1, p2],
    [p2, p3],
    [p3, p0],
  ];
  await waitFor(
    async () => {
      const hits = [];
      for (const [a, b] of edges) hits.push(await outlineHits(page, a, b, 20));
      log(`outline pixels per edge (of 20): ${hits.join(', ')}`);
      return hits.every((h) => h >= 16);
    },
    { timeoutMs: 20_000, intervalMs: 500, message: 'the zone outline on the live picture' },
  );
  // Inside the zone, away from its edges, the picture is not the outline colour.
  assert.ok((await outlineHits(page, [0.4, 0.5], [0.6, 0.5], 10)) < 5, 'the zone is an outline, not a fill');
  const errors = page.madoErrors.filter((e) => !/Failed to load resource.*400/.test(e));
  assert.deepEqual(errors, []);
});
