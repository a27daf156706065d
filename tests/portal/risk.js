// Issue 17 in Debian's Chromium with playwright-core: the subscriber sees
// the hold and the desk's warning on the settings page; the desk releases
// held mail from the admin account page. One phase per run:
//   node risk.js PHASE BASE_URL STATE_FILE SHOT_DIR USER PASSWORD [ACCOUNT]
// Prints one JSON object on stdout (tests/e2e/test_portal_risk.py).
'use strict';
const path = require('path');
const { chromium } = require('playwright-core');

const [phase, base, stateFile, shotDir, user, password, account] =
    process.argv.slice(2);

async function text(page, sel) {
  const el = await page.$(sel);
  return el ? (await el.innerText()).trim() : null;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu',
      '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run'],
  });
  const context = await browser.newContext({ ignoreHTTPSErrors: true,
    locale: 'ja-JP', viewport: { width: 1000, height: 1000 } });
  const page = await context.newPage();
  const cspErrors = [];
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text());
  });
  const out = { phase };
  const shot = (name) => page.screenshot({
    path: path.join(shotDir, name), fullPage: true });

  if (phase === 'subscriber') {
    await page.goto(base + '/');
    await page.fill('#user', user);
    await page.fill('#password', password);
    await Promise.all([page.waitForNavigation(), page.click('#login')]);
    out.account = await text(page, '#account');
    out.hold = await text(page, '#risk-hold');
    out.warning = await text(page, '#warning');
    out.trace = await text(page, '#warning-trace');
    out.score = await text(page, '#score');
    await shot('risk-subscriber-ja.png');
    await page.goto(base + '/?lang=en');
    out.hold_en = await text(page, '#risk-hold');
    out.warning_en = await text(page, '#warning');
    await shot('risk-subscriber-en.png');
  } else if (phase === 'desk-release') {
    await page.goto(base + '/admin/');
    await page.fill('#user', user);
    await page.fill('#password', password);
    await Promise.all([page.waitForNavigation(), page.click('#login')]);
    await Promise.all([page.waitForNavigation(), page.click('#risk')]);
    out.top = await text(page, '#risk-top');
    await Promise.all([page.waitForNavigation(),
      page.click(`#risk-top a:has-text("${account}")`)]);
    out.response = await text(page, '#response');
    out.score = await text(page, '#score');
    out.held_before = await text(page, '#held-count');
    out.held_table = await text(page, '#held');
    await shot('risk-admin-account.png');
    // release the first held message, with its own button
    const row = await page.$('#held tr.held');
    out.released_id = await row.getAttribute('data-id');
    await Promise.all([page.waitForNavigation(),
      row.$('button#release').then((b) => b.click())]);
    out.message = await text(page, '#message');
    out.held_after = await text(page, '#held-count');
    out.held_table_after = await text(page, '#held');
    // then delete what is left, all at once
    await Promise.all([page.waitForNavigation(), page.click('#delete-all')]);
    out.held_end = await text(page, '#held-count');
    await page.click('#audit');
    out.audit = await text(page, '#audit-log');
  } else {
    throw new Error('unknown phase ' + phase);
  }
  out.csp_errors = cspErrors;
  await context.storageState({ path: stateFile });
  await browser.close();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
