// Verification of a pair: its stored data (every chunk a point can see re-read, decompressed
// and re-hashed; damaged chunks named with the points that see them) and its source against
// the newest point (the agent reads every chunk; mismatches are repaired). Progress and
// results come from the pair's status; the buttons start them (operator role).

import { ApiError, pairPath, post, roleAllows } from './api.js';
import { h, replace } from './dom.js';
import { bytes, clock, percent } from './format.js';

function storedFacts(v) {
  const when = v.finished_unix_ms ? `finished ${clock(v.finished_unix_ms)}` : `started ${clock(v.requested_unix_ms)}`;
  const out = [h('p', { id: 'verify-text' },
    `${v.state === 'running' ? `Running ${percent(v.progress_percent)}` : v.state} · ${when} · `
    + `${v.point == null ? 'every point' : `point #${v.point}`} · ${v.chunks_checked} chunks (${bytes(v.bytes_checked)}) checked · `
    + `${v.points_verified} point(s) intact · ${v.points_damaged} damaged`),
  h('p', { id: 'verify-message', class: v.points_damaged ? 'error' : null }, v.message)];
  if (v.state === 'running') out.splice(0, 0, h('progress', { max: 100, value: v.progress_percent, 'aria-label': 'Verification progress' }));
  if (v.damaged.length) {
    out.push(h('table', { class: 'damaged', id: 'verify-damaged' },
      h('caption', {}, `Damaged chunks (${v.damaged.length}${v.damaged.length >= 50 ? ', the first 50' : ''})`),
      h('thead', {}, h('tr', {}, ['Disk', 'Chunk', 'Hash', 'What is wrong', 'Points that see it'].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, v.damaged.map((c) => h('tr', {},
        h('td', { class: 'num' }, c.disk), h('td', { class: 'num' }, c.chunk), h('td', {}, h('code', {}, c.hash.slice(0, 16))),
        h('td', {}, c.reason), h('td', {}, c.points.map((p) => `#${p}`).join(' ')))))));
  }
  return out;
}

function sourceFacts(v) {
  const out = [h('p', { id: 'verify-source-text' },
    `${v.state.replace('_', ' ')}${['requested', 'running'].includes(v.state) ? ` ${percent(v.progress_percent)}` : ''} · `
    + `against point ${v.against_point == null ? '—' : `#${v.against_point}`} · ${v.chunks_compared} chunks compared · `
    + `${v.mismatched_chunks} mismatched · ${v.shipped_chunks} shipped`
    + `${v.repair_point ? ` · repaired in point #${v.repair_point}` : ''}`),
  h('p', { id: 'verify-source-message', class: v.mismatched_chunks ? 'error' : null }, v.message)];
  if (['requested', 'running'].includes(v.state)) {
    out.splice(0, 0, h('progress', { max: 100, value: v.progress_percent, 'aria-label': 'Source verification progress' }));
  }
  if (v.sample.length) {
    out.push(h('p', { id: 'verify-source-sample' }, 'Mismatched chunks: ',
      v.sample.map((c) => `disk ${c.disk} chunk ${c.chunk}`).join(', ')));
  }
  return out;
}

export function verifySection(pairId, ctx) {
  const stored = h('button', { type: 'button', id: 'act-verify' }, 'Verify stored data');
  const source = h('button', { type: 'button', id: 'act-verify-source' }, 'Verify source against newest point');
  const result = h('p', { id: 'verify-result', class: 'result', role: 'status', 'aria-live': 'polite' });
  const error = h('p', { id: 'verify-error', class: 'error', role: 'alert', hidden: true });
  const storedBox = h('div', { id: 'verify-box' });
  const sourceBox = h('div', { id: 'verify-source-box' });

  async function run(label, path) {
    error.hidden = true;
    result.textContent = `${label}…`;
    try {
      await post(`${pairPath(pairId)}${path}`, {});
      result.textContent = `${label} started.`;
    } catch (e) {
      result.textContent = '';
      error.hidden = false;
      error.textContent = `${label} refused: ${e instanceof ApiError ? e.words : e.message}`;
    }
    ctx.refreshNow();
  }
  stored.addEventListener('click', () => run('Verification of stored data', '/verify'));
  source.addEventListener('click', () => run('Verification of the source', '/verify-source'));

  return {
    el: h('section', { class: 'verify', 'aria-labelledby': 'verify-title' },
      h('h2', { id: 'verify-title' }, 'Verification'),
      h('div', { class: 'buttons' }, stored, source), result, error,
      h('h3', {}, 'Stored data'), storedBox, h('h3', {}, 'Source against the newest point'), sourceBox),
    update(s) {
      const op = roleAllows('operator');
      stored.hidden = !op;
      source.hidden = !op;
      const has = (a) => s.allowed_actions.includes(a);
      stored.disabled = !has('verify');
      source.disabled = !has('verify_source');
      stored.title = stored.disabled ? 'Needs a recovery point, and no verification running.' : '';
      source.title = source.disabled ? 'Needs a connected agent, a recovery point and no other pass running.' : '';
      replace(storedBox, s.verify ? storedFacts(s.verify) : h('p', { class: 'muted' }, 'Never verified.'));
      replace(sourceBox, s.source_verify ? sourceFacts(s.source_verify) : h('p', { class: 'muted' }, 'Never compared with the source.'));
    },
  };
}
