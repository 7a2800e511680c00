/// <reference lib="dom" />
// The war-room page in a real browser (Debian's Chromium through playwright-core) against real
// workflows: tenants of a running wave listed and moving, a rollback clicked with the admin token,
// controls refused without it (and from another origin), a refusal in the workflow's own words, and
// a tenant name made of markup shown as text. A synthetic feed of a thousand tenants checks that an
// update touches only the rows that changed.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../../cli/browser';
import { startWave } from '../../cli/waves';
import { createWarRoom, serveWarRoom } from '../../cli/war-room';
import { listenGateway } from '../../ingestion/gateway';
import { statusQuery, TASK_QUEUE, tenantWorkflowId, PHASES } from '../../workflows/contract';
import { makeFleet, startWorker, useTestStack, waitFor, type TestStack } from '../helpers/stack';
import { SyntheticFeed } from '../helpers/synthetic-feed';

const TOKEN = 'war-room-admin-token-for-tests';
const MARKUP_NAME = '<img src=x onerror="window.__pwned=1">Acme & <b>Co</b>';

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

const row = (page: Page, tenantId: string) => page.locator(`#rows .row[data-tenant="${tenantId}"]`);

async function logIn(context: BrowserContext, url: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(url);
  await page.fill('#token', TOKEN);
  await page.click('#login button[type=submit]');
  await page.locator('#session', { hasText: 'admin' }).waitFor();
  return page;
}

/** Clicks a control in the tenant's detail panel and answers its confirmation; returns the page's answer. */
async function command(page: Page, tenantId: string, control: string, confirmation: RegExp | string, reason?: string): Promise<string> {
  await row(page, tenantId).locator('.name').click();
  await page.click(`#detail-controls button[data-command="${control}"]`);
  const dialog = page.locator('#confirm');
  await expect(dialog.locator('#confirm-text').textContent()).resolves.toMatch(confirmation);
  if (reason !== undefined) await page.fill('#confirm-reason', reason);
  await page.evaluate(() => document.getElementById('toast')!.replaceChildren());
  await page.click('#confirm-ok');
  await page.locator('#toast:not(:empty)').waitFor();
  return (await page.locator('#toast').textContent())!;
}

describe('on real workflows', () => {
  let stack: TestStack;
  let fleetOf: ReturnType<typeof makeFleet>;
  let worker: { stop: () => Promise<void> };
  let served: Awaited<ReturnType<typeof serveWarRoom>>;
  let ids: string[];
  // Registered before the stack's own hooks, so the worker stops before the stack does.
  afterAll(async () => {
    await served?.stop();
    await worker?.stop();
    fleetOf?.cleanup();
  });
  const currentStack = useTestStack();

  beforeAll(async () => {
    stack = currentStack();
    // Held before verifying, so each tenant stays running for as long as a test needs.
    fleetOf = makeFleet({ tenants: 3, rows: 300, policy: { concurrency: 3, pauseBefore: ['verifying'], rollbackWindowSeconds: 0 } });
    fleetOf.fleet.tenants[0].name = MARKUP_NAME;
    ids = fleetOf.fleet.tenants.map((t) => t.id);
    worker = await startWorker(stack, fleetOf.fleet, TASK_QUEUE);
    served = await serveWarRoom(stack.env.client, {
      fleet: fleetOf.fleet, temporalUiUrl: 'http://127.0.0.1:8233', namespace: stack.env.namespace ?? 'default', intervalMs: 200, env: { AIRLIFT_ADMIN_TOKEN: TOKEN },
    });
  });

  test('the page lists the tenants of a running wave, its progress moves, and a name made of markup is shown as text', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(served.url);
    await expect(row(page, ids[1]).locator('.c-phase').textContent()).resolves.toBe('not started');

    const waveId = `wr-${ids[0]}`;
    await startWave(stack.env.client, waveId, ids, fleetOf.fleet.policy);
    // What the page showed for one tenant, change by change, until it is held before verifying.
    const seen: string[] = [];
    await waitFor('the page shows the tenant held before verifying', async () => {
      const phase = await row(page, ids[1]).getAttribute('data-phase');
      if (phase && seen[seen.length - 1] !== phase) seen.push(phase);
      return (await row(page, ids[1]).locator('.c-phase').textContent()) === 'held before verifying (breakpoint)' ? true : undefined;
    });
    const runbook = ['not started', 'pending', ...PHASES];
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.map((p) => runbook.indexOf(p))).toEqual([...seen.map((p) => runbook.indexOf(p))].sort((a, b) => a - b));

    for (const id of ids) await expect(row(page, id).locator('.c-wave').textContent()).resolves.toBe(waveId);
    await page.locator(`#waves .wave[data-wave="${waveId}"] .chip`, { hasText: '3 held before verifying' }).waitFor();
    // Issue 21: the hold is in the needs-you lane with the one action it needs, and the fleet's totals add up.
    await page.locator('#needs-list li', { hasText: "held before verifying by the policy's pauseBefore breakpoint" }).nth(2).waitFor();
    await expect(page.locator(`#needs-list li[data-tenant="${ids[1]}"] button[data-command="resume"]`).isDisabled()).resolves.toBe(true);
    await expect(page.locator('#totals').textContent()).resolves.toMatch(/^fleet: 0 of 3 on Azure · 3 on source · 3 in flight · 0 failed/);
    await expect(row(page, ids[1]).locator('.c-served').textContent()).resolves.toBe('source');
    // Change capture keeps the tenant writable until the cut-over's fence: the page says so.
    await expect(row(page, ids[1]).locator('.c-writes').textContent()).resolves.toMatch(/^read-write/);
    const link = await row(page, ids[1]).locator('a.wf').getAttribute('href');
    expect(link).toContain(`http://127.0.0.1:8233/namespaces/default/workflows/${tenantWorkflowId(ids[1])}/`);

    // The markup is text: the name reads as written, and no element or script came of it.
    await expect(row(page, ids[0]).locator('.name').textContent()).resolves.toBe(MARKUP_NAME);
    expect(await page.locator('#rows img, #rows b').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();

    // Progress to the end: resumed from the page, the tenant verifies, cuts over and completes.
    const admin = await logIn(await browser.newContext(), served.url);
    await expect(command(admin, ids[1], 'resume', `Resume ${ids[1]}?`)).resolves.toMatch(new RegExp(`^tenant ${ids[1]} resumed`));
    await row(page, ids[1]).locator('.c-phase', { hasText: 'completed' }).waitFor({ timeout: 60000 });
    await expect(row(page, ids[1]).locator('.label').textContent()).resolves.toMatch(/^\d+ tables verified$/);
    await expect(row(page, ids[1]).locator('.c-pause').textContent()).resolves.toMatch(/^\d+ ms$/);
    await page.locator('#chart-pauses canvas').waitFor();
    await context.close();
    await admin.context().close();
  });

  test('without the admin token the controls are refused; from another origin too', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(served.url);
    await row(page, ids[2]).locator('.name').click();
    await expect(page.locator('#detail-controls button[data-command="rollback"]').isDisabled()).resolves.toBe(true);
    await expect(page.locator('#controls-hint').textContent()).resolves.toContain('log in with the admin token');
    // The API itself refuses, whatever the page shows.
    const refused = await page.evaluate(async (id) => {
      const res = await fetch(`/api/tenants/${id}/rollback`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ reason: 'no token' }) });
      return { status: res.status, body: await res.json() };
    }, ids[2]);
    expect(refused).toEqual({ status: 401, body: { error: 'read-only: log in with the admin token to use the controls' } });
    await page.fill('#token', 'not-the-admin-token-at-all');
    await page.click('#login button[type=submit]');
    await page.locator('#toast', { hasText: 'log in: token refused' }).waitFor();
    await expect(page.locator('#session').textContent()).resolves.toBe('read-only');

    // Logged in, but the request comes from another site's page: refused by its Origin.
    const admin = await logIn(await browser.newContext(), served.url);
    const cookie = (await admin.context().cookies()).find((c) => c.name === 'airlift_war_room')!;
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(await admin.evaluate(() => document.cookie)).toBe('');
    const forged = await fetch(`${served.url}/api/tenants/${ids[2]}/rollback`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Cookie: `${cookie.name}=${cookie.value}`, Origin: 'http://evil.example' }, body: JSON.stringify({ reason: 'csrf' }),
    });
    expect(forged.status).toBe(403);
    const html = await (await fetch(served.url)).text();
    expect(html).not.toContain(TOKEN);

    const status = await stack.env.client.workflow.getHandle(tenantWorkflowId(ids[2])).query(statusQuery);
    expect(status.phase).toBe('catching_up');
    expect(status.rollbackReason).toBeUndefined();
    await context.close();
    await admin.context().close();
  });

  test("a control the phase does not take is disabled with the reason; the API still answers with the workflow's own", async () => {
    const admin = await logIn(await browser.newContext(), served.url);
    await row(admin, ids[2]).locator('.name').click();
    const approve = admin.locator('#detail-controls button[data-command="approve"]');
    await expect(approve.isDisabled()).resolves.toBe(true);
    await expect(approve.getAttribute('title')).resolves.toBe('in catching up: approval is taken only while awaiting cut-over');
    await expect(admin.locator('#detail-controls button[data-command="complete"]').isDisabled()).resolves.toBe(true);
    await expect(admin.locator('#detail-controls button[data-command="resume"]').isDisabled()).resolves.toBe(false);
    await expect(admin.locator('#detail-controls button[data-command="rollback"]').isDisabled()).resolves.toBe(false);
    const answer = await admin.evaluate(async (id) => {
      const res = await fetch(`/api/tenants/${id}/approve`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
      return { status: res.status, body: await res.json() };
    }, ids[2]);
    expect(answer.status).toBe(409);
    expect(answer.body.error).toMatch(/awaiting_cutover/);
    await admin.context().close();
  });

  test('rollback clicked with the token ends the tenant rolled_back, and the page shows it with the reason as text', async () => {
    const admin = await logIn(await browser.newContext(), served.url);
    const reason = '<script>window.__pwned=2</script> customer escalation';
    const answer = await command(admin, ids[0], 'rollback', `Roll back ${MARKUP_NAME} (${ids[0]})?`, reason);
    expect(answer).toBe(`rollback of ${ids[0]} started from phase catching_up: ${reason}`);
    await row(admin, ids[0]).locator('.c-phase', { hasText: 'rolled back' }).waitFor({ timeout: 60000 });
    // The phase is set a moment before the run returns: wait for the run's own end.
    await waitFor('the row to show the run ended rolled back', async () => ((await row(admin, ids[0]).getAttribute('data-state')) === 'rolled_back' ? true : undefined));
    await expect(row(admin, ids[0]).locator('.c-error').textContent()).resolves.toBe(`rolled back: ${reason}`);
    expect(await admin.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    // The workflow agrees, read straight from Temporal.
    const result = await stack.env.client.workflow.getHandle(tenantWorkflowId(ids[0])).result();
    expect(result.outcome).toBe('rolled_back');
    await admin.context().close();
  });
});

describe('a thousand tenants (synthetic feed)', () => {
  test('listed and filtered, and an update touches only the rows that changed', async () => {
    const feed = new SyntheticFeed(1000);
    const warRoom = createWarRoom({ source: feed, intervalMs: 150 });
    const served = await listenGateway(warRoom, 0);
    const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
    try {
      await page.goto(served.url);
      await page.locator('#shown', { hasText: 'showing 1000 of 1000 tenants' }).waitFor();
      await page.selectOption('#filter-wave', 'w-odd');
      await expect(page.locator('#shown').textContent()).resolves.toBe('showing 500 of 1000 tenants');
      await page.selectOption('#filter-phase', 'restoring');
      // Phases cycle over 8 steps and the odd wave holds the odd rows: restoring (index 4) never falls in it.
      await expect(page.locator('#shown').textContent()).resolves.toBe('showing 0 of 1000 tenants');
      await page.selectOption('#filter-wave', '');
      await expect(page.locator('#shown').textContent()).resolves.toBe('showing 125 of 1000 tenants');
      await page.selectOption('#filter-phase', '');

      // Ten tenants move; the page records which rows its next updates touch.
      const moving = feed.rows.filter((_, i) => i % 100 === 7).map((r) => r.tenantId);
      feed.moving = new Set(moving);
      const touched = await page.evaluate(async () => {
        const rows = new Set<string>();
        const observer = new MutationObserver((records) => {
          for (const r of records) {
            const el = (r.target instanceof Element ? r.target : r.target.parentElement)?.closest('#rows .row') as HTMLElement | null;
            if (el) rows.add(el.dataset.tenant!);
          }
        });
        const updates = () => Number(document.body.dataset.updates ?? 0);
        // Updates already on their way still carry every row; from the first that carries ten on, all do.
        while (document.body.dataset.updateRows !== '10') await new Promise((r) => setTimeout(r, 20));
        observer.observe(document.getElementById('rows')!, { subtree: true, childList: true, characterData: true, attributes: true });
        const start = updates();
        while (updates() < start + 3) await new Promise((r) => setTimeout(r, 20));
        observer.disconnect();
        return [...rows].sort();
      });
      expect(touched).toEqual([...moving].sort());
    } finally {
      await page.close();
      warRoom.close();
      await served.stop();
    }
  });
});
