// A boot-verified drill from the panel (issue 24, part 1), in headless Debian chromium
// against a real standby, agent and QEMU (started by tests/boot_drills.rs):
//   DRPAIR_URL, DRPAIR_TOKEN  the standby
//   DRPAIR_PAIR               a replicating pair whose disk boots
//   DRPAIR_PROMPT             what the guest's console shows last
//   DRPAIR_ARTIFACTS          where the screenshots go
// The drill is started with "Boot it" checked; its report shows the boot's result and time,
// the console's last lines and the guest's screenshot (a loaded image).

import assert from 'node:assert/strict';
import { env, launch, login, step } from './browser.mjs';

const URL = env('DRPAIR_URL');
const TOKEN = env('DRPAIR_TOKEN');
const PAIR = env('DRPAIR_PAIR');
const PROMPT = env('DRPAIR_PROMPT');
const b = await launch(env('DRPAIR_ARTIFACTS'), TOKEN);
const { page } = b;

try {
  await login(page, URL, TOKEN);
  await page.goto(`${URL}/ui/#/pairs/${encodeURIComponent(PAIR)}`);
  await page.locator('#drill-boot').check();
  await page.locator('#drill-expect').fill(PROMPT);
  await page.locator('#drill-boot-timeout').selectOption('60');
  await page.locator('#drill-memory').selectOption('512M');
  await page.locator('#drill-start').click();
  await page.locator('#drill-result').filter({ hasText: 'running' }).waitFor();
  const id = await page.locator('#drills-running li[data-drill]').first().getAttribute('data-drill');
  step(`drill ${id} started from the panel with a boot`);
  const evidence = page.locator(`#drill-boot-evidence section[data-drill="${id}"][data-boot="passed"]`);
  await evidence.waitFor({ timeout: 120_000 });
  const result = await page.locator('#drill-boot-result').textContent();
  assert.match(result, /^Passed: the console matched .* in \d+\.\d s$/);
  assert.ok((await page.locator('#drill-console').textContent()).includes(PROMPT), 'the console tail shows the prompt');
  const img = page.locator('#drill-screenshot');
  await img.waitFor({ state: 'visible' });
  await page.waitForFunction(() => { const i = document.querySelector('#drill-screenshot'); return i && i.complete && i.naturalWidth > 0; });
  const size = await img.evaluate((i) => `${i.naturalWidth}x${i.naturalHeight}`);
  const row = await page.locator(`#drill-reports tr[data-drill="${id}"] td.boot`).textContent();
  assert.match(row, /^passed in \d+\.\d s/);
  await page.locator('#drill-console-full').click();
  await page.locator('#drill-console').filter({ hasText: 'DRPAIR-TEST-GUEST booted' }).waitFor();
  await b.shot('boot-evidence');
  step(`report: "${result}", row "${row}", screenshot ${size}`);
  await page.locator(`#drill-stop-${id}`).click();
  await page.locator(`#drill-reports tr[data-drill="${id}"][data-state="stopped"]`).waitFor();
  console.log('BOOT PANEL OK');
} catch (e) {
  await b.failure();
  throw e;
} finally {
  await b.close();
}
