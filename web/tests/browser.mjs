// What the browser tests share: headless Debian chromium through playwright-core, the API
// outside the browser, screenshots, axe-core, a second tab, and the stdio dialogue with the
// Rust test that started the script (it prints a question, the test answers one line).

import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };

const t0 = Date.now();
export const step = (m) => console.log(`step [${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`);

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

// Prints `question` and returns the test's one-line answer.
export async function answer(question) {
  console.log(question);
  const { value } = await lines.next();
  return value === undefined ? '' : value.trim();
}

export async function ask(question, expected) {
  const got = await answer(question);
  assert.equal(got, expected, `harness answered ${got} to ${question}`);
}

// A question for the Rust test as JSON (`ASK {…}`), answered with JSON.
export async function askJson(question) {
  const got = await answer(`ASK ${JSON.stringify(question)}`);
  return JSON.parse(got);
}

// The API, outside the browser (to set up or check state behind the page's back).
export function apiClient(url, token) {
  return async function api(method, path, body) {
    const r = await fetch(`${url}/api/v1${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await r.json();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${json.message}`);
    return json;
  };
}

// A browser with one page, its console errors and requests recorded; `close` removes it all.
export async function launch(art, defaultToken) {
  mkdirSync(art, { recursive: true });
  const userData = mkdtempSync(join(tmpdir(), 'drpair-chromium-'));
  const ctx = await chromium.launchPersistentContext(userData, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  ctx.setDefaultTimeout(20_000);
  const page = ctx.pages()[0] || await ctx.newPage();
  const b = { ctx, page, consoleErrors: [], requests: [] };
  const watch = (p) => {
    p.on('console', (m) => { if (m.type() === 'error') b.consoleErrors.push(m.text()); });
    p.on('pageerror', (e) => b.consoleErrors.push(String(e)));
    p.on('request', (r) => b.requests.push({ url: r.url(), at: Date.now(), page: p }));
  };
  watch(page);
  b.shot = async (name, p = page) => {
    await p.screenshot({ path: join(art, `${name}.png`), fullPage: true });
    step(`screenshot ${name}.png`);
  };
  // A second tab: sessionStorage is per tab, so it is given the token as a login would leave it.
  b.tab = async (token = defaultToken, storage = {}) => {
    const p = await ctx.newPage();
    watch(p);
    await p.addInitScript(([t, extra]) => {
      sessionStorage.setItem('drpair.token', t);
      for (const [k, v] of Object.entries(extra)) sessionStorage.setItem(k, v);
    }, [token, storage]);
    return p;
  };
  // Accessibility: axe-core's WCAG 2 A/AA rules on `p` as it is now (the page's CSP allows
  // only its own scripts: axe is evaluated through the devtools protocol).
  b.accessible = async (what, p = page) => {
    const cdp = await ctx.newCDPSession(p);
    const axe = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
    await cdp.send('Runtime.evaluate', { expression: readFileSync(axe, 'utf8') });
    const { result } = await cdp.send('Runtime.evaluate', {
      expression: "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']}).then(r => JSON.stringify(r.violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))))",
      awaitPromise: true,
      returnByValue: true,
    });
    await cdp.detach();
    const violations = JSON.parse(result.value);
    assert.deepEqual(violations, [], `${what}: accessibility violations ${JSON.stringify(violations, null, 1)}`);
    step(`${what}: axe-core finds no WCAG 2 A/AA violation`);
  };
  b.failure = async () => {
    for (const [i, p] of ctx.pages().entries()) {
      await p.screenshot({ path: join(art, `failure-${i}.png`), fullPage: true }).catch(() => {});
    }
    console.error(`console errors: ${JSON.stringify(b.consoleErrors, null, 1)}`);
  };
  b.close = async () => {
    await ctx.close();
    rmSync(userData, { recursive: true, force: true });
    stdin.close();
  };
  return b;
}

// Logs in the panel's page with the token (the login form, as an operator would).
export async function login(page, url, token) {
  await page.goto(url);
  await page.getByLabel('Access token').fill(token);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Protected servers' }).waitFor();
}
