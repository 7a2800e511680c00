// Tenants on PostgreSQL migrated end to end by the real workflow, worker and activities: two private
// clusters (the on-premises source and the cloud target), Temporal's dev server and Azurite. The
// tenant's application writes through its own sessions the whole time, to whichever side the catalog
// names; the checker reads both servers through sessions of its own.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type pg from 'pg';
import { parseFleet } from '../../config/fleet';
import { Catalog } from '../../ingestion/catalog';
import { createPostgresTenantDatabase } from '../../cli/demo-data-postgres';
import { completeUpdate, migrationIdOf, rollbackUpdate, statusQuery, TASK_QUEUE, tenantWorkflowId, type MigrationPolicy, type TenantResult } from '../../workflows/contract';
import { startWorker, useTestStack, waitFor, type TestStack } from '../helpers/stack';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres';

const currentStack = useTestStack();
let stack: TestStack;
let source: TestPostgres;
let target: TestPostgres;
beforeAll(async () => {
  [source, target] = [await startTestPostgres(), await startTestPostgres()];
});
afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
});
beforeEach(() => (stack = currentStack()));

/** Every row of every tenant table, in key order, as text: the checker's own reading. */
async function dump(c: pg.Client): Promise<Record<string, string[]>> {
  const tables = (await c.query<{ name: string }>("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).rows.map((r) => r.name);
  const out: Record<string, string[]> = {};
  for (const t of tables) out[t] = (await c.query<{ r: string }>(`SELECT t::text AS r FROM public."${t}" t ORDER BY 1`)).rows.map((r) => r.r);
  return out;
}

test('two PostgreSQL tenants migrate while their application writes on every side it is routed to: one completes row for row, one is rolled back from its rollback window losing nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlift-pg-fleet-'));
  const suffix = randomUUID().slice(0, 8);
  const tenants = [0, 1].map((i) => ({ id: `pg${i + 1}-${suffix}`, database: `tenant_${i + 1}_${suffix}`, source: 'onprem', target: 'cloud' }));
  for (const [i, t] of tenants.entries()) await createPostgresTenantDatabase(source.server, t.database, 2000, i + 1);
  const endpoint = (s: TestPostgres) => ({ engine: 'postgres', host: s.server.host, port: s.server.port, user: s.server.user, ssl: 'disable', restoreJobs: 2 });
  const doc = {
    sources: { onprem: endpoint(source) },
    targets: { cloud: endpoint(target) },
    storage: { container: 'airlift-pg-test', connectionStringEnv: 'AIRLIFT_TEST_STORAGE' },
    tenants,
    policy: { verifyChunkRows: 500, blockSizeMiB: 0.0625, rollbackWindowSeconds: 3600 },
  };
  writeFileSync(join(dir, 'fleet.yaml'), stringify(doc));
  const fleet = parseFleet(doc, join(dir, 'fleet.yaml'));
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const catalog = new Catalog(fleet.catalog.path);
  const sessions: pg.Client[] = [];
  const open = async (side: TestPostgres, database: string) => {
    const c = await side.client(database);
    sessions.push(c);
    return c;
  };
  // The application: one insert at a time per tenant on the side the catalog names, a refused or
  // failed write tried again; an id counts once the server acknowledged its commit.
  let writing = true;
  const acknowledged = new Map(tenants.map((t) => [t.id, [] as number[]]));
  const app = tenants.map(async (t, n) => {
    const on = { source: await open(source, t.database), target: undefined as pg.Client | undefined };
    let id = 100_000 * (n + 1);
    while (writing) {
      const side = catalog.get(t.id)?.primary ?? 'source';
      try {
        const c = side === 'source' ? on.source : (on.target ??= await open(target, t.database));
        await c.query("INSERT INTO campaigns (id, name, status, starts_at) VALUES ($1, 'written by the app', 'active', '2026-02-01')", [id]);
        acknowledged.get(t.id)!.push(id++);
      } catch {
        on.target = side === 'target' ? undefined : on.target;
      }
      await new Promise((r) => setTimeout(r, 15));
    }
  });
  try {
    const handles = await Promise.all(tenants.map((t) => stack.env.client.workflow.start('migrateTenant', {
      workflowId: tenantWorkflowId(t.id), taskQueue: TASK_QUEUE, args: [{ tenantId: t.id, migrationId: migrationIdOf(randomUUID()), policy: fleet.policy as MigrationPolicy }],
    })));
    for (const h of handles) await waitFor('the rollback window', async () => ((await h.query(statusQuery)).phase === 'rollback_window' ? true : undefined), 180_000);
    // Written on the target while it is primary: the rollback must bring these back too.
    await new Promise((r) => setTimeout(r, 500));
    expect(await handles[0].executeUpdate(completeUpdate)).toBeTruthy();
    expect(await handles[1].executeUpdate(rollbackUpdate, { args: ['test: back out of PostgreSQL in the window'] })).toMatch(/rollback of .* started from phase rollback_window/);
    const [done, back] = (await Promise.all(handles.map((h) => h.result()))) as TenantResult[];
    writing = false;
    await Promise.all(app);
    expect([done.outcome, back.outcome]).toEqual(['completed', 'rolled_back']);
    expect(done.status.tables.every((t) => t.mismatchedChunks === 0)).toBe(true);
    expect([catalog.get(tenants[0].id)?.primary, catalog.get(tenants[1].id)?.primary]).toEqual(['target', 'source']);

    // The completed tenant: its target holds every row of its source, and every acknowledged write once.
    const [a, aTarget] = [await open(source, tenants[0].database), await open(target, tenants[0].database)];
    const onTarget = await dump(aTarget);
    expect(Object.keys(onTarget)).toEqual(['ads', 'audit_log', 'budgets', 'campaigns', 'tracking_events']);
    const written = acknowledged.get(tenants[0].id)!;
    expect(written.length).toBeGreaterThan(10);
    const ids = (await aTarget.query<{ id: number }>('SELECT id FROM campaigns WHERE id >= 100000 ORDER BY id')).rows.map((r) => r.id);
    expect(ids).toEqual(written);
    // The source kept its fence only; what the target has beyond it is what was written after the cut-over.
    const onSource = await dump(a);
    for (const table of ['ads', 'audit_log', 'budgets', 'tracking_events']) expect(onTarget[table]).toEqual(onSource[table]);
    await expect(a.query("UPDATE campaigns SET name = 'stale' WHERE id = 1")).rejects.toMatchObject({ code: 'AL409' });

    // The rolled-back tenant: back on its source with every acknowledged write, and the target database gone.
    const b = await open(source, tenants[1].database);
    expect((await b.query<{ id: number }>('SELECT id FROM campaigns WHERE id >= 100000 ORDER BY id')).rows.map((r) => r.id)).toEqual(acknowledged.get(tenants[1].id));
    const gone = await open(target, 'postgres');
    expect((await gone.query('SELECT 1 FROM pg_database WHERE datname = $1', [tenants[1].database])).rowCount).toBe(0);
    await b.query("UPDATE campaigns SET name = 'the app writes on its source again' WHERE id = 1");
  } finally {
    writing = false;
    await Promise.allSettled(app);
    for (const c of sessions) await c.end().catch(() => undefined);
    catalog.close();
    await worker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
