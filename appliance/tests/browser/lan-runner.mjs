// Runs inside the network namespace made by lan-address.test.mjs, where
// 198.51.100.1 and 198.51.100.2 (documentation range, veth pair) are the only
// addresses besides loopback. Starts mado on 198.51.100.1, opens the
// dashboard over plain HTTP by that address (an insecure context) and prints
// one line: `MADO-LAN-RESULT {json}`.
import { startMado, launchBrowser, openDashboard, snap, waitFor, sleep } from './lib.mjs';

const host = process.argv[2] || '198.51.100.1';
const result = { host, ok: false };
let server;
let browser;
let page;
try {
  server = await startMado({ size: '320x240', fps: 30, host, extraArgs: ['--tls', 'off'] });
  result.url = `${server.baseUrl}/`;
  browser = await launchBrowser();
  page = await openDashboard(browser.context, result.url, browser.context.pages()[0]);
  result.isSecureContext = await page.evaluate(() => window.isSecureContext);
  result.location = await page.evaluate(() => location.href);
  let last;
  try {
    await waitFor(async () => {
      last = await snap(page);
      return last.framesDecoded > 30 && last.shownFramesWithMeta > 0;
    }, { timeoutMs: 45_000, intervalMs: 500, message: 'decoding with metadata' });
  } catch (e) {
    result.waitError = e.message;
  }
  await sleep(2000); // a few clock-offset samples for the estimate
  last = await snap(page);
  Object.assign(result, {
    framesDecoded: last.framesDecoded,
    framesDropped: last.framesDropped,
    shownFrames: last.shownFrames,
    shownFramesWithMeta: last.shownFramesWithMeta,
    transformApi: last.transformApi,
    transformFramesWithMeta: last.transformFramesWithMeta,
    metaDecodeErrors: last.metaDecodeErrors,
    codec: last.codec,
    connectionState: last.connectionState,
    state: last.state,
    stateDetail: last.stateDetail,
    latencyMode: last.latencyMode,
    latencyMsLast: last.latencyMs.at(-1) ?? null,
    clockOffsetMs: last.clockOffsetMs,
    caps: last.caps,
    latencyText: await page.evaluate(() => document.getElementById('s-latency').textContent),
    pageErrors: page.madoErrors,
  });
  result.ok = true;
} catch (e) {
  result.error = e.message;
  if (server) result.serverLog = server.tail(30);
} finally {
  try {
    await browser?.close();
  } catch {}
  if (server) result.serverExit = await server.stop();
}
console.log(`MADO-LAN-RESULT ${JSON.stringify(result)}`);
process.exit(0);
