// Drive the settings page in Debian's Chromium with playwright-core, one
// phase per run (tests/e2e/test_portal.py calls it between SMTP checks).
//   node portal.js PHASE BASE_URL STATE_FILE SHOT_DIR [USER PASSWORD [ARGS]]
// The session cookie is carried from phase to phase in STATE_FILE
// (Playwright's storage state). Prints one JSON object on stdout.
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const [phase, base, stateFile, shotDir, user, password] =
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
  const opts = { ignoreHTTPSErrors: true, locale: 'ja-JP',
    viewport: { width: 900, height: 1000 } };
  if (phase !== 'login' && fs.existsSync(stateFile))
    opts.storageState = stateFile;
  const context = await browser.newContext(opts);
  const page = await context.newPage();
  const cspErrors = [];
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text());
  });
  const out = { phase };
  const shot = (name) => page.screenshot({
    path: path.join(shotDir, name), fullPage: true });

  if (phase === 'login') {
    await page.goto(base + '/');
    out.title = await page.title();
    out.intro = await text(page, 'form[action="/login"]');
    await page.fill('#user', user);
    await page.fill('#password', password);
    await shot('login-ja.png');
    await Promise.all([page.waitForNavigation(), page.click('#login')]);
    out.account = await text(page, '#account');
    out.overseas = await text(page, '#overseas');
    out.css = await page.evaluate(() =>
      getComputedStyle(document.querySelector('h1')).borderBottomStyle);
    await shot('main-ja.png');
  } else if (phase === 'on' || phase === 'extend' || phase === 'off') {
    await page.goto(base + '/');
    const button = { on: '#turn-on', extend: '#extend',
      off: '#turn-off' }[phase];
    out.before = await text(page, '#until');
    await Promise.all([page.waitForNavigation(), page.click(button)]);
    out.message = await text(page, '#message');
    out.overseas = await text(page, '#overseas');
    out.until = await text(page, '#until');
    out.url = page.url();
    await shot(`overseas-${phase}.png`);
  } else if (phase === 'english') {
    await page.goto(base + '/?lang=en');
    out.title = await page.title();
    out.overseas = await text(page, '#overseas');
    out.counts = await text(page, '#counts');
    out.submissions = await text(page, '#submissions');
    out.events = await text(page, '#events');
    await shot('main-en.png');
    // the language stays (cookie) without the parameter
    await page.goto(base + '/');
    out.title_again = await page.title();
  } else if (phase === 'status') {
    await page.goto(base + '/');
    out.title = await page.title();
    out.account = await text(page, '#account');
    out.msgs = await text(page, '#msgs');
    out.rcpts = await text(page, '#rcpts');
    out.submissions = await text(page, '#submissions');
    out.events = await text(page, '#events');
    out.message = await text(page, '#message');
    await shot('status.png');
  } else if (phase === 'admin-suspend') {
    // the abuse desk: log in (user and password are the admin's), find
    // the account, suspend it with a reason
    const [target, reason] = process.argv.slice(8);
    await page.goto(base + '/admin/');
    await page.fill('#user', user);
    await page.fill('#password', password);
    await Promise.all([page.waitForNavigation(), page.click('#login')]);
    await page.fill('#q', target.split('@')[0]);
    await Promise.all([page.waitForNavigation(), page.click('#search')]);
    out.results = await text(page, '#results');
    await Promise.all([page.waitForNavigation(),
      page.click(`#results a:has-text("${target}")`)]);
    await page.fill('#reason-input', reason);
    await Promise.all([page.waitForNavigation(), page.click('#suspend')]);
    out.message = await text(page, '#message');
    out.status = await text(page, '#status');
    await shot('admin-account.png');
    await page.click('#audit');
    out.audit = await text(page, '#audit-log');
    // the language link keeps the desk on the admin pages, logged in,
    // with the event types in the other language (issue 14)
    await Promise.all([page.waitForNavigation(), page.click('#lang')]);
    out.lang_url = new URL(page.url()).pathname;
    out.lang_html = await page.getAttribute('html', 'lang');
    out.lang_admin = await text(page, '#admin');
  } else if (phase === 'logout') {
    await page.goto(base + '/');
    await Promise.all([page.waitForNavigation(), page.click('#logout')]);
    out.login_form = (await page.$('#login')) !== null;
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
