// The pair's link: bytes on the wire now and the limit in force, how alive the agent's
// connection is (round trip, last byte, last heartbeat answer), its faults, and a form to
// set the pair's bandwidth limit (a rate or a schedule; operator role).

import { ApiError, pairPath, put, roleAllows } from './api.js';
import { h } from './dom.js';
import { rate } from './format.js';

function row(label, value) {
  return [h('dt', {}, label), h('dd', {}, value)];
}

const ago = (ms) => (ms == null ? '—' : `${(ms / 1000).toFixed(1)} s ago`);

// The link's facts (rendered again at each refresh).
export function linkFacts(s) {
  const l = s.link;
  const limit = l.bandwidth_limit_bytes_per_second
    ? `${rate(l.bandwidth_limit_bytes_per_second)} (the ${l.bandwidth_limited_by}'s limit)` : 'no limit';
  const items = [
    row('On the wire', h('span', { id: 'link-rate' }, `${rate(l.wire_bytes_per_second)} from the agent · ${limit}`)),
    row('Read on the source', rate(l.agent_read_bytes_per_second)),
    row('Bandwidth setting', h('span', { id: 'link-bandwidth' }, l.bandwidth)),
  ];
  if (l.connected) {
    items.push(row('Liveness', h('span', { id: 'link-liveness' },
      `round trip ${l.rtt_ms == null ? '—' : `${l.rtt_ms.toFixed(1)} ms`} · last byte ${ago(l.last_byte_ms_ago)} · last heartbeat answer ${ago(l.last_ack_ms_ago)}`)));
  }
  items.push(row('Faults', h('span', { id: 'link-faults' },
    `${l.reconnects} reconnects · ${l.connections_failed} failed connections (${l.stalls} stalled) · `
    + `${l.frames_refused_checksum} frames refused for a checksum · ${l.chunks_refused} chunks refused`)));
  if (l.last_disconnect) items.push(row('Last disconnect', h('span', { id: 'link-last-disconnect' }, l.last_disconnect)));
  return [h('section', { class: 'link', 'aria-labelledby': 'link-title' },
    h('h2', { id: 'link-title' }, 'Link'),
    h('dl', { class: 'facts', id: 'link' }, items.flat()))];
}

// The bandwidth form (made once: what is typed survives the refreshes).
export function bandwidthForm(pairId, ctx) {
  const input = h('input', {
    id: 'bandwidth-input', type: 'text', size: 40, placeholder: '20MiB/s, unlimited, or Mon-Fri 08:00-18:00 = 10MiB/s; * = unlimited',
    'aria-describedby': 'bandwidth-help',
  });
  const save = h('button', { type: 'submit', id: 'bandwidth-save' }, 'Set limit');
  const result = h('p', { id: 'bandwidth-result', class: 'result', role: 'status', 'aria-live': 'polite' });
  const error = h('p', { id: 'bandwidth-error', class: 'error', role: 'alert', hidden: true });
  const form = h('form', { id: 'bandwidth-form', class: 'inline-form' },
    h('label', { for: 'bandwidth-input' }, 'Bandwidth limit of this pair'), input, save,
    h('p', { id: 'bandwidth-help', class: 'help' },
      'A rate per second, "unlimited", or a schedule in the standby\'s local time: rules separated by ";", the first that matches wins. In force within a second.'),
    result, error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    try {
      const r = await put(`${pairPath(pairId)}/settings`, { bandwidth: input.value.trim() });
      error.hidden = true;
      result.textContent = `Bandwidth of ${pairId} set to ${r.bandwidth}.`;
      input.value = '';
    } catch (e) {
      result.textContent = '';
      error.hidden = false;
      error.textContent = `Bandwidth refused: ${e instanceof ApiError ? e.words : e.message}`;
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
