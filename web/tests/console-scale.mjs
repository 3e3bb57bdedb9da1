// The protected-servers list with hundreds of pairs (issue 21), in headless Debian chromium
// against a real standby that knows them (registered over the real link by
// tests/web_console.rs):
//   DRPAIR_URL, DRPAIR_TOKEN   the standby
//   DRPAIR_COUNT               how many pairs it knows
//   DRPAIR_SEARCHES            JSON [[term, matches], …]: searches by id, name and address
//   DRPAIR_LAST                the pair id that sorts last
//   DRPAIR_ARTIFACTS           where the screenshots go
// The list must render, and each search show its result, within a second; it is paged and
// sorted; it is kept live by one push stream, not by polling.

import assert from 'node:assert/strict';
import { env, launch, login, step } from './browser.mjs';

const URL = env('DRPAIR_URL');
const TOKEN = env('DRPAIR_TOKEN');
const COUNT = Number(env('DRPAIR_COUNT'));
const SEARCHES = JSON.parse(env('DRPAIR_SEARCHES'));
const LAST = env('DRPAIR_LAST');
const SECOND = 1000;
const b = await launch(env('DRPAIR_ARTIFACTS'), TOKEN);
const { page } = b;
const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
const rows = page.locator('table.pairs tbody tr[data-pair]');

try {
  await login(page, URL, TOKEN);
  const count = page.locator('#pair-count');
  await count.filter({ hasText: `${COUNT} DR pairs` }).waitFor();

  // A fresh load: from navigation to the rendered first page.
  const t0 = Date.now();
  await page.reload();
  await count.filter({ hasText: `${COUNT} DR pairs` }).waitFor();
  await rows.first().waitFor();
  const loaded = Date.now() - t0;
  const shown = await rows.count();
  assert.equal(shown, 50, 'one page of 50 rows');
  const pages = Math.ceil(COUNT / 50);
  assert.equal(await page.locator('#page-where').textContent(), `Page 1 of ${pages} (rows 1–50)`);
  await b.shot('list-500');
  step(`${COUNT} pairs: the list loaded and rendered its first page in ${loaded} ms`);
  assert.ok(loaded < SECOND, `the list took ${loaded} ms to render`);

  for (const [term, matches] of SEARCHES) {
    const t = Date.now();
    await page.getByLabel('Search').fill(term);
    await count.filter({ hasText: `${matches} of ${COUNT} DR pairs match` }).waitFor();
    const took = Date.now() - t;
    assert.equal(await rows.count(), Math.min(matches, 50));
    step(`search "${term}": ${matches} match(es) shown in ${took} ms`);
    assert.ok(took < SECOND, `the search "${term}" took ${took} ms`);
  }
  await b.shot('list-500-search');
  await page.getByLabel('Search').fill('');
  await count.filter({ hasText: `${COUNT} DR pairs` }).waitFor();

  // Paging and sorting over every pair, not only the page shown.
  await page.locator('#page-next').click();
  await page.locator('#page-where').filter({ hasText: `Page 2 of ${pages}` }).waitFor();
  const second = await rows.first().getAttribute('data-pair');
  await page.locator('#page-prev').click();
  assert.notEqual(await rows.first().getAttribute('data-pair'), second);
  await page.getByRole('button', { name: /^DR Pair ID/ }).click();
  assert.equal(await rows.first().getAttribute('data-pair'), LAST, 'descending: the last pair id first');
  assert.equal(await page.locator('#page-where').textContent(), `Page 1 of ${pages} (rows 1–50)`, 'sorting goes back to page 1');
  step(`paged (page 2 starts with ${second}) and sorted over all ${COUNT} pairs`);
  await b.accessible('the list of many pairs');

  // Live by one push stream: in 10 s the page opens no other request.
  await sleep(2000);
  const from = Date.now();
  await sleep(10_000);
  const made = b.requests.filter((r) => r.at >= from && r.url.includes('/api/v1/'));
  const streams = b.requests.filter((r) => r.url.includes('/api/v1/events'));
  assert.deepEqual(made.map((r) => r.url), [], 'requests while the list is live');
  assert.ok(streams.length >= 1, 'the list listens to the push stream');
  step(`live: no request in 10 s besides the push stream (${streams.length} stream(s) opened in the session)`);

  const errors = b.consoleErrors.filter((e) => !/Failed to load resource|net::/.test(e));
  assert.deepEqual(errors, [], 'console errors');
  console.log('SCALE OK');
} catch (e) {
  await b.failure();
  throw e;
} finally {
  await b.close();
}
