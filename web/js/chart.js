// Line charts in plain SVG (no library, no network): time on x, one or more series on y.

import { h, s } from './dom.js';

const W = 600;
const H = 170;
const PAD = { l: 64, r: 10, t: 10, b: 24 };

// A round axis maximum at or above v.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// `series`: [{ name, values: [[t_ms, y], …], cls }]; `fmt` formats a y value.
export function lineChart({ id, title, series, fmt, clock }) {
  const all = series.flatMap((x) => x.values);
  const wrap = h('figure', { class: 'chart', id });
  const cap = h('figcaption', {}, title);
  if (all.length < 2) {
    wrap.append(cap, h('p', { class: 'muted' }, 'Collecting samples… (one every 2 seconds)'));
    return wrap;
  }
  const t0 = Math.min(...all.map((v) => v[0]));
  const t1 = Math.max(...all.map((v) => v[0]));
  const ymax = niceMax(Math.max(...all.map((v) => v[1])));
  const x = (t) => PAD.l + ((t - t0) / Math.max(1, t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - (v / ymax) * (H - PAD.t - PAD.b);
  const latest = series.map((x2) => `${x2.name} ${fmt(x2.values.length ? x2.values[x2.values.length - 1][1] : 0)}`);
  const peak = fmt(Math.max(...all.map((v) => v[1])));
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`,
    role: 'img',
    'aria-label': `${title}: now ${latest.join(', ')}; peak ${peak}; from ${clock(t0)} to ${clock(t1)}`,
  });
  for (const f of [0, 0.5, 1]) {
    const yy = y(ymax * f);
    svg.append(
      s('line', { x1: PAD.l, x2: W - PAD.r, y1: yy, y2: yy, class: 'grid' }),
      s('text', { x: PAD.l - 6, y: yy + 4, class: 'axis', 'text-anchor': 'end' }, fmt(ymax * f)),
    );
  }
  svg.append(
    s('text', { x: PAD.l, y: H - 6, class: 'axis' }, clock(t0)),
    s('text', { x: W - PAD.r, y: H - 6, class: 'axis', 'text-anchor': 'end' }, clock(t1)),
  );
  for (const ser of series) {
    const pts = ser.values.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    svg.append(s('polyline', { points: pts, class: `line ${ser.cls}` }));
  }
  const legend = h('ul', { class: 'legend' }, series.map((ser) => h('li', { class: ser.cls },
    `${ser.name}: ${fmt(ser.values.length ? ser.values[ser.values.length - 1][1] : 0)}`)));
  wrap.append(cap, svg, legend);
  return wrap;
}
