// A pair's third-party dump workflow: the step it is at and the command that comes next, the
// dump point, each disk's load, the verification against the source, and the workflow's log.

import { h } from './dom.js';
import { percent, time } from './format.js';

const EVENTS_SHOWN = 8;

function loadLine(l) {
  const what = { pending: 'waiting for its image', loading: 'loading', loaded: 'loaded', failed: 'failed' }[l.state] || l.state;
  return h('li', {},
    `Disk ${l.disk}: ${what}`,
    l.image ? ` from ${l.image}${l.format ? ` (${l.format})` : ''}` : '',
    l.state === 'loading' ? h('progress', { max: 100, value: l.percent, 'aria-label': `Disk ${l.disk} dump load` }) : null,
    l.state === 'pending' ? '' : ` · ${percent(l.percent)}`,
    l.error ? ` — ${l.error}` : '');
}

function verification(v) {
  if (v.mismatched_chunks > 0) {
    return `${v.mismatched_chunks} chunk(s) differed from the dump point although nothing changed them: `
      + `the dump was not taken at its point; they were repaired from the source (epoch ${v.epoch})`;
  }
  return `every chunk matches (${v.chunks_compared} compared, ${v.chunks_shipped} changed after the dump shipped, epoch ${v.epoch})`;
}

export function dumpSection(s) {
  const d = s.dump;
  if (!d) return [];
  const facts = [
    ['Step', h('span', { id: 'dump-step' }, d.step_label)],
    ['Next', h('code', { id: 'dump-next' }, d.next_step)],
    ['Suspended', `${time(d.suspended_at)} · recovery checkpoint epoch ${d.checkpoint_epoch}`],
  ];
  if (d.marker) {
    const m = d.marker;
    facts.push(['Dump point', h('span', { id: 'dump-marker' }, `epoch ${m.epoch} · ${time(m.time)} · ${m.at === 'exec' ? 'cut around the snapshot command' : `given as ${m.at}`} · ${m.consistency}`)]);
  }
  if (d.point != null) facts.push(['Recovery point', `#${d.point} (dump-marker)`]);
  if (d.verification) facts.push(['Verification', h('span', { id: 'dump-verification' }, verification(d.verification))]);
  const active = !['done', 'abandoned'].includes(d.step);
  return [h('section', { class: 'dump', 'aria-labelledby': 'dump-title' },
    h('h2', { id: 'dump-title' }, active ? 'Third-party dump in progress' : 'Last third-party dump'),
    h('dl', { class: 'facts' }, facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    d.disks.length ? h('ul', { id: 'dump-disks', class: 'plain' }, d.disks.map(loadLine)) : null,
    h('h3', {}, 'Workflow log'),
    h('ol', { id: 'dump-events', class: 'plain' }, d.events.slice(-EVENTS_SHOWN).map((e) => h('li', {}, `${time(e.time)} — ${e.message}`))))];
}
