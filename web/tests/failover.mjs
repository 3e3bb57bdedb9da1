// The failover section's actions for instant recovery and protection (issue 24), in headless
// Debian chromium against a real standby (started by tests/instant_recovery.rs or
// tests/protect_recovered.rs):
//   DRPAIR_URL, DRPAIR_TOKEN  the standby (an admin token)
//   DRPAIR_PAIR               the failed-over pair
//   DRPAIR_CHECK              `instant`: an instant NBD-mode failover is copying; its "Stop
//                             instant recovery" button shows, stopping is refused in words
//                             until the copy completes (the test answers ON_TARGETS? once
//                             it has), then the button stops the session.
//                             `protection`: the pair is protected by DRPAIR_NEW; the section
//                             shows it (and the new pair where it came from); once the test
//                             has unprotected it (UNPROTECTED?), "Protect recovered disks…"
//                             protects it again.
//   DRPAIR_NEW                (protection) the protecting pair
//   DRPAIR_ARTIFACTS          where the screenshots go

import assert from 'node:assert/strict';
import { ask, env, launch, login, step } from './browser.mjs';

const URL = env('DRPAIR_URL');
const TOKEN = env('DRPAIR_TOKEN');
const PAIR = env('DRPAIR_PAIR');
const CHECK = env('DRPAIR_CHECK');
const b = await launch(env('DRPAIR_ARTIFACTS'), TOKEN);
const { page } = b;
const pairPage = (p) => `${URL}/ui/#/pairs/${encodeURIComponent(p)}`;

// Opens the dialog of `button`, confirms with the pair id when asked, submits.
async function submitDialog(button, dialogId, fill = async () => {}) {
  await button.click();
  const dlg = page.locator(`#${dialogId}`);
  await dlg.waitFor();
  await fill(dlg);
  const confirm = dlg.locator('[data-role=confirm]');
  if (await confirm.count()) await confirm.fill(PAIR);
  await dlg.locator('[data-role=submit]').click();
  return dlg;
}

async function instant() {
  await page.goto(pairPage(PAIR));
  const phase = page.locator('#failover-instant-phase');
  await phase.filter({ hasText: 'over NBD: the machine runs from the standby while the point is copied' }).waitFor();
  const stop = page.locator('#act-stop-instant');
  await stop.waitFor({ state: 'visible' });
  step('during the NBD copy the section shows "Stop instant recovery…"');
  let dlg = await submitDialog(stop, 'stop-instant-dialog');
  const refusal = dlg.locator('[role=alert]');
  await refusal.filter({ hasText: 'the copy onto the targets is at' }).waitFor();
  await b.shot('stop-instant-refused');
  step(`stopping during the copy is refused in words: "${(await refusal.textContent()).trim()}"`);
  await dlg.getByRole('button', { name: 'Cancel' }).click();
  await dlg.waitFor({ state: 'detached' });
  await ask('ON_TARGETS?', 'yes');
  await phase.filter({ hasText: 'the targets alone carry the machine' }).waitFor({ timeout: 60_000 });
  dlg = await submitDialog(stop, 'stop-instant-dialog');
  await dlg.waitFor({ state: 'detached' });
  await phase.filter({ hasText: 'the session ended' }).waitFor();
  await stop.waitFor({ state: 'hidden' });
  await b.shot('stop-instant-ended');
  step('on the targets, "Stop instant recovery" ended the session; the button is gone');
}

async function protection() {
  const NEW = env('DRPAIR_NEW');
  await page.goto(pairPage(PAIR));
  const facts = page.locator('#protection');
  await facts.filter({ hasText: `protected by pair ${NEW} — running` }).waitFor();
  assert.equal(await page.locator('#act-protect').isVisible(), false, 'no "Protect" while protected');
  await b.shot('protected');
  step(`the section shows the protection: "${(await facts.locator('h3').textContent()).trim()}"`);
  await page.goto(pairPage(NEW));
  await page.locator('#recovered-from').filter({ hasText: `recovered disks of pair ${PAIR}` }).waitFor();
  step(`the protecting pair shows where it came from: "${(await page.locator('#recovered-from').textContent()).trim()}"`);
  await ask('UNPROTECTED?', 'yes');
  await page.goto(pairPage(PAIR));
  await facts.filter({ hasText: '— stopped' }).waitFor();
  const protect = page.locator('#act-protect');
  await protect.waitFor({ state: 'visible' });
  const dlg = await submitDialog(protect, 'protect-dialog', async (d) => d.locator('#protect-cut-interval').fill('1s'));
  await dlg.waitFor({ state: 'detached' });
  await facts.filter({ hasText: `protected by pair ${NEW} — running` }).waitFor();
  await protect.waitFor({ state: 'hidden' });
  step('"Protect recovered disks…" protected them again (a point every 1s)');
}

try {
  await login(page, URL, TOKEN);
  if (CHECK === 'instant') await instant();
  else if (CHECK === 'protection') await protection();
  else throw new Error(`DRPAIR_CHECK ${CHECK}`);
  // Script errors only: a refused request (the 409 shown in words, the 401 before the login)
  // is logged by the browser as a failed resource.
  assert.deepEqual(b.consoleErrors.filter((e) => !e.startsWith('Failed to load resource')), [], 'console errors');
  console.log('FAILOVER PANEL OK');
} catch (e) {
  await b.failure();
  throw e;
} finally {
  await b.close();
}
