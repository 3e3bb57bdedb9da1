// A pair's third-party dump workflow: each step as a button, in order, enabled only when the
// pair's `allowed_actions` has it; the step it is at and the command that comes next, the
// dump point, each disk's load, the verification against the source, and the workflow's log.

import { ApiError, pairPath, post, roleAllows } from './api.js';
import { h, replace } from './dom.js';
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

function dumpFacts(s) {
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
  return [
    h('dl', { class: 'facts' }, facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    d.disks.length ? h('ul', { id: 'dump-disks', class: 'plain' }, d.disks.map(loadLine)) : null,
    h('h3', {}, 'Workflow log'),
    h('ol', { id: 'dump-events', class: 'plain' }, d.events.slice(-EVENTS_SHOWN).map((e) => h('li', {}, `${time(e.time)} — ${e.message}`)))];
}

// The steps in order: [allowed action, button words, API path, body maker, what it does].
const STEPS = [
  ['suspend', 'Suspend for a dump', '/suspend', null, 'The agent ships nothing; its checkpoint stays; tracking goes on.'],
  ['skip_to_resync_marker', 'Skip to resync marker', '/skip-to-resync-marker', null, 'Purge the queue and wait for the agent\'s resync marker.'],
  ['mark_dump', 'Record the dump point', '/markers/dump', 'mark', 'Take the dump with your tool, then record when it was taken.'],
  ['resume_resync', 'Resume in resync mode', '/resume', () => ({ resync: true }), 'The agent sends its resync marker, then the dump marker.'],
  ['load_dump', 'Load the dump', '/dump/load', 'load', 'Read each disk\'s dump image (on the standby) into the store.'],
  ['resume_apply', 'Resume apply', '/resume-apply', null, 'Ship what changed after the dump point and verify against the source.'],
];

export function dumpWorkflow(pairId, ctx) {
  const at = h('input', { id: 'dump-at', type: 'text', size: 24, value: 'now', spellcheck: 'false', 'aria-describedby': 'dump-at-help' });
  const disk = h('select', { id: 'dump-disk' });
  const image = h('input', { id: 'dump-image', type: 'text', size: 40, spellcheck: 'false', placeholder: '/srv/dumps/disk0.img' });
  const format = h('select', { id: 'dump-format' }, [['', 'detect'], ['raw', 'raw'], ['qcow2', 'qcow2']].map(([v, w]) => h('option', { value: v }, w)));
  const result = h('p', { id: 'dump-result', class: 'result', role: 'status', 'aria-live': 'polite' });
  const error = h('p', { id: 'dump-error', class: 'error', role: 'alert', hidden: true });
  const title = h('h2', { id: 'dump-title' }, 'Third-party dump');
  const facts = h('div', { id: 'dump-facts' });
  const buttons = {};
  const extra = {
    mark: [h('label', { for: 'dump-at' }, 'Dump taken at'), at,
      h('span', { id: 'dump-at-help', class: 'help' }, 'now, an epoch, or an RFC 3339 time')],
    load: [h('label', { for: 'dump-disk' }, 'Disk'), disk, h('label', { for: 'dump-image' }, 'Image on the standby'), image,
      h('label', { for: 'dump-format' }, 'Format'), format],
  };
  const bodies = {
    mark: () => ({ at: at.value.trim() || 'now' }),
    load: () => ({ disk: Number(disk.value), image: image.value.trim(), ...(format.value ? { format: format.value } : {}) }),
  };

  async function run(words, path, body) {
    error.hidden = true;
    result.textContent = `${words}…`;
    try {
      const r = await post(`${pairPath(pairId)}${path}`, body);
      result.textContent = r.message;
    } catch (e) {
      result.textContent = '';
      error.hidden = false;
      error.textContent = `${words} refused: ${e instanceof ApiError ? e.words : e.message}`;
    }
    ctx.refreshNow();
  }

  const steps = h('ol', { id: 'dump-steps', class: 'steps' }, STEPS.map(([name, words, path, body, what]) => {
    const b = h('button', { type: 'button', id: `dump-step-${name.replace(/_/g, '-')}` }, words);
    const make = typeof body === 'string' ? bodies[body] : body || (() => ({}));
    b.addEventListener('click', () => run(words, path, make()));
    buttons[name] = b;
    return h('li', { 'data-step': name }, h('div', { class: 'step-row' }, b, typeof body === 'string' ? extra[body] : null),
      h('p', { class: 'help' }, what));
  }));

  return {
    el: h('section', { class: 'dump', 'aria-labelledby': 'dump-title', id: 'dump-box' }, title, facts, steps, result, error),
    update(s) {
      const d = s.dump;
      const active = d && !['done', 'abandoned'].includes(d.step);
      title.textContent = !d ? 'Third-party dump' : active ? 'Third-party dump in progress' : 'Last third-party dump';
      replace(facts, d ? dumpFacts(s) : h('p', { class: 'muted' },
        'Seed or re-seed this pair from a dump taken by another tool (a storage snapshot, a backup): the steps below, in order.'));
      const admin = roleAllows('admin');
      for (const [name, b] of Object.entries(buttons)) {
        b.hidden = !admin;
        b.disabled = !s.allowed_actions.includes(name);
        b.title = b.disabled ? 'Not the step the workflow is at' : '';
      }
      steps.hidden = !admin;
      const keep = disk.value;
      replace(disk, s.disks.map((x) => h('option', { value: x.index, selected: String(x.index) === keep }, `disk ${x.index} (${x.path})`)));
      if (d && !keep) {
        const next = d.disks.find((l) => l.state !== 'loaded');
        if (next) disk.value = String(next.disk);
      }
    },
  };
}
