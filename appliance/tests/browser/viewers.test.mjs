// Eight dashboards on one server: all decode; reloading one and closing
// another disturbs none of the others, the reloaded one comes back, and the
// server's viewer count follows. On loopback no link is narrow, so every
// viewer that stays must get the full frame rate: none may be left on the
// base layer (half the frames) after a momentary dip, which is what this
// test once showed for one page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startMado, launchBrowser, openDashboard, snap, waitForDecoding, getStatus, waitFor, sleep, log } from './lib.mjs';

const FPS = 30;
const PAGES = 8;
const WINDOW_S = 5;

let server;
let browser;
const pages = [];

before(async () => {
  server = await startMado({ size: '320x240', fps: FPS });
  browser = await launchBrowser();
});

after(async () => {
  for (const [i, p] of pages.entries()) if (p.madoErrors?.length) log(`page ${i} errors:`, p.madoErrors);
  await browser?.close();
  const exit = await server?.stop();
  if (server) log('mado exit:', JSON.stringify(exit));
});

test(`${PAGES} viewers; one reloads, one leaves, the others keep playing`, { timeout: 240_000 }, async () => {
  const url = `${server.baseUrl}/`;
  for (let i = 0; i < PAGES; i++) {
    pages.push(await openDashboard(browser.context, url, i === 0 ? browser.context.pages()[0] : null));
  }
  for (const [i, p] of pages.entries()) await waitForDecoding(p, { frames: 30, timeoutMs: 60_000, what: `page ${i}` });
  // Every page is still making progress.
  const s1 = await Promise.all(pages.map(snap));
  await sleep(1500);
  const s2 = await Promise.all(pages.map(snap));
  s2.forEach((s, i) =>
    assert.ok(s.framesDecoded > s1[i].framesDecoded, `page ${i} stopped decoding (${s1[i].framesDecoded} -> ${s.framesDecoded})`));
  const full = await waitFor(async () => {
    const st = await getStatus(server.baseUrl);
    return st.viewers === PAGES ? st : null;
  }, { timeoutMs: 10_000, message: `/api/status to report ${PAGES} viewers` }).catch(async (e) => {
    throw new Error(`${e.message}; it reports ${(await getStatus(server.baseUrl)).viewers}`);
  });
  log(`all ${PAGES} pages decode; server reports ${full.viewers} viewers of ${full.max_viewers}`);

  const reloaded = pages[0];
  const closed = pages[1];
  const untouched = pages.slice(2);
  const before = await Promise.all(untouched.map(snap));
  const t0 = Date.now();
  // The server's viewer count, sampled while the others are measured.
  const counts = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      try {
        const st = await getStatus(server.baseUrl);
        const last = counts.at(-1);
        if (!last || last.viewers !== st.viewers) counts.push({ atS: +((Date.now() - t0) / 1000).toFixed(2), viewers: st.viewers });
      } catch (e) {
        counts.push({ atS: +((Date.now() - t0) / 1000).toFixed(2), error: e.message });
      }
      await sleep(200);
    }
  })();
  await Promise.all([reloaded.reload({ waitUntil: 'load' }), closed.close({ runBeforeUnload: true })]);
  const waitMs = WINDOW_S * 1000 - (Date.now() - t0);
  if (waitMs > 0) await sleep(waitMs);
  const afterSnaps = await Promise.all(untouched.map(snap));
  polling = false;
  await poller;
  log('viewer count changes after the reload and close (s: viewers):', JSON.stringify(counts));
  const links = (await getStatus(server.baseUrl)).links;
  log('links after the reload and close:', JSON.stringify(links));
  // Full rate: the base layer alone would be half of it.
  const minDecoded = WINDOW_S * FPS * 0.85;
  const rows = afterSnaps.map((s, i) => ({
    page: i + 2,
    decoded: s.framesDecoded - before[i].framesDecoded,
    dropped: s.framesDropped - before[i].framesDropped,
    reconnects: s.reconnects - before[i].reconnects,
  }));
  log(`over ${((Date.now() - t0) / 1000).toFixed(1)} s after the reload and close:`, JSON.stringify(rows));
  for (const r of rows) {
    assert.ok(r.decoded >= minDecoded, `page ${r.page} decoded only ${r.decoded} frames in ${WINDOW_S} s (need ${minDecoded})`);
    assert.equal(r.dropped, 0, `page ${r.page} dropped ${r.dropped} frames`);
    assert.equal(r.reconnects, 0, `page ${r.page} had to reconnect`);
  }

  await reloaded.waitForFunction(() => !!window.madoTest, null, { timeout: 15_000 });
  const back = await waitForDecoding(reloaded, { frames: 30, timeoutMs: 30_000, what: 'the reloaded page' });
  log(`reloaded page decodes again: ${back.framesDecoded} frames`);

  const expected = PAGES - 1;
  let lastViewers;
  const t1 = Date.now();
  await waitFor(async () => {
    lastViewers = (await getStatus(server.baseUrl)).viewers;
    return lastViewers === expected;
  }, { timeoutMs: 15_000, intervalMs: 250, message: `/api/status viewers to drop to ${expected}` }).catch((e) => {
    throw new Error(`${e.message}; it still reports ${lastViewers}`);
  });
  log(`server reports ${expected} viewers ${((Date.now() - t0) / 1000).toFixed(1)} s after the close (checked ${((Date.now() - t1) / 1000).toFixed(1)} s after recovery)`);

  // Every viewer that stays, the reloaded one too, gets every frame: the
  // server has none on the base layer.
  let lastLinks;
  await waitFor(async () => {
    lastLinks = (await getStatus(server.baseUrl)).links;
    return lastLinks.length === expected && lastLinks.every((l) => !l.base_only);
  }, { timeoutMs: 15_000, intervalMs: 500, message: `all ${expected} viewers on every frame` }).catch((e) => {
    throw new Error(`${e.message}; links: ${JSON.stringify(lastLinks)}`);
  });
  const final = await Promise.all(pages.filter((p) => p !== closed).map(snap));
  await sleep(2000);
  const final2 = await Promise.all(pages.filter((p) => p !== closed).map(snap));
  const rates = final2.map((s, i) => (s.framesDecoded - final[i].framesDecoded) / 2);
  log('frames per second per page at the end:', JSON.stringify(rates));
  rates.forEach((r, i) => assert.ok(r >= FPS * 0.85, `page ${i} decodes ${r} frames a second at the end`));

  pages.splice(1, 1); // the closed one
  for (const [i, p] of pages.entries()) assert.deepEqual(p.madoErrors, [], `page ${i} logged errors`);
});
