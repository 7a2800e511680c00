// Migrations while tracking events keep arriving through a real gateway, on the real stack.
// Every acknowledged event id is checked in the tenant's final primary.
import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { freePort } from '../../azure/azurite';
import { createGateway, listenGateway } from '../../ingestion/gateway';
import { Catalog } from '../../ingestion/catalog';
import { countLost, LoadGenerator, tenantDatabaseFile } from '../../cli/load';
import {
  approveCutoverUpdate,
  completeSignal,
  resumeSignal,
  rollbackSignal,
  statusQuery,
  TASK_QUEUE,
  tenantWorkflowId,
  type MigrationPolicy,
  type TenantResult,
  migrationIdOf,
} from '../../workflows/contract';
import { type LoadedFleet } from '../../config/fleet';
import { sqliteDirectory } from '../../engines/sqlite-kind';
import { makeFleet, startWorker, useTestStack, waitFor, TEST_ADMIN_TOKEN, workerEnv, type TestStack } from '../helpers/stack';

const currentStack = useTestStack();
let stack: TestStack;
beforeEach(() => (stack = currentStack()));


/** A fleet with live ingestion: a gateway serving it, and load against it. */
async function liveFleet(tenants: number, policy: Record<string, unknown>) {
  const port = await freePort();
  const made = makeFleet({ tenants, rows: 2000, gatewayUrl: `http://127.0.0.1:${port}`, policy: { verifyChunkRows: 500, ...policy } });
  const gateway = await listenGateway(createGateway({ fleet: made.fleet, adminToken: TEST_ADMIN_TOKEN }), port);
  return { ...made, gateway };
}

function primaryFile(fleet: LoadedFleet, tenantId: string): { side: string; file: string } {
  const catalog = new Catalog(fleet.catalog.path);
  const side = catalog.get(tenantId)?.primary ?? 'source';
  catalog.close();
  const t = fleet.tenants.find((x) => x.id === tenantId)!;
  return { side, file: tenantDatabaseFile(side === 'source' ? sqliteDirectory(fleet.sources[t.source]) : sqliteDirectory(fleet.targets[t.target]), t.database) };
}

const start = (fleet: LoadedFleet, tenantId: string, taskQueue = TASK_QUEUE) =>
  stack.env.client.workflow.start('migrateTenant', {
    workflowId: tenantWorkflowId(tenantId), taskQueue, args: [{ tenantId, migrationId: migrationIdOf(randomUUID()), policy: fleet.policy as MigrationPolicy }],
  });

test('no acknowledged event is lost or doubled through migration, cut-over, and a rollback after cut-over', async () => {
  const { fleet, gateway, cleanup } = await liveFleet(2, { rollbackWindowSeconds: 120 });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const [kept, rolled] = fleet.tenants.map((t) => t.id);
  const load = new LoadGenerator({ gatewayUrl: gateway.url, tenants: [kept, rolled], eventsPerSecond: 200, duplicateRatio: 0.1 });
  try {
    load.start();
    const handles = [await start(fleet, kept), await start(fleet, rolled)];
    for (const h of handles) await waitFor('the rollback window', async () => ((await h.query(statusQuery)).phase === 'rollback_window' ? true : undefined));
    // Events now land on the target and flow back to the source: a second of that, and enough acked
    // events in all that the check below means something however fast the copy went.
    await new Promise((r) => setTimeout(r, 1000));
    await waitFor('400 acknowledged events per tenant', async () => ([kept, rolled].every((id) => (load.acked.get(id)?.size ?? 0) > 400) ? true : undefined));
    await handles[1].signal(rollbackSignal, 'test: roll back after cut-over');
    await handles[0].signal(completeSignal);
    const [done, back] = (await Promise.all(handles.map((h) => h.result()))) as TenantResult[];
    const report = await load.stop();

    expect(done.outcome).toBe('completed');
    expect(back.outcome).toBe('rolled_back');
    expect(done.status.cutoverPauseMs).toBeGreaterThanOrEqual(0);
    expect(done.status.cutoverPauseMs).toBeLessThan(fleet.policy.cutoverPauseBudgetMs);
    expect(report.duplicatesSent).toBeGreaterThan(0);
    expect(primaryFile(fleet, kept).side).toBe('target');
    expect(primaryFile(fleet, rolled).side).toBe('source');
    for (const id of [kept, rolled]) {
      const acked = load.acked.get(id)!;
      expect(acked.size).toBeGreaterThan(300);
      expect(countLost(primaryFile(fleet, id).file, acked)).toEqual({ lost: 0, missing: 0, duplicated: 0 });
    }
    const routes = await (await fetch(`${gateway.url}/admin/tenants/${rolled}`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).json();
    expect(routes).toMatchObject({ primary: 'source', outbox: false, fenced: false, writeMode: 'read_write' });
  } finally {
    await load.stop();
    await worker.stop();
    await gateway.stop();
    cleanup();
  }
});

function spawnWorker(fleetFile: string, env: NodeJS.ProcessEnv, taskQueue: string): ChildProcess {
  return spawn(process.execPath, [join(__dirname, '../../bin/airlift.js'), 'worker', '-f', fleetFile, '--task-queue', taskQueue], {
    env: { ...env, TEMPORAL_ADDRESS: stack.env.address, TEMPORAL_NAMESPACE: stack.env.namespace ?? 'default' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** The dual-write's last checkpoint, as the server holds it (it says which attempt wrote it). */
async function dualWriteBeat(tenantId: string): Promise<{ attempt: number; cursor: number; resumedFrom: number } | undefined> {
  const d = await stack.env.client.workflow.getHandle(tenantWorkflowId(tenantId)).describe();
  const activity = d.raw.pendingActivities?.find((a) => a.activityType?.name === 'dualWrite');
  const payload = activity?.heartbeatDetails?.payloads?.[0];
  return payload ? (defaultPayloadConverter.fromPayload(payload) as { attempt: number; cursor: number; resumedFrom: number }) : undefined;
}

test('a worker killed with SIGKILL during catching-up: the dual-write resumes from its cursor, no duplicate, no gap', async () => {
  const { fleet, dir, gateway, cleanup } = await liveFleet(1, { pauseBefore: ['verifying'] });
  const tenant = fleet.tenants[0].id;
  const queue = 'airlift-kill-test';
  const env = workerEnv(stack, fleet);
  const load = new LoadGenerator({ gatewayUrl: gateway.url, tenants: [tenant], eventsPerSecond: 150 });
  let worker = spawnWorker(join(dir, 'fleet.yaml'), env, queue);
  try {
    load.start();
    const handle = await start(fleet, tenant, queue);
    const journalFrom = await waitFor('the hold before verifying', async () => {
      const s = await handle.query(statusQuery);
      return s.paused && s.phase === 'catching_up' ? s.journalFrom : undefined;
    });
    const before = await waitFor('the dual-write applying', async () => {
      const beat = await dualWriteBeat(tenant);
      return beat && beat.cursor > journalFrom! + 50 ? beat : undefined;
    });
    worker.kill('SIGKILL');
    await new Promise((r) => worker.once('exit', r));
    await new Promise((r) => setTimeout(r, 1500)); // events keep arriving while no worker runs

    worker = spawnWorker(join(dir, 'fleet.yaml'), env, queue);
    const after = await waitFor('the dual-write resumed by the new worker', async () => {
      const beat = await dualWriteBeat(tenant);
      return beat && beat.attempt > before.attempt ? beat : undefined;
    });
    expect(after.resumedFrom).toBeGreaterThanOrEqual(before.cursor);

    await handle.signal(resumeSignal);
    const result = (await handle.result()) as TenantResult;
    const report = await load.stop();
    expect(result.outcome).toBe('completed');
    expect(report.acknowledged).toBeGreaterThan(0);
    const { side, file } = primaryFile(fleet, tenant);
    expect(side).toBe('target');
    expect(countLost(file, load.acked.get(tenant)!)).toEqual({ lost: 0, missing: 0, duplicated: 0 });
    expect(result.status.tables.every((t) => t.mismatchedChunks === 0)).toBe(true);
  } finally {
    await load.stop();
    worker.kill('SIGKILL');
    await gateway.stop();
    cleanup();
  }
});

test('a cut-over over its pause budget is called off and tried again, each attempt shown; when all are called off the tenant stays on source, unharmed', async () => {
  const { fleet, gateway, cleanup } = await liveFleet(1, { cutoverPauseBudgetMs: 1, cutoverAttempts: 2, cutoverRetrySeconds: 1 });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const tenant = fleet.tenants[0];
  const load = new LoadGenerator({ gatewayUrl: gateway.url, tenants: [tenant.id], eventsPerSecond: 150 });
  try {
    load.start();
    const handle = await start(fleet, tenant.id);
    const failure = await handle.result().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect((failure as WorkflowFailedError).cause?.message).toMatch(/cut-over called off while .*over the pause budget of 1 ms; the tenant stays on its source/);
    const status = await handle.query(statusQuery);
    expect(status.cutoverAborted).toContain('cut-over called off');
    expect(status.cutoverAttempts?.map((a) => a.error)).toEqual([expect.stringContaining('over the pause budget'), expect.stringContaining('over the pause budget')]);

    const after = await fetch(`${gateway.url}/t/${tenant.id}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"kind":"click","event_id":"after-abort"}' });
    expect(after.status).toBe(200);
    await load.stop();
    const { side, file } = primaryFile(fleet, tenant.id);
    expect(side).toBe('source');
    expect(countLost(file, load.acked.get(tenant.id)!)).toEqual({ lost: 0, missing: 0, duplicated: 0 });
    expect(existsSync(join(sqliteDirectory(fleet.targets.cloud), `${tenant.database}.db`))).toBe(false);
    const route = await (await fetch(`${gateway.url}/admin/tenants/${tenant.id}`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).json();
    expect(route).toMatchObject({ primary: 'source', fenced: false, outbox: false, writeMode: 'read_write' });
  } finally {
    await load.stop();
    await worker.stop();
    await gateway.stop();
    cleanup();
  }
});

test('approveCutover is refused with a reason outside awaiting_cutover, and taken there', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 200, policy: { cutover: 'manual', pauseBefore: ['snapshotting'] } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const tenant = fleet.tenants[0].id;
  try {
    const handle = await start(fleet, tenant);
    await waitFor('the hold before snapshotting', async () => ((await handle.query(statusQuery)).paused ? true : undefined));
    const refused = await handle.executeUpdate(approveCutoverUpdate).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
    expect((refused as WorkflowUpdateFailedError).cause?.message).toBe(
      `approveCutover refused: tenant ${tenant} is in phase journaling; approval is taken only in awaiting_cutover`,
    );
    await handle.signal(resumeSignal);
    await waitFor('awaiting cut-over', async () => ((await handle.query(statusQuery)).phase === 'awaiting_cutover' ? true : undefined));
    expect(await handle.executeUpdate(approveCutoverUpdate)).toBe(`cut-over of ${tenant} approved`);
    expect(((await handle.result()) as TenantResult).outcome).toBe('completed');
  } finally {
    await worker.stop();
    cleanup();
  }
});
