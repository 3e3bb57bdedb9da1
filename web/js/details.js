// One DR pair: its state and why, progress, its RPO against the target (set in place) and its
// last successes, the actions its state allows, failover and
// failback, drills, verification, retention, the third-party dump workflow, lag and throughput
// charts, disks, recovery points (paged) and tasks. Kept live by the pair's push stream: the
// status and the newest points come with its events; tasks, drills and older points are
// fetched again only when an event says they changed.

import { ApiError, downloadImage, get, pairPath, post, roleAllows } from './api.js';
import { actionsPanel } from './actions.js';
import { bandwidthForm, linkFacts } from './link.js';
import { lastSuccesses, rpoFacts, rpoForm } from './rpo.js';
import { dumpWorkflow } from './dump.js';
import { drillsSection } from './drills.js';
import { failoverSection } from './failover.js';
import { retentionSection } from './retention.js';
import { verifySection } from './verify.js';
import { tasksSection } from './tasks.js';
import { lineChart } from './chart.js';
import { h, replace } from './dom.js';
import { bytes, clock, duration, percent, rate, time, yesNo } from './format.js';
import { badge } from './list.js';

const POINTS_SHOWN = 50;

function row(label, value) {
  return [h('dt', {}, label), h('dd', {}, value)];
}

function summary(s) {
  const a = s.agent;
  const items = [
    row('State', h('span', { id: 'state', class: `state s-${s.state}` }, s.state_label)),
    row('What it means', h('span', { id: 'state-explanation' }, s.state_explanation)),
    row('Health', badge(s.health)),
    row('Ready for failover', h('span', { id: 'ready' }, yesNo(s.ready_for_failover))),
    row('Lag (RPO now)', h('span', { id: 'lag' }, duration(s.stats.lag_seconds))),
    row('Newest point', s.last_point ? `#${s.last_point.id} · ${time(s.last_point.time)} · ${s.last_point.kind}` : 'none yet'),
    row('Source', a ? `${a.host} (${a.address}) · ${a.connected ? 'connected' : 'not connected'} since ${time(a.since)} · tracker ${a.tracker}` : 'no agent has connected yet'),
    row('Recovery checkpoint', s.recovery_checkpoint || '—'),
  ];
  if (s.stop_reason) {
    const alias = s.stop_reason_alias ? ` (${s.stop_reason_alias} before)` : '';
    items.push(row('Stop reason', h('span', { id: 'stop-reason' }, s.stop_reason + alias)));
  }
  if (s.configuration_change) {
    const c = s.configuration_change;
    items.push(row('Configuration change', h('div', { id: 'config-change' },
      h('p', {}, `Since ${time(c.detected_at)} the agent offers other disks; `
        + (c.growth_only ? 'they only grew: Adopt grown disks takes them, or Restart Replication.' : 'Restart Replication takes them.')),
      h('ul', {}, c.changes.map((d) => h('li', {}, describeChange(d)))))));
  }
  if (s.restart) items.push(row('Restart', `requested ${time(s.restart.requested_at)}${s.restart.full_copy ? ' · full copy' : ''}`));
  if (s.storage && s.storage.logical_bytes > 0) {
    const st = s.storage;
    items.push(row('Storage', `${bytes(st.unique_stored_bytes)} unique stored for ${bytes(st.logical_bytes)} logical · `
      + `compression ${st.compression_ratio.toFixed(2)}× · dedup ${st.dedup_ratio.toFixed(2)}× (report of ${clock(st.computed_unix_ms)})`));
  }
  const out = [h('dl', { class: 'facts' }, items)];
  if (s.failure_messages.length) {
    out.push(h('section', { class: 'failures', 'aria-labelledby': 'failures-title' },
      h('h2', { id: 'failures-title' }, 'Recent failures'),
      h('ul', { id: 'failures' }, s.failure_messages.slice().reverse().map((m) => h('li', {}, m)))));
  }
  return out;
}

function describeChange(d) {
  const o = d.old, n = d.new;
  const what = {
    grown: () => `grown from ${bytes(o.size_bytes)} to ${bytes(n.size_bytes)}`,
    shrunk: () => `shrunk from ${bytes(o.size_bytes)} to ${bytes(n.size_bytes)}`,
    chunk_size: () => `chunk size ${bytes(o.chunk_size)}, now ${bytes(n.chunk_size)}`,
    moved: () => `was ${o.path}, now ${n.path}`,
    added: () => `added (${bytes(n.size_bytes)})`,
    removed: () => `removed (was ${bytes(o.size_bytes)})`,
  }[d.change];
  return `disk ${d.index} (${(n || o).path}): ${what ? what() : d.change}`;
}

// The dates as the reference workflow (DMS) names them.
function dates(s) {
  const t = (v) => (v ? time(v) : '—');
  return [h('section', { class: 'dates', 'aria-labelledby': 'dates-title' },
    h('h2', { id: 'dates-title' }, 'Dates'),
    h('dl', { class: 'facts', id: 'dates' }, [
      row('Fresh start', t(s.fresh_start_date)),
      row('Started', t(s.start_date)),
      row('Stopped', t(s.stop_date)),
      row('Last stop', t(s.last_stop_time)),
      row('Full load', `${t(s.full_load_start_date)} → ${t(s.full_load_finish_date)} · ${percent(s.full_load_progress_percent)}`),
      row('Elapsed', duration(s.elapsed_time_millis / 1000)),
      row('Created', t(s.create_time)),
      row('Updated', t(s.update_time)),
    ].flat()))];
}

function progress(s) {
  const pass = s.stats.pass;
  const catching = ['initial_sync', 'rescanning'].includes(s.state) || (pass && ['initial', 'reconcile'].includes(pass.kind));
  if (!catching) return [];
  const p = s.stats.progress_percent;
  const what = s.restart ? 'Restart: copying the new baseline' : s.state === 'rescanning' ? 'Rescan' : 'Initial sync';
  return [h('section', { class: 'progress', 'aria-labelledby': 'progress-title' },
    h('h2', { id: 'progress-title' }, what),
    h('progress', { id: 'progress', max: 100, value: p, 'aria-label': `${what} progress` }),
    h('p', { id: 'progress-text' }, `${percent(p)} · ETA ${s.stats.eta_seconds == null ? 'estimating' : duration(s.stats.eta_seconds)}`
      + ` · elapsed ${duration(s.stats.elapsed_seconds)} · ${rate(s.stats.throughput_bytes_per_second)}`))];
}

function disks(s) {
  return h('table', { class: 'disks' },
    h('caption', { class: 'visually-hidden' }, 'Disks of the pair'),
    h('thead', {}, h('tr', {}, ['Disk', 'Path on the source', 'Size', 'Chunk size', 'Chunks'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, s.disks.map((d) => h('tr', {},
      h('td', {}, d.index), h('td', {}, d.path), h('td', { class: 'num' }, bytes(d.size_bytes)),
      h('td', { class: 'num' }, bytes(d.chunk_size)), h('td', { class: 'num' }, d.chunk_count)))));
}

// How long the point's reads took after its cut; a badge when over the standby's bound.
function readWindow(p) {
  if (p.read_window_ms == null) return '—';
  const text = `${(p.read_window_ms / 1000).toFixed(1)} s`;
  if (!p.window_exceeded) return text;
  return [text, ' ', h('span', {
    class: 'badge warning', title: 'Read over longer than the standby\'s max_read_window while the disks kept changing: a database may not start from it; "latest" passes it over',
  }, 'Window exceeded')];
}

function pointsTable(s, points, page, onPin, onExport) {
  const rows = points.slice().reverse().map((p) => h('tr', { 'data-point': p.id },
    h('td', { class: 'num' }, p.id),
    h('td', {}, time(p.time)),
    h('td', {}, p.kind),
    h('td', {}, p.consistency),
    h('td', { class: 'num' }, readWindow(p)),
    h('td', {}, p.pinned ? 'Pinned' : '—'),
    h('td', {}, p.damage ? h('span', { class: 'badge critical' }, 'Damaged') : (p.verified_at ? time(p.verified_at) : '—')),
    h('td', {}, p.tested_at ? time(p.tested_at) : '—'),
    h('td', { class: 'num hide-narrow' }, bytes(p.sizes.changed_bytes)),
    h('td', { class: 'row-actions' },
      h('button', { type: 'button', id: `pin-${p.id}`, class: 'small', onclick: () => onPin(p), 'aria-label': `${p.pinned ? 'Unpin' : 'Pin'} point ${p.id}` }, p.pinned ? 'Unpin' : 'Pin'),
      s.disks.map((d) => h('button', {
        type: 'button', id: `export-${p.id}-${d.index}`, class: 'small', onclick: () => onExport(p, d), 'aria-label': `Export disk ${d.index} of point ${p.id}`,
      }, `Export disk ${d.index}`)))));
  const heads = ['ID', 'Time', 'Kind', 'Consistency', 'Read window', 'Pinned', 'Verified', 'Tested', 'Changed', 'Actions'];
  return h('table', { class: 'points' },
    h('caption', {}, points.length
      ? `Recovery points #${points[points.length - 1].id} to #${points[0].id} (${points.length} of ${s.stats.points}), newest first${page ? ', an older page' : ''}`
      : 'Recovery points'),
    h('thead', {}, h('tr', {}, heads.map((t) => h('th', { scope: 'col', class: t === 'Changed' ? 'hide-narrow' : null }, t)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: heads.length, class: 'empty' }, 'No recovery point yet.'))));
}

export function detailsView(main, pairId, ctx) {
  const actions = actionsPanel(pairId, ctx);
  const bandwidth = bandwidthForm(pairId, ctx);
  const failover = failoverSection(pairId, ctx, actions.show);
  const drills = drillsSection(pairId, ctx);
  const verify = verifySection(pairId, ctx);
  const retention = retentionSection(pairId, ctx);
  const dump = dumpWorkflow(pairId, ctx);
  const linkBox = h('div', { id: 'link-box' });
  const rpo = rpoForm(pairId, ctx);
  const rpoBox = h('div', { id: 'rpo-box' });
  const rpoSection = h('section', { 'aria-labelledby': 'rpo-title' }, h('h2', { id: 'rpo-title' }, 'RPO'), rpoBox, rpo.el);
  const successesBox = h('div', { id: 'successes-box' });
  const head = h('div', { id: 'summary' });
  const prog = h('div', { id: 'progress-box' });
  const charts = h('div', { class: 'charts' });
  const disksBox = h('div', { class: 'table-box' });
  const pointsBox = h('div', { class: 'table-box' });
  const newer = h('button', { type: 'button', id: 'points-newer', class: 'small' }, '← Newer points');
  const older = h('button', { type: 'button', id: 'points-older', class: 'small' }, 'Older points →');
  const pointsPager = h('nav', { class: 'pager', 'aria-label': 'Pages of recovery points' }, newer, older);
  const tasks = tasksSection(pairId);
  const title = h('h1', {}, pairId);
  const auditLink = h('a', { href: `#/audit/${encodeURIComponent(pairId)}`, id: 'pair-audit', hidden: !roleAllows('admin') }, 'Audit log of this pair');
  const history = [];
  let status = null;
  let points = [];
  // Pages of points: the `before` id of each page shown (null: the newest).
  const pages = [null];
  const revs = {};

  async function onPin(p) {
    try {
      await post(`${pairPath(pairId)}/points/${p.id}/${p.pinned ? 'unpin' : 'pin'}`);
      actions.show(true, `Point ${p.id} ${p.pinned ? 'unpinned' : 'pinned'}.`);
    } catch (e) {
      actions.show(false, `${p.pinned ? 'Unpin' : 'Pin'} refused: ${e instanceof ApiError ? e.words : e.message}`);
    }
    ctx.refreshNow();
  }

  async function onExport(p, d) {
    actions.show(true, `Exporting disk ${d.index} of point ${p.id}…`);
    try {
      const link = await downloadImage(pairId, p.id, d.index);
      actions.show(true, `Disk ${d.index} of point ${p.id} (${bytes(link.size_bytes)}) is downloading to ${link.filename}; `
        + 'the browser streams it to disk.');
    } catch (e) {
      actions.show(false, `Export refused: ${e instanceof ApiError ? e.words : e.message}`);
    }
  }

  async function loadPoints() {
    const before = pages[pages.length - 1];
    points = await get(`${pairPath(pairId)}/points?limit=${POINTS_SHOWN}${before ? `&before=${before}` : ''}`);
    if (before && !points.length && pages.length > 1) {
      pages.pop();
      return loadPoints();
    }
    return points;
  }
  newer.addEventListener('click', async () => { pages.pop(); await loadPoints(); render(); });
  older.addEventListener('click', async () => { if (points.length) pages.push(points[0].id); await loadPoints(); render(); });

  function renderCharts() {
    const series = (f) => history.map((x) => [x.t_unix_ms, f(x)]);
    replace(charts,
      lineChart({ id: 'lag-chart', title: 'Lag over time (RPO, seconds since the newest point)', clock, fmt: (v) => duration(v),
        series: [{ name: 'Lag', cls: 'c1', values: series((x) => x.lag_seconds) }] }),
      lineChart({ id: 'throughput-chart', title: 'Throughput', clock, fmt: rate,
        series: [
          { name: 'Read on the source', cls: 'c2', values: series((x) => x.read_bytes_per_second) },
          { name: 'Over the link', cls: 'c1', values: series((x) => x.wire_bytes_per_second) },
        ] }));
  }

  function addHistory(samples) {
    const last = history.length ? history[history.length - 1].t_unix_ms : 0;
    history.push(...samples.filter((x) => x.t_unix_ms > last));
    history.splice(0, Math.max(0, history.length - 1800));
  }

  function render() {
    const s = status;
    if (!s) return;
    auditLink.hidden = !roleAllows('admin');
    title.textContent = s.agent ? `${pairId} · ${s.agent.host}` : pairId;
    replace(head, summary(s));
    replace(prog, [...progress(s), ...dates(s)]);
    actions.update(s.allowed_actions, s.state, s);
    failover.update(s);
    drills.update(s, points);
    verify.update(s);
    retention.update(s);
    dump.update(s);
    replace(linkBox, linkFacts(s));
    replace(rpoBox, h('dl', { class: 'facts' }, row('RPO now', rpoFacts(s.rpo_state))));
    rpo.update();
    replace(successesBox, lastSuccesses(s.last_successes));
    bandwidth.update();
    renderCharts();
    replace(disksBox, disks(s));
    replace(pointsBox, pointsTable(s, points, pages.length > 1, onPin, onExport));
    newer.disabled = pages.length === 1;
    older.disabled = points.length < POINTS_SHOWN;
    pointsPager.hidden = pages.length === 1 && points.length < POINTS_SHOWN;
  }

  function gone(message) {
    replace(head, h('p', { class: 'error', role: 'alert' }, message));
    actions.update([]);
  }

  replace(main,
    h('nav', { 'aria-label': 'Breadcrumb', class: 'crumbs' }, h('a', { href: '#/', id: 'back' }, '← Protected servers'), auditLink),
    title, head, prog, rpoSection, successesBox, actions.el, failover.el, dump.el, linkBox, bandwidth.el,
    h('section', { 'aria-labelledby': 'charts-title' }, h('h2', { id: 'charts-title' }, 'Lag and throughput'), charts),
    h('section', { 'aria-labelledby': 'disks-title' }, h('h2', { id: 'disks-title' }, 'Disks'), disksBox),
    h('section', { 'aria-labelledby': 'points-title' }, h('h2', { id: 'points-title' }, 'Recovery points'), pointsBox, pointsPager),
    drills.el, verify.el, retention.el,
    h('section', { 'aria-labelledby': 'tasks-title' }, h('h2', { id: 'tasks-title' }, 'Tasks'), tasks.el));

  return {
    async refresh() {
      let s;
      try {
        s = await get(pairPath(pairId));
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          gone(`This standby has no DR pair '${pairId}': ${e.message}`);
          return;
        }
        throw e;
      }
      const since = history.length ? history[history.length - 1].t_unix_ms : 0;
      const [, hist] = await Promise.all([loadPoints(), get(`${pairPath(pairId)}/history?since=${since}`)]);
      status = s;
      addHistory(hist.samples);
      render();
      await Promise.all([tasks.refresh(), drills.refresh()]);
    },
    streamPath: `/events?pair=${encodeURIComponent(pairId)}`,
    // One event of the pair's stream: the status, new history samples, and revisions of the
    // lists that are fetched again only when they changed.
    async push(name, data) {
      if (name === 'gone') { gone(data.message || `The DR pair '${pairId}' is gone.`); return; }
      if (name !== 'pair') return;
      const fetches = [];
      // The newest page of points comes with the event when it changed; an older page is
      // fetched again.
      if (revs.points !== data.points_rev) {
        if (data.points && pages.length === 1) points = data.points;
        else fetches.push(loadPoints());
      }
      if (revs.tasks !== data.tasks_rev) fetches.push(tasks.refresh());
      if (revs.drills !== data.drills_rev) fetches.push(drills.refresh());
      await Promise.all(fetches);
      revs.points = data.points_rev;
      revs.tasks = data.tasks_rev;
      revs.drills = data.drills_rev;
      status = data.status;
      addHistory(data.history || []);
      render();
    },
  };
}
