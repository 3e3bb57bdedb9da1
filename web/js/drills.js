// Failover drills of a pair: start one (the point: latest, by time or by id; how long it
// runs; an optional check command run on the standby), the running ones with their NBD
// addresses and time left (Stop ends one), and each drill's report: point, RPO, ready time,
// check result, who and when — as `drpair drill start|list|stop` and GET …/drills give them.

import { ApiError, get, pairPath, post, roleAllows, session } from './api.js';
import { h, replace } from './dom.js';
import { localToUtc, radios } from './dialog.js';
import { duration, time } from './format.js';

const TTLS = [[900, '15 minutes'], [3600, '1 hour'], [4 * 3600, '4 hours'], [86400, '1 day']];
const REPORTS_SHOWN = 10;

function checkWords(c) {
  if (!c) return 'no check';
  if (c.passed === true) return `passed (${c.command})`;
  if (c.passed === false) return `FAILED, exit ${c.exit_code == null ? 'none (killed)' : c.exit_code} (${c.command})`;
  return `running (${c.command})`;
}

function left(d) {
  const ms = new Date(d.expires_at).getTime() - Date.now();
  return ms > 0 ? duration(ms / 1000) : 'ending';
}

export function drillsSection(pairId, ctx) {
  const result = h('p', { id: 'drill-result', class: 'result', role: 'status', 'aria-live': 'polite' });
  const error = h('p', { id: 'drill-error', class: 'error', role: 'alert', hidden: true });
  let which = 'latest';
  const pick = radios('drill-point', 'Recovery point', [
    ['latest', 'The newest recoverable point'],
    ['time', 'The newest point at or before a time'],
    ['id', 'A point by id'],
  ], which, (v) => { which = v; show(); });
  const when = h('input', { id: 'drill-time', type: 'datetime-local', step: 1 });
  const pointId = h('select', { id: 'drill-point-pick' });
  const ttl = h('select', { id: 'drill-ttl' }, TTLS.map(([s, words]) => h('option', { value: s, selected: s === 3600 }, words)));
  const check = h('input', {
    id: 'drill-check', type: 'text', size: 50, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'e.g. qemu-img compare … "$DRPAIR_DRILL_NBD_0" (optional)', 'aria-describedby': 'drill-check-help',
  });
  const go = h('button', { type: 'submit', id: 'drill-start' }, 'Start drill');
  const timeBox = h('div', {}, h('label', { for: 'drill-time' }, 'Time (your local time)'), when);
  const idBox = h('div', {}, h('label', { for: 'drill-point-pick' }, 'Point'), pointId);
  const form = h('form', { id: 'drill-form', class: 'inline-form' },
    pick.el, timeBox, idBox,
    h('label', { for: 'drill-ttl' }, 'Runs for'), ttl,
    h('label', { for: 'drill-check' }, 'Check command'), check,
    h('p', { id: 'drill-check-help', class: 'help' },
      'Run on the standby once the exports are served; it finds them in DRPAIR_DRILL_NBD_0, _1, …. The drill passes when it exits 0.'),
    h('div', { class: 'buttons' }, go));
  const running = h('div', { id: 'drills-running' });
  const reports = h('div', { class: 'table-box', id: 'drill-reports' });
  let allowed = [];
  let drills = [];

  function show() {
    timeBox.hidden = which !== 'time';
    idBox.hidden = which !== 'id';
  }
  show();

  function say(ok, text) {
    result.textContent = ok ? text : '';
    error.hidden = ok;
    error.textContent = ok ? '' : text;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { ttl_seconds: Number(ttl.value), operator: session.identity || 'web panel' };
    if (which === 'latest') body.latest = true;
    if (which === 'time') {
      body.time = localToUtc(when.value);
      if (!body.time) { say(false, 'Give the time of the point to drill.'); return; }
    }
    if (which === 'id') body.point = Number(pointId.value);
    if (check.value.trim()) body.check = check.value.trim();
    go.disabled = true;
    say(true, 'Starting the drill…');
    try {
      const d = await post(`${pairPath(pairId)}/drills`, body);
      say(true, `Drill ${d.id} of point #${d.point} is ${d.state}: ${d.exports.map((x) => x.uri).join(', ')}`);
      check.value = '';
    } catch (e) {
      say(false, `Drill refused: ${e instanceof ApiError ? e.words : e.message}`);
    } finally {
      go.disabled = false;
      await refresh().catch(() => {});
      ctx.refreshNow();
    }
  });

  async function stop(d) {
    try {
      await post(`/drills/${encodeURIComponent(d.id)}/stop`);
      say(true, `Drill ${d.id} stopped; its scratch overlay is discarded.`);
    } catch (e) {
      say(false, `Stop refused: ${e instanceof ApiError ? e.words : e.message}`);
    }
    await refresh().catch(() => {});
  }

  function render() {
    const live = drills.filter((d) => d.state === 'running');
    replace(running, live.length ? h('ul', { class: 'plain' }, live.map((d) => h('li', { 'data-drill': d.id },
      h('strong', {}, `Drill ${d.id}`), ` of point #${d.point} (${time(d.point_time)}) · `,
      h('span', { class: 'drill-left' }, `${left(d)} left`), ' · NBD: ',
      d.exports.map((x) => h('code', { class: 'nbd' }, x.uri)), ' ',
      roleAllows('operator') ? h('button', {
        type: 'button', class: 'small', id: `drill-stop-${d.id}`, onclick: () => stop(d), 'aria-label': `Stop drill ${d.id}`,
      }, 'Stop') : null)))
      : h('p', { class: 'muted' }, 'No drill is running.'));
    const heads = ['Drill', 'State', 'Point', 'RPO', 'Ready in', 'Check', 'By', 'When'];
    const rows = drills.slice(0, REPORTS_SHOWN).map((d) => h('tr', { 'data-drill': d.id, 'data-state': d.state },
      h('td', {}, d.id), h('td', {}, d.state), h('td', {}, `#${d.point} · ${time(d.point_time)}`),
      h('td', { class: 'num' }, duration(d.point_age_seconds)), h('td', { class: 'num' }, d.ready_ms < 1000 ? `${Math.round(d.ready_ms)} ms` : `${(d.ready_ms / 1000).toFixed(2)} s`),
      h('td', { class: 'message', title: d.check ? d.check.output : null }, checkWords(d.check)),
      h('td', {}, d.operator), h('td', {}, time(d.requested_at))));
    replace(reports, h('table', { class: 'drills' },
      h('caption', {}, 'Drill reports (newest first)'),
      h('thead', {}, h('tr', {}, heads.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: heads.length, class: 'empty' }, 'No drill yet.')))));
  }

  async function refresh() {
    const list = await get(`${pairPath(pairId)}/drills`);
    drills = list.slice().sort((a, b) => b.requested_at.localeCompare(a.requested_at));
    render();
  }

  return {
    el: h('section', { class: 'drills', 'aria-labelledby': 'drills-title' },
      h('h2', { id: 'drills-title' }, 'Failover drills'),
      h('p', { class: 'help' }, 'A drill serves a recovery point as writable, throw-away NBD disks on the standby while replication goes on.'),
      form, result, error, h('h3', {}, 'Running'), running, reports),
    refresh,
    // Status-driven parts: who may start one, the points to pick from, time left.
    update(s, points) {
      allowed = s.allowed_actions;
      form.hidden = !roleAllows('operator');
      const can = allowed.includes('drill') || (s.last_point != null && !allowed.length);
      go.disabled = !can;
      go.title = can ? '' : 'A drill needs a recovery point.';
      const keep = pointId.value;
      replace(pointId, points.slice().reverse().map((p) => h('option', { value: p.id, selected: String(p.id) === keep },
        `#${p.id} · ${time(p.time)} · ${p.consistency}`)));
      for (const li of running.querySelectorAll('[data-drill]')) {
        const d = drills.find((x) => x.id === li.dataset.drill);
        if (d) li.querySelector('.drill-left').textContent = `${left(d)} left`;
      }
    },
  };
}
