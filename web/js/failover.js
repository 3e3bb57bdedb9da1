// Failover and failback, guided. Failover: choose the point (its consistency class and
// verified/tested marks shown), one target on the standby per disk, read what will be
// overwritten, type the pair id; then the progress, read from the pair's status (so it
// survives a page reload). Failback: the recovered disks and which way the data goes, in
// plain words. Both through POST /api/v1/pairs/{pair}/failover|failback (admin).

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
      + `${g.note ? ` · ${g.note}` : ''}`) : null,
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

// Protection while failed over (read-only here; `drpair pairs protect-recovered` starts it).
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
  const box = h('div', { id: 'failover-box' });
  let status = null;
  const done = (ok, text) => { say(ok, text); ctx.refreshNow(); };
  goOver.addEventListener('click', () => openFailover(pairId, status, done).catch((e) => say(false, e.message)));
  goBack.addEventListener('click', () => openFailback(pairId, status, done));
  return {
    el: h('section', { class: 'failover', 'aria-labelledby': 'failover-title' },
      h('h2', { id: 'failover-title' }, 'Failover and failback'),
      h('div', { class: 'buttons' }, goOver, goBack), box),
    update(s) {
      status = s;
      const admin = roleAllows('admin');
      goOver.hidden = !admin;
      goBack.hidden = !admin;
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
