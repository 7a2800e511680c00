// The tenant workflow's Managed Instance branch, end to end, against the Managed Instance EMULATOR
// (tests/helpers/mi-emulator.ts) on the real stack: Temporal, Azurite, and real `airlift worker`
// processes that sign in with DefaultAzureCredential (the emulator answers as an App Service managed
// identity endpoint). Exercised: preflight through ARM, the upload into the tenant's own flat folder,
// the LRS restore with the container's one SAS (read in Azurite by the emulator), its progress in the
// heartbeat, a worker killed with SIGKILL during the restore and its successor resuming without a
// second create, manual completion once the last backup is restored, and a rollback that deletes only
// the tagged database. Not exercised: the source is SQLite (no SQL Server here) and the restored
// database is not queried (no SQL connection to an emulated instance), so catching up and verifying
// against a Managed Instance are not run; the workflow is held before catching_up and rolled back.
import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { BlobServiceClient } from '@azure/storage-blob';
import type { LoadedFleet } from '../../config/fleet';
import { migrationIdOf, rollbackUpdate, statusQuery, tenantWorkflowId, type MigrationPolicy, type TenantResult } from '../../workflows/contract';
import { ManagedInstanceEmulator } from '../helpers/mi-emulator';
import { makeFleet, TEST_DB_PASSWORD_ENV, useTestStack, waitFor, workerEnv, type TestStack } from '../helpers/stack';

const currentStack = useTestStack();
let stack: TestStack;
let emulator: ManagedInstanceEmulator;
const SUB = '6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f';

beforeAll(async () => {
  stack = currentStack();
  // Each backup file takes 25 s to restore: long enough to kill a worker in the middle of it.
  emulator = await ManagedInstanceEmulator.start({ subscriptionId: SUB, resourceGroup: 'rg-test', managedInstance: 'mi-test', azuriteConnectionString: stack.azurite.connectionString, fileRestoreMs: 25_000 });
});
afterAll(async () => emulator?.close());

function spawnWorker(dir: string, fleet: LoadedFleet, queue: string): ChildProcess {
  return spawn(process.execPath, [join(__dirname, '../../bin/airlift.js'), 'worker', '-f', join(dir, 'fleet.yaml'), '--task-queue', queue], {
    env: { ...workerEnv(stack, fleet), ...emulator.workerEnv(), TEMPORAL_ADDRESS: stack.env.address, TEMPORAL_NAMESPACE: stack.env.namespace ?? 'default' },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
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
  const { dir, fleet, cleanup } = makeFleet({
    tenants: 1,
    rows: 300,
    storage: { restoreAccess: 'sas' },
    policy: { cutover: 'manual', pauseBefore: ['catching_up'] },
    target: {
      engine: 'azure-sql-mi',
      subscriptionId: SUB,
      resourceGroup: 'rg-test',
      managedInstance: 'mi-test',
      // The T-SQL side of the instance (catching up, verifying) is not emulated: nothing listens here.
      server: '127.0.0.1',
      port: 1,
      user: 'airlift',
      passwordEnv: TEST_DB_PASSWORD_ENV,
      encrypt: false,
      autoCompleteRestore: false,
      resourceManagerUrl: emulator.url,
      restorePollSeconds: 0.5,
    },
  });
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
    const left: string[] = [];
    for await (const b of container.listBlobsFlat({ prefix: `${tenant.id}.${migrationId}/` })) left.push(b.name);
    expect(left).toEqual([]);
  } finally {
    await kill(worker);
    cleanup();
  }
}, 300_000);
