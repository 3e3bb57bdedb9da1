// Modal dialogs built on <dialog>: the browser traps focus in them and Escape cancels.
// `modal` builds one for a single use (it is removed when it closes); `act` runs on submit and
// returns null when it succeeded (the dialog closes) or the words to show in it (it stays
// open, nothing else changed). With `confirmPair`, the submit button stays disabled until the
// pair id is typed.

import { h } from './dom.js';

let serial = 0;

export function modal({ title, intro, body, submit, danger, confirmPair, act, wide, onClose }) {
  serial += 1;
  const id = `modal-${serial}`;
  const error = h('p', { class: 'error', role: 'alert', hidden: true, id: `${id}-error` });
  const go = h('button', { type: 'submit', class: danger ? 'danger' : 'primary', 'data-role': 'submit' }, submit);
  const cancel = h('button', { type: 'button', class: 'quiet' }, 'Cancel');
  const confirm = confirmPair ? h('input', {
    id: `${id}-confirm`, name: 'confirm', autocomplete: 'off', spellcheck: 'false', required: true, 'data-role': 'confirm',
  }) : null;
  const form = h('form', { method: 'dialog' },
    h('h2', { id: `${id}-title`, class: danger ? null : 'calm' }, title),
    intro ? h('div', { class: danger ? 'warning' : 'intro', id: `${id}-intro` }, intro) : null,
    body,
    confirm ? [h('label', { for: confirm.id }, 'Type the DR Pair ID ', h('code', {}, confirmPair), ' to confirm'), confirm] : null,
    error,
    h('div', { class: 'buttons' }, cancel, go));
  const dialog = h('dialog', {
    id, class: wide ? 'wide' : null, 'aria-labelledby': `${id}-title`, 'aria-describedby': intro ? `${id}-intro` : null,
  }, form);

  const ready = () => !confirm || !confirm.required || confirm.value.trim() === confirmPair;
  if (confirm) {
    go.disabled = true;
    confirm.addEventListener('input', () => { go.disabled = !ready(); });
  }
  cancel.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => { dialog.remove(); if (onClose) onClose(); });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!ready()) return;
    go.disabled = true;
    error.hidden = true;
    let refused;
    try {
      refused = await act();
    } catch (e) {
      refused = e.message;
    }
    if (refused === null || refused === undefined) {
      dialog.close();
      return;
    }
    error.textContent = refused;
    error.hidden = false;
    go.disabled = !ready();
  });
  document.body.append(dialog);
  dialog.showModal();
  const first = form.querySelector('input:not([type=hidden]):not(:disabled), select, textarea');
  (first || go).focus();
  return { dialog, form, error, go, showError(text) { error.textContent = text; error.hidden = !text; } };
}

// A labelled radio group: [value, words, disabled-reason] choices; `onChange(value)`.
export function radios(name, legend, choices, selected, onChange) {
  const inputs = [];
  const set = h('fieldset', { class: 'radios', id: `${name}-group` }, h('legend', {}, legend),
    choices.map(([value, words, why]) => {
      const input = h('input', {
        type: 'radio', name, value, id: `${name}-${value}`, checked: value === selected, disabled: Boolean(why),
      });
      input.addEventListener('change', () => onChange && onChange(value));
      inputs.push(input);
      return h('label', { for: input.id, class: 'radio', title: why || null }, input, ` ${words}`,
        why ? h('span', { class: 'muted' }, ` (${why})`) : null);
    }));
  return { el: set, value: () => (inputs.find((i) => i.checked) || {}).value };
}

// An RFC 3339 UTC time (whole seconds) from a datetime-local input's value (local time).
export function localToUtc(value) {
  if (!value) return null;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return null;
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// A datetime-local value (local time, seconds) for a Date.
export function toLocalInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
