// The login page: POST /api/login with the password; on 204 the device has
// set the session cookie, and the dashboard opens.

const form = document.getElementById('login-form');
const input = document.getElementById('password');
const error = document.getElementById('login-error');
const button = document.getElementById('login-button');

function show(message) {
  error.textContent = message;
  error.hidden = !message;
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  button.disabled = true;
  show('');
  try {
    const res = await fetch('/api/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ password: input.value }),
      cache: 'no-store',
    });
    if (res.status === 204) {
      location.assign('/');
      return;
    }
    let message = `login failed (${res.status})`;
    try {
      message = (await res.json()).error || message;
    } catch {
      // not JSON: keep the status
    }
    show(message);
    input.select();
  } catch (err) {
    show(`the device did not answer: ${err.message || err}`);
  } finally {
    button.disabled = false;
  }
});
