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
export const session = { role: null };

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
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);
export const del = (path) => call('DELETE', path);
export const put = (path, body) => call('PUT', path, body);

export const pairPath = (id) => `/pairs/${encodeURIComponent(id)}`;

// Downloads a disk image of a point through the API (the token goes in a header, so a plain
// link cannot do it).
export async function downloadImage(pair, point, disk) {
  const r = await fetch(`/api/v1${pairPath(pair)}/points/${point}/disks/${disk}/image`, {
    headers: { Authorization: `Bearer ${token.get()}` },
  });
  if (!r.ok) {
    let body = null;
    try { body = await r.json(); } catch { body = null; }
    throw new ApiError(r.status, body || { message: r.statusText });
  }
  const blob = await r.blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${pair}-point${point}-disk${disk}.img`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}
