// A pair's retention: the grid and keep-last in force, an editor, and a dry-run preview of
// the edited policy (POST …/retention/preview: which points would go and why each kept one
// stays) that must be seen before Save (PUT …/retention, admin) is offered. The form is made
// once, so what the operator types survives the page's updates.

import { ApiError, pairPath, post, put, roleAllows } from './api.js';
import { h, replace } from './dom.js';
import { clock, duration, time } from './format.js';

const REASONS = {
  newest: 'the newest point',
  pinned_operator: 'pinned by an operator',
  pinned_baseline: 'the baseline of the lineage',
  pinned_dump_marker: 'a dump marker point',
  pinned_drill: 'a drill uses it',
  keep_last: 'one of the newest (keep-last)',
  thinned: 'thinned: another point covers its slot',
  expired: 'older than the grid reaches',
};

export function reason(r) {
  const grid = /^grid_(\d+)$/.exec(r);
  if (grid) return `kept by rule ${grid[1]} of the grid`;
  return REASONS[r] || r;
}

function previewTable(report) {
  const marks = [
    ...report.removed.map((m) => ({ ...m, goes: true })),
    ...report.kept.map((m) => ({ ...m, goes: false })),
  ].sort((a, b) => b.id - a.id);
  return [
    h('p', { id: 'retention-preview-summary', class: report.removed.length ? 'warning' : null },
      `With this policy ${report.removed.length} of ${report.points_before} point(s) would be removed and ${report.points_kept} kept.`),
    h('div', { class: 'table-box' }, h('table', { id: 'retention-preview' },
      h('caption', {}, 'Preview (newest first): nothing is changed until Save'),
      h('thead', {}, h('tr', {}, ['Point', 'Time', 'Would', 'Why'].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, marks.map((m) => h('tr', { 'data-point': m.id, 'data-goes': String(m.goes) },
        h('td', { class: 'num' }, `#${m.id}`), h('td', {}, time(m.time)),
        h('td', {}, m.goes ? h('span', { class: 'badge critical' }, 'Go') : h('span', { class: 'badge ok' }, 'Stay')),
        h('td', {}, reason(m.reason))))))),
  ];
}

export function retentionSection(pairId, ctx) {
  const facts = h('dl', { class: 'facts', id: 'retention-facts' });
  const grid = h('input', { id: 'retention-grid', type: 'text', size: 50, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'retention-help' });
  const keep = h('input', { id: 'retention-keep', type: 'number', min: 1, step: 1 });
  const previewBtn = h('button', { type: 'submit', id: 'retention-preview-go' }, 'Preview');
  const saveBtn = h('button', { type: 'button', id: 'retention-save', class: 'danger', disabled: true }, 'Save');
  const resetBtn = h('button', { type: 'button', id: 'retention-reset', class: 'quiet' }, 'Preview the default');
  const result = h('p', { id: 'retention-result', class: 'result', role: 'status', 'aria-live': 'polite' });
  const error = h('p', { id: 'retention-error', class: 'error', role: 'alert', hidden: true });
  const preview = h('div', { id: 'retention-preview-box' });
  let previewed = null; // the request body the preview was made for
  let filled = false;

  const body = () => ({ grid: grid.value.trim(), keep_last: Number(keep.value) });
  const same = (a, b) => a && b && JSON.stringify(a) === JSON.stringify(b);
  function say(ok, text) {
    result.textContent = ok ? text : '';
    error.hidden = ok;
    error.textContent = ok ? '' : text;
  }
  function touched() {
    saveBtn.disabled = !same(previewed, body());
    saveBtn.title = saveBtn.disabled ? 'Preview this policy first' : '';
  }
  grid.addEventListener('input', touched);
  keep.addEventListener('input', touched);

  async function show(req) {
    saveBtn.disabled = true;
    try {
      const report = await post(`${pairPath(pairId)}/retention/preview`, req);
      previewed = req;
      replace(preview, previewTable(report));
      say(true, req.reset ? 'Preview of the standby\'s default policy.' : 'Preview ready: Save applies this policy.');
      saveBtn.disabled = false;
    } catch (e) {
      previewed = null;
      replace(preview);
      say(false, `Preview refused: ${e instanceof ApiError ? e.words : e.message}`);
    }
  }

  const form = h('form', { id: 'retention-form', class: 'inline-form' },
    h('label', { for: 'retention-grid' }, 'Grid'), grid,
    h('label', { for: 'retention-keep' }, 'Always keep the newest'), keep,
    h('p', { id: 'retention-help', class: 'help' },
      'Rules separated by "|": COUNTxINTERVAL keeps one point per interval for COUNT intervals, '
      + 'e.g. 1x10m(keep=all) | 60x1m | 144x10m | 168x1h | 30x1d. Pinned points always stay.'),
    h('div', { class: 'buttons' }, previewBtn, saveBtn, resetBtn));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); show(body()); });
  resetBtn.addEventListener('click', () => show({ reset: true }));
  saveBtn.addEventListener('click', async () => {
    if (!previewed) return;
    saveBtn.disabled = true;
    try {
      const v = await put(`${pairPath(pairId)}/retention`, previewed);
      say(true, `Retention of ${pairId} saved: ${v.description}. The next prune applies it.`);
      previewed = null;
      filled = false;
      replace(preview);
    } catch (e) {
      say(false, `Save refused: ${e instanceof ApiError ? e.words : e.message}`);
    }
    ctx.refreshNow();
  });

  return {
    el: h('section', { class: 'retention', 'aria-labelledby': 'retention-title' },
      h('h2', { id: 'retention-title' }, 'Retention'), facts, form, result, error, preview),
    update(s) {
      const r = s.retention;
      form.hidden = !roleAllows('admin');
      if (!r) { replace(facts, h('dd', {}, 'unknown')); return; }
      const last = r.last_prune;
      replace(facts,
        h('dt', {}, 'Policy'), h('dd', { id: 'retention-policy' }, `${r.grid} · keep the newest ${r.keep_last}${r.is_default ? ' (the standby\'s default)' : ''}`),
        h('dt', {}, 'In words'), h('dd', {}, r.description),
        h('dt', {}, 'Pruned'), h('dd', {}, r.prune_interval_seconds ? `every ${duration(r.prune_interval_seconds)}` : 'only on request'),
        h('dt', {}, 'Last prune'), h('dd', { id: 'retention-last' }, last
          ? `${clock(last.finished_unix_ms)}: ${last.removed.length} removed, ${last.points_kept} kept${last.dry_run ? ' (dry run)' : ''}`
          : 'never'));
      // The form starts from the policy in force, once; later the operator's edits stay.
      if (!filled) {
        grid.value = r.grid;
        keep.value = r.keep_last;
        filled = true;
        touched();
      }
    },
  };
}
