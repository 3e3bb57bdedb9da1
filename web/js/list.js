// Protected servers: one row per DR pair, searchable (id, name, address), filtered by RPO
// state, sortable and paged (hundreds of pairs stay usable); kept live by the standby's push
// stream of the list.

import { get } from './api.js';
import { h, replace } from './dom.js';
import { duration, time, yesNo } from './format.js';
import { RPO_LEVELS, rpoBadge, rpoLevel, rpoRank } from './rpo.js';

const HEALTH_ORDER = { ok: 0, warning: 1, critical: 2 };
const PAGE = 50;

const COLUMNS = [
  { key: 'pair_id', title: 'DR Pair ID', value: (p) => p.pair_id },
  { key: 'name', title: 'Name', value: (p) => p.source_host || '' },
  { key: 'address', title: 'Source address', value: (p) => p.source_address || '', narrow: 'hide' },
  { key: 'state', title: 'State', value: (p) => p.state_label },
  { key: 'lag', title: 'Lag (RPO)', value: (p) => p.lag_seconds, num: true },
  { key: 'rpo', title: 'RPO state', value: (p) => rpoRank(p.rpo_state), num: true },
  { key: 'newest', title: 'Newest point', value: (p) => (p.last_point ? p.last_point.time_unix_ms : 0), narrow: 'hide' },
  { key: 'ready', title: 'Ready for failover', value: (p) => (p.ready_for_failover ? 1 : 0) },
  { key: 'health', title: 'Health', value: (p) => HEALTH_ORDER[p.health.level] },
];

export function badge(health) {
  const words = { ok: 'Healthy', warning: 'Warning', critical: 'Critical' }[health.level] || health.level;
  return h('span', { class: `badge ${health.level}`, title: health.reason }, words,
    h('span', { class: 'visually-hidden' }, `: ${health.reason}`));
}

function cell(col, p) {
  switch (col.key) {
    case 'pair_id': return h('td', {}, h('a', { href: `#/pairs/${encodeURIComponent(p.pair_id)}` }, p.pair_id));
    case 'state': return h('td', {}, h('span', { class: `state s-${p.state}` }, p.state_label));
    case 'lag': return h('td', { class: 'num' }, duration(p.lag_seconds));
    case 'rpo': return h('td', {}, rpoBadge(p.rpo_state));
    case 'newest': return h('td', { class: 'hide-narrow' }, p.last_point ? `#${p.last_point.id} · ${time(p.last_point.time)}` : 'none yet');
    case 'ready': return h('td', {}, yesNo(p.ready_for_failover));
    case 'health': return h('td', {}, badge(p.health));
    case 'address': return h('td', { class: 'hide-narrow' }, p.source_address || '—');
    default: return h('td', {}, col.value(p) || '—');
  }
}

function matches(p, needle) {
  if (!needle) return true;
  const n = needle.trim().toLowerCase();
  return [p.pair_id, p.source_host, p.source_address].some((v) => v && v.toLowerCase().includes(n));
}

export function listView(main, _ctx) {
  let pairs = null;
  let sort = { key: 'pair_id', dir: 1 };
  let page = 0;
  const search = h('input', {
    id: 'search', type: 'search', autocomplete: 'off', placeholder: 'name, DR pair ID or address',
  });
  const rpoWords = { all: 'all', ok: 'ok', warning: 'warning', error: 'error', none: 'no target' };
  const rpoFilter = h('select', { id: 'rpo-filter' },
    ['all', ...RPO_LEVELS, 'none'].map((v) => h('option', { value: v }, rpoWords[v])));
  const count = h('p', { id: 'pair-count', class: 'muted', role: 'status', 'aria-live': 'polite' });
  const tableBox = h('div', { class: 'table-box' });
  const prev = h('button', { type: 'button', id: 'page-prev', class: 'small' }, '← Previous');
  const next = h('button', { type: 'button', id: 'page-next', class: 'small' }, 'Next →');
  const where = h('span', { id: 'page-where', 'aria-live': 'polite' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of the list' }, prev, where, next);
  prev.addEventListener('click', () => { page -= 1; render(); });
  next.addEventListener('click', () => { page += 1; render(); });

  function render() {
    if (!pairs) return;
    const level = rpoFilter.value;
    const shown = pairs.filter((p) => matches(p, search.value) && (level === 'all' || rpoLevel(p.rpo_state) === level));
    const col = COLUMNS.find((c) => c.key === sort.key);
    shown.sort((a, b) => {
      const x = col.value(a);
      const y = col.value(b);
      const c = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
      return c * sort.dir || a.pair_id.localeCompare(b.pair_id);
    });
    const what = [search.value ? `“${search.value}”` : null, level !== 'all' ? `RPO: ${rpoWords[level]}` : null].filter(Boolean);
    count.textContent = what.length
      ? `${shown.length} of ${pairs.length} DR pairs match ${what.join(' and ')}`
      : `${pairs.length} DR pair${pairs.length === 1 ? '' : 's'}`;
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    pager.hidden = pages === 1;
    prev.disabled = page === 0;
    next.disabled = page === pages - 1;
    where.textContent = `Page ${page + 1} of ${pages} (rows ${page * PAGE + 1}–${Math.min(shown.length, (page + 1) * PAGE)})`;
    if (pairs.length === 0) {
      replace(tableBox, h('p', { class: 'empty' },
        'No DR pairs yet. A pair appears here when an agent configured with this standby connects.'));
      return;
    }
    const head = h('tr', {}, COLUMNS.map((c) => {
      const active = c.key === sort.key;
      return h('th', {
        scope: 'col',
        class: c.narrow === 'hide' ? 'hide-narrow' : null,
        'aria-sort': active ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none',
      }, h('button', {
        type: 'button',
        id: `sort-${c.key}`,
        class: 'sort',
        onclick: () => { sort = { key: c.key, dir: active ? -sort.dir : 1 }; page = 0; render(); },
      }, c.title, h('span', { 'aria-hidden': 'true' }, active ? (sort.dir > 0 ? ' ▲' : ' ▼') : '')));
    }));
    const rows = shown.slice(page * PAGE, (page + 1) * PAGE).map((p) => h('tr', { 'data-pair': p.pair_id }, COLUMNS.map((c) => cell(c, p))));
    const body = rows.length ? rows
      : [h('tr', {}, h('td', { colspan: COLUMNS.length, class: 'empty' },
        search.value ? 'No DR pair matches the search.' : `No DR pair is in RPO state ${rpoWords[level]}.`))];
    replace(tableBox, h('table', { class: 'pairs' },
      h('caption', { class: 'visually-hidden' }, 'Protected servers; column headers sort'),
      h('thead', {}, head), h('tbody', {}, body)));
  }

  search.addEventListener('input', () => { page = 0; render(); });
  rpoFilter.addEventListener('change', () => { page = 0; render(); });
  // A message left by the page before (a pair deleted), shown once.
  const notice = sessionStorage.getItem('drpair-notice');
  sessionStorage.removeItem('drpair-notice');
  replace(main,
    h('h1', {}, 'Protected servers'),
    notice ? h('p', { id: 'notice', class: 'result', role: 'status' }, notice) : null,
    h('div', { class: 'toolbar' }, h('label', { for: 'search' }, 'Search'), search,
      h('label', { for: 'rpo-filter' }, 'RPO'), rpoFilter),
    count, tableBox, pager);

  return {
    async refresh() {
      pairs = await get('/pairs');
      render();
    },
    streamPath: '/events',
    push(name, data) {
      if (name !== 'pairs') return;
      pairs = data;
      render();
    },
  };
}
