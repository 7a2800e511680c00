// The tenant workflow's Managed Instance branch, end to end, against the Managed Instance EMULATOR
// (tests/helpers/mi-emulator.ts) on the real stack: Temporal, Azurite, and worker processes
// (tests/helpers/mi-worker.ts: the real airlift worker, signing in with DefaultAzureCredential to the
// emulator's managed identity endpoint) that a test kills with SIGKILL. Exercised: preflight through
// ARM, the upload into the tenant's own flat folder, the LRS restore with the container's one SAS
// (read in Azurite by the emulator), its progress in the heartbeat, a worker killed during the
// restore and its successor resuming without a second create, completion (manual once the last
// backup is restored, or auto-complete), the restored database's state as the backup carried it
// (the source's gate `open`, its capture triggers) made standby by the restore step, catching up,
// verifying, the cut-over, writes on the target, a rollback after the cut-over that brings them back,
// and the deletion of only the tagged database.
// Not exercised (no SQL Server can run here): the source is SQLite, and the restored database's SQL
// side is the restored SQLite snapshot the emulator brings online (`sqlDirectory`), answered as
// SQLite. The T-SQL the SQL Server engine sends to a Managed Instance is tested by its exact text
// (tests/engines/mssql-*.test.ts), never against a server.
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { BlobServiceClient } from '@azure/storage-blob';
import type { LoadedFleet } from '../../config/fleet';
import { migrationIdOf, resumeUpdate, rollbackUpdate, statusQuery, tenantWorkflowId, type MigrationPolicy, type TenantResult } from '../../workflows/contract';
import { ManagedInstanceEmulator } from '../helpers/mi-emulator';
import { makeFleet, TEST_DB_PASSWORD_ENV, useTestStack, waitFor, workerEnv, type TestStack } from '../helpers/stack';

const currentStack = useTestStack();
let stack: TestStack;
let emulator: ManagedInstanceEmulator;
const SUB = '6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f';

beforeAll(async () => {
  stack = currentStack();
});
afterEach(async () => {
  await emulator?.close();
  if (emulator?.options.sqlDirectory) rmSync(emulator.options.sqlDirectory, { recursive: true, force: true });
});

/** An emulated instance whose restored databases come online as files in a folder of their own. */
async function startEmulator(fileRestoreMs: number): Promise<ManagedInstanceEmulator> {
  const sqlDirectory = mkdtempSync(join(tmpdir(), 'airlift-mi-sql-'));
  return ManagedInstanceEmulator.start({ subscriptionId: SUB, resourceGroup: 'rg-test', managedInstance: 'mi-test', azuriteConnectionString: stack.azurite.connectionString, fileRestoreMs, sqlDirectory });
}

function spawnWorker(dir: string, fleet: LoadedFleet, queue: string): ChildProcess {
  return spawn(process.execPath, ['-r', 'tsx/cjs', join(__dirname, '../helpers/mi-worker.ts'), join(dir, 'fleet.yaml'), queue], {
    env: { ...workerEnv(stack, fleet), ...emulator.workerEnv(), TEMPORAL_ADDRESS: stack.env.address, TEMPORAL_NAMESPACE: stack.env.namespace ?? 'default', AIRLIFT_MI_SQL_DIRECTORY: emulator.options.sqlDirectory! },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** The Managed Instance target of a test fleet; its T-SQL endpoint is never connected to (see mi-worker.ts). */
const managedInstanceTarget = (autoCompleteRestore: boolean) => ({
  engine: 'azure-sql-mi',
  subscriptionId: SUB,
  resourceGroup: 'rg-test',
  managedInstance: 'mi-test',
  server: '127.0.0.1',
  port: 1,
  user: 'airlift',
  passwordEnv: TEST_DB_PASSWORD_ENV,
  encrypt: false,
  autoCompleteRestore,
  resourceManagerUrl: emulator.url,
  restorePollSeconds: 0.5,
});

/** Read straight from a database file, sharing no code with airlift's engines (the checker). */
function readFile<T>(file: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

/** A write of the tenant's own application, straight into a database file (capture's triggers record it). */
function writeFile(file: string, sql: string, ...params: unknown[]): void {
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 10000');
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}
const kill = async (worker: ChildProcess) => {
  if (worker.exitCode !== null) return;
  worker.kill('SIGKILL');
  await new Promise((r) => worker.once('exit', r));
};

/** The restore activity's attempt and its last heartbeat, as the Temporal server holds them. */
async function restoreBeat(tenantId: string): Promise<{ attempt: number; details: Record<string, unknown> } | undefined> {
  const d = await stack.env.client.workflow.getHandle(tenantWorkflowId(tenantId)).describe();
  const activity = d.raw.pendingActivities?.find((a) => a.activityType?.name === 'restoreTarget');
  const payload = activity?.heartbeatDetails?.payloads?.[0];
  return activity && payload ? { attempt: activity.attempt ?? 0, details: defaultPayloadConverter.fromPayload(payload) as Record<string, unknown> } : undefined;
}

test('Managed Instance: restore with progress, a worker killed mid-restore resumes without a second create, completion after the last backup, rollback deletes only the tagged database', async () => {
  // Each backup file takes 25 s to restore: long enough to kill a worker in the middle of it.
  emulator = await startEmulator(25_000);
  const { dir, fleet, cleanup } = makeFleet({ tenants: 1, rows: 300, storage: { restoreAccess: 'sas' }, policy: { cutover: 'manual', pauseBefore: ['catching_up'] }, target: managedInstanceTarget(false) });
  const tenant = fleet.tenants[0];
  // Someone else's databases on the same instance: never touched.
  emulator.seed('other_team_db');
  emulator.seed('earlier_migration_db', { tags: { 'airlift-migration': 'some-earlier-migration' } });
  const queue = `mi-${randomUUID()}`;
  let worker = spawnWorker(dir, fleet, queue);
  try {
    const migrationId = migrationIdOf(randomUUID());
    const handle = await stack.env.client.workflow.start('migrateTenant', {
      workflowId: tenantWorkflowId(tenant.id),
      taskQueue: queue,
      args: [{ tenantId: tenant.id, migrationId, policy: fleet.policy as MigrationPolicy }],
    });

    // The restore runs: one create, from the tenant's own flat folder, with progress in the heartbeat.
    const first = await waitFor('the restore in progress', async () => {
      const beat = await restoreBeat(tenant.id);
      return beat?.details.status === 'Restoring' ? beat : undefined;
    }, 120_000);
    expect(first.details).toMatchObject({ filesDetected: 1, filesRestoring: 1, filesRestored: 0 });
    expect(emulator.countsFor(tenant.database).creates).toBe(1);
    const put = emulator.requests.find((r) => r.method === 'PUT')!;
    const container = BlobServiceClient.fromConnectionString(stack.azurite.connectionString).getContainerClient(fleet.storage.container);
    expect(put.body).toMatchObject({
      tags: { 'airlift-migration': migrationId },
      properties: { createMode: 'RestoreExternalBackup', storageContainerUri: `${container.url}/${tenant.id}.${migrationId}`, autoCompleteRestore: false },
    });
    expect(put.body).not.toHaveProperty('properties.lastBackupName'); // named at completion in continuous mode

    // The worker dies in the middle of the restore; another one takes over.
    await kill(worker);
    worker = spawnWorker(dir, fleet, queue);
    const resumed = await waitFor('the restore resumed by the new worker', async () => {
      const beat = await restoreBeat(tenant.id);
      return beat && beat.attempt >= 2 ? beat : undefined;
    }, 120_000);
    expect(resumed.attempt).toBeGreaterThanOrEqual(2);

    // Completed once the last backup was restored (the emulator refuses an earlier completeRestore), then held before catching up.
    await waitFor('restored and held before catching_up', async () => ((await handle.query(statusQuery)).paused ? true : undefined), 120_000);
    expect(emulator.countsFor(tenant.database)).toEqual({ creates: 1, completes: 1, deletes: 0 });
    expect(emulator.list().find((d) => d.name === tenant.database)).toMatchObject({ status: 'Online', tags: { 'airlift-migration': migrationId } });
    // The restored database carries the source's capture triggers; the restore step closed the gate the backup carried open.
    const restored = emulator.sqlFile(tenant.database)!;
    expect(readFile(restored, "SELECT count(*) AS n FROM sqlite_schema WHERE type = 'trigger' AND name LIKE 'airlift%'")).not.toEqual([{ n: 0 }]);
    expect(readFile(restored, 'SELECT state, migration_id FROM airlift_gate')).toEqual([{ state: 'standby', migration_id: migrationId }]);
    // No SAS in the workflow's history: the activity fetched it from the worker's wiring.
    // Payloads are bytes: decode every one so the search sees what is really stored.
    const history = JSON.stringify(await handle.fetchHistory(), (k, v) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : k === 'data' && typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : v,
    );
    const sas = (put.body as { properties: { storageContainerSasToken: string } }).properties.storageContainerSasToken;
    expect(sas).toMatch(/sig=/);
    expect(history).toContain(migrationId); // the decoding works: what should be there is found
    expect(history).not.toContain(new URLSearchParams(sas).get('sig')!);
    expect(history).not.toContain('sig=');

    // Rollback: only the database tagged with this migration goes.
    expect(await handle.executeUpdate(rollbackUpdate, { args: ['test: back out of the Managed Instance'] })).toMatch(/rollback of .* started from phase/);
    const result = (await handle.result()) as TenantResult;
    expect(result.outcome).toBe('rolled_back');
    expect(emulator.countsFor(tenant.database)).toMatchObject({ creates: 1, deletes: 1 });
    expect(emulator.list().map((d) => d.name).sort()).toEqual(['earlier_migration_db', 'other_team_db']);
    expect(existsSync(restored)).toBe(false);
    const left: string[] = [];
    for await (const b of container.listBlobsFlat({ prefix: `${tenant.id}.${migrationId}/` })) left.push(b.name);
    expect(left).toEqual([]);
  } finally {
    await kill(worker);
    cleanup();
  }
}, 300_000);

test('Managed Instance, auto-complete and dual-write: the restored database (gate open, as the backup carried it) is made standby, caught up, verified, cut over; writes on it come back with a rollback after the cut-over', async () => {
  emulator = await startEmulator(500);
  const { dir, fleet, cleanup } = makeFleet({
    tenants: 1,
    rows: 300,
    storage: { restoreAccess: 'sas' },
    policy: { cutover: 'auto', pauseBefore: ['catching_up'], rollbackWindowSeconds: 3600, cutoverPauseBudgetMs: 30_000, catchUpLagEvents: 0 },
    target: managedInstanceTarget(true),
  });
  const tenant = fleet.tenants[0];
  const sourceFile = join(dir, 'source', `${tenant.database}.db`);
  const queue = `mi-${randomUUID()}`;
  const worker = spawnWorker(dir, fleet, queue);
  try {
    const migrationId = migrationIdOf(randomUUID());
    const handle = await stack.env.client.workflow.start('migrateTenant', {
      workflowId: tenantWorkflowId(tenant.id),
      taskQueue: queue,
      args: [{ tenantId: tenant.id, migrationId, policy: fleet.policy as MigrationPolicy }],
    });
    await waitFor('restored and held before catching_up', async () => ((await handle.query(statusQuery)).heldBefore === 'catching_up' ? true : undefined), 120_000);
    // Auto-complete: one create naming the last backup, no completeRestore.
    expect(emulator.countsFor(tenant.database)).toEqual({ creates: 1, completes: 0, deletes: 0 });
    expect(emulator.requests.find((r) => r.method === 'PUT')!.body).toMatchObject({ properties: { autoCompleteRestore: true, lastBackupName: `${tenant.database}.sqlite` } });
    const restored = emulator.sqlFile(tenant.database)!;
    expect(readFile(restored, 'SELECT state, migration_id FROM airlift_gate')).toEqual([{ state: 'standby', migration_id: migrationId }]);

    // The tenant's application keeps writing on its source while the target catches up.
    for (let id = 900_001; id <= 900_020; id++) writeFile(sourceFile, "INSERT INTO campaigns (id, name, status, starts_at) VALUES (?, ?, 'active', '2026-01-01')", id, `written during catching up ${id}`);
    await handle.executeUpdate(resumeUpdate);
    const onTarget = await waitFor('cut over: the rollback window', async () => {
      const status = await handle.query(statusQuery);
      return status.phase === 'rollback_window' ? status : undefined;
    }, 180_000);
    expect(Object.keys(onTarget.phaseMs)).toEqual(expect.arrayContaining(['restoring', 'catching_up', 'verifying', 'cutting_over']));
    expect(onTarget.tables.length).toBeGreaterThan(0);
    expect(onTarget.tables.every((t) => t.mismatchedChunks === 0)).toBe(true);
    expect(readFile(restored, 'SELECT count(*) AS n FROM campaigns WHERE id > 900000')).toEqual([{ n: 20 }]);
    expect(readFile(restored, 'SELECT state FROM airlift_gate')).toEqual([{ state: 'open' }]);
    expect(readFile(sourceFile, 'SELECT state FROM airlift_gate')).toEqual([{ state: 'fenced' }]);

    // The target is the primary now: the application writes there; a rollback brings every write back.
    writeFile(restored, "INSERT INTO campaigns (id, name, status, starts_at) VALUES (900100, 'written on the Managed Instance', 'active', '2026-02-01')");
    expect(await handle.executeUpdate(rollbackUpdate, { args: ['test: back out after the cut-over'] })).toMatch(/rollback of .* started from phase rollback_window/);
    const result = (await handle.result()) as TenantResult;
    expect(result.outcome).toBe('rolled_back');
    expect(readFile(sourceFile, 'SELECT name FROM campaigns WHERE id = 900100')).toEqual([{ name: 'written on the Managed Instance' }]);
    expect(readFile(sourceFile, 'SELECT count(*) AS n FROM campaigns WHERE id > 900000')).toEqual([{ n: 21 }]);
    // Only the database this migration restored is deleted, and its SQL side with it.
    expect(emulator.countsFor(tenant.database)).toEqual({ creates: 1, completes: 0, deletes: 1 });
    expect(emulator.list()).toEqual([]);
    expect(existsSync(restored)).toBe(false);
  } finally {
    await kill(worker);
    cleanup();
  }
}, 300_000);
