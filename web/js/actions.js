// The pair's actions: Start (the reference console's Start dialog, start.js), Restart
// Replication (through the confirmation dialog), Pause and Stop (each asks for OK, as the
// reference console's Pause dialog does), Resume, Create recovery point. Each button is enabled only when the pair's `allowed_actions` has it
// (the API would refuse it otherwise), and shown only when the caller's role may take it; the
// API's answer is shown in words either way.

import { ApiError, del, pairPath, post, roleAllows } from './api.js';
import { h } from './dom.js';
import { openStart } from './start.js';

const WHY_NOT = {
  start: 'Only a stopped, paused or never-started pair is started.',
  restart: 'Restart is not possible in this state (the pair never ran).',
  pause: 'Only a running pair can be paused.',
  stop: 'Only a running or paused pair can be stopped.',
  resume: 'Only a paused or stopped pair can be resumed.',
  create_point: 'A recovery point can be cut only while the agent is connected and shipping.',
  adopt_growth: 'Only disks that grew (state Configuration changed) can be adopted without a restart.',
  delete: 'A failed-over pair cannot be deleted; fail back first.',
};

// The role each button needs (as the API's roles say).
const NEEDS = {
  start: 'operator',
  restart: 'admin', pause: 'operator', stop: 'operator', resume: 'operator', create_point: 'operator', adopt_growth: 'operator', delete: 'admin',
};

export function actionsPanel(pairId, ctx) {
  const result = h('p', { id: 'action-result', class: 'result', role: 'status', 'aria-live': 'polite' });
  const error = h('p', { id: 'action-error', class: 'error', role: 'alert', hidden: true });
  let busy = false;
  let allowed = [];
  let current = null;

  function show(ok, text) {
    result.textContent = ok ? text : '';
    error.hidden = ok;
    error.textContent = ok ? '' : text;
  }

  async function run(label, path, body) {
    busy = true;
    update(allowed);
    show(true, `${label}…`);
    try {
      const r = await post(`${pairPath(pairId)}${path}`, body);
      show(true, r && r.message ? r.message
        : `Recovery point requested (request ${r && r.request_id}); it is listed once the standby commits it.`);
      return true;
    } catch (e) {
      show(false, `${label} refused: ${e instanceof ApiError ? e.words : e.message}`);
      return false;
    } finally {
      busy = false;
      ctx.refreshNow();
    }
  }

  const buttons = {
    start: h('button', { type: 'button', id: 'act-start', class: 'primary' }, 'Start…'),
    restart: h('button', { type: 'button', id: 'act-restart', class: 'danger' }, 'Restart Replication'),
    pause: h('button', { type: 'button', id: 'act-pause' }, 'Pause'),
    stop: h('button', { type: 'button', id: 'act-stop' }, 'Stop'),
    resume: h('button', { type: 'button', id: 'act-resume' }, 'Resume'),
    create_point: h('button', { type: 'button', id: 'act-point' }, 'Create recovery point'),
    adopt_growth: h('button', { type: 'button', id: 'act-adopt-growth' }, 'Adopt grown disks'),
    delete: h('button', { type: 'button', id: 'act-delete', class: 'danger' }, 'Delete pair'),
  };
  buttons.start.addEventListener('click', () => openStart(pairId, current, (ok, text) => { show(ok, text); ctx.refreshNow(); })
    .catch((e) => show(false, `Start: ${e instanceof ApiError ? e.words : e.message}`)));
  buttons.adopt_growth.addEventListener('click', () => run('Adopt grown disks', '/adopt-growth'));
  buttons.delete.addEventListener('click', () => openDelete());
  buttons.pause.addEventListener('click', () => openOk('Pause replication',
    `Pause ${pairId}? The agent keeps tracking changes but ships nothing until Resume; no recovery point is cut meanwhile.`,
    () => run('Pause', '/pause')));
  buttons.stop.addEventListener('click', () => openOk('Stop replication',
    `Stop ${pairId}? Shipping stops (STOPPED_BY_USER) until Resume or Start; recovery points are kept.`,
    () => run('Stop', '/stop')));
  buttons.resume.addEventListener('click', () => run('Resume', '/resume'));
  buttons.create_point.addEventListener('click', () => run('Create recovery point', '/points', {}));
  buttons.restart.addEventListener('click', () => openRestart());

  // The typed-confirmation dialogs live in index.html (ids `NAME-dialog`, `NAME-confirm`, …);
  // each is wired for this pair when it opens. `act` does the action: it returns null when it
  // succeeded, else the words to show in the dialog.
  function openConfirm(name, act) {
    const el = (part) => document.getElementById(`${name}-${part}`);
    const [dialog, input, go, err] = [el('dialog'), el('confirm'), el('go'), el('error')];
    el('pair').textContent = pairId;
    input.value = '';
    go.disabled = true;
    err.hidden = true;
    input.oninput = () => { go.disabled = input.value.trim() !== pairId; };
    el('cancel').onclick = () => dialog.close();
    el('form').onsubmit = async (ev) => {
      ev.preventDefault();
      if (input.value.trim() !== pairId) return;
      go.disabled = true;
      const refused = await act();
      if (refused === null) dialog.close();
      else {
        err.hidden = false;
        err.textContent = refused;
        go.disabled = false;
      }
    };
    dialog.showModal();
    input.focus();
  }

  // A question answered with OK or Cancel (`#ok-dialog` in index.html); `act` runs on OK.
  function openOk(title, text, act) {
    const el = (part) => document.getElementById(`ok-${part}`);
    const dialog = el('dialog');
    el('title').textContent = title;
    el('text').textContent = text;
    el('error').hidden = true;
    el('cancel').onclick = () => dialog.close();
    el('form').onsubmit = async (ev) => {
      ev.preventDefault();
      dialog.close();
      await act();
    };
    dialog.showModal();
    el('go').focus();
  }

  function openRestart() {
    openConfirm('restart', async () => (await run('Restart Replication', '/restart', { confirm: pairId }) ? null : error.textContent));
  }

  // Deleting: then back to the list, which says what was deleted.
  function openDelete() {
    openConfirm('delete', async () => {
      try {
        const r = await del(`${pairPath(pairId)}?confirm=${encodeURIComponent(pairId)}`);
        sessionStorage.setItem('drpair-notice', r.message);
        window.location.hash = '#/';
        return null;
      } catch (e) {
        return `Delete refused: ${e instanceof ApiError ? e.words : e.message}`;
      }
    });
  }

  function update(allowedNow, state, status) {
    allowed = allowedNow.slice();
    current = status || current;
    if (state && !['failed_over', 'failing_back'].includes(state)) allowed.push('delete');
    // Start opens on a pair that is stopped, paused or never ran (its dialog offers the types).
    if (allowed.includes('resume') || allowed.includes('start')) allowed.push('start');
    for (const [name, b] of Object.entries(buttons)) {
      b.hidden = !roleAllows(NEEDS[name]);
      const ok = !busy && allowed.includes(name);
      b.disabled = !ok;
      b.title = ok ? '' : (busy ? 'Waiting for the previous action' : WHY_NOT[name]);
    }
  }

  const el = h('section', { class: 'actions', 'aria-labelledby': 'actions-title' },
    h('h2', { id: 'actions-title' }, 'Actions'),
    h('div', { class: 'buttons' }, buttons.start, buttons.restart, buttons.pause, buttons.stop, buttons.resume, buttons.create_point,
      buttons.adopt_growth, buttons.delete),
    result, error);
  return { el, update, show };
}
