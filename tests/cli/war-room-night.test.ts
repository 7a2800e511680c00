/// <reference lib="dom" />
// Issue 21's night, as the operator sees it in Chromium at 1366x768 on real workflows: one tenant
// whose rollback window is closing, one awaiting approval, one terminated from the Temporal API, and a
// migrated tenant started again by hand and turned away at preflight. The needs-you lane lists
// exactly the tenants that need action, each with its one action, enabled only where the workflow
// takes it; the migrated tenant is never shown failed; the fleet's totals add up.
import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../../cli/browser';
import { startWave } from '../../cli/waves';
import { serveWarRoom } from '../../cli/war-room';
import { completeUpdate, migrationIdOf, reasonOf, statusQuery, TASK_QUEUE, tenantWorkflowId, type MigrationPolicy } from '../../workflows/contract';
import { makeFleet, startWorker, useTestStack, waitFor, type TestStack } from '../helpers/stack';

const TOKEN = 'war-room-admin-token-for-the-night';

let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

let stack: TestStack;
let fleetOf: ReturnType<typeof makeFleet>;
let worker: { stop: () => Promise<void> } | undefined;
let served: Awaited<ReturnType<typeof serveWarRoom>> | undefined;
afterAll(async () => {
  await served?.stop();
  await worker?.stop();
  fleetOf?.cleanup();
});
const currentStack = useTestStack();

/** The lane as the operator reads it: tenant, why, and its action button (with whether it is enabled). */
async function lane(page: Page): Promise<{ tenant: string; why: string; action?: string; enabled?: boolean }[]> {
  return page.locator('#needs-list li').evaluateAll((items) => items.map((li) => {
    const button = li.querySelector('button[data-command]') as HTMLButtonElement | null;
    return { tenant: (li as HTMLElement).dataset.tenant!, why: li.querySelector('.why')!.textContent!, ...(button ? { action: button.dataset.command!, enabled: !button.disabled } : {}) };
  }));
}

test('the needs-you lane lists exactly the tenants that need action; a migrated tenant turned away by a later run is never shown failed', async () => {
  stack = currentStack();
  fleetOf = makeFleet({ tenants: 3, rows: 200, policy: { concurrency: 3, rollbackWindowSeconds: 600 } });
  const [closing, approval, terminated] = fleetOf.fleet.tenants.map((t) => t.id);
  const client = stack.env.client;
  worker = await startWorker(stack, fleetOf.fleet, TASK_QUEUE);
  served = await serveWarRoom(client, { fleet: fleetOf.fleet, namespace: stack.env.namespace ?? 'default', intervalMs: 300, env: { AIRLIFT_ADMIN_TOKEN: TOKEN } });
  const phaseOf = (t: string) => client.workflow.getHandle(tenantWorkflowId(t)).query(statusQuery).then((s) => s.phase);
  const waveId = `night-${closing}`;
  await startWave(client, waveId, [closing, approval, terminated], fleetOf.fleet.policy as MigrationPolicy, TASK_QUEUE, undefined, { [approval]: 'manual', [terminated]: 'manual' });
  for (const [t, phase] of [[closing, 'rollback_window'], [approval, 'awaiting_cutover'], [terminated, 'awaiting_cutover']])
    await waitFor(`${t} in ${phase}`, async () => ((await phaseOf(t)) === phase ? true : undefined));
  // Terminated from the Temporal API, as from the Web UI: nothing finishes or undoes it.
  await client.workflow.getHandle(tenantWorkflowId(terminated)).terminate('stuck, said the night shift');

  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
  await page.goto(served.url);
  await page.fill('#token', TOKEN);
  await page.click('#login button[type=submit]');
  await page.locator('#session', { hasText: 'admin' }).waitFor();
  await page.locator(`#needs-list li[data-tenant="${terminated}"]`).waitFor();
  await page.locator(`#needs-list li[data-tenant="${closing}"]`).waitFor();
  const night = await lane(page);
  expect(night.map((n) => [n.tenant, n.action, n.enabled])).toEqual([
    [terminated, undefined, undefined],
    [approval, 'approve', true],
    [closing, 'complete', true],
  ]);
  expect(night[0].why).toBe(`workflow terminated in awaiting cutover: nothing finished or undid it; run \`airlift reconcile -f ${fleetOf.fleet.file}\` to see and repair where it was left`);
  expect(night[2].why).toMatch(/^rollback window closing: then the point of no return · closes in (9|10)m \d+s$/);
  const row = (t: string) => page.locator(`#rows .row[data-tenant="${t}"]`);
  await expect(row(terminated).getAttribute('data-state')).resolves.toBe('terminated');
  await expect(row(terminated).locator('.c-phase').textContent()).resolves.toBe('terminated');
  await expect(row(closing).locator('.c-served').textContent()).resolves.toBe('Azure');
  await expect(row(closing).locator('.c-phase').textContent()).resolves.toMatch(/^rollback window, closes in \d+m \d+s$/);
  await expect(page.locator('#totals').textContent()).resolves.toMatch(/^fleet: 1 of 3 on Azure · 2 on source · 2 in flight · 0 failed · 1 terminated · [\d.]+ MiB of [\d.]+ MiB moved$/);

  // Controls by phase: approval is taken only where it waits; completing says it is the point of no return.
  await row(approval).locator('.name').click();
  await expect(page.locator('#detail-controls button[data-command="complete"]').getAttribute('title')).resolves.toBe('in awaiting cutover: the window can be completed only while it is open');
  await expect(page.locator('#detail-controls button[data-command="approve"]').isDisabled()).resolves.toBe(false);
  await page.click('#detail-close');
  await page.click(`#needs-list li[data-tenant="${closing}"] button[data-command="complete"]`);
  await expect(page.locator('#confirm-text').textContent()).resolves.toContain('This is the point of no return');
  await expect(page.locator('#confirm-ok').getAttribute('class')).resolves.toBe('danger');
  await expect(page.locator('#confirm-reason-label').isVisible()).resolves.toBe(false);
  await page.click('#confirm-ok');
  await page.locator('#toast', { hasText: 'past the point of no return' }).waitFor();
  await client.workflow.getHandle(tenantWorkflowId(closing)).result();

  // The migrated tenant started again by hand (what a whole-fleet rerun used to do): turned away at preflight.
  const again = await client.workflow.start('migrateTenant', {
    workflowId: tenantWorkflowId(closing), taskQueue: TASK_QUEUE,
    args: [{ tenantId: closing, migrationId: migrationIdOf(randomUUID()), policy: fleetOf.fleet.policy as MigrationPolicy }],
  });
  expect(await again.result().then(() => 'completed', reasonOf)).toMatch(/already served from its target/);
  await waitFor('the page to show the later run', async () => ((await row(closing).locator('.c-error').textContent())?.startsWith('a later run') ? true : undefined), 30000);
  await expect(row(closing).getAttribute('data-state')).resolves.toBe('completed');
  await expect(row(closing).locator('.c-served').textContent()).resolves.toBe('Azure');
  expect((await lane(page)).map((n) => n.tenant)).toEqual([terminated, approval]);
  await row(closing).locator('.name').click();
  // Visibility catches up with the run's end a moment later than the run itself.
  await page.locator('#detail-runs li', { hasText: 'no wave · failed' }).waitFor({ timeout: 30000 });
  await expect(page.locator('#detail-runs li').count()).resolves.toBe(2);
  await expect(page.locator('#detail-runs li').nth(1).textContent()).resolves.toMatch(new RegExp(`wave ${waveId} · completed`));

  // Approved from the lane, then completed: it leaves the lane, and only the terminated tenant is left in it.
  await page.click('#detail-close');
  await page.click(`#needs-list li[data-tenant="${approval}"] button[data-command="approve"]`);
  await expect(page.locator('#confirm-ok').getAttribute('class')).resolves.toBe('safe');
  await page.click('#confirm-ok');
  await waitFor(`${approval} in its window`, async () => ((await phaseOf(approval)) === 'rollback_window' ? true : undefined));
  await client.workflow.getHandle(tenantWorkflowId(approval)).executeUpdate(completeUpdate);
  await client.workflow.getHandle(tenantWorkflowId(approval)).result();
  await waitFor('the lane to hold only the terminated tenant', async () => {
    const now = await lane(page);
    return now.length === 1 && now[0].tenant === terminated ? true : undefined;
  }, 30000);
  await page.locator('#totals', { hasText: /^fleet: 2 of 3 on Azure · 1 on source · 0 in flight · 0 failed · 1 terminated/ }).waitFor();
  await page.close();
}, 300000);
