// Failover drills of a pair: start one (the point: latest, by time or by id; how long it
// runs; an optional check command run on the standby), the running ones with their NBD
// addresses and time left (Stop ends one), and each drill's report: point, RPO, ready time,
// check result, who and when — as `drpair drill start|list|stop` and GET …/drills give them.
// A drill may boot the point in a guest on the standby: its report then shows the boot's
// result and time, the console's last lines and the guest's screenshot (GET …/screenshot).

import { ApiError, get, getBlob, pairPath, post, roleAllows, session } from './api.js';
import { h, replace } from './dom.js';
import { localToUtc, radios } from './dialog.js';
import { duration, time } from './format.js';

const TTLS = [[900, '15 minutes'], [3600, '1 hour'], [4 * 3600, '4 hours'], [86400, '1 day']];
const REPORTS_SHOWN = 10;
const BOOT_TIMEOUTS = [[60, '1 minute'], [300, '5 minutes'], [900, '15 minutes']];
const MEMORY = ['512M', '1G', '2G', '4G', '8G'];

function secs(ms) { return `${(ms / 1000).toFixed(1)} s`; }

function bootWords(b) {
  if (!b) return '—';
  if (b.state === 'booting') return 'booting…';
  if (b.state === 'passed') return `passed in ${secs(b.boot_ms || 0)}`;
  return 'FAILED';
}

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
  const boot = h('input', { id: 'drill-boot', type: 'checkbox', 'aria-describedby': 'drill-boot-help' });
  const expect = h('input', { id: 'drill-expect', type: 'text', size: 20, autocomplete: 'off', spellcheck: 'false', placeholder: 'login:' });
  const bootTimeout = h('select', { id: 'drill-boot-timeout' }, BOOT_TIMEOUTS.map(([s, words]) => h('option', { value: s, selected: s === 300 }, words)));
  const memory = h('select', { id: 'drill-memory' }, MEMORY.map((m) => h('option', { value: m, selected: m === '2G' }, m)));
  const bootBox = h('div', { class: 'inline-form' },
    h('label', { for: 'drill-expect' }, 'Console must show'), expect,
    h('label', { for: 'drill-boot-timeout' }, 'within'), bootTimeout,
    h('label', { for: 'drill-memory' }, 'Memory'), memory);
  const go = h('button', { type: 'submit', id: 'drill-start' }, 'Start drill');
  const timeBox = h('div', {}, h('label', { for: 'drill-time' }, 'Time (your local time)'), when);
  const idBox = h('div', {}, h('label', { for: 'drill-point-pick' }, 'Point'), pointId);
  const form = h('form', { id: 'drill-form', class: 'inline-form' },
    pick.el, timeBox, idBox,
    h('label', { for: 'drill-ttl' }, 'Runs for'), ttl,
    h('label', { for: 'drill-check' }, 'Check command'), check,
    h('p', { id: 'drill-check-help', class: 'help' },
      'Run on the standby once the exports are served; it finds them in DRPAIR_DRILL_NBD_0, _1, …. The drill passes when it exits 0.'),
    h('div', {}, boot, h('label', { for: 'drill-boot' }, ' Boot it in a guest on the standby')),
    h('p', { id: 'drill-boot-help', class: 'help' },
      'QEMU boots the point from the drill\'s exports (no network); the drill passes when the guest\'s serial console shows the pattern (a regular expression; default: a login prompt) in time.'),
    bootBox,
    h('div', { class: 'buttons' }, go));
  boot.addEventListener('change', () => { bootBox.hidden = !boot.checked; });
  bootBox.hidden = true;
  const running = h('div', { id: 'drills-running' });
  const reports = h('div', { class: 'table-box', id: 'drill-reports' });
  const bootEvidence = h('div', { id: 'drill-boot-evidence' });
  const shots = new Map(); // drill id → its screenshot as a data: URL
  let shown = null; // the drill whose boot evidence is shown (default: the newest that booted)
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
    if (boot.checked) {
      body.boot = { timeout_seconds: Number(bootTimeout.value), memory: memory.value };
      if (expect.value.trim()) body.boot.expect = expect.value.trim();
    }
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
    const heads = ['Drill', 'State', 'Point', 'RPO', 'Ready in', 'Check', 'Boot', 'By', 'When'];
    const rows = drills.slice(0, REPORTS_SHOWN).map((d) => h('tr', { 'data-drill': d.id, 'data-state': d.state },
      h('td', {}, d.id), h('td', {}, d.state), h('td', {}, `#${d.point} · ${time(d.point_time)}`),
      h('td', { class: 'num' }, duration(d.point_age_seconds)), h('td', { class: 'num' }, d.ready_ms < 1000 ? `${Math.round(d.ready_ms)} ms` : `${(d.ready_ms / 1000).toFixed(2)} s`),
      h('td', { class: 'message', title: d.check ? d.check.output : null }, checkWords(d.check)),
      h('td', { class: 'boot', title: d.boot && d.boot.reason ? d.boot.reason : null }, bootWords(d.boot),
        d.boot ? [' ', h('button', {
          type: 'button', class: 'small', id: `drill-boot-show-${d.id}`, 'aria-label': `Show the boot evidence of drill ${d.id}`,
          onclick: () => { shown = d.id; renderBoot(); },
        }, 'Evidence')] : null),
      h('td', {}, d.operator), h('td', {}, time(d.requested_at))));
    replace(reports, h('table', { class: 'drills' },
      h('caption', {}, 'Drill reports (newest first)'),
      h('thead', {}, h('tr', {}, heads.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: heads.length, class: 'empty' }, 'No drill yet.')))));
    renderBoot();
  }

  // The boot evidence of one drill: result, time, the console's last lines, the screenshot.
  function renderBoot() {
    const d = drills.find((x) => x.id === shown && x.boot) || drills.find((x) => x.boot);
    if (!d) { replace(bootEvidence); return; }
    const b = d.boot;
    const result = b.state === 'passed'
      ? `Passed: the console matched /${b.expect}/ in ${secs(b.boot_ms || 0)}`
      : b.state === 'failed' ? `FAILED: ${b.reason || ''}` : `Booting… (${b.console_bytes} bytes on the console so far)`;
    const img = h('img', { id: 'drill-screenshot', alt: `The guest's screen, drill ${d.id} of point #${d.point}`, hidden: true });
    const full = h('button', { type: 'button', class: 'small', id: 'drill-console-full' }, 'Full console log');
    const pre = h('pre', { id: 'drill-console', class: 'console' }, b.console_tail || '(the console printed nothing)');
    full.addEventListener('click', async () => {
      try { pre.textContent = await (await getBlob(`/drills/${encodeURIComponent(d.id)}/console`)).text(); } catch (e) { pre.textContent = `(${e instanceof ApiError ? e.words : e.message})`; }
    });
    replace(bootEvidence, h('section', { class: 'boot-evidence', 'data-drill': d.id, 'data-boot': b.state, 'aria-labelledby': 'drill-boot-title' },
      h('h3', { id: 'drill-boot-title' }, `Boot of drill ${d.id} (point #${d.point})`),
      h('p', { id: 'drill-boot-result', class: b.state === 'failed' ? 'error' : 'result' }, result),
      h('p', { class: 'muted' }, `${b.accel}, ${b.memory_mib} MiB, ${b.cpus} CPU(s), ${b.firmware}; within ${duration(b.timeout_seconds)}${b.guest_running ? '; the guest runs until the drill ends' : ''}`),
      b.note ? h('p', { class: 'muted' }, b.note) : null,
      h('h4', {}, 'Console (last lines) '), full, pre,
      b.screenshot ? h('figure', {}, img, h('figcaption', {}, 'The guest\'s screen at the console\'s match or the boot\'s failure')) : null));
    if (b.screenshot) {
      const url = shots.get(d.id);
      const put = (u) => { img.src = u; img.hidden = false; };
      if (url) put(url);
      // A data: URL (the panel's CSP allows images from itself and data: only).
      else {
        getBlob(`/drills/${encodeURIComponent(d.id)}/screenshot`).then((blob) => new Promise((ok, fail) => {
          const r = new FileReader();
          r.onload = () => ok(r.result);
          r.onerror = () => fail(r.error);
          r.readAsDataURL(blob);
        })).then((u) => { shots.set(d.id, u); put(u); }).catch(() => {});
      }
    }
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
      form, result, error, h('h3', {}, 'Running'), running, reports, bootEvidence),
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
