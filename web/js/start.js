// The Start dialog, as the reference console's (OMS JDBCWriter) asks it: the start type, then
// "Whether to Replay Data" — Yes asks for a timestamp or a recovery point to replay from (the
// standby answers with an error, shown here, when the history does not reach back) — and an
// optional stop position. A start that deletes points (a replay, a reload) asks for the pair
// id, as the API does. Everything goes through POST /api/v1/pairs/{pair}/start.

import { ApiError, get, pairPath, post } from './api.js';
import { h } from './dom.js';
import { localToUtc, modal, radios, toLocalInput } from './dialog.js';
import { time } from './format.js';

const STOPS = [
  ['', 'No stop position: replicate until stopped'],
  ['point', 'Stop after the first recovery point at or past a point id'],
  ['time', 'Stop after the first recovery point cut at or past a time'],
  ['server_time', 'Stop when the standby\'s clock reaches a time'],
  ['after_full_load', 'Stop once the baseline is committed (start or reload)'],
  ['full_load_only', 'Copy the baseline only, then stop (start or reload)'],
];

// What each start type means, and why it may not be possible now.
function types(allowed) {
  return [
    ['resume', 'Resume: continue from the recovery checkpoint', allowed.includes('resume') ? null : 'only a paused or stopped pair'],
    ['start', 'Start: the first run of a pair that never ran', allowed.includes('start') ? null : 'the pair has run before'],
    ['reload', 'Reload: delete every recovery point and copy everything again', allowed.includes('restart') ? null : 'not in this state'],
  ];
}

export async function openStart(pairId, status, onDone) {
  const allowed = status.allowed_actions;
  const points = await get(`${pairPath(pairId)}/points?limit=200`);
  const firstType = types(allowed).find(([, , why]) => !why);
  let startType = firstType ? firstType[0] : 'resume';
  let replay = 'no';
  let from = 'time';

  const typeGroup = radios('start-type', 'Start type', types(allowed), startType, (v) => { startType = v; update(); });
  const canReplay = allowed.includes('replay');
  const replayGroup = radios('start-replay', 'Whether to Replay Data', [
    ['no', 'No: start from where replication stopped'],
    ['yes', 'Yes: replay from a timestamp or a recovery point (newer points are deleted)', canReplay ? null : 'no recovery point to replay from'],
  ], replay, (v) => { replay = v; update(); });
  const fromGroup = radios('start-from', 'Replay from', [
    ['time', 'A timestamp (the newest point cut at or before it)'],
    ['point', 'A recovery point'],
  ], from, (v) => { from = v; update(); });
  const timestamp = h('input', {
    id: 'start-timestamp', type: 'datetime-local', step: 1, value: toLocalInput(new Date()),
    'aria-describedby': 'start-history',
  });
  const pointPick = h('select', { id: 'start-point' }, points.slice().reverse().map((p) => h('option', { value: p.id },
    `#${p.id} · ${time(p.time)} · ${p.kind} · ${p.consistency}`)));
  const history = h('p', { id: 'start-history', class: 'help' }, points.length
    ? `Recovery points reach back to ${time(points[0].time)} (#${points[0].id}); the agent's change history `
      + `${status.change_history_from == null ? 'reach is unknown' : `reaches back to epoch ${status.change_history_from}`}.`
    : 'This pair has no recovery point yet.');
  const replayBox = h('div', { class: 'sub-form', id: 'start-replay-box' }, fromGroup.el,
    h('div', { id: 'start-time-box' }, h('label', { for: 'start-timestamp' }, 'Timestamp (your local time)'), timestamp),
    h('div', { id: 'start-point-box' }, h('label', { for: 'start-point' }, 'Recovery point'), pointPick),
    history);
  const stopKind = h('select', { id: 'start-stop' }, STOPS.map(([v, words]) => h('option', { value: v }, words)));
  const stopPoint = h('input', { id: 'start-stop-point', type: 'number', min: 1, step: 1 });
  const stopTime = h('input', { id: 'start-stop-time', type: 'datetime-local', step: 1 });
  const stopPointBox = h('div', {}, h('label', { for: 'start-stop-point' }, 'Stop at point id'), stopPoint);
  const stopTimeBox = h('div', {}, h('label', { for: 'start-stop-time' }, 'Stop at (your local time)'), stopTime);
  const replayRow = h('div', { id: 'start-replay-row' }, replayGroup.el, replayBox);
  stopKind.addEventListener('change', () => update());

  let dialog = null;
  // Replay and reload delete points: the API wants the pair id typed.
  const deletes = () => startType === 'reload' || (startType === 'resume' && replay === 'yes');
  function update() {
    replayRow.hidden = startType !== 'resume';
    replayBox.hidden = replay !== 'yes';
    document.getElementById('start-time-box').hidden = from !== 'time';
    document.getElementById('start-point-box').hidden = from !== 'point';
    stopPointBox.hidden = stopKind.value !== 'point';
    stopTimeBox.hidden = !['time', 'server_time'].includes(stopKind.value);
    if (dialog) {
      dialog.dialog.querySelector('.confirm-box').hidden = !deletes();
      const confirm = dialog.dialog.querySelector('[data-role=confirm]');
      confirm.required = deletes();
      dialog.go.disabled = deletes() && confirm.value.trim() !== pairId;
    }
  }

  // The request, or throws the words of what is missing.
  function request() {
    const body = { type: startType };
    if (startType === 'resume' && replay === 'yes') {
      if (from === 'time') {
        const t = localToUtc(timestamp.value);
        if (!t) throw new Error('Give the timestamp to replay from.');
        body.from_time = t;
      } else {
        if (!pointPick.value) throw new Error('Choose the recovery point to replay from.');
        body.from_point = Number(pointPick.value);
      }
    }
    switch (stopKind.value) {
      case 'point':
        if (!stopPoint.value) throw new Error('Give the point id to stop at.');
        body.stop_at_point = Number(stopPoint.value);
        break;
      case 'time':
      case 'server_time': {
        const t = localToUtc(stopTime.value);
        if (!t) throw new Error('Give the time to stop at.');
        body[stopKind.value === 'time' ? 'stop_at_time' : 'stop_at_server_time'] = t;
        break;
      }
      case 'after_full_load': body.stop_after_full_load = true; break;
      case 'full_load_only': body.full_load_only = true; break;
      default: break;
    }
    if (deletes()) body.confirm = pairId;
    return body;
  }

  const intro = h('p', {}, `Start replication of ${pairId} (now ${status.state_label}).`);
  dialog = modal({
    title: 'Start',
    intro,
    wide: true,
    body: [typeGroup.el, replayRow, h('label', { for: 'start-stop' }, 'Stop position (optional)'), stopKind, stopPointBox, stopTimeBox],
    submit: 'Start',
    confirmPair: pairId,
    act: async () => {
      let body;
      try {
        body = request();
      } catch (e) {
        return e.message;
      }
      try {
        const r = await post(`${pairPath(pairId)}/start`, body);
        onDone(true, r.message);
        return null;
      } catch (e) {
        return `Start refused: ${e instanceof ApiError ? e.words : e.message}`;
      }
    },
  });
  dialog.dialog.id = 'start-dialog';
  // The confirmation is asked only for a start that deletes points.
  const confirm = dialog.dialog.querySelector('[data-role=confirm]');
  const box = h('div', { class: 'confirm-box' });
  confirm.previousElementSibling.before(box);
  box.append(confirm.previousElementSibling, confirm);
  confirm.addEventListener('input', update);
  update();
  (typeGroup.el.querySelector('input:checked') || dialog.go).focus();
}
