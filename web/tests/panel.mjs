// End-to-end test of the web panel in headless Debian chromium, driven by playwright-core,
// against a real standby and real agents (started by tests/web_panel.rs, which passes):
//   DRPAIR_URL        the standby's API/panel base URL (http://127.0.0.1:PORT)
//   DRPAIR_TOKEN      its access token
//   DRPAIR_PAIR       the pair to operate (its agent is throttled so copies take seconds)
//   DRPAIR_OTHER      a second pair, for the search
//   DRPAIR_ARTIFACTS  where the screenshots go
// The standby outage at the end is a dialogue over stdio: this script prints `OUTAGE?`, the
// harness kills the standby and answers `down`; then `RESTORE?`, answered `up`.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { apiClient, ask, env, launch, step } from './browser.mjs';

const URL = env('DRPAIR_URL');
const TOKEN = env('DRPAIR_TOKEN');
const PAIR = env('DRPAIR_PAIR');
const OTHER = env('DRPAIR_OTHER');
const ART = env('DRPAIR_ARTIFACTS');
const LONG = 120_000;

// The API, outside the browser (to change state behind the page's back).
const api = apiClient(URL, TOKEN);
const b = await launch(ART, TOKEN);
const { page, tab, shot } = b;
const consoleErrors = b.consoleErrors;

async function stateIs(label, p = page, timeout = LONG) {
  await p.locator('#state').filter({ hasText: new RegExp(`^${label}$`) }).waitFor({ timeout });
}

// Accessibility (axe-core, WCAG 2 A/AA) of the current page, loaded afresh in a second tab.
async function accessible(what) {
  const p = await tab();
  await p.goto(page.url());
  await p.waitForLoadState('load');
  await p.waitForTimeout(2500);
  await b.accessible(what, p);
  await p.close();
}

try {
  // --- Access: nothing without a valid token.
  await page.goto(URL);
  assert.match(page.url(), /\/ui\/$/, 'the root leads to the panel');
  await page.getByRole('heading', { name: 'Log in to the standby' }).waitFor();
  assert.equal(await page.locator('table').count(), 0, 'no data before logging in');
  step('the panel asks for the token first and shows no data');
  await page.getByLabel('Access token').fill('not-the-token');
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
  await page.locator('#login-error').filter({ hasText: 'refused this token' }).waitFor();
  assert.equal(await page.locator('table').count(), 0);
  step(`a wrong token is refused: "${await page.locator('#login-error').textContent()}"`);
  await shot('login-refused');
  await page.getByLabel('Access token').fill(TOKEN);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Protected servers' }).waitFor();
  assert.ok(!page.url().includes(TOKEN), 'the token is not in the URL');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('drpair.token')), TOKEN, 'kept for the session');
  step('logged in with the token (kept in sessionStorage, not in the URL)');
  await page.locator('#identity').filter({ hasText: env('DRPAIR_FINGERPRINT') }).waitFor();
  step(`the footer shows the standby's fingerprint: "${await page.locator('#identity').textContent()}"`);

  // --- Protected servers: both pairs, search, sort.
  const rows = page.locator('table.pairs tbody tr[data-pair]');
  await page.locator(`tr[data-pair="${OTHER}"]`).waitFor();
  await page.locator(`tr[data-pair="${PAIR}"]`).waitFor();
  assert.equal(await rows.count(), 2);
  const row = page.locator(`tr[data-pair="${PAIR}"]`);
  await row.filter({ hasText: 'Replicating' }).waitFor({ timeout: LONG });
  const headers = await page.locator('table.pairs th').allTextContents();
  for (const col of ['DR Pair ID', 'Name', 'Source address', 'State', 'Lag (RPO)', 'Newest point', 'Ready for failover', 'Health']) {
    assert.ok(headers.some((h) => h.startsWith(col)), `column ${col} in ${headers}`);
  }
  assert.match(await row.textContent(), /Healthy/);
  await shot('list');
  await page.getByLabel('Search').fill(PAIR.slice(0, 5));
  await page.locator('#pair-count').filter({ hasText: '1 of 2' }).waitFor();
  assert.equal(await rows.count(), 1);
  assert.equal(await rows.first().getAttribute('data-pair'), PAIR);
  await page.getByLabel('Search').fill('127.0.0');
  await page.locator('#pair-count').filter({ hasText: '2 of 2' }).waitFor();
  await page.getByLabel('Search').fill('no-such-server');
  await page.getByText('No DR pair matches the search.').waitFor();
  await page.getByLabel('Search').fill('');
  step('search by pair id, by address, and with no match');
  const order = async () => rows.evaluateAll((rs) => rs.map((r) => r.dataset.pair));
  const asc = [PAIR, OTHER].sort();
  assert.deepEqual(await order(), asc);
  await page.getByRole('button', { name: /^DR Pair ID/ }).click();
  assert.deepEqual(await order(), asc.slice().reverse());
  assert.equal(await page.locator('th[aria-sort="descending"]').count(), 1);
  await page.getByRole('button', { name: /^Lag/ }).click();
  assert.equal(await page.locator('th[aria-sort="ascending"] #sort-lag').count(), 1);
  step('sorting by DR Pair ID (both ways) and by lag');

  // --- RPO: each pair's RPO state in the list, sorted and filtered by it. The main pair has
  // a target of an hour (ok); the other, paused with a 1 s target, is soon in error.
  await api('PUT', `/pairs/${PAIR}/settings`, { rpo_target: '1h' });
  await api('POST', `/pairs/${OTHER}/pause`, {});
  await api('PUT', `/pairs/${OTHER}/settings`, { rpo_target: '1s' });
  const rpoCell = (pair) => page.locator(`tr[data-pair="${pair}"] .rpo`);
  await rpoCell(PAIR).filter({ hasText: /^OK · .* \/ 1h$/ }).waitFor({ timeout: LONG });
  await rpoCell(OTHER).filter({ hasText: /^Error · .* \/ 1s$/ }).waitFor({ timeout: LONG });
  assert.ok((await page.locator('table.pairs th').allTextContents()).some((t) => t.startsWith('RPO state')));
  await page.getByRole('button', { name: /^RPO state/ }).click();
  assert.deepEqual(await order(), [PAIR, OTHER], 'ascending: ok before error');
  await page.getByRole('button', { name: /^RPO state/ }).click();
  assert.deepEqual(await order(), [OTHER, PAIR], 'descending: error first');
  await shot('list-rpo');
  assert.equal(await page.locator('th[aria-sort="descending"] #sort-rpo').count(), 1);
  const filter = page.locator('#rpo-filter');
  await filter.selectOption('error');
  await page.locator('#pair-count').filter({ hasText: '1 of 2 DR pairs match RPO: error' }).waitFor();
  assert.deepEqual(await order(), [OTHER]);
  await filter.selectOption('ok');
  await page.locator('#pair-count').filter({ hasText: 'RPO: ok' }).waitFor();
  assert.deepEqual(await order(), [PAIR]);
  await filter.selectOption('warning');
  await page.getByText('No DR pair is in RPO state warning.').waitFor();
  await filter.selectOption('none');
  assert.equal(await rows.count(), 0, 'both pairs have a target');
  await filter.selectOption('all');
  await page.locator('#pair-count').filter({ hasText: /^2 DR pairs$/ }).waitFor();
  await api('PUT', `/pairs/${OTHER}/settings`, { rpo_target: 'off' });
  await api('POST', `/pairs/${OTHER}/resume`, {});
  await rpoCell(OTHER).filter({ hasText: 'No target' }).waitFor({ timeout: LONG });
  await page.getByRole('button', { name: /^DR Pair ID/ }).click();
  step('the list shows each pair\'s RPO state (ok, error, no target), sorts by it and filters by it');
  await accessible('the list page');

  // Phone width: the list still fits and reads.
  await page.setViewportSize({ width: 390, height: 844 });
  await shot('list-phone');
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no page-wide horizontal scroll on a phone');
  await page.setViewportSize({ width: 1280, height: 900 });

  // --- Pair details.
  await page.getByRole('link', { name: PAIR, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: new RegExp(`^${PAIR}`) }).waitFor();
  await stateIs('Replicating');
  assert.match(await page.locator('#state-explanation').textContent(), /\w+/);
  await page.locator('#lag-chart svg').waitFor({ timeout: LONG });
  await page.locator('#throughput-chart svg').waitFor();
  await page.locator('table.disks tbody tr').first().waitFor();
  assert.match(await page.locator('table.disks').textContent(), /64\.0 MiB/);
  await page.locator('table.points tbody tr[data-point]').first().waitFor();
  for (const col of ['Time', 'Kind', 'Consistency', 'Read window', 'Pinned', 'Verified', 'Tested']) {
    assert.ok((await page.locator('table.points thead').textContent()).includes(col), `points column ${col}`);
  }
  // Each point shows its read window (seconds, from the API's read_window_ms).
  const firstPoint = (await api('GET', `/pairs/${PAIR}/points`)).at(-1);
  assert.ok(Number.isInteger(firstPoint.read_window_ms), `read_window_ms ${firstPoint.read_window_ms}`);
  const shown = await page.locator(`tr[data-point="${firstPoint.id}"] td`).nth(4).textContent();
  assert.match(shown, /^\d+\.\d s/, `read window cell '${shown}'`);
  // The reference workflow's dates (DMS names), from the API's status.
  const dl = await page.locator('#dates').textContent();
  for (const label of ['Fresh start', 'Started', 'Stopped', 'Last stop', 'Full load', 'Elapsed', 'Created', 'Updated']) {
    assert.ok(dl.includes(label), `dates show ${label}: ${dl}`);
  }
  assert.match(dl, /Full load.*100/, 'the full load is complete');
  step('details: state with explanation, lag and throughput charts, disks, recovery points, dates');

  // The link: what crosses it now, liveness, faults; the pair's bandwidth limit set in place.
  await page.locator('#link-liveness').filter({ hasText: 'round trip' }).waitFor({ timeout: LONG });
  assert.match(await page.locator('#link-rate').textContent(), /from the agent · no limit/);
  assert.match(await page.locator('#link-faults').textContent(), /reconnects .* frames refused for a checksum/);
  await page.locator('#bandwidth-input').fill('Funday = 1MiB/s');
  await page.locator('#bandwidth-save').click();
  await page.locator('#bandwidth-error').filter({ hasText: 'not a day' }).waitFor();
  assert.equal((await api('GET', `/pairs/${PAIR}/settings`)).bandwidth, 'unlimited', 'a refused setting changes nothing');
  await page.locator('#bandwidth-input').fill('5MiB/s');
  await page.locator('#bandwidth-save').click();
  await page.locator('#bandwidth-result').filter({ hasText: '5MiB/s' }).waitFor();
  await page.locator('#link-rate').filter({ hasText: "5.00 MiB/s (the pair's limit)" }).waitFor({ timeout: LONG });
  assert.equal((await api('GET', `/pairs/${PAIR}/settings`)).bandwidth_limit_bytes_per_second, 5 * 1024 * 1024);
  await page.locator('#bandwidth-input').fill('unlimited');
  await page.locator('#bandwidth-save').click();
  await page.locator('#link-bandwidth').filter({ hasText: 'unlimited' }).waitFor({ timeout: LONG });
  step('details: the link section (rate, liveness, faults) and the bandwidth limit set, refused and removed in place');

  // The RPO: its state and target, set in place (a bad one refused, nothing changed); the
  // last successes after a verification and a drill made behind the page's back.
  await page.locator('#rpo-state').filter({ hasText: "target 1h (error at 2h), the pair's own target" }).waitFor({ timeout: LONG });
  assert.match(await page.locator('#rpo-state').textContent(), /OK since/);
  await page.locator('#rpo-target-input').fill('0s');
  await page.locator('#rpo-save').click();
  await page.locator('#rpo-error').filter({ hasText: 'more than 0' }).waitFor();
  assert.equal((await api('GET', `/pairs/${PAIR}/settings`)).rpo_target, '1h', 'a refused target changes nothing');
  await page.locator('#rpo-target-input').fill('30m');
  await page.locator('#rpo-error-input').fill('45m');
  await page.locator('#rpo-save').click();
  await page.locator('#rpo-result').filter({ hasText: 'RPO target of' }).waitFor();
  await page.locator('#rpo-state').filter({ hasText: 'target 30m (error at 45m)' }).waitFor({ timeout: LONG });
  const set = await api('GET', `/pairs/${PAIR}/settings`);
  assert.deepEqual([set.rpo_target_seconds, set.rpo_error_seconds, set.rpo_target_source], [1800, 2700, 'pair']);
  assert.equal(await page.locator('#last-drill').textContent(), 'never');
  assert.match(await page.locator('#last-point').textContent(), /ago\) · point #\d+/);
  await api('POST', `/pairs/${PAIR}/verify`, { wait: true });
  const d = await api('POST', `/pairs/${PAIR}/drills`, { ttl_seconds: 30 });
  await api('POST', `/drills/${encodeURIComponent(d.id)}/stop`, {});
  await page.locator('#last-drill').filter({ hasText: `point #${d.point}` }).waitFor({ timeout: LONG });
  await page.locator('#last-verify').filter({ hasText: /ago\)/ }).waitFor({ timeout: LONG });
  const last = (await api('GET', `/pairs/${PAIR}`)).last_successes;
  assert.ok(last.verify && last.drill && last.point, JSON.stringify(last));
  assert.equal(await page.locator('#last-source-verify').textContent(), 'never');
  await shot('details-rpo');
  await api('PUT', `/pairs/${PAIR}/settings`, { rpo_target: 'off' });
  await page.locator('#rpo-state').filter({ hasText: 'No RPO target' }).waitFor({ timeout: LONG });
  step('details: RPO state and target set in place (0s refused), last successes of a verify and a drill shown');

  // Pause and Stop ask for OK (the reference console's Pause dialog); Cancel changes nothing.
  await page.locator('#act-pause').click();
  await page.locator('#ok-dialog').waitFor();
  assert.match(await page.locator('#ok-text').textContent(), new RegExp(`Pause ${PAIR}\\?`));
  await page.locator('#ok-cancel').click();
  await page.locator('#ok-dialog').waitFor({ state: 'hidden' });
  assert.equal((await api('GET', `/pairs/${PAIR}`)).state, 'replicating', 'Cancel changes nothing');
  await page.locator('#act-pause').click();
  await page.locator('#ok-go').click();
  await stateIs('Paused');
  await page.locator('#act-resume').click();
  await stateIs('Replicating');
  await page.locator('#act-stop').click();
  await page.locator('#ok-go').click();
  await stateIs('Stopped');
  assert.equal((await api('GET', `/pairs/${PAIR}`)).stop_reason_alias, 'STOPPED_BY_USER');
  await page.locator('#act-resume').click();
  await stateIs('Replicating');
  step('details: Pause and Stop ask for OK (Cancel changes nothing), then Resume');
  await shot('details');
  await accessible('the details page');

  // Pin and unpin the newest point through its button; the API's answer shows.
  const newest = page.locator('table.points tbody tr[data-point]').first();
  const pid = await newest.getAttribute('data-point');
  await page.locator(`#pin-${pid}`).click();
  await page.locator(`tr[data-point="${pid}"]`).filter({ hasText: 'Pinned' }).waitFor();
  assert.equal((await api('GET', `/pairs/${PAIR}/points/${pid}`)).pinned, true);
  await page.locator(`#pin-${pid}`).click();
  await page.locator('#action-result').filter({ hasText: `Point ${pid} unpinned` }).waitFor();
  assert.equal((await api('GET', `/pairs/${PAIR}/points/${pid}`)).pinned, false);
  step(`pinned and unpinned point ${pid}`);

  // Export a disk of that point: the browser downloads the image through the API.
  const download = page.waitForEvent('download');
  await page.locator(`#export-${pid}-0`).click();
  const file = await download;
  const saved = join(ART, 'export-disk0.img');
  await file.saveAs(saved);
  // Byte for byte what the API exports for that point.
  const { createHash } = await import('node:crypto');
  const { readFileSync } = await import('node:fs');
  const viaBrowser = readFileSync(saved);
  assert.equal(viaBrowser.length, 64 * 1024 * 1024, 'the exported image has the disk size');
  const r = await fetch(`${URL}/api/v1/pairs/${PAIR}/points/${pid}/disks/0/image`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(r.status, 200);
  const viaApi = Buffer.from(await r.arrayBuffer());
  const sha = (b) => createHash('sha256').update(b).digest('hex');
  assert.equal(sha(viaBrowser), sha(viaApi), 'the browser export differs from the API export');
  rmSync(saved);
  step(`exported disk 0 of point ${pid} through the browser: equal to the API's export (sha256 ${sha(viaApi).slice(0, 16)}…)`);

  // --- Restart Replication through the dialog.
  const oldPoints = await api('GET', `/pairs/${PAIR}/points`);
  const before = oldPoints.map((p) => p.id);
  await page.getByRole('button', { name: 'Restart Replication', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Restart Replication' });
  await dialog.waitFor();
  const warning = await dialog.textContent();
  assert.match(warning, /Every recovery point of this pair will be permanently deleted/);
  assert.match(warning, /not ready for failover/);
  const go = dialog.getByRole('button', { name: 'Restart Replication', exact: true });
  assert.ok(await go.isDisabled(), 'disabled until the pair id is typed');
  await dialog.getByLabel(/Type the DR Pair ID/).fill(`${PAIR}-typo`);
  assert.ok(await go.isDisabled(), 'still disabled with a wrong id');
  await shot('restart-dialog');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  const stillThere = (await api('GET', `/pairs/${PAIR}/points`)).map((p) => p.id);
  assert.ok(before.every((id) => stillThere.includes(id)), `cancelled: every point stays (${before} → ${stillThere})`);
  step('the restart dialog warns, needs the pair id, and Escape cancels it');
  await page.getByRole('button', { name: 'Restart Replication', exact: true }).click();
  await dialog.getByLabel(/Type the DR Pair ID/).fill(PAIR);
  await go.click();
  await dialog.waitFor({ state: 'hidden' });
  await stateIs('Start Replication');
  step('state: Start Replication');
  assert.equal(await page.locator('#ready').textContent(), 'No');
  await page.locator('#progress').waitFor();
  const seen = [];
  let shotTaken = false;
  const deadline = Date.now() + LONG;
  for (;;) {
    // One read of both: the progress bar goes away the moment the state changes.
    const [text, value] = await page.evaluate(() => [
      document.getElementById('state')?.textContent,
      document.getElementById('progress')?.getAttribute('value'),
    ]);
    if (text === 'Replicating') break;
    if (value !== null && value !== undefined) {
      const v = Number(value);
      if (seen[seen.length - 1] !== v) seen.push(v);
      if (seen.length === 2 && !shotTaken) { shotTaken = true; await shot('details-restarting'); }
    }
    assert.ok(Date.now() < deadline, `restart did not finish; progress seen ${seen}`);
    await page.waitForTimeout(250);
  }
  step(`progress moved through ${seen.map((v) => `${v}%`).join(' → ')}; state: Replicating`);
  assert.ok(seen.length >= 2 && seen[seen.length - 1] > seen[0], `progress moved: ${seen}`);
  const newPoints = await api('GET', `/pairs/${PAIR}/points`);
  const oldLineages = new Set(oldPoints.map((p) => p.lineage));
  assert.ok(newPoints.length > 0 && newPoints.every((p) => !oldLineages.has(p.lineage)),
    `the old lineage's points are gone: before ${JSON.stringify(oldPoints.map((p) => [p.id, p.lineage]))}, after ${JSON.stringify(newPoints.map((p) => [p.id, p.lineage]))}`);

  // --- The restart's baseline is a task of the pair: it ended ok, and its log says so.
  const baselineRow = page.locator('tr[data-kind="baseline"][data-state="ok"]').first();
  await baselineRow.waitFor({ timeout: 30000 });
  const taskId = await baselineRow.getAttribute('data-task');
  await page.getByRole('button', { name: `Log of task ${taskId} (baseline)` }).click();
  const taskLog = page.locator(`#task-log-${taskId}`);
  await taskLog.filter({ hasText: 'baseline committed as point' }).waitFor({ timeout: 10000 });
  const viaTasksApi = await api('GET', `/tasks/${taskId}`);
  assert.equal(viaTasksApi.kind, 'baseline');
  assert.equal(viaTasksApi.state, 'ok');
  await shot('details-tasks');
  step(`the restart's baseline is task ${taskId}, ended ok; its log: ${JSON.stringify(await taskLog.textContent())}`);

  // --- Pause (with its OK) and resume; the buttons follow the state.
  await page.getByRole('button', { name: 'Pause', exact: true }).click();
  await page.locator('#ok-go').click();
  await stateIs('Paused');
  assert.ok(await page.getByRole('button', { name: 'Pause', exact: true }).isDisabled());
  assert.ok(await page.getByRole('button', { name: 'Create recovery point', exact: true }).isDisabled());
  assert.ok(await page.getByRole('button', { name: 'Resume', exact: true }).isEnabled());
  await page.locator('#action-result').filter({ hasText: 'pause' }).waitFor();
  step(`paused: "${await page.locator('#action-result').textContent()}"`);
  await shot('details-paused');
  await page.getByRole('button', { name: 'Resume', exact: true }).click();
  await stateIs('Replicating');
  assert.ok(await page.getByRole('button', { name: 'Resume', exact: true }).isDisabled());
  step('resumed');

  // --- Create a recovery point.
  const count0 = (await api('GET', `/pairs/${PAIR}/points`)).length;
  await page.getByRole('button', { name: 'Create recovery point', exact: true }).isEnabled();
  await page.getByRole('button', { name: 'Create recovery point', exact: true }).click();
  await page.locator('#action-result').filter({ hasText: 'Recovery point requested' }).waitFor();
  for (let i = 0; (await api('GET', `/pairs/${PAIR}/points`)).length <= count0; i += 1) {
    assert.ok(i < 200, 'the requested point never committed');
    await page.waitForTimeout(100);
  }
  await page.locator('table.points tbody tr[data-point]').filter({ hasText: 'manual' }).first().waitFor();
  step('created a recovery point (kind manual, listed)');

  // --- The third-party dump workflow up to the dump point: the panel shows the step, what
  // comes next, the dump point and the workflow's log; a plain resume abandons it.
  await api('POST', `/pairs/${PAIR}/suspend`, {});
  await api('POST', `/pairs/${PAIR}/skip-to-resync-marker`, {});
  await page.locator('#dump-step').filter({ hasText: 'Waiting for resync marker' }).waitFor();
  assert.match(await page.locator('#dump-next').textContent(), new RegExp(`drpair marker dump ${PAIR}`));
  const marked = await api('POST', `/pairs/${PAIR}/markers/dump`, {});
  await page.locator('#dump-marker').filter({ hasText: `epoch ${marked.marker.epoch}` }).waitFor();
  assert.match(await page.locator('#dump-next').textContent(), new RegExp(`drpair resume ${PAIR} --resync`));
  assert.match(await page.locator('#dump-events').textContent(), /purged the outbound queue/);
  assert.match(await page.locator('#dump-title').textContent(), /in progress/);
  await shot('details-dump');
  await accessible('the dump workflow');
  await api('POST', `/pairs/${PAIR}/resume`, {});
  await stateIs('Replicating');
  await page.locator('#dump-step').filter({ hasText: 'abandoned' }).waitFor();
  step(`dump workflow: step, next step, dump point (epoch ${marked.marker.epoch}) and log shown; abandoned by resume`);

  // --- An API refusal, rendered as a message. A second page whose timers are frozen keeps
  // showing Pause as allowed; the pair is paused behind its back; its click is refused.
  // (It polls, as the panel did before push: a pushed page would see the pause at once.)
  const stale = await tab(TOKEN, { 'drpair.live': 'poll' });
  await stale.clock.install();
  await stale.goto(`${URL}/ui/#/pairs/${encodeURIComponent(PAIR)}`);
  await stateIs('Replicating', stale, 20_000);
  await api('POST', `/pairs/${PAIR}/pause`, {});
  assert.ok(await stale.getByRole('button', { name: 'Pause', exact: true }).isEnabled());
  await stale.getByRole('button', { name: 'Pause', exact: true }).click();
  await stale.locator('#ok-go').click();
  const err = stale.locator('#action-error');
  await err.filter({ hasText: 'refused' }).waitFor();
  const words = await err.textContent();
  assert.match(words, /already paused/);
  assert.match(words, /InvalidPairState, HTTP 409/);
  step(`an API refusal is shown: "${words}"`);
  await shot('details-refusal', stale);
  await stale.close();
  await api('POST', `/pairs/${PAIR}/resume`, {});
  await stateIs('Replicating');

  // --- Keyboard: the dialog opens and closes without a mouse.
  await page.getByRole('button', { name: 'Restart Replication', exact: true }).focus();
  await page.keyboard.press('Enter');
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'restart-confirm', 'focus moves into the dialog');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  step('keyboard: Enter opens the dialog with focus in its field, Escape closes it');

  // --- Live: the standby goes away and comes back.
  await ask('OUTAGE?', 'down');
  await page.locator('#banner').filter({ hasText: 'unreachable' }).waitFor();
  assert.equal(await page.locator('#conn').textContent(), 'Unreachable');
  await shot('details-unreachable');
  step(`standby down: "${await page.locator('#banner').textContent()}"`);
  await ask('RESTORE?', 'up');
  await page.locator('#banner').waitFor({ state: 'hidden', timeout: LONG });
  await stateIs('Replicating');
  step('standby back: the banner is gone and the state is live again');

  // An operator's panel: no Restart Replication (an admin's action), Pause still there.
  const op = await tab(env('DRPAIR_OPERATOR_TOKEN'));
  await op.goto(`${URL}/#/pairs/${encodeURIComponent(PAIR)}`);
  await op.locator('#identity').filter({ hasText: '(operator)' }).waitFor();
  await op.locator('#act-pause').waitFor();
  await op.locator('#act-restart').waitFor({ state: 'hidden' });
  assert.equal(await op.locator('#act-restart').isVisible(), false, 'an operator sees no Restart Replication');
  assert.equal(await op.locator('#act-delete').isVisible(), false, 'an operator sees no Delete pair');
  assert.equal(await op.locator('#bandwidth-form').isVisible(), true, 'an operator may limit the bandwidth');
  // The console's sections follow the roles too: an operator drills and verifies, an admin
  // fails over, changes retention and drives the dump workflow.
  assert.equal(await op.locator('#drill-form').isVisible(), true, 'an operator may start a drill');
  assert.equal(await op.locator('#act-verify').isVisible(), true, 'an operator may verify');
  assert.equal(await op.locator('#act-start').isVisible(), true, 'an operator may start');
  for (const admin of ['#act-failover', '#act-failback', '#retention-form', '#dump-steps']) {
    await op.locator(admin).waitFor({ state: 'hidden' });
  }
  assert.equal(await op.locator('#pair-audit').isVisible(), false, 'an operator sees no audit log link');
  assert.equal(await op.locator('#audit-link').isVisible(), false);
  await shot('details-operator', op);
  step(`an operator's panel: no Restart Replication ("${await op.locator('#identity').textContent()}")`);
  await op.close();

  // The audit log (admins): reached from the pair's page, it lists the restart made above and,
  // with "Refused only", the stale pause the API refused, each with its identity and reason.
  await page.goto(`${URL}/ui/#/pairs/${encodeURIComponent(PAIR)}`);
  await page.locator('#pair-audit').click();
  await page.getByRole('heading', { name: 'Audit log' }).waitFor();
  assert.equal(await page.locator('#audit-pair').inputValue(), PAIR);
  const restartRow = page.locator('table.audit tbody tr[data-result="ok"]', { hasText: `/pairs/${PAIR}/restart` }).first();
  await restartRow.waitFor();
  assert.match(await restartRow.textContent(), /token /, 'the row names the token that restarted');
  await page.locator('#audit-refused').check();
  const refusedPause = page.locator('table.audit tbody tr[data-result="refused"]', { hasText: `/pairs/${PAIR}/pause` }).first();
  await refusedPause.waitFor();
  assert.match(await refusedPause.textContent(), /HTTP 409: InvalidPairState: .*already paused/);
  assert.equal(await page.locator('table.audit tbody tr[data-result="ok"]').count(), 0, 'refused only');
  await shot('audit');
  step(`audit log: the restart and the refused pause ("${(await refusedPause.textContent()).slice(0, 120)}")`);
  await page.locator('#audit-pair').fill('not a pair id!');
  await page.locator('#audit-pair').press('Enter');
  await page.locator('#audit-error').filter({ hasText: 'Filter refused' }).waitFor();
  step(`a malformed pair filter is refused: "${await page.locator('#audit-error').textContent()}"`);
  await accessible('the audit log');

  // Delete the other pair through its dialog: the pair id must be typed; then the list says
  // what was deleted and no longer has it.
  await page.goto(`${URL}/ui/#/pairs/${encodeURIComponent(OTHER)}`);
  await page.locator('#act-delete').click();
  await page.locator('#delete-dialog').waitFor();
  assert.match(await page.locator('#delete-warning').textContent(), /permanently deleted/);
  await page.locator('#delete-confirm').fill('not-it');
  assert.equal(await page.locator('#delete-go').isDisabled(), true, 'a wrong pair id keeps Delete disabled');
  await page.locator('#delete-confirm').fill(OTHER);
  await page.locator('#delete-go').click();
  await page.locator('#notice').filter({ hasText: `pair '${OTHER}' deleted` }).waitFor({ timeout: LONG });
  await page.locator(`tr[data-pair="${PAIR}"]`).waitFor();
  assert.equal(await page.locator(`tr[data-pair="${OTHER}"]`).count(), 0, 'the deleted pair is gone from the list');
  const gone = await fetch(`${URL}/api/v1/pairs/${OTHER}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(gone.status, 404);
  await shot('deleted');
  step(`deleted ${OTHER} through the dialog: "${await page.locator('#notice').textContent()}"`);

  // Self-contained: every request went to the standby.
  const foreign = b.requests.map((r) => r.url).filter((u) => !u.startsWith(URL) && !u.startsWith('data:') && !u.startsWith('blob:'));
  assert.deepEqual(foreign, [], 'requests outside the standby');
  const errors = consoleErrors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED|Failed to fetch|409|net::/.test(e));
  assert.deepEqual(errors, [], 'console errors');
  step(`all ${b.requests.length} requests went to the standby; no script errors`);
  console.log('PANEL OK');
} catch (e) {
  // Leave evidence: what the page looked like and what its scripts said.
  await b.failure();
  throw e;
} finally {
  await b.close();
}
