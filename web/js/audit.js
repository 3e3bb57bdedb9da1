// The standby's audit log (admins only, as GET /api/v1/audit): every state-changing call,
// enrollment, revocation and refused authentication, newest first, filtered by pair, by how
// far back and by result, as `drpair audit --pair P --since T` shows it.

import { get } from './api.js';
import { h, replace } from './dom.js';
import { clock } from './format.js';

const LIMIT = 500;
const SINCE = [['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['', 'Everything kept']];

function resultBadge(e) {
  return e.result === 'ok'
    ? h('span', { class: 'badge ok' }, 'OK')
    : h('span', { class: 'badge critical', title: e.message || '' }, 'Refused');
}

export function auditView(main, pairId, _ctx) {
  const pair = h('input', {
    id: 'audit-pair', type: 'search', autocomplete: 'off', spellcheck: 'false', placeholder: 'every pair', value: pairId || '',
  });
  const since = h('select', { id: 'audit-since' }, SINCE.map(([v, words]) => h('option', { value: v, selected: v === '24h' }, words)));
  const refusedOnly = h('input', { id: 'audit-refused', type: 'checkbox' });
  const count = h('p', { id: 'audit-count', class: 'muted', role: 'status', 'aria-live': 'polite' });
  const error = h('p', { id: 'audit-error', class: 'error', role: 'alert', hidden: true });
  const box = h('div', { class: 'table-box' });
  let entries = [];

  function render() {
    const shown = entries.filter((e) => !refusedOnly.checked || e.result !== 'ok').reverse();
    count.textContent = `${shown.length} entr${shown.length === 1 ? 'y' : 'ies'}${entries.length >= LIMIT ? ` (the newest ${LIMIT})` : ''}`;
    const heads = ['Time', 'Identity', 'Source', 'Action', 'Pair', 'Result', 'Why refused'];
    const rows = shown.map((e) => h('tr', { 'data-result': e.result },
      h('td', { title: e.time }, clock(e.time_unix_ms)), h('td', {}, e.identity), h('td', {}, e.source),
      h('td', { class: 'message' }, e.action),
      h('td', {}, e.pair ? h('a', { href: `#/pairs/${encodeURIComponent(e.pair)}` }, e.pair) : '—'),
      h('td', {}, resultBadge(e)), h('td', { class: 'message' }, e.message || '')));
    replace(box, h('table', { class: 'audit' },
      h('caption', {}, 'Audit log (newest first)'),
      h('thead', {}, h('tr', {}, heads.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: heads.length, class: 'empty' }, 'No entry matches.')))));
  }

  async function refresh() {
    const q = [`limit=${LIMIT}`];
    const p = pair.value.trim();
    if (p) q.push(`pair=${encodeURIComponent(p)}`);
    if (since.value) q.push(`since=${encodeURIComponent(since.value)}`);
    try {
      entries = await get(`/audit?${q.join('&')}`);
      error.hidden = true;
    } catch (e) {
      // A malformed pair id is the operator's typo, not a lost session: say so and keep polling.
      if (e.status !== 400) throw e;
      error.hidden = false;
      error.textContent = `Filter refused: ${e.words}`;
      entries = [];
    }
    render();
  }

  const again = () => refresh().catch((e) => { error.hidden = false; error.textContent = e.message; });
  pair.addEventListener('change', again);
  since.addEventListener('change', again);
  refusedOnly.addEventListener('change', render);

  replace(main,
    h('nav', { 'aria-label': 'Breadcrumb' }, h('a', { href: '#/', id: 'back' }, '← Protected servers')),
    h('h1', {}, 'Audit log'),
    h('div', { class: 'toolbar' },
      h('label', { for: 'audit-pair' }, 'Pair'), pair,
      h('label', { for: 'audit-since' }, 'Since'), since,
      h('label', { for: 'audit-refused' }, refusedOnly, ' Refused only')),
    count, error, box);

  return { refresh };
}
