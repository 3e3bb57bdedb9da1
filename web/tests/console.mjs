// The panel as the whole DR console (issue 21), in headless Debian chromium against a real
// standby and agent (started by tests/web_console.rs):
//   DRPAIR_URL, DRPAIR_TOKEN (admin)  the standby
//   DRPAIR_PAIR                       a replicating pair on a loop device
//   DRPAIR_REC_DEV                    a loop device on the standby to fail over onto
//   DRPAIR_ARTIFACTS                  where the screenshots go
// Checks outside the browser are questions to the Rust test (`ASK {json}`, answered in JSON):
// the drill's export against the point (qemu-img compare), the failover target against the
// point, divergent writes on the recovered side, both sides equal after the failback.

import assert from 'node:assert/strict';
import { apiClient, askJson, env, launch, login, step } from './browser.mjs';

const URL = env('DRPAIR_URL');
const TOKEN = env('DRPAIR_TOKEN');
const PAIR = env('DRPAIR_PAIR');
const REC = env('DRPAIR_REC_DEV');
const LONG = 120_000;
const api = apiClient(URL, TOKEN);
const b = await launch(env('DRPAIR_ARTIFACTS'), TOKEN);
const { page } = b;
const details = `${URL}/ui/#/pairs/${encodeURIComponent(PAIR)}`;
const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
const pointIds = async () => (await api('GET', `/pairs/${PAIR}/points`)).map((p) => p.id);

async function stateIs(label, p = page, timeout = LONG) {
  await p.locator('#state').filter({ hasText: new RegExp(`^${label}$`) }).waitFor({ timeout });
}

// A datetime-local value (the browser's local time, which is this process's), written as
// chromium normalises it (no seconds when they are zero).
function localInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  const secs = d.getSeconds() ? `:${p(d.getSeconds())}` : '';
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}${secs}`;
}

async function okDialog() {
  await page.locator('#ok-dialog').waitFor();
  await page.locator('#ok-go').click();
}

try {
  await login(page, URL, TOKEN);
  await page.goto(details);
  await stateIs('Replicating');
  step('logged in; the pair replicates');

  // --- The reference Start workflow. Three points a second apart; then Stop (with its OK).
  const made = [];
  for (let i = 0; i < 3; i += 1) {
    made.push((await api('POST', `/pairs/${PAIR}/points`, { wait: true })).point);
    await sleep(1200);
  }
  await page.locator('#act-stop').click();
  await okDialog();
  await stateIs('Stopped');
  const before = await pointIds();
  step(`points ${made.map((p) => p.id)} cut; stopped from the panel`);

  await page.locator('#act-start').click();
  const start = page.locator('#start-dialog');
  await start.waitFor();
  await b.shot('start-dialog');
  await b.accessible('the Start dialog');
  await page.locator('#start-replay-yes').check();
  await page.locator('#start-timestamp').fill('2001-01-01T00:00:01');
  const startGo = start.locator('[data-role=submit]');
  assert.ok(await startGo.isDisabled(), 'a replay deletes points: the pair id must be typed first');
  await start.locator('[data-role=confirm]').fill(PAIR);
  await startGo.click();
  const startError = start.locator('.error');
  await startError.filter({ hasText: 'Start refused' }).waitFor();
  const refusal = await startError.textContent();
  assert.ok(await start.isVisible(), 'the dialog stays open on a refusal');
  assert.deepEqual(await pointIds(), before, 'a refused start changed the points');
  assert.equal((await api('GET', `/pairs/${PAIR}`)).state, 'stopped');
  await b.shot('start-refused');
  step(`a timestamp beyond the history: "${refusal}", nothing changed`);

  // Replay from the second point: the newest point at or before its time (rounded up to the
  // second, which the third point, 1.2 s later, is not).
  const [, p2, p3] = made;
  await page.locator('#start-timestamp').fill(localInput(Math.ceil(p2.time_unix_ms / 1000) * 1000));
  await startGo.click();
  await start.waitFor({ state: 'hidden' });
  await stateIs('Replicating');
  const after = await pointIds();
  assert.ok(after.includes(p2.id) && !after.includes(p3.id), `replayed from #${p2.id}: points now ${after}`);
  assert.ok(before.filter((id) => id > p2.id).every((id) => !after.includes(id)), `the points after #${p2.id} are gone: ${after}`);
  step(`Start with replay Yes from point #${p2.id}'s time: replicating, points after it gone (${before} → ${after}): "${await page.locator('#action-result').textContent()}"`);

  await page.locator('#act-pause').click();
  await okDialog();
  await stateIs('Paused');
  await page.locator('#act-resume').click();
  await stateIs('Replicating');
  step('Pause → OK → Paused; Resume');

  // --- A drill of the newest point, from the panel.
  const newest = (await api('POST', `/pairs/${PAIR}/points`, { wait: true })).point;
  await page.locator('#drill-point-id').check();
  await page.locator(`#drill-point-pick option[value="${newest.id}"]`).waitFor({ state: 'attached' });
  await page.locator('#drill-point-pick').selectOption(String(newest.id));
  await page.locator('#drill-ttl').selectOption('900');
  await page.locator('#drill-check').fill('qemu-img info "$DRPAIR_DRILL_NBD_0"');
  await page.locator('#drill-start').click();
  await page.locator('#drill-result').filter({ hasText: 'running' }).waitFor();
  const live = page.locator('#drills-running li[data-drill]').first();
  await live.waitFor();
  const drillId = await live.getAttribute('data-drill');
  const uri = await live.locator('code.nbd').first().textContent();
  assert.match(await live.textContent(), /1[45]m \d+s left|15m 00s left/);
  const cmp = await askJson({ ask: 'compare_export', point: newest.id, uri });
  assert.ok(cmp.ok, `qemu-img compare of the drill's export with the point: ${cmp.out}`);
  const report = page.locator(`#drill-reports tr[data-drill="${drillId}"]`);
  await report.filter({ hasText: 'passed' }).waitFor({ timeout: LONG });
  await b.shot('drill-running');
  step(`drill ${drillId} of point #${newest.id} at ${uri}: equal to the point's export (qemu-img compare); its check passed`);
  await page.locator(`#drill-stop-${drillId}`).click();
  await page.locator(`#drill-reports tr[data-drill="${drillId}"][data-state="stopped"]`).waitFor();
  const row = await page.locator(`#drill-reports tr[data-drill="${drillId}"]`).textContent();
  assert.match(row, new RegExp(`#${newest.id}`));
  await b.shot('drill-report');
  step(`drill stopped from the panel; its report: "${row}"`);

  // --- Verify: a chunk damaged in the store (the standby is stopped and started again under
  // the open page) is found and named; then the source against the newest point.
  const damaged = await askJson({ ask: 'damage' });
  await page.locator('#banner').waitFor({ state: 'hidden', timeout: LONG });
  await stateIs('Replicating');
  await page.locator('#act-verify:enabled').waitFor({ timeout: LONG });
  await page.locator('#act-verify').click();
  await page.locator('#verify-text').filter({ hasText: /^done/ }).waitFor({ timeout: LONG });
  assert.match(await page.locator('#verify-text').textContent(), / [1-9]\d* damaged/);
  const named = page.locator('#verify-damaged tbody tr').filter({ hasText: new RegExp(`#${damaged.point}\\b`) });
  await named.first().waitFor();
  const cells = await named.first().locator('td').allTextContents();
  assert.equal(cells[0], '0', `disk of the damaged chunk: ${cells}`);
  assert.equal(cells[1], String(damaged.chunk), `the damaged chunk: ${cells}`);
  step(`verify names the damaged chunk: ${cells.join(' | ')}`);
  await page.locator('#act-verify-source').click();
  await page.locator('#verify-source-text').filter({ hasText: /^done/ }).waitFor({ timeout: LONG });
  assert.match(await page.locator('#verify-source-text').textContent(), / 0 mismatched/);
  await b.shot('verify');
  step(`verify: "${await page.locator('#verify-text').textContent()}"; source: "${await page.locator('#verify-source-text').textContent()}"`);

  // --- Retention: a preview of the edited policy, then Save; a bad grid refused.
  const policy0 = await api('GET', `/pairs/${PAIR}/retention`);
  await page.locator('#retention-grid').fill('no grid at all');
  await page.locator('#retention-preview-go').click();
  await page.locator('#retention-error').filter({ hasText: 'Preview refused' }).waitFor();
  assert.match(await page.locator('#retention-error').textContent(), /grid/);
  await page.locator('#retention-grid').fill('1x1h');
  await page.locator('#retention-keep').fill('2');
  assert.ok(await page.locator('#retention-save').isDisabled(), 'Save waits for a preview');
  const count0 = (await pointIds()).length;
  await page.locator('#retention-preview-go').click();
  await page.locator('#retention-preview tbody tr').first().waitFor();
  const goes = await page.locator('#retention-preview tr[data-goes="true"]').count();
  const stays = await page.locator('#retention-preview tr[data-goes="false"]').count();
  assert.equal(goes + stays, count0, 'every point is in the preview');
  assert.ok(goes > 0 && stays >= 2, `the preview removes some and keeps the newest 2: ${goes} go, ${stays} stay`);
  assert.match(await page.locator('#retention-preview').textContent(), /one of the newest \(keep-last\)/);
  assert.equal((await pointIds()).length, count0, 'a preview deleted points');
  assert.deepEqual(await api('GET', `/pairs/${PAIR}/retention`), policy0, 'a preview changed the policy');
  await page.locator('#retention-keep').fill('3');
  assert.ok(await page.locator('#retention-save').isDisabled(), 'an edit after the preview needs a new preview');
  await page.locator('#retention-keep').fill('2');
  assert.ok(await page.locator('#retention-save').isEnabled());
  await b.shot('retention-preview');
  await page.locator('#retention-save').click();
  await page.locator('#retention-result').filter({ hasText: 'saved' }).waitFor();
  const policy = await api('GET', `/pairs/${PAIR}/retention`);
  assert.equal(policy.keep_last, 2);
  assert.equal(policy.is_default, false);
  step(`retention: preview (${goes} would go, ${stays} stay, nothing changed), then saved: ${policy.grid} keep ${policy.keep_last}`);
  await page.locator('#retention-reset').click();
  await page.locator('#retention-result').filter({ hasText: 'default' }).waitFor();
  await page.locator('#retention-save').click();
  await page.locator('#retention-result').filter({ hasText: 'saved' }).waitFor();
  assert.equal((await api('GET', `/pairs/${PAIR}/retention`)).is_default, true);
  step('retention back to the standby\'s default');

  // --- The dump workflow's first steps as buttons, each enabled only in its turn.
  assert.ok(await page.locator('#dump-step-suspend').isEnabled());
  assert.ok(await page.locator('#dump-step-resume-apply').isDisabled());
  await page.locator('#dump-step-suspend').click();
  await stateIs('Suspended');
  await page.locator('#dump-step').filter({ hasText: 'Suspended for a dump' }).waitFor();
  await page.locator('#dump-step-skip-to-resync-marker:enabled').waitFor();
  assert.ok(await page.locator('#dump-step-suspend').isDisabled(), 'suspend is done');
  await page.locator('#dump-step-skip-to-resync-marker').click();
  await page.locator('#dump-step').filter({ hasText: 'Waiting for resync marker' }).waitFor();
  await page.locator('#dump-step-mark-dump:enabled').waitFor();
  assert.ok(await page.locator('#dump-step-load-dump').isDisabled(), 'loading waits for the dump point');
  assert.match(await page.locator('#dump-events').textContent(), /purged/);
  await b.shot('dump-steps');
  step(`dump workflow: suspend and skip-to-resync-marker from the panel; next "${await page.locator('#dump-next').textContent()}"`);
  await page.locator('#act-resume').click();
  await stateIs('Replicating');
  await page.locator('#dump-step').filter({ hasText: 'abandoned' }).waitFor();
  step('a plain Resume abandons the dump workflow');

  // --- Failover onto the loop device, guided; the progress survives a reload.
  await page.locator('#act-failover').click();
  const fo = page.locator('#failover-dialog');
  await fo.waitFor();
  await page.locator('#failover-target-0').fill(REC);
  assert.match(await page.locator('#failover-summary').textContent(), new RegExp(`${REC}.*overwritten`, 's'));
  const chosen = Number(await fo.locator('input[name=failover-point]:checked').getAttribute('value'));
  await fo.locator('[data-role=confirm]').fill(`${PAIR}x`);
  assert.ok(await fo.locator('[data-role=submit]').isDisabled(), 'a wrong pair id keeps Fail over disabled');
  await fo.locator('[data-role=confirm]').fill(PAIR);
  await b.shot('failover-dialog');
  await b.accessible('the failover dialog');
  await fo.locator('[data-role=submit]').click();
  await fo.waitFor({ state: 'hidden' });
  await page.locator('#failover-progress').waitFor();
  await page.reload();
  await page.locator('#failover-progress').waitFor();
  await page.locator('#failover-progress h3').filter({ hasText: 'done' }).waitFor({ timeout: LONG });
  await stateIs('Failed over');
  await b.shot('failover-progress');
  const eq = await askJson({ ask: 'target_equals_point', point: chosen });
  assert.ok(eq.ok, `the failover target differs from point #${chosen}`);
  step(`failover from the panel to point #${chosen} onto ${REC}: equal to the point; "${await page.locator('#failover-text').textContent()}"`);

  // --- Failback: the recovered side changed; only the differing chunks move.
  const { differing } = await askJson({ ask: 'diverge' });
  await page.locator('#act-failback').click();
  const fb = page.locator('#failback-dialog');
  await fb.waitFor();
  assert.equal(await page.locator('#failback-from-0').inputValue(), REC, 'the recovered side is the failover target');
  assert.match(await fb.textContent(), /Back to .*written onto the original disks/);
  await fb.locator('[data-role=confirm]').fill(PAIR);
  await b.shot('failback-dialog');
  await fb.locator('[data-role=submit]').click();
  await fb.waitFor({ state: 'hidden' });
  await page.locator('#failback-progress h3').filter({ hasText: /done/ }).waitFor({ timeout: LONG });
  const back = (await api('GET', `/pairs/${PAIR}/failback`));
  assert.equal(back.chunks_moved, differing, `moved ${back.chunks_moved} chunks, ${differing} differ`);
  const same = await askJson({ ask: 'sides_equal' });
  assert.ok(same.ok, 'after the failback the original disk differs from the recovered one');
  await stateIs('Replicating');
  await b.shot('failback-done');
  step(`failback from the panel: ${back.chunks_moved} chunks moved (${differing} differ); both sides equal; replicating`);

  // --- Tasks of the whole standby.
  await page.locator('#tasks-link').click();
  await page.getByRole('heading', { name: 'Tasks' }).waitFor();
  for (const kind of ['failover', 'failback', 'verify']) {
    await page.locator(`table.tasks tr[data-kind="${kind}"]`).first().waitFor();
  }
  await b.shot('tasks');
  await b.accessible('the tasks view');
  step('the standby\'s tasks view lists the failover, the failback and the verify');

  // --- One push stream per open panel against the old 2-second polling.
  const loaded = Date.now();
  await page.goto(details);
  await stateIs('Replicating');
  const polled = await b.tab(TOKEN, { 'drpair.live': 'poll' });
  await polled.goto(details);
  await stateIs('Replicating', polled);
  await sleep(3000);
  const from = Date.now();
  await sleep(20_000);
  const inWindow = (p) => b.requests.filter((r) => r.page === p && r.at >= from && r.url.includes('/api/v1/'));
  const pushed = inWindow(page);
  const polling = inWindow(polled);
  const streams = b.requests.filter((r) => r.page === page && r.at >= loaded && r.url.includes('/api/v1/events'));
  assert.equal(streams.length, 1, `one push stream for the page since it loaded: ${streams.map((r) => r.url)}`);
  assert.ok(pushed.every((r) => !r.url.includes('/api/v1/events')), 'the stream stayed open through the window');
  assert.ok(pushed.length * 3 <= polling.length, `push ${pushed.length} requests vs polling ${polling.length} in 20 s`);
  await stateIs('Replicating');
  step(`in 20 s the pushed panel made ${pushed.length} API requests (one stream open), the polling one ${polling.length}`);
  await polled.close();
  await b.accessible('the console details page');

  // Keyboard: Start opens with Enter and Escape closes it, without a mouse.
  await page.locator('#act-pause').click();
  await okDialog();
  await stateIs('Paused');
  await page.locator('#act-start').focus();
  await page.keyboard.press('Enter');
  await start.waitFor();
  assert.ok(await page.evaluate(() => document.activeElement.closest('#start-dialog') !== null), 'focus moves into the dialog');
  await page.keyboard.press('Escape');
  await start.waitFor({ state: 'hidden' });
  await page.locator('#act-resume').click();
  await stateIs('Replicating');
  step('keyboard: Enter opens Start with the focus inside; Escape closes it');

  // Points paging beyond the newest 50 (a point a second keeps coming meanwhile).
  for (let n = (await pointIds()).length; n <= 55; n += 1) await api('POST', `/pairs/${PAIR}/points`, { wait: true });
  const ids = await pointIds();
  const pointRow = (id) => page.locator(`table.points tr[data-point="${id}"]`);
  await pointRow(ids.at(-1)).waitFor();
  assert.equal(await page.locator('table.points tbody tr').count(), 50, 'the newest 50 points');
  assert.equal(await pointRow(ids[0]).count(), 0, 'the oldest point is not on the first page');
  await page.locator('#points-older').click();
  await pointRow(ids[0]).waitFor();
  assert.equal(await pointRow(ids.at(-1)).count(), 0, 'the newest point is not on the older page');
  assert.match(await page.locator('table.points caption').textContent(), /an older page/);
  await page.locator('#points-newer').click();
  await pointRow(ids.at(-1)).waitFor();
  step(`points paged: the newest 50 of ${ids.length}, the older page (down to #${ids[0]}), and back`);

  const foreign = b.requests.filter((r) => !r.url.startsWith(URL) && !r.url.startsWith('data:') && !r.url.startsWith('blob:'));
  assert.deepEqual(foreign.map((r) => r.url), [], 'requests outside the standby');
  const errors = b.consoleErrors.filter((e) => !/Failed to load resource|net::|40[049]/.test(e));
  assert.deepEqual(errors, [], 'console errors');
  console.log('CONSOLE OK');
} catch (e) {
  await b.failure();
  throw e;
} finally {
  await b.close();
}
