// A pair against its RPO target (rpo_state: ok / warning / error, the current RPO, whose
// target), its last successes (point, verify, online verify, drill, app-consistent point),
// and the form that sets the pair's RPO target and error threshold (operator role).

import { ApiError, pairPath, put, roleAllows } from './api.js';
import { h } from './dom.js';
import { duration, time } from './format.js';

export const RPO_LEVELS = ['ok', 'warning', 'error'];
const WORDS = { ok: 'OK', warning: 'Warning', error: 'Error' };
const BADGE = { ok: 'ok', warning: 'warning', error: 'critical' };

// `30s`, `5m`, `2h`, `1d`, or `90s` when not a whole larger unit (as the API writes them).
export function rpoText(seconds) {
  for (const [unit, scale] of [['d', 86400], ['h', 3600], ['m', 60]]) {
    if (seconds >= scale && seconds % scale === 0) return `${seconds / scale}${unit}`;
  }
  return `${seconds}s`;
}

// The list's sort key: no target first, then ok, warning, error; within a level, the RPO.
export function rpoRank(r) {
  return r ? RPO_LEVELS.indexOf(r.state) * 1e9 + r.rpo_seconds : -1;
}

// The level as a filter value: ok, warning, error, or none (no target).
export const rpoLevel = (r) => (r ? r.state : 'none');

// A badge: the level, the current RPO and the target (`OK · 12s / 1m`).
export function rpoBadge(r) {
  if (!r) return h('span', { class: 'rpo muted' }, 'No target');
  const whose = r.target_source === 'standby' ? "the standby's default" : "the pair's own";
  return h('span', {
    class: `rpo badge ${BADGE[r.state]}`,
    title: `${WORDS[r.state]} since ${time(r.since)}: the newest point is ${duration(r.rpo_seconds)} old; target ${rpoText(r.target_seconds)} (${whose}), error at ${rpoText(r.error_seconds)}`,
  }, `${WORDS[r.state]} · ${duration(r.rpo_seconds)} / ${rpoText(r.target_seconds)}`);
}

// The pair page's line on its RPO.
export function rpoFacts(r) {
  if (!r) return h('span', { id: 'rpo-state' }, 'No RPO target: set one below (or give the standby a default, [standby] rpo_target).');
  const whose = r.target_source === 'standby' ? "the standby's default target" : "the pair's own target";
  return h('span', { id: 'rpo-state' }, rpoBadge(r),
    ` ${WORDS[r.state]} since ${time(r.since)} · newest point ${duration(r.rpo_seconds)} old · `
    + `target ${rpoText(r.target_seconds)} (error at ${rpoText(r.error_seconds)}), ${whose}`);
}

const SUCCESSES = [
  ['point', 'Newest point'],
  ['verify', 'Verify (stored chunks)'],
  ['source_verify', 'Online verify'],
  ['drill', 'Drill'],
  ['app_consistent_point', 'App-consistent point'],
];

// When each last succeeded: a section of the pair page.
export function lastSuccesses(l) {
  const now = Date.now();
  const rows = SUCCESSES.map(([key, label]) => {
    const s = l ? l[key] : null;
    const text = s
      ? `${time(s.at)} (${duration((now - s.at_unix_ms) / 1000)} ago)${s.point != null ? ` · point #${s.point}` : ''}`
      : 'never';
    return [h('dt', {}, label), h('dd', { id: `last-${key.replaceAll('_', '-')}`, title: s ? s.detail : null }, text)];
  });
  return h('section', { class: 'successes', 'aria-labelledby': 'successes-title' },
    h('h2', { id: 'successes-title' }, 'Last successes'),
    h('dl', { class: 'facts', id: 'last-successes' }, rows.flat()));
}

// The RPO form (made once: what is typed survives the refreshes).
export function rpoForm(pairId, ctx) {
  const target = h('input', { id: 'rpo-target-input', type: 'text', size: 10, placeholder: '30s', 'aria-describedby': 'rpo-help' });
  const error = h('input', { id: 'rpo-error-input', type: 'text', size: 10, placeholder: 'twice', 'aria-describedby': 'rpo-help' });
  const save = h('button', { type: 'submit', id: 'rpo-save' }, 'Set RPO');
  const result = h('p', { id: 'rpo-result', class: 'result', role: 'status', 'aria-live': 'polite' });
  const refused = h('p', { id: 'rpo-error', class: 'error', role: 'alert', hidden: true });
  const form = h('form', { id: 'rpo-form', class: 'inline-form' },
    h('label', { for: 'rpo-target-input' }, 'RPO target'), target,
    h('label', { for: 'rpo-error-input' }, 'Error threshold'), error, save,
    h('p', { id: 'rpo-help', class: 'help' },
      'How old the newest recovery point may get: warning at the target, error at the threshold (twice the target when empty). '
      + '30s, 5m, 2h, 1d; "off" for no target; "default" for the standby\'s default.'),
    result, refused);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {};
    if (target.value.trim()) body.rpo_target = target.value.trim();
    if (error.value.trim()) body.rpo_error = error.value.trim();
    save.disabled = true;
    try {
      if (!Object.keys(body).length) throw new Error('give a target, an error threshold, or both');
      const r = await put(`${pairPath(pairId)}/settings`, body);
      refused.hidden = true;
      result.textContent = r.rpo_target_seconds == null
        ? `${pairId} has no RPO target now.`
        : `RPO target of ${pairId}: ${r.rpo_target} (error at ${rpoText(r.rpo_error_seconds)})${r.rpo_target_source === 'standby' ? ", the standby's default" : ''}.`;
      target.value = '';
      error.value = '';
    } catch (e) {
      result.textContent = '';
      refused.hidden = false;
      refused.textContent = `RPO refused: ${e instanceof ApiError ? e.words : e.message}`;
    } finally {
      save.disabled = false;
      ctx.refreshNow();
    }
  });
  return {
    el: form,
    update() { form.hidden = !roleAllows('operator'); },
  };
}
