// Tasks (verify, online verify, dump load, failover, failback, prune, a restart's baseline,
// drill start): a pair's, or the standby's (#/tasks), the newest first with state and
// progress, and each one's log on demand, as `drpair tasks list [--pair P]` and
// `drpair tasks log ID` show them.

import { get } from './api.js';
import { h, replace } from './dom.js';
import { clock, percent } from './format.js';

const TASKS_SHOWN = 10;
const ALL_SHOWN = 100;

function stateBadge(t) {
  const cls = { ok: 'ok', failed: 'critical', running: 'warning' }[t.state] || '';
  const words = t.state === 'running' ? `Running ${percent(t.progress_percent)}` : t.state === 'ok' ? 'OK' : 'Failed';
  return h('span', { class: `badge ${cls}` }, words);
}

export function tasksSection(pairId, shown = TASKS_SHOWN) {
  const box = h('div', { class: 'table-box', id: 'tasks-box' });
  // Task id → its log element, kept open across refreshes.
  const open = new Map();

  async function loadLog(id, pre) {
    const log = await get(`/tasks/${id}/log`);
    replace(pre, log.lines.map((l) => `${clock(l.unix_ms)}  ${l.text}\n`).join(''));
  }

  function toggle(t, button) {
    if (open.has(t.id)) {
      open.delete(t.id);
    } else {
      open.set(t.id, h('pre', { class: 'task-log', id: `task-log-${t.id}`, 'aria-label': `Log of task ${t.id}` }, 'loading…'));
    }
    button.setAttribute('aria-expanded', String(open.has(t.id)));
    refresh().catch((e) => console.warn(`tasks: ${e.message}`));
  }

  async function refresh() {
    const list = await get(pairId ? `/tasks?pair=${encodeURIComponent(pairId)}` : '/tasks');
    const tasks = list.tasks.slice(0, shown);
    const rows = [];
    for (const t of tasks) {
      const button = h('button', {
        type: 'button', class: 'small', id: `task-log-button-${t.id}`, 'aria-expanded': String(open.has(t.id)),
        'aria-controls': `task-log-${t.id}`, 'aria-label': `Log of task ${t.id} (${t.kind})`,
      }, open.has(t.id) ? 'Hide log' : 'Log');
      button.onclick = () => toggle(t, button);
      rows.push(h('tr', { 'data-task': t.id, 'data-kind': t.kind, 'data-state': t.state },
        h('td', { class: 'num' }, t.id),
        pairId ? null : h('td', {}, h('a', { href: `#/pairs/${encodeURIComponent(t.pair)}` }, t.pair)),
        h('td', {}, t.kind), h('td', {}, stateBadge(t)),
        h('td', {}, clock(t.started_unix_ms)), h('td', {}, t.started_by), h('td', { class: 'message' }, t.message),
        h('td', { class: 'row-actions' }, button)));
      const pre = open.get(t.id);
      if (pre) {
        rows.push(h('tr', { class: 'task-log-row' }, h('td', { colspan: pairId ? 7 : 8 }, pre)));
        await loadLog(t.id, pre);
      }
    }
    const heads = ['ID', ...(pairId ? [] : ['Pair']), 'Kind', 'State', 'Started', 'By', 'Message', 'Log'];
    replace(box, h('table', { class: 'tasks' },
      h('caption', {}, `Tasks (newest first${list.tasks.length > shown ? `, the newest ${shown}` : ''})`),
      h('thead', {}, h('tr', {}, heads.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: heads.length, class: 'empty' }, 'No task yet.')))));
  }

  return { el: box, refresh };
}

// The standby's tasks, running and recent, every pair's.
export function tasksView(main, _ctx) {
  const tasks = tasksSection(null, ALL_SHOWN);
  replace(main,
    h('nav', { 'aria-label': 'Breadcrumb' }, h('a', { href: '#/', id: 'back' }, '← Protected servers')),
    h('h1', {}, 'Tasks'),
    h('p', { class: 'help' }, 'Long operations of every pair on this standby: running ones with their progress, then the ended ones.'),
    tasks.el);
  return { refresh: tasks.refresh };
}
