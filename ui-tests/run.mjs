// Browser tests of the dashboard (SPEC §10, issue 16). They start a real `leasehold serve`
// (the binary named by LEASEHOLD_BIN) on a scratch configuration, drive Debian's Chromium
// with playwright-core, and check what an operator sees. Screenshots of the main pages go
// to docs/screenshots/ (SCREENSHOTS=0 skips them). Run through scripts/ui-test.sh.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const bin = process.env.LEASEHOLD_BIN || join(here, '.bin', 'leasehold');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const shots = process.env.SCREENSHOTS !== '0';
const ADMIN = 'ui-test-admin-token-0123456789';
const LICENSE = 'lic-ui-1';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startServer(dir) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // A gateway (SPEC section 8) in front of the demo upstream, for the gateway's browser test.
  const gwPort = await freePort();
  const upPort = await freePort();
  const gw = `http://127.0.0.1:${gwPort}`;
  const config = `listen: 127.0.0.1:${port}
public_url: ${base}
store: sqlite://${join(dir, 'leasehold.db')}
admin_token: ${ADMIN}
documents: ${join(dir, 'documents')}
tenants:
  - name: acme
    default: true
    session: {item: PlatformService, free_scopes: [view]}
    organizations: [{id: org-1, name: Acme Ltd}]
    users:
      - {username: alice, password: alice-pw, organization: org-1}
    clients:
      - client_id: demo-app
        client_secret: demo-secret
        user: alice
        grant_types: [client_credentials]
        scopes: [all, view]
      - client_id: web-app
        redirect_uris: [http://127.0.0.1:9/callback]
        grant_types: [authorization_code]
        scopes: [all]
    products:
      - {name: PlatformService, items: [AppFeature-XYZ, AppFeature-ABC]}
    models:
      - name: floating
        anchors: [user, hw]
        sessions_per_seat: 3
        online_lease: 15m
        offline_lease: 72h
        linger: 2s
    licenses:
      - id: ${LICENSE}
        product: PlatformService
        model: floating
        seats: 4
        owner: {organization: org-1}
        valid_from: 2026-01-01T00:00:00Z
        valid_until: 2030-01-01T00:00:00Z
    gateways:
      - name: reports
        listen: 127.0.0.1:${gwPort}
        upstream: http://127.0.0.1:${upPort}
        routes:
          - {path: /health, access: public}
          - {path: /, methods: [GET, HEAD], access: session}
          - {path: /, access: seat}
  - name: globex
`;
  writeFileSync(join(dir, 'config.yaml'), config);
  const proc = spawn(bin, ['serve', '--config', join(dir, 'config.yaml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const upstream = spawn(bin, ['demo-upstream', '--listen', `127.0.0.1:${upPort}`], { stdio: ['ignore', 'ignore', 'ignore'] });
  let log = '';
  proc.stderr.on('data', (d) => { log = (log + d).slice(-20000); });
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(base + '/healthz');
      const g = await fetch(gw + '/health');
      if (r.ok && g.ok) return { base, gw, proc, upstream, log: () => log };
    } catch { /* not up yet */ }
    if (proc.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error('leasehold serve did not start:\n' + log);
}

// API helpers: what a client and an operator's script do, over plain HTTP.
async function clientToken(base) {
  const r = await fetch(base + '/oauth2/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: 'Basic ' + Buffer.from('demo-app:demo-secret').toString('base64') },
    body: 'grant_type=client_credentials',
  });
  assert.equal(r.status, 200, 'token');
  return (await r.json()).access_token;
}

async function consume(base, token, query) {
  const r = await fetch(`${base}/authz/.json?${query}`, { headers: { Authorization: 'Bearer ' + token } });
  assert.equal(r.status, 200, 'authz');
  return r.json();
}

async function adminLeases(base) {
  const r = await fetch(`${base}/admin/v1/tenants/acme/leases`, { headers: { Authorization: 'Bearer ' + ADMIN } });
  assert.equal(r.status, 200, 'admin leases');
  return (await r.json()).leases.map((l) => l.id);
}

const results = [];
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}\n     ${String(e && e.stack || e).split('\n').join('\n     ')}`);
  }
}

async function shot(page, name) {
  if (!shots) return;
  mkdirSync(join(repo, 'docs', 'screenshots'), { recursive: true });
  await page.screenshot({ path: join(repo, 'docs', 'screenshots', name + '.png'), fullPage: true });
}

async function signIn(page, base, token) {
  await page.goto(base + '/ui/login');
  await page.getByLabel('Admin token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState('domcontentloaded');
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'leasehold-ui-'));
  const profile = mkdtempSync(join(tmpdir(), 'leasehold-ui-chromium-'));
  const server = await startServer(dir);
  const { base } = server;
  // launch() gives Chromium a fresh temporary --user-data-dir of its own (it refuses one in
  // args); the tests need launch(), not a persistent context, for a second, script-less
  // context. TMPDIR=profile keeps that directory inside the one removed at the end.
  process.env.TMPDIR = profile;
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const cspErrors = [];
    page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspErrors.push(m.text()); });
    const token = await clientToken(base);

    await step('sign-in with a wrong token shows an error', async () => {
      await page.goto(base + '/ui/');
      assert.match(page.url(), /\/ui\/login$/);
      await shot(page, 'login');
      await signIn(page, base, 'not-the-token');
      await page.getByRole('alert').filter({ hasText: 'Wrong admin token' }).waitFor();
      assert.match(page.url(), /\/ui\/login$/);
    });

    await step('sign-in with the admin token', async () => {
      await signIn(page, base, ADMIN);
      await page.getByRole('heading', { name: 'Tenants and licenses' }).waitFor();
      const cookies = await ctx.cookies(base + '/ui/');
      const c = cookies.find((x) => x.name === 'lh_ui');
      assert.ok(c, 'lh_ui cookie set');
      assert.equal(c.httpOnly, true);
      assert.equal(c.sameSite, 'Strict');
      assert.equal(c.path, '/ui/');
      assert.notEqual(c.value, ADMIN);
      await page.getByRole('cell', { name: 'No license.' }).waitFor(); // tenant globex
    });

    let jti;
    await step('a lease started over HTTP appears without a reload', async () => {
      await page.goto(`${base}/ui/t/acme/licenses/${LICENSE}`);
      await page.evaluate(() => { window.__noReload = true; });
      await page.locator('#live-status').waitFor({ state: 'visible' });
      jti = (await consume(base, token, 'AppFeature-XYZ&hw=laptop-7')).jti;
      assert.ok(jti, 'lease granted');
      await page.getByRole('cell', { name: jti, exact: true }).waitFor({ timeout: 8000 });
      assert.equal(await page.evaluate(() => window.__noReload), true, 'the page was not reloaded');
      await consume(base, token, 'AppFeature-ABC&hw=desktop-2');
      await page.getByRole('cell', { name: 'desktop-2' }).waitFor({ timeout: 8000 });
      await shot(page, 'license');
    });

    await step('"End" frees the lease (checked through the admin API)', async () => {
      assert.ok((await adminLeases(base)).includes(jti));
      const row = page.getByRole('row').filter({ has: page.getByRole('cell', { name: jti, exact: true }) });
      await row.getByRole('button', { name: 'End' }).click();
      await page.getByRole('status').filter({ hasText: 'Ended lease ' + jti }).waitFor();
      assert.ok(!(await adminLeases(base)).includes(jti), 'the admin API no longer lists the lease');
      assert.equal(await page.getByRole('cell', { name: jti, exact: true }).count(), 0);
    });

    await step('overview shows seats used, and updates live', async () => {
      await page.goto(base + '/ui/');
      const row = page.getByRole('row').filter({ hasText: LICENSE });
      await row.getByRole('cell', { name: '2 / 4' }).waitFor(); // the session's seat and desktop-2
      await consume(base, token, 'AppFeature-XYZ&hw=tablet-3');
      await row.getByRole('cell', { name: '3 / 4' }).waitFor({ timeout: 8000 });
      await shot(page, 'overview');
    });

    await step('sessions page lists the live session with an End button', async () => {
      await page.goto(base + '/ui/t/acme/sessions');
      const row = page.getByRole('row').filter({ hasText: 'demo-app' });
      await row.waitFor();
      assert.equal(await row.getByRole('button', { name: 'End' }).count(), 1);
      assert.equal(await page.getByRole('columnheader', { name: 'Last used' }).count(), 1);
      await shot(page, 'sessions');
    });

    await step('usage chart and CSV download', async () => {
      // Fill the license, then get refused: the recorder flushes within 5 s.
      await consume(base, token, 'AppFeature-XYZ&hw=phone-4');
      const refused = await consume(base, token, 'AppFeature-XYZ&hw=phone-5');
      assert.equal(refused['AppFeature-XYZ_errorCode'] !== undefined, true, 'a refusal');
      let ok = false;
      for (let i = 0; i < 20 && !ok; i++) {
        await page.goto(base + '/ui/t/acme/usage');
        ok = (await page.locator('svg.usage-chart rect.deny').count()) > 0;
        if (!ok) await sleep(500);
      }
      assert.ok(ok, 'the chart shows the refusal');
      assert.ok(await page.locator('svg.usage-chart polyline.peak').count() > 0);
      await shot(page, 'usage');
      const csv = await page.request.get(base + '/ui/t/acme/usage.csv');
      assert.equal(csv.status(), 200);
      const text = await csv.text();
      assert.equal(text.split('\n')[0], 'hour,license,peak_seats,denials');
      assert.match(text, new RegExp(`,${LICENSE},\\d+,1\\n`));
      await page.goto(base + '/ui/t/acme/usage?range=90d');
      await page.getByText('per day, last 90 days').first().waitFor();
    });

    await step('a form posted without its CSRF token gets 403', async () => {
      const r = await page.request.post(`${base}/ui/t/acme/sessions/x/end`, { form: { nothing: '1' } });
      assert.equal(r.status(), 403);
      await page.goto(base + '/ui/t/acme/sessions');
      await page.evaluate(() => document.querySelectorAll('input[name=csrf]').forEach((i) => i.remove()));
      const before = (await (await fetch(`${base}/admin/v1/tenants/acme/sessions`, { headers: { Authorization: 'Bearer ' + ADMIN } })).json()).sessions.length;
      const [resp] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === 'POST'),
        page.getByRole('row').filter({ hasText: 'demo-app' }).getByRole('button', { name: 'End' }).click(),
      ]);
      assert.equal(resp.status(), 403);
      await page.getByRole('alert').filter({ hasText: 'CSRF' }).waitFor();
      const after = (await (await fetch(`${base}/admin/v1/tenants/acme/sessions`, { headers: { Authorization: 'Bearer ' + ADMIN } })).json()).sessions.length;
      assert.equal(after, before, 'nothing ended');
    });

    await step('every page sends the CSP, and nothing broke it', async () => {
      for (const p of ['/ui/', `/ui/t/acme/licenses/${LICENSE}`, '/ui/t/acme/sessions', '/ui/t/acme/usage', '/ui/login']) {
        const r = await page.request.get(base + p);
        assert.equal(r.headers()['content-security-policy'], "default-src 'self'; frame-ancestors 'none'", p);
      }
      assert.deepEqual(cspErrors, []);
    });

    await step('the OAuth2 sign-in page shares the dashboard look, CSP-clean', async () => {
      const p = await ctx.newPage();
      const errors = [];
      p.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      const q = 'response_type=code&client_id=web-app&redirect_uri=' + encodeURIComponent('http://127.0.0.1:9/callback') +
        '&scope=all&state=s1&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256';
      const [sheet] = await Promise.all([
        p.waitForResponse((r) => r.url().endsWith('/ui/assets/style.css')),
        p.goto(base + '/oauth2/authorize?' + q),
      ]);
      assert.equal(sheet.status(), 200);
      await p.getByLabel('Username').waitFor();
      assert.equal(await p.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(246, 247, 249)');
      assert.deepEqual(errors, []);
      await shot(p, 'oauth-login');
      await p.close();
    });

    await step('everything works with JavaScript disabled', async () => {
      const noJS = await browser.newContext({ javaScriptEnabled: false });
      const p = await noJS.newPage();
      await signIn(p, base, ADMIN);
      await p.getByRole('heading', { name: 'Tenants and licenses' }).waitFor();
      await p.goto(`${base}/ui/t/acme/licenses/${LICENSE}`);
      assert.equal(await p.locator('#live-status').isVisible(), false, 'no live notice without JS');
      await consume(base, token, 'AppFeature-ABC&hw=laptop-nojs').catch(() => {});
      const lease = (await consume(base, token, 'AppFeature-ABC&hw=desktop-2')).jti; // a renewal on a held seat
      await p.reload();
      await p.getByRole('cell', { name: lease, exact: true }).waitFor();
      const row = p.getByRole('row').filter({ has: p.getByRole('cell', { name: lease, exact: true }) });
      await row.getByRole('button', { name: 'End' }).click();
      await p.getByRole('status').filter({ hasText: 'Ended lease' }).waitFor();
      assert.ok(!(await adminLeases(base)).includes(lease));
      await p.goto(base + '/ui/t/acme/sessions');
      await p.getByRole('row').filter({ hasText: 'demo-app' }).getByRole('button', { name: 'End' }).click();
      await p.getByRole('status').filter({ hasText: 'Ended session' }).waitFor();
      await p.goto(base + '/ui/t/acme/usage');
      assert.ok(await p.locator('svg.usage-chart').count() > 0);
      await p.getByRole('button', { name: 'Sign out' }).click();
      await p.getByLabel('Admin token').waitFor();
      await noJS.close();
    });

    await step('gateway: its login page, the proxied page, logout releasing the seat', async () => {
      const { gw } = server;
      const p = await ctx.newPage();
      const before = (await adminLeases(base)).length;
      await p.goto(gw + '/reports/q1?x=1');
      assert.match(p.url(), /\/\.leasehold\/login\?return_to=/, 'a browser without a session is sent to the login page');
      await shot(p, 'gateway-login');
      await p.getByLabel('Username').fill('alice');
      await p.getByLabel('Password').fill('alice-pw');
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.waitForURL(gw + '/reports/q1?x=1');
      const echoed = JSON.parse(await p.locator('body').innerText());
      assert.equal(echoed.identity['X-Leasehold-User'], 'alice', 'the upstream is told who the user is');
      assert.equal((await adminLeases(base)).length, before + 1, 'the gateway session holds a seat');
      const cookies = await ctx.cookies(gw);
      const c = cookies.find((x) => x.name === 'lh_gw_reports');
      assert.ok(c && c.httpOnly, 'the gateway cookie, HttpOnly');
      const status = await p.evaluate(async () => (await fetch('/.leasehold/logout', { method: 'POST' })).status);
      assert.equal(status, 200, 'logout');
      assert.equal((await adminLeases(base)).length, before, 'logout released the seat');
      await p.goto(gw + '/reports/q1');
      assert.match(p.url(), /\/\.leasehold\/login/, 'after logout the browser signs in again');
      await p.close();
    });
  } finally {
    await browser.close();
    server.proc.kill('SIGTERM');
    server.upstream.kill('SIGTERM');
    rmSync(profile, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
  const failed = results.filter((r) => !r.ok);
  console.log(`\n${results.length - failed.length} passed, ${failed.length} failed`);
  if (failed.length) {
    console.log('server log (tail):\n' + server.log().slice(-4000));
    process.exit(1);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
