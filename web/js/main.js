// The panel's shell: login, routing (#/, #/pairs/ID, #/tasks, #/audit), keeping the view live
// — one server push stream per open view when the view has one, else (or while the stream
// is down) a refresh every 2 seconds — and the banner that says when the standby cannot be
// reached. `sessionStorage['drpair.live'] = 'poll'` turns the push stream off for the tab.

import { ApiError, Unreachable, get, roleAllows, session, stream, token } from './api.js';
import { h, replace } from './dom.js';
import { listView } from './list.js';
import { detailsView } from './details.js';
import { auditView } from './audit.js';
import { tasksView } from './tasks.js';
import { clock } from './format.js';

const POLL_MS = 2000;
// After the push stream fails, polling carries the view; the stream is tried again after this.
const RETRY_STREAM_MS = 10_000;
const main = document.getElementById('main');
const banner = document.getElementById('banner');
const conn = document.getElementById('conn');
const logout = document.getElementById('logout');
const identity = document.getElementById('identity');
const auditLink = document.getElementById('audit-link');
const tasksLink = document.getElementById('tasks-link');
let identityShown = false;

// The footer: the standby's version and the fingerprint its agents pin (GET /api/v1), or a
// warning when its link runs in plaintext. Read once, after the first successful refresh.
async function showIdentity() {
  if (identityShown) return;
  const info = await get('');
  identityShown = true;
  session.role = info.role || null;
  session.identity = info.identity || null;
  auditLink.hidden = !roleAllows('admin');
  identity.className = info.insecure_plaintext ? 'foot warn' : 'foot';
  identity.textContent = info.insecure_plaintext
    ? `drpair ${info.version} · the replication link runs in PLAINTEXT (insecure_plaintext): disks cross the network readable`
    : `drpair ${info.version} · standby fingerprint ${info.fingerprint}`;
  if (info.identity) identity.textContent += ` · signed in as ${info.identity} (${info.role})`;
}

let view = null;
let timer = null;
let generation = 0;
let downSince = null;
// The push stream of the current view (its AbortController), and when one last failed.
let live = null;
let streamFailedAt = 0;
const pushWanted = () => sessionStorage.getItem('drpair.live') !== 'poll';

function setBanner(text) {
  banner.hidden = !text;
  banner.textContent = text || '';
  document.body.classList.toggle('stale', Boolean(text));
}

function online(noToken) {
  if (downSince) downSince = null;
  setBanner('');
  conn.textContent = `Connected${noToken ? ' (this standby has no access token: anyone who reaches it can operate it)' : ''} · updated ${clock(Date.now())}`;
  conn.className = noToken ? 'conn warn' : 'conn ok';
}

function offline(err) {
  downSince = downSince || Date.now();
  setBanner(`The standby is unreachable since ${clock(downSince)} (${err.message}). `
    + 'The page keeps retrying every 2 seconds; what it shows may be out of date.');
  conn.textContent = 'Unreachable';
  conn.className = 'conn bad';
}

function failed(gen, e) {
  if (gen !== generation) return false;
  if (e instanceof Unreachable) offline(e);
  else if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
    token.clear();
    login(`The standby refused the token: ${e.message}`);
    return true;
  } else {
    setBanner(`Could not refresh: ${e instanceof ApiError ? e.words : e.message}`);
  }
  return false;
}

function fresh() {
  online(!token.get());
  showIdentity().catch(() => {});
}

// Runs the current view's refresh now and then every POLL_MS, until the view changes or a
// push stream takes over.
async function poll(gen) {
  if (gen !== generation || !view) return;
  let ok = false;
  try {
    await view.refresh();
    fresh();
    ok = true;
  } catch (e) {
    if (failed(gen, e)) return;
  }
  if (gen !== generation) return;
  if (ok && view.streamPath && pushWanted() && !live && Date.now() - streamFailedAt > RETRY_STREAM_MS) {
    listen(gen);
    return;
  }
  if (!live) timer = setTimeout(() => poll(gen), POLL_MS);
}

// Keeps the view live from its push stream; when the stream fails, polling takes over (and
// tries the stream again later).
async function listen(gen) {
  const ctrl = new AbortController();
  live = ctrl;
  clearTimeout(timer);
  try {
    await stream(view.streamPath, ctrl.signal, async (name, data) => {
      if (gen !== generation) return;
      await view.push(name, data);
      fresh();
    });
  } catch (e) {
    if (!ctrl.signal.aborted && gen === generation && failed(gen, e)) return;
  }
  // Closed by the page (the view changed): nothing to take over.
  if (ctrl.signal.aborted) return;
  streamFailedAt = Date.now();
  if (live === ctrl) live = null;
  if (gen === generation) timer = setTimeout(() => poll(gen), POLL_MS);
}

function stopLive() {
  clearTimeout(timer);
  if (live) live.abort();
  live = null;
}

function route() {
  stopLive();
  generation += 1;
  const gen = generation;
  const m = /^#\/pairs\/([^/]+)$/.exec(location.hash);
  const a = /^#\/audit(?:\/([^/]+))?$/.exec(location.hash);
  // After an action: refresh at once; a live stream keeps going, polling restarts its beat.
  const ctx = {
    refreshNow: () => {
      if (gen !== generation) return;
      if (live) view.refresh().then(fresh, (e) => failed(gen, e));
      else { clearTimeout(timer); poll(gen); }
    },
  };
  if (a) {
    view = auditView(main, a[1] ? decodeURIComponent(a[1]) : '', ctx);
    document.title = 'drpair — audit log';
  } else if (location.hash === '#/tasks') {
    view = tasksView(main, ctx);
    document.title = 'drpair — tasks';
  } else {
    view = m ? detailsView(main, decodeURIComponent(m[1]), ctx) : listView(main, ctx);
    document.title = m ? `drpair — ${decodeURIComponent(m[1])}` : 'drpair — protected servers';
  }
  logout.hidden = !token.get();
  tasksLink.hidden = false;
  poll(gen);
}

function login(message) {
  stopLive();
  generation += 1;
  view = null;
  identityShown = false;
  session.role = null;
  logout.hidden = true;
  auditLink.hidden = true;
  tasksLink.hidden = true;
  conn.textContent = '';
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { id: 'login-error', class: 'error', role: 'alert', hidden: !message }, message || '');
  const button = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Log in to the standby'),
    h('p', {}, 'Enter the access token of this standby: the ', h('code', {}, 'token'),
      ' in its configuration, the one ', h('code', {}, 'drpair --token'), ' uses.'),
    h('label', { for: 'token' }, 'Access token'), input, error, button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    token.set(input.value.trim());
    try {
      await get('/pairs');
      route();
    } catch (e) {
      token.clear();
      error.hidden = false;
      error.textContent = e instanceof ApiError && (e.status === 401 || e.status === 403)
        ? `The standby refused this token: ${e.message}`
        : `Could not log in: ${e instanceof ApiError ? e.words : e.message}`;
      button.disabled = false;
      input.focus();
    }
  });
  replace(main, form);
  input.focus();
}

async function start() {
  try {
    await get('/pairs');
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      const had = token.get();
      token.clear();
      login(had ? `The standby refused the saved token: ${e.message}` : '');
      return;
    }
    if (e instanceof Unreachable) offline(e);
  }
  route();
}

logout.addEventListener('click', () => { token.clear(); login('Logged out.'); });
window.addEventListener('hashchange', () => { if (view || token.get()) route(); });
start();
