// The login flow in real Chromium: the dashboard without a session sends
// the browser to the login page; a wrong password is refused there; the
// right one opens the dashboard, which plays the live video with its boxes;
// a reload stays logged in; logging out returns to the login page and the
// API refuses the old session. Then the same over HTTPS, with Chromium
// trusting only the device's generated certificate: a secure context. And
// the account section: an API token made (shown once), used and revoked,
// and the password changed, on the dashboard.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { startMado, launchBrowser, waitForDecoding, snap, waitFor, PASSWORD, log } from './lib.mjs';

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

/** The dashboard's test hooks, which the page never loads by itself. */
async function addHooks(page) {
  await page.addScriptTag({ type: 'module', url: '/test-hooks.js' });
  await page.waitForFunction(() => !!window.madoTest, null, { timeout: 15_000 });
}

test('log in, watch, reload, log out', { timeout: 150_000 }, async () => {
  const page = browser.context.pages()[0];
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await page.goto(`${server.baseUrl}/`, { waitUntil: 'load' });
  assert.equal(new URL(page.url()).pathname, '/login', 'no session: the login page');
  assert.ok(await page.isVisible('#password'));

  await page.fill('#password', 'not the password');
  await page.click('#login-button');
  await page.waitForSelector('#login-error:not([hidden])');
  assert.match(await page.textContent('#login-error'), /wrong password/);
  assert.equal(new URL(page.url()).pathname, '/login');

  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForURL(`${server.baseUrl}/`), page.click('#login-button')]);
  const cookies = await browser.context.cookies(server.baseUrl);
  const session = cookies.find((c) => c.name.startsWith('mado_session_'));
  assert.ok(session, `a session cookie: ${JSON.stringify(cookies.map((c) => c.name))}`);
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read it');

  await addHooks(page);
  await waitForDecoding(page, { what: 'the logged-in dashboard' });
  const shown = await waitFor(async () => {
    const s = await snap(page);
    return s.shownFramesWithMeta > 10 ? s : null;
  }, { timeoutMs: 30_000, message: 'frames shown with their boxes' });
  log(`logged in: ${shown.framesDecoded} frames decoded, ${shown.shownFramesWithMeta} shown with boxes`);
  assert.equal(await page.isVisible('#auth-warning'), false, 'no "no login" warning with a password');

  await page.reload({ waitUntil: 'load' });
  assert.equal(new URL(page.url()).pathname, '/', 'a reload stays logged in');
  await addHooks(page);
  await waitForDecoding(page, { what: 'the dashboard after a reload' });

  await Promise.all([page.waitForURL(`${server.baseUrl}/login`), page.click('#logout')]);
  const status = await page.evaluate(async () => (await fetch('/api/status')).status);
  assert.equal(status, 401, 'the API refuses the ended session');
  await page.goto(`${server.baseUrl}/`, { waitUntil: 'load' });
  assert.equal(new URL(page.url()).pathname, '/login', 'the dashboard again asks for the password');
  assert.deepEqual(errors, [], 'page errors');
});

/** Logs `page` in through the login form at `baseUrl`. */
async function logInWithTheForm(page, baseUrl) {
  await page.goto(`${baseUrl}/`, { waitUntil: 'load' });
  assert.equal(new URL(page.url()).pathname, '/login');
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForURL(`${baseUrl}/`), page.click('#login-button')]);
}

test('over HTTPS with the generated certificate the dashboard is a secure context and plays', { timeout: 150_000 }, async () => {
  const secure = await startMado({ size: '320x240', fps: 30, tls: true });
  let tlsBrowser;
  try {
    assert.ok(secure.baseUrl.startsWith('https://'), secure.baseUrl);
    const pem = readFileSync(join(secure.state.dir, 'tls-cert.pem'));
    const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
    const pin = createHash('sha256').update(spki).digest('base64');
    tlsBrowser = await launchBrowser({ extraArgs: [`--ignore-certificate-errors-spki-list=${pin}`] });
    const page = tlsBrowser.context.pages()[0];
    await logInWithTheForm(page, secure.baseUrl);
    assert.equal(await page.evaluate(() => window.isSecureContext), true);
    const cookies = await tlsBrowser.context.cookies(secure.baseUrl);
    assert.ok(cookies.some((c) => c.name.startsWith('mado_session_') && c.secure), 'a Secure session cookie');
    await addHooks(page);
    await waitForDecoding(page, { what: 'the dashboard over HTTPS' });
    const s = await waitFor(async () => {
      const x = await snap(page);
      return x.shownFramesWithMeta > 10 ? x : null;
    }, { timeoutMs: 30_000, message: 'frames shown with their boxes over HTTPS' });
    log(`over HTTPS: ${s.framesDecoded} frames decoded, ${s.shownFramesWithMeta} shown with boxes, transform ${s.transformApi}`);
  } finally {
    await tlsBrowser?.close();
    await secure.stop();
  }
});

test('a person logged in makes and revokes an API token and changes the password on the dashboard', { timeout: 150_000 }, async () => {
  const page = await browser.context.newPage();
  try {
    await logInWithTheForm(page, server.baseUrl);
    await page.waitForSelector('#account-toggle:not([hidden])');
    await page.click('#account-toggle');
    await page.waitForSelector('#token-list li[data-name="tests"]');

    // A token, shown once on the screen, works for a script at once.
    await page.fill('#token-name', 'nvr');
    await page.click('#token-create');
    await page.waitForSelector('#token-new:not([hidden])');
    const token = (await page.textContent('#token-new')).trim();
    assert.match(token, /^mado_[0-9a-f]{64}$/);
    assert.match(await page.textContent('#token-message'), /not shown again/);
    await page.waitForSelector('#token-list li[data-name="nvr"]');
    const asScript = async () =>
      (await fetch(`${server.baseUrl}/api/status`, { headers: { authorization: `Bearer ${token}` } })).status;
    assert.equal(await asScript(), 200);
    // A taken name: the server's refusal, as it says it.
    await page.fill('#token-name', 'nvr');
    await page.click('#token-create');
    await page.waitForFunction(() => /exists already/.test(document.getElementById('token-message').textContent));
    assert.equal(await page.isVisible('#token-new'), false, 'no token shown for a refused name');

    // Revoked from the list: the script is refused.
    await page.click('#token-list li[data-name="nvr"] button');
    await page.waitForSelector('#token-list li[data-name="nvr"]', { state: 'detached' });
    assert.equal(await asScript(), 401);

    // The password: a wrong current one is refused, the right one changes it.
    await page.fill('#pw-current', 'not the password');
    await page.fill('#pw-new', 'a brand new password');
    await page.fill('#pw-again', 'a brand new password');
    await page.click('#pw-change');
    await page.waitForFunction(() => /wrong password/.test(document.getElementById('pw-message').textContent));
    await page.fill('#pw-current', PASSWORD);
    await page.fill('#pw-new', 'a brand new password');
    await page.fill('#pw-again', 'a brand new password');
    await page.click('#pw-change');
    await page.waitForFunction(() => /Password changed/.test(document.getElementById('pw-message').textContent));
    assert.equal(await page.evaluate(async () => (await fetch('/api/status')).status), 200, 'this session goes on');
    const login = async (password) =>
      (await fetch(`${server.baseUrl}/api/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ password }),
      })).status;
    assert.equal(await login(PASSWORD), 401, 'the old password is refused');
    assert.equal(await login('a brand new password'), 204);
  } finally {
    await page.close();
  }
});
