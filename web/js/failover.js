// Failover and failback, guided. Failover: choose the point (its consistency class and
// verified/tested marks shown), one target on the standby per disk, read what will be
// overwritten, type the pair id; then the progress, read from the pair's status (so it
// survives a page reload). Failback: the recovered disks and which way the data goes, in
// plain words. Both through POST /api/v1/pairs/{pair}/failover|failback (admin). An instant
// recovery's session is stopped here, and the recovered disks protected under a new pair.

import { ApiError, get, pairPath, post, roleAllows, session } from './api.js';
import { h, replace } from './dom.js';
import { modal, radios } from './dialog.js';
import { bytes, duration, percent, rate, time } from './format.js';

function marks(p) {
  const m = [];
  if (p.damage) m.push('DAMAGED');
  if (p.verified_at) m.push(`verified ${time(p.verified_at)}`);
  if (p.tested_at) m.push(`tested ${time(p.tested_at)}`);
  if (p.window_exceeded) m.push('read window exceeded');
  return m.length ? m.join(' · ') : 'not verified or tested';
}

async function openFailover(pairId, s, onDone) {
  const points = (await get(`${pairPath(pairId)}/points?limit=200`)).slice().reverse();
  let chosen = points.find((p) => !p.damage && !p.window_exceeded) || points[0];
  const rows = points.map((p) => {
    const input = h('input', {
      type: 'radio', name: 'failover-point', value: p.id, id: `failover-point-${p.id}`, checked: p === chosen,
    });
    input.addEventListener('change', () => { chosen = p; summarise(); });
    return h('tr', { class: p.damage ? 'damaged' : null },
      h('td', {}, input), h('td', {}, h('label', { for: input.id }, `#${p.id}`)), h('td', {}, time(p.time)),
      h('td', {}, p.kind), h('td', {}, p.consistency), h('td', {}, marks(p)));
  });
  const pick = h('div', { class: 'table-box pick' }, h('table', {},
    h('caption', {}, 'Recovery point to fail over to (newest first)'),
    h('thead', {}, h('tr', {}, ['', 'Point', 'Time', 'Kind', 'Consistency', 'Marks'].map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows)));
  const old = s.failover ? s.failover.targets : [];
  const targets = s.disks.map((d) => h('input', {
    id: `failover-target-${d.index}`, type: 'text', size: 40, spellcheck: 'false', autocomplete: 'off', value: old[d.index] || '',
    placeholder: '/dev/… or a file on the standby',
  }));
  targets.forEach((t) => t.addEventListener('input', () => summarise()));
  const force = h('input', { id: 'failover-force', type: 'checkbox' });
  const summary = h('div', { id: 'failover-summary', class: 'warning', 'aria-live': 'polite' });
  function summarise() {
    if (!chosen) { replace(summary, h('p', {}, 'This pair has no recovery point to fail over to.')); return; }
    replace(summary,
      h('p', {}, h('strong', {}, `Point #${chosen.id}`), ` (${time(chosen.time)}, ${chosen.consistency}, ${marks(chosen)}) will be written onto:`),
      h('ul', {}, s.disks.map((d, i) => h('li', {}, `disk ${d.index} (${bytes(d.size_bytes)}, ${d.path} on ${s.agent ? s.agent.host : 'the source'}) → `,
        h('code', {}, targets[i].value.trim() || '(no target yet)')))),
      h('p', {}, h('strong', {}, 'Everything on these targets is overwritten.'),
        ' The pair is fenced: the agent ships nothing until failback.'));
  }
  summarise();
  const d = modal({
    title: 'Failover',
    intro: h('p', {}, `Materialise a recovery point of ${pairId} onto devices or files of this standby, so the server can run here.`),
    wide: true,
    danger: true,
    body: [pick,
      h('fieldset', {}, h('legend', {}, 'One target per disk, on the standby'),
        s.disks.map((disk, i) => [h('label', { for: targets[i].id }, `Disk ${disk.index} (${bytes(disk.size_bytes)})`), targets[i]])),
      h('label', { for: 'failover-force' }, force, ' Overwrite a regular file that already holds data'),
      summary],
    submit: 'Fail over',
    confirmPair: pairId,
    act: async () => {
      if (!chosen) return 'There is no recovery point to fail over to.';
      const list = targets.map((t) => t.value.trim());
      if (list.some((t) => !t)) return 'Give a target for every disk.';
      try {
        await post(`${pairPath(pairId)}/failover`, {
          point: chosen.id, targets: list, force: force.checked, operator: session.identity || 'web panel',
        });
        onDone(true, `Failover of ${pairId} to point #${chosen.id} started.`);
        return null;
      } catch (e) {
        return `Failover refused: ${e instanceof ApiError ? e.words : e.message}`;
      }
    },
  });
  d.dialog.id = 'failover-dialog';
}

function openFailback(pairId, s, onDone) {
  const host = s.agent ? s.agent.host : 'the original server';
  const from = s.disks.map((disk) => h('input', {
    id: `failback-from-${disk.index}`, type: 'text', size: 40, spellcheck: 'false', autocomplete: 'off',
    value: s.failover ? s.failover.targets[disk.index] || '' : '',
  }));
  let direction = 'to-original';
  const dir = radios('failback-direction', 'Which way the data goes', [
    ['to-original', `Back to ${host}: the recovered disks' data is written onto the original disks; `
      + 'their current state is first kept as a recovery point. The usual failback.'],
    ['to-recovered', `Abandon the failover: ${host}'s data is written onto the recovered disks, and ${host} stays the source.`],
  ], direction, (v) => { direction = v; });
  const d = modal({
    title: 'Failback',
    intro: h('p', {}, `Make both sides of ${pairId} equal again; only the chunks where they differ move.`),
    wide: true,
    danger: true,
    body: [h('fieldset', {}, h('legend', {}, 'The recovered disks, on the standby'),
      s.disks.map((disk, i) => [h('label', { for: from[i].id }, `Disk ${disk.index} (${disk.path} on ${host})`), from[i]])), dir.el],
    submit: 'Fail back',
    confirmPair: pairId,
    act: async () => {
      const list = from.map((t) => t.value.trim());
      if (list.some((t) => !t)) return 'Give the recovered disk of every disk.';
      try {
        await post(`${pairPath(pairId)}/failback`, { from: list, direction, operator: session.identity || 'web panel' });
        onDone(true, `Failback of ${pairId} started (${direction === 'to-original' ? `onto ${host}` : 'onto the recovered disks'}).`);
        return null;
      } catch (e) {
        return `Failback refused: ${e instanceof ApiError ? e.words : e.message}`;
      }
    },
  });
  d.dialog.id = 'failback-dialog';
}

// Ends an instant recovery session (POST …/failover/instant/stop, admin): a guest is asked to
// power off (ACPI) and forced off after 30 s if it does not; NBD exports are closed. The
// standby refuses while the copy has not completed (the words are shown in the dialog).
function openStopInstant(pairId, s, onDone) {
  const i = s.failover.instant;
  const what = i.mode === 'boot'
    ? 'Its guest is asked to power off (ACPI) and is forced off if it has not within 30 s.'
    : 'Its NBD exports are closed: attached clients lose the disks.';
  const d = modal({
    title: 'Stop instant recovery',
    intro: h('p', {}, `End the instant recovery of ${pairId}. ${what} `
      + 'The targets keep the recovered disks; the standby refuses while the copy onto them has not completed.'),
    danger: true,
    submit: 'Stop instant recovery',
    confirmPair: pairId,
    act: async () => {
      try {
        const f = await post(`${pairPath(pairId)}/failover/instant/stop`, { operator: session.identity || 'web panel' });
        const g = f.instant && f.instant.guest;
        onDone(true, `Instant recovery of ${pairId} stopped${g && g.stopped ? ` (guest ${STOPPED[g.stopped] || g.stopped})` : ''}.`);
        return null;
      } catch (e) {
        return `Stop refused: ${e instanceof ApiError ? e.words : e.message}`;
      }
    },
  });
  d.dialog.id = 'stop-instant-dialog';
}

// Protects the recovered disks under a new pair (POST …/protect-recovered, admin); the
// standby's defaults (its own link, a point a minute) unless given.
function openProtect(pairId, onDone) {
  const standby = h('input', {
    id: 'protect-standby', type: 'text', size: 30, spellcheck: 'false', autocomplete: 'off', placeholder: "this standby's own link",
  });
  const every = h('input', { id: 'protect-cut-interval', type: 'text', size: 8, spellcheck: 'false', autocomplete: 'off', placeholder: '1m' });
  const d = modal({
    title: 'Protect recovered disks',
    intro: h('p', {}, `Start an agent on this standby for the recovered disks of ${pairId}, under a new pair linked to it, `
      + 'so recovery points keep being cut while the original site is down; a failback can later start from its newest point.'),
    body: [h('fieldset', {}, h('legend', {}, 'Where the points go'),
      h('label', { for: standby.id }, 'Standby link (HOST:PORT)'), standby,
      h('label', { for: every.id }, 'A point every'), every)],
    submit: 'Protect',
    act: async () => {
      const body = { operator: session.identity || 'web panel' };
      if (standby.value.trim()) body.standby = standby.value.trim();
      if (every.value.trim()) body.cut_interval = every.value.trim();
      try {
        const p = await post(`${pairPath(pairId)}/protect-recovered`, body);
        onDone(true, `The recovered disks of ${pairId} are protected by pair ${p.pair}.`);
        return null;
      } catch (e) {
        return `Protection refused: ${e instanceof ApiError ? e.words : e.message}`;
      }
    },
  });
  d.dialog.id = 'protect-dialog';
}

const STOPPED = { powerdown: 'powered off when asked (ACPI)', forced: 'forced off: it did not power off when asked' };

const INSTANT_PHASES = {
  copying: 'the machine runs from the standby while the point is copied onto the targets',
  on_targets: 'the targets alone carry the machine',
  ended: 'the session ended; the targets hold the recovered disks',
  failed: 'failed',
};

// An instant failover's session: its mode, where the copy stands, its guest or exports.
function instantFacts(i) {
  const g = i.guest;
  const since = i.on_targets_at ? ` (since ${i.on_targets_at})` : '';
  return h('div', { id: 'failover-instant' },
    h('p', { id: 'failover-instant-phase' }, `Instant recovery, ${i.mode === 'boot' ? 'in a QEMU guest on the standby' : 'over NBD'}: `
      + `${INSTANT_PHASES[i.phase] || i.phase}${since}${i.resumed ? ` · resumed ${i.resumed}× after a standby restart` : ''}`),
    g ? h('p', { id: 'failover-instant-guest' }, `Guest ${g.running ? 'running' : 'not running'} · ${g.accel}, ${g.memory_mib} MiB, `
      + `${g.cpus} CPU(s) · ${g.boot_ms != null ? `console matched after ${(g.boot_ms / 1000).toFixed(1)} s` : 'console not matched yet'}`
      + `${g.note ? ` · ${g.note}` : ''}${g.stopped ? ` · stopped: ${STOPPED[g.stopped] || g.stopped}` : ''}`) : null,
    g && g.console_tail ? h('pre', { id: 'failover-instant-console' }, g.console_tail) : null,
    i.exports.length ? h('p', { id: 'failover-instant-exports' }, `NBD exports: ${i.exports.join(', ')}`) : null);
}

function failoverFacts(f) {
  return h('div', { id: 'failover-progress' },
    h('h3', {}, `Failover to point #${f.point} — ${f.state}`),
    f.instant ? instantFacts(f.instant) : null,
    f.state === 'running' ? h('progress', { max: 100, value: f.progress_percent, 'aria-label': 'Failover progress' }) : null,
    h('p', { id: 'failover-text' }, `${percent(f.progress_percent)} · ${bytes(f.bytes_written)} of ${bytes(f.bytes_total)} · `
      + `${rate(f.throughput_bytes_per_sec)} · ${duration(f.elapsed_seconds)} · onto ${f.targets.join(', ')}`),
    h('p', { id: 'failover-message' }, f.message));
}

function failbackFacts(b) {
  const words = b.direction === 'to-original' ? 'onto the original server' : 'onto the recovered disks';
  return h('div', { id: 'failback-progress' },
    h('h3', {}, `Failback ${words} — ${b.state}, ${b.phase.replace('_', ' ')}`),
    b.state === 'running' ? h('progress', { max: 100, value: b.progress_percent, 'aria-label': 'Failback progress' }) : null,
    h('p', { id: 'failback-text' }, `${percent(b.progress_percent)} · ${b.chunks_compared} of ${b.chunks_total} chunks compared · `
      + `${b.differing_chunks} differ · ${b.chunks_moved} moved (${bytes(b.bytes_moved)})`
      + `${b.original_point ? ` · original kept as point #${b.original_point}` : ''}`),
    h('p', { id: 'failback-message' }, b.message));
}

// Protection while failed over (started with "Protect recovered disks…" or
// `drpair pairs protect-recovered`).
function protectionFacts(p) {
  const pid = p.agent_pid ? ` · agent pid ${p.agent_pid}` : '';
  const restarts = p.agent_restarts ? ` · restarted ${p.agent_restarts} time(s)` : '';
  return h('div', { id: 'protection' },
    h('h3', {}, `Recovered disks protected by pair ${p.pair} — ${p.state}`),
    h('p', { id: 'protection-text' }, `a point every ${p.cut_interval} · ${p.tracker} on ${p.disks.join(', ')}`
      + ` · standby ${p.standby}${pid}${restarts}`),
    h('p', { id: 'protection-message' }, p.message));
}

export function failoverSection(pairId, ctx, say) {
  const goOver = h('button', { type: 'button', id: 'act-failover', class: 'danger' }, 'Failover…');
  const goBack = h('button', { type: 'button', id: 'act-failback' }, 'Failback…');
  const stopInstant = h('button', { type: 'button', id: 'act-stop-instant', class: 'danger' }, 'Stop instant recovery…');
  const protect = h('button', { type: 'button', id: 'act-protect' }, 'Protect recovered disks…');
  const box = h('div', { id: 'failover-box' });
  let status = null;
  const done = (ok, text) => { say(ok, text); ctx.refreshNow(); };
  goOver.addEventListener('click', () => openFailover(pairId, status, done).catch((e) => say(false, e.message)));
  goBack.addEventListener('click', () => openFailback(pairId, status, done));
  stopInstant.addEventListener('click', () => openStopInstant(pairId, status, done));
  protect.addEventListener('click', () => openProtect(pairId, done));
  return {
    el: h('section', { class: 'failover', 'aria-labelledby': 'failover-title' },
      h('h2', { id: 'failover-title' }, 'Failover and failback'),
      h('div', { class: 'buttons' }, goOver, goBack, stopInstant, protect), box),
    update(s) {
      status = s;
      const admin = roleAllows('admin');
      goOver.hidden = !admin;
      goBack.hidden = !admin;
      const i = s.failover && s.failover.instant;
      // Shown while a session runs; the standby says when stopping is not possible yet.
      stopInstant.hidden = !admin || !i || !['copying', 'on_targets'].includes(i.phase);
      const unprotected = !s.protected_by || ['stopped', 'failed'].includes(s.protected_by.state);
      protect.hidden = !admin || !s.failover || s.failover.state !== 'done' || !unprotected || !!s.failback;
      goOver.disabled = !s.allowed_actions.includes('failover');
      goBack.disabled = !s.allowed_actions.includes('failback');
      goOver.title = goOver.disabled ? 'A failover needs a recovery point and a pair that is not failed over.' : '';
      goBack.title = goBack.disabled ? 'Only a failed-over pair fails back.' : '';
      const parts = [];
      if (s.failover) parts.push(failoverFacts(s.failover));
      if (s.protected_by) parts.push(protectionFacts(s.protected_by));
      if (s.recovered_from) {
        parts.push(h('p', { id: 'recovered-from' }, `This pair protects the recovered disks of pair `
          + `${s.recovered_from.pair} (from its failover point #${s.recovered_from.point}).`));
      }
      if (s.failback) parts.push(failbackFacts(s.failback));
      if (!parts.length) parts.push(h('p', { class: 'muted' }, 'This pair has not failed over.'));
      replace(box, parts);
    },
  };
}
