// Tenant and wave workflows on the real stack: Temporal dev server, Azurite, SQLite files.
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { WorkflowFailedError } from '@temporalio/client';
import { Catalog } from '../../ingestion/catalog';
import { observeTenant } from '../../cli/observe';
import { startWave, watchWave } from '../../cli/waves';
import {
  rollbackSignal,
  resumeSignal,
  statusQuery,
  TASK_QUEUE,
  tenantWorkflowId,
  waveWorkflowId,
  type MigrationPolicy,
  type TenantResult,
  type WaveStatus,
  migrationIdOf,
} from '../../workflows/contract';
import { makeFleet, startWorker, useTestStack, waitFor, TEST_ADMIN_TOKEN, TEST_DB_PASSWORD, TEST_DB_PASSWORD_ENV, type TestStack } from '../helpers/stack';
import { type LoadedFleet } from '../../config/fleet';
import { sqliteDirectory } from '../../engines/sqlite-kind';

const currentStack = useTestStack();
let stack: TestStack;
beforeEach(() => (stack = currentStack()));

const quiet = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;

/** Every row of every tenant table (not airlift's own journal tables), read independently of airlift's digests. */
function dump(file: string): Record<string, unknown[]> {
  const db = new Database(file, { readonly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'airlift_%' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[];
    return Object.fromEntries(tables.map(({ name }) => [name, db.prepare(`SELECT * FROM "${name}" ORDER BY 1, 2, 3`).all()]));
  } finally {
    db.close();
  }
}

function primaryOf(fleet: LoadedFleet, tenantId: string): string | undefined {
  const catalog = new Catalog(fleet.catalog.path);
  try {
    return catalog.get(tenantId)?.primary;
  } finally {
    catalog.close();
  }
}


test('a wave migrates every tenant, row for row, across a continue-as-new, and flips the catalog', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 3, rows: 1500, policy: { concurrency: 2, tenantsPerRun: 2 } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  try {
    const waveId = `wave-${Date.now()}`;
    const ids = fleet.tenants.map((t) => t.id);
    await startWave(stack.env.client, waveId, ids, fleet.policy);
    const { tenants } = await watchWave(stack.env.client, waveId, quiet, 200);
    const final = (await stack.env.client.workflow.getHandle(waveWorkflowId(waveId)).result()) as WaveStatus;

    expect(tenants.map((t) => t.state)).toEqual(['completed', 'completed', 'completed']);
    expect(final.runs).toBe(2); // three tenants, two per run: the wave continued as new once
    for (const t of fleet.tenants) {
      const source = dump(join(sqliteDirectory(fleet.sources.onprem), `${t.database}.db`));
      const target = dump(join(sqliteDirectory(fleet.targets.cloud), `${t.database}.db`));
      expect(Object.keys(target)).toEqual(['ads', 'audit_log', 'budgets', 'campaigns', 'tracking_events']);
      expect(target).toEqual(source);
      expect((source.tracking_events as unknown[]).length).toBe(1500);
      expect(primaryOf(fleet, t.id)).toBe('target');
      const status = await stack.env.client.workflow.getHandle(tenantWorkflowId(t.id)).query(statusQuery);
      expect(status.tables.map((v) => [v.table, v.mismatchedChunks])).toEqual([
        ['ads', 0], ['audit_log', 0], ['budgets', 0], ['campaigns', 0], ['tracking_events', 0],
      ]);
      expect(status.tables.find((v) => v.table === 'tracking_events')!.chunks).toBe(15);
      expect(status.bytesDone).toBe(status.bytesTotal);
    }
  } finally {
    await worker.stop();
    cleanup();
  }
});

test('a target row changed on purpose is caught, named, and the tenant stays on source', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 300, policy: { pauseBefore: ['verifying'] } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const tenant = fleet.tenants[0];
  try {
    const handle = await stack.env.client.workflow.start('migrateTenant', {
      workflowId: tenantWorkflowId(tenant.id), taskQueue: TASK_QUEUE, args: [{ tenantId: tenant.id, migrationId: migrationIdOf(randomUUID()), policy: fleet.policy as MigrationPolicy }],
    });
    await waitFor('the hold before verifying', async () => {
      const s = await handle.query(statusQuery);
      return s.paused && s.phase === 'catching_up' ? s : undefined;
    });
    const targetFile = join(sqliteDirectory(fleet.targets.cloud), `${tenant.database}.db`);
    // Behind airlift's back: the standby target refuses every writer but the applier, so the damage
    // is done the way only the applier may write (a disk fault, a hand edit with the gate disabled).
    const db = new Database(targetFile);
    db.transaction(() => {
      db.prepare('INSERT INTO airlift_applying (id) VALUES (1)').run();
      db.prepare("UPDATE ads SET headline = 'tampered' WHERE id = 7").run();
      db.prepare('DELETE FROM tracking_events WHERE seq = 250').run();
      db.prepare('DELETE FROM airlift_applying').run();
    })();
    db.close();
    await handle.signal(resumeSignal);

    const failure = await handle.result().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    const message = String((failure as WorkflowFailedError).cause?.message);
    expect(message).toContain('ads: id=7 changed');
    expect(message).toContain('tracking_events: seq=250 missing on target');
    const status = await handle.query(statusQuery);
    expect(status.phase).toBe('failed');
    expect(status.tables.find((t) => t.table === 'ads')!.differences).toEqual([{ key: 'id=7', kind: 'changed' }]);
    expect(existsSync(targetFile)).toBe(false);
    expect(primaryOf(fleet, tenant.id)).toBe('source');
  } finally {
    await worker.stop();
    cleanup();
  }
});

test('a rollback signal during copying leaves the tenant on source with no partial target or blob', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 20000, policy: { maxUploadMiBps: 1, uploadConcurrency: 1 } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const tenant = fleet.tenants[0];
  const sourceFile = join(sqliteDirectory(fleet.sources.onprem), `${tenant.database}.db`);
  const before = dump(sourceFile);
  try {
    const handle = await stack.env.client.workflow.start('migrateTenant', {
      workflowId: tenantWorkflowId(tenant.id), taskQueue: TASK_QUEUE, args: [{ tenantId: tenant.id, migrationId: migrationIdOf(randomUUID()), policy: fleet.policy as MigrationPolicy }],
    });
    const seen = await waitFor('copying under way', async () => {
      const view = await observeTenant(stack.env.client, tenant.id);
      return view.phase === 'copying' && view.bytesDone > 0 && view.bytesDone < view.bytesTotal ? view : undefined;
    });
    expect(seen.bytesTotal).toBeGreaterThan(1024 * 1024);
    await handle.signal(rollbackSignal, 'test: roll back mid-copy');

    const result = (await handle.result()) as TenantResult;
    expect(result.outcome).toBe('rolled_back');
    expect(result.status.rollbackReason).toBe('test: roll back mid-copy');
    expect(result.status.phaseMs.copying).toBeGreaterThan(0);
    expect(existsSync(join(sqliteDirectory(fleet.targets.cloud), `${tenant.database}.db`))).toBe(false);
    expect(primaryOf(fleet, tenant.id)).toBe('source');
    const container = BlobServiceClient.fromConnectionString(stack.azurite.connectionString).getContainerClient(fleet.storage.container);
    const left: string[] = [];
    for await (const b of container.listBlobsFlat({ prefix: `${tenant.id}.`, includeUncommitedBlobs: true })) left.push(b.name);
    expect(left).toEqual([]);
    expect(dump(sourceFile)).toEqual(before);
  } finally {
    await worker.stop();
    cleanup();
  }
});

test('an artifact blob gone before the restore ends the restore at once: the tenant stays on source, no target', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 300, policy: { pauseBefore: ['restoring'] } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const container = BlobServiceClient.fromConnectionString(stack.azurite.connectionString).getContainerClient(fleet.storage.container);
  const tenant = fleet.tenants[0];
  try {
    const handle = await stack.env.client.workflow.start('migrateTenant', {
      workflowId: tenantWorkflowId(tenant.id), taskQueue: TASK_QUEUE, args: [{ tenantId: tenant.id, migrationId: migrationIdOf(randomUUID()), policy: fleet.policy as MigrationPolicy }],
    });
    await waitFor('the hold before restoring', async () => ((await handle.query(statusQuery)).paused ? true : undefined));
    // What a lifecycle rule, a hand or a storage emulator killed before it saved would do.
    for await (const b of container.listBlobsFlat({ prefix: `${tenant.id}.` })) await container.deleteBlob(b.name);
    await handle.signal(resumeSignal);

    const missing = await handle.result().then(() => undefined, (err: unknown) => err);
    expect(missing).toBeInstanceOf(WorkflowFailedError);
    expect(String((missing as WorkflowFailedError).cause?.message)).toMatch(/artifact blob .* is gone .* the tenant stays on its source, migrate it again/);
    expect(primaryOf(fleet, tenant.id)).toBe('source');
    expect(existsSync(join(sqliteDirectory(fleet.targets.cloud), `${tenant.database}.db`))).toBe(false);
  } finally {
    await worker.stop();
    cleanup();
  }
});

test('a second wave naming a tenant another wave is migrating lists it as skipped (not failed), saying which workflow holds it', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 100, policy: { pauseBefore: ['snapshotting'] } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const tenant = fleet.tenants[0];
  try {
    await startWave(stack.env.client, `first-${tenant.id}`, [tenant.id], fleet.policy);
    const first = stack.env.client.workflow.getHandle(tenantWorkflowId(tenant.id));
    await waitFor('first migration holding', async () => ((await first.query(statusQuery)).paused ? true : undefined));

    await startWave(stack.env.client, `second-${tenant.id}`, [tenant.id], fleet.policy);
    const second = (await stack.env.client.workflow.getHandle(waveWorkflowId(`second-${tenant.id}`)).result()) as WaveStatus;
    expect(second.tenants[0].state).toBe('skipped');
    expect(second.tenants[0].error).toBe(
      `skipped: ${tenant.id} is being migrated by another run of ${tenantWorkflowId(tenant.id)} (see \`airlift status --tenant ${tenant.id}\`); a tenant migrates in one workflow at a time`,
    );

    await first.signal(resumeSignal);
    const firstWave = (await stack.env.client.workflow.getHandle(waveWorkflowId(`first-${tenant.id}`)).result()) as WaveStatus;
    expect(firstWave.tenants[0].state).toBe('completed');
  } finally {
    await worker.stop();
    cleanup();
  }
});

test('the full workflow history holds neither the storage key nor any configured password', async () => {
  const { fleet, cleanup } = makeFleet({
    tenants: 1, rows: 100,
    extraSources: { dc1: { engine: 'mssql', server: 'sql01.example', user: 'airlift', passwordEnv: TEST_DB_PASSWORD_ENV, backupDirectory: 'D:\\b', backupShare: './share' } },
  });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const tenant = fleet.tenants[0];
  try {
    const waveId = `secrets-${tenant.id}`;
    await startWave(stack.env.client, waveId, [tenant.id], fleet.policy);
    await stack.env.client.workflow.getHandle(waveWorkflowId(waveId)).result();
    const key = /AccountKey=([^;]+)/.exec(stack.azurite.connectionString)![1];
    for (const id of [waveWorkflowId(waveId), tenantWorkflowId(tenant.id)]) {
      const history = await stack.env.client.workflow.getHandle(id).fetchHistory();
      // Payloads are bytes: decode every one so the search sees what is really stored.
      const text = JSON.stringify(history, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v));
      expect(text).toContain(tenant.id); // the decoding works: what should be there is found
      expect(text).not.toContain(key);
      expect(text).not.toContain(key.slice(0, 24));
      expect(text).not.toContain('AccountKey');
      expect(text).not.toContain(stack.azurite.connectionString);
      expect(text).not.toContain(TEST_DB_PASSWORD);
      expect(text).not.toContain(TEST_ADMIN_TOKEN);
    }
  } finally {
    await worker.stop();
    cleanup();
  }
});
