// The public /api/v1, with the operator's token. The token lives in sessionStorage (this tab,
// until it closes or the operator logs out), never in a URL.

const KEY = 'drpair.token';

export class ApiError extends Error {
  constructor(status, body) {
    const msg = body && body.message ? body.message : `HTTP ${status}`;
    super(msg);
    this.status = status;
    this.code = body && body.code ? body.code : null;
    this.parameter = body && body.parameter ? body.parameter : null;
  }
  // The error in words for the operator.
  get words() {
    const code = this.code ? ` (${this.code}, HTTP ${this.status})` : ` (HTTP ${this.status})`;
    return `${this.message}${code}`;
  }
}

// The standby did not answer at all (down, network).
export class Unreachable extends Error {}

// The caller's role, as GET /api/v1 says (null until known): the panel hides what it cannot do.
export const session = { role: null, identity: null };

const RANK = { metrics: 0, viewer: 1, operator: 2, admin: 3 };

// Whether the caller's role reaches `needed` (unknown role: shown; the API still decides).
export function roleAllows(needed) {
  return session.role === null || RANK[session.role] >= RANK[needed];
}

export const token = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  const t = token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new Unreachable(`the standby is unreachable: ${e.message}`);
  }
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!r.ok) {
    if (r.status >= 502 && r.status <= 504 && !json) throw new Unreachable(`the standby is unreachable (HTTP ${r.status})`);
    throw new ApiError(r.status, json || { message: text.trim() || r.statusText });
  }
  return json;
}

export const get = (path) => call('GET', path);

// A binary or text answer (a drill's screenshot, its console log) as a Blob, with the token.
export async function getBlob(path) {
  const headers = {};
  const t = token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  const r = await fetch(`/api/v1${path}`, { headers, credentials: 'same-origin', cache: 'no-store' });
  if (!r.ok) {
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { json = null; }
    throw new ApiError(r.status, json || { message: text.trim() || r.statusText });
  }
  return r.blob();
}
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);
export const del = (path) => call('DELETE', path);
export const put = (path, body) => call('PUT', path, body);

export const pairPath = (id) => `/pairs/${encodeURIComponent(id)}`;

// Downloads a disk image of a point straight to disk: the API gives a one-time link (the token
// cannot ride on a plain link), and the browser streams it like any download — no copy in the
// page's memory, no size limit.
export async function downloadImage(pair, point, disk) {
  const link = await post(`${pairPath(pair)}/points/${point}/disks/${disk}/download`);
  const a = document.createElement('a');
  a.href = link.url;
  a.download = link.filename;
  document.body.append(a);
  a.click();
  a.remove();
  return link;
}

// The server push stream (Server-Sent Events over fetch, which can carry the token where
// EventSource cannot): calls `onEvent(name, data)` for each event until the stream ends
// (resolves) or fails (throws). `signal` aborts it. A stream silent for longer than
// `silentMs` (the standby sends a keepalive every 15 s) counts as failed.
export async function stream(path, signal, onEvent, silentMs = 40_000) {
  const headers = { Accept: 'text/event-stream' };
  const t = token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  const quiet = new AbortController();
  signal.addEventListener('abort', () => quiet.abort());
  let r;
  try {
    r = await fetch(`/api/v1${path}`, { headers, signal: quiet.signal, cache: 'no-store', credentials: 'same-origin' });
  } catch (e) {
    if (signal.aborted) return;
    throw new Unreachable(`the standby is unreachable: ${e.message}`);
  }
  if (!r.ok) {
    let body = null;
    try { body = await r.json(); } catch { body = null; }
    throw new ApiError(r.status, body || { message: r.statusText });
  }
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let watchdog = null;
  const arm = () => { clearTimeout(watchdog); watchdog = setTimeout(() => quiet.abort(), silentMs); };
  let buf = '';
  try {
    for (;;) {
      arm();
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n/g, '\n');
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const [field, ...rest] = line.split(':');
          const v = rest.join(':').replace(/^ /, '');
          if (field === 'event') name = v;
          else if (field === 'data') data.push(v);
        }
        if (data.length) await onEvent(name, JSON.parse(data.join('\n')));
      }
    }
  } catch (e) {
    if (signal.aborted) return;
    if (e instanceof ApiError || e instanceof Unreachable) throw e;
    throw new Unreachable(`the push stream broke: ${e.message}`);
  } finally {
    clearTimeout(watchdog);
  }
}
