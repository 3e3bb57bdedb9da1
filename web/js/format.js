// Numbers, sizes, times and durations as an operator reads them.

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export const rate = (n) => `${bytes(Math.round(n || 0))}/s`;

export function duration(sec) {
  if (sec === null || sec === undefined) return '—';
  const s = Math.max(0, Math.round(sec));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

// A time as local date and time, with the UTC original in a tooltip.
export function time(rfc3339) {
  if (!rfc3339) return '—';
  const d = new Date(rfc3339);
  return Number.isNaN(d.getTime()) ? rfc3339 : d.toLocaleString();
}

export const clock = (ms) => new Date(ms).toLocaleTimeString();

export const percent = (p) => `${(Math.round((p || 0) * 10) / 10).toFixed(1)}%`;

export const yesNo = (b) => (b ? 'Yes' : 'No');
