// Worker deaths under long steps (items 16 and 7 of issue 7), with real worker processes killed by
// SIGKILL on the real stack.
import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import Database from 'better-sqlite3';
import { SqliteEngine } from '../../engines/sqlite';

import { DEFAULT_TRACKING, type LoadedFleet } from '../../config/fleet';
import { sqliteDirectory } from '../../engines/sqlite-kind';
import { Catalog } from '../../ingestion/catalog';
import { approveCutoverUpdate, migrationIdOf, rollbackUpdate, statusQuery, tenantWorkflowId, type MigrationPolicy, type TenantResult } from '../../workflows/contract';
import { makeFleet, useTestStack, waitFor, workerEnv, type TestStack } from '../helpers/stack';

const currentStack = useTestStack();
let stack: TestStack;
beforeEach(() => (stack = currentStack()));

function spawnWorker(dir: string, fleet: LoadedFleet, queue: string): ChildProcess {
  return spawn(process.execPath, [join(__dirname, '../../bin/airlift.js'), 'worker', '-f', join(dir, 'fleet.yaml'), '--task-queue', queue], {
    env: { ...workerEnv(stack, fleet), TEMPORAL_ADDRESS: stack.env.address, TEMPORAL_NAMESPACE: stack.env.namespace ?? 'default' },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
}

const startTenant = (fleet: LoadedFleet, taskQueue: string) =>
  stack.env.client.workflow.start('migrateTenant', {
    workflowId: tenantWorkflowId(fleet.tenants[0].id),
    taskQueue,
    args: [{ tenantId: fleet.tenants[0].id, migrationId: migrationIdOf(randomUUID()), policy: fleet.policy as MigrationPolicy }],
  });

const kill = async (worker: ChildProcess) => {
  if (worker.exitCode !== null) return;
  worker.kill('SIGKILL');
  await new Promise((r) => worker.once('exit', r));
};

test('item 16: a rollback sent while the worker running the copy is dead ends rolled_back with the operator\'s reason, nothing left behind', async () => {
  // A copy slow enough to be caught half way: small blocks under a bandwidth cap.
  const { dir, fleet, cleanup } = makeFleet({ tenants: 1, rows: 20000, policy: { blockSizeMiB: 0.0625, maxUploadMiBps: 0.3 } });
  const tenant = fleet.tenants[0];
  const queue = `death-${randomUUID()}`;
  let worker = spawnWorker(dir, fleet, queue);
  try {
    const handle = await startTenant(fleet, queue);
    const migrationId = await waitFor('the copy under way', async () => {
      const s = await handle.query(statusQuery);
      return s.phase === 'copying' && s.bytesDone >= 0 ? s.migrationId : undefined;
    });
    await new Promise((r) => setTimeout(r, 1000));
    await kill(worker);
    // Another worker takes the workflow tasks; the copy's attempt stays on the dead one until its heartbeat times out.
    worker = spawnWorker(dir, fleet, queue);
    expect(await handle.executeUpdate(rollbackUpdate, { args: ['test: customer escalation'] })).toMatch(/rollback of .* started from phase copying/);
    const result = (await handle.result()) as TenantResult;
    expect(result.outcome).toBe('rolled_back');
    expect(result.status.rollbackReason).toBe('test: customer escalation');
    expect(result.status.lastError).toBeUndefined();

    const catalog = new Catalog(fleet.catalog.path);
    expect(catalog.get(tenant.id)).toMatchObject({ primary: 'source', writeMode: 'read_write', outbox: false });
    catalog.close();
    expect(existsSync(join(sqliteDirectory(fleet.targets.cloud), `${tenant.database}.db`))).toBe(false);
    const container = BlobServiceClient.fromConnectionString(stack.azurite.connectionString).getContainerClient(fleet.storage.container);
    const left: string[] = [];
    for await (const b of container.listBlobsFlat({ prefix: `${tenant.id}.${migrationId}/`, includeUncommitedBlobs: true })) left.push(b.name);
    expect(left).toEqual([]);
  } finally {
    await kill(worker);
    cleanup();
  }
}, 180_000);

test('a dual-write stopped while its worker is dead (a heartbeat timeout, not a cancellation) does not fail the migration', async () => {
  const { dir, fleet, cleanup } = makeFleet({ tenants: 1, rows: 500, policy: { cutover: 'manual' } });
  const tenant = fleet.tenants[0];
  const queue = `death-${randomUUID()}`;
  let worker = spawnWorker(dir, fleet, queue);
  try {
    const handle = await startTenant(fleet, queue);
    await waitFor('awaiting cut-over', async () => ((await handle.query(statusQuery)).phase === 'awaiting_cutover' ? true : undefined));
    await kill(worker);
    worker = spawnWorker(dir, fleet, queue);
    // Approved at once: stopping the forward dual-write meets its attempt on the dead worker.
    expect(await handle.executeUpdate(approveCutoverUpdate)).toBe(`cut-over of ${tenant.id} approved`);
    const result = (await handle.result()) as TenantResult;
    expect(result.outcome).toBe('completed');
    const catalog = new Catalog(fleet.catalog.path);
    expect(catalog.get(tenant.id)).toMatchObject({ primary: 'target', writeMode: 'read_write', outbox: false });
    catalog.close();
  } finally {
    await kill(worker);
    cleanup();
  }
}, 180_000);

test('item 1: a worker killed in the last try of a cut-over attempt: the source is not left fenced while the workflow waits to try again', async () => {
  const { dir, fleet, cleanup } = makeFleet({ tenants: 1, rows: 300, policy: { cutover: 'manual', cutoverAttempts: 2, cutoverRetrySeconds: 300, cutoverPauseBudgetMs: 120_000 } });
  const tenant = fleet.tenants[0];
  const source = new SqliteEngine(sqliteDirectory(fleet.sources.onprem));
  const queue = `death-${randomUUID()}`;
  let worker = spawnWorker(dir, fleet, queue);
  // Held by the test: every switch try blocks when it opens the target's gate, the source already fenced.
  let lock: Database.Database | undefined;
  const sourceTakesWrites = async () => {
    const writer = source.openEventWriter(tenant.database, DEFAULT_TRACKING);
    try {
      return (await writer.write([{ event_id: randomUUID(), kind: 'view', ad_id: 1, occurred_at: '2026-11-29T00:00:00Z', user_agent: null, payload: null }])) === 1;
    } catch {
      return false;
    } finally {
      await writer.close();
    }
  };
  try {
    const handle = await startTenant(fleet, queue);
    await waitFor('awaiting cut-over', async () => ((await handle.query(statusQuery)).phase === 'awaiting_cutover' ? true : undefined));
    lock = new Database(join(sqliteDirectory(fleet.targets.cloud), `${tenant.database}.db`));
    lock.exec('BEGIN IMMEDIATE');
    await handle.executeUpdate(approveCutoverUpdate);
    // The switch activity is tried 3 times (its preset); each try's worker is killed holding the fence
    // (the budget is long enough that a retry does not call itself off for the time its predecessor held).
    let lastToken: string | null | undefined;
    for (let attempt = 1; attempt <= 3; attempt++) {
      lastToken = await waitFor(`switch try ${attempt} holding the fence`, async () => {
        const gate = await source.writeGate(tenant.database);
        return gate?.state === 'fenced' && gate.token !== lastToken ? gate.token : undefined;
      }, 60_000);
      await kill(worker);
      worker = spawnWorker(dir, fleet, queue);
    }
    // The attempt has failed; the workflow waits 300 s before trying again. Writes go through meanwhile.
    const waiting = await waitFor('the attempt recorded as failed', async () => {
      const s = await handle.query(statusQuery);
      return s.cutoverAttempts?.length ? s : undefined;
    }, 60_000);
    expect(waiting.phase).toBe('cutting_over');
    expect(waiting.cutoverAttempts).toHaveLength(1);
    expect(await source.writeGate(tenant.database)).toMatchObject({ state: 'open' });
    expect(await sourceTakesWrites()).toBe(true);
    const catalog = new Catalog(fleet.catalog.path);
    expect(catalog.get(tenant.id)?.primary).toBe('source');
    catalog.close();

    lock.exec('ROLLBACK');
    lock.close();
    lock = undefined;
    await handle.executeUpdate(rollbackUpdate, { args: ['test: done waiting'] });
    expect(((await handle.result()) as TenantResult).outcome).toBe('rolled_back');
    expect(await sourceTakesWrites()).toBe(true);
  } finally {
    lock?.close();
    await kill(worker);
    cleanup();
  }
}, 240_000);
