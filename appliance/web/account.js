// The owner's account (shown only to a person logged in: GET /api/tokens
// answers 200): API tokens for scripts and WHEP clients, listed by name,
// created (the token shown this once, to copy) and revoked; and the
// password changed, which ends every other session. The server's refusal
// is shown as it says it. See cmd/account.rs for the API.

import { $ } from './state.js';

async function refusalOf(res) {
  try {
    return (await res.json()).error || `${res.status}`;
  } catch {
    return `${res.status}`;
  }
}

function say(id, text, bad = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('bad', bad);
  el.hidden = !text;
}

function renderTokens(tokens) {
  const list = $('token-list');
  list.replaceChildren();
  $('tokens-empty').hidden = tokens.length > 0;
  for (const { name } of tokens) {
    const item = document.createElement('li');
    item.dataset.name = name;
    const label = document.createElement('code');
    label.textContent = name;
    const revoke = document.createElement('button');
    revoke.type = 'button';
    revoke.textContent = 'revoke';
    revoke.onclick = () => revokeToken(name);
    item.append(label, ' ', revoke);
    list.append(item);
  }
}

async function loadTokens() {
  const res = await fetch('/api/tokens', { cache: 'no-store' });
  if (!res.ok) return false;
  renderTokens((await res.json()).tokens);
  return true;
}

async function createToken() {
  const name = $('token-name').value.trim();
  say('token-new', '');
  const res = await fetch('/api/tokens', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  if (!res.ok) {
    say('token-message', await refusalOf(res), true);
    return;
  }
  const { token } = await res.json();
  say('token-message', `Token "${name}" created. Copy it now: it is not shown again.`);
  say('token-new', token);
  $('token-name').value = '';
  await loadTokens();
}

async function revokeToken(name) {
  say('token-new', '');
  const res = await fetch(`/api/tokens/${encodeURIComponent(name)}`, { method: 'DELETE' });
  say('token-message', res.ok ? `Token "${name}" revoked.` : await refusalOf(res), !res.ok);
  await loadTokens();
}

async function changePassword(event) {
  event.preventDefault();
  const [current, fresh, again] = ['pw-current', 'pw-new', 'pw-again'].map((id) => $(id).value);
  if (fresh !== again) {
    say('pw-message', 'The new password and its repetition differ.', true);
    return;
  }
  const res = await fetch('/api/password', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ current, new: fresh }),
  });
  if (!res.ok) {
    say('pw-message', await refusalOf(res), true);
    return;
  }
  $('password-form').reset();
  say('pw-message', 'Password changed. Every other session has ended.');
}

/** Shows the account section when the viewer is a person logged in. */
export async function startAccount() {
  $('account-toggle').onclick = () => {
    const panel = $('account');
    panel.hidden = !panel.hidden;
    if (!panel.hidden) loadTokens();
  };
  $('token-create').onclick = createToken;
  $('password-form').onsubmit = changePassword;
  try {
    $('account-toggle').hidden = !(await loadTokens());
  } catch {
    $('account-toggle').hidden = true;
  }
}
