// `airlift reconcile` as an operator runs it, on the real stack: a tenant whose workflow was
// terminated by hand is found, repaired and migrated again; a tenant a running workflow owns is left
// alone; `status` of a workflow that does not exist answers with one line and what to do.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Catalog } from '../../ingestion/catalog';
import { freePort } from '../../azure/azurite';
import { type LoadedFleet } from '../../config/fleet';
import { sqliteDirectory } from '../../engines/sqlite-kind';
import { migrationIdOf, rollbackSignal, statusQuery, TASK_QUEUE, tenantWorkflowId, type MigrationPolicy, type TenantResult } from '../../workflows/contract';
import { createGateway, listenGateway } from '../../ingestion/gateway';
import { GatewayAdmin } from '../../ingestion/admin-client';
import { makeFleet, startWorker, useTestStack, waitFor, workerEnv, TEST_ADMIN_TOKEN, type TestStack } from '../helpers/stack';

const currentStack = useTestStack();
let stack: TestStack;
beforeEach(() => (stack = currentStack()));

const bin = join(__dirname, '../../bin/airlift.js');

/** Runs the CLI as its own process without blocking this one (the test's worker keeps working). */
function airlift(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: options.cwd, env: options.env, timeout: 120000 }, (err, stdout, stderr) =>
      resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The gate row as the database holds it, read without airlift's code: no row means open. */
function gateOf(file: string): string {
  const db = new Database(file, { readonly: true });
  try {
    const table = db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'airlift_gate'").get();
    const row = table ? (db.prepare('SELECT state FROM airlift_gate WHERE id = 1').get() as { state: string } | undefined) : undefined;
    return row?.state ?? 'open';
  } finally {
    db.close();
  }
}

function routeOf(fleet: LoadedFleet, tenantId: string) {
  const catalog = new Catalog(fleet.catalog.path);
  try {
    return catalog.get(tenantId);
  } finally {
    catalog.close();
  }
}

async function startTenant(fleet: LoadedFleet, tenantId: string, policy: Partial<MigrationPolicy> = {}) {
  return stack.env.client.workflow.start('migrateTenant', {
    workflowId: tenantWorkflowId(tenantId),
    taskQueue: TASK_QUEUE,
    args: [{ tenantId, migrationId: migrationIdOf(randomUUID()), policy: { ...(fleet.policy as MigrationPolicy), ...policy } }],
  });
}

test('a tenant whose workflow was terminated while awaiting approval is reported, repaired, and then migrates again; a tenant a running workflow owns is left alone', async () => {
  const { dir, fleet, cleanup } = makeFleet({ tenants: 2, rows: 300, policy: { cutover: 'manual' } });
  const [stranded, owned] = fleet.tenants;
  const env = { ...workerEnv(stack, fleet), TEMPORAL_ADDRESS: stack.env.address };
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const targetFile = (database: string) => join(sqliteDirectory(fleet.targets.cloud), `${database}.db`);
  const sourceFile = (database: string) => join(sqliteDirectory(fleet.sources.onprem), `${database}.db`);
  try {
    const handles = [await startTenant(fleet, stranded.id), await startTenant(fleet, owned.id)];
    for (const handle of handles) await waitFor('awaiting approval', async () => ((await handle.query(statusQuery)).phase === 'awaiting_cutover' ? true : undefined));
    const ownedMigration = (await handles[1].query(statusQuery)).migrationId;
    await handles[0].terminate('terminated by hand, as from the Web UI');

    // What the operator is left with: frozen, journaling, a target nobody will drop.
    expect(routeOf(fleet, stranded.id)).toMatchObject({ primary: 'source', writeMode: 'read_write', outbox: true });
    expect(existsSync(targetFile(stranded.database))).toBe(true);

    const dry = await airlift(['reconcile', '-f', fleet.file, '--json'], { cwd: dir, env });
    expect(dry.stderr).toBe('');
    expect(dry.status).toBe(1);
    const found = JSON.parse(dry.stdout);
    expect(found.needingRepair).toEqual([stranded.id]);
    const [a, b] = found.tenants;
    expect(a.owner.kind).toBe('none');
    expect(a.catalog).toMatchObject({ primary: 'source', writeMode: 'read_write', outbox: true });
    expect(a.target.exists).toBe(true);
    expect(a.repairs.map((r: { step: string }) => r.step)).toEqual(expect.arrayContaining(['thaw', 'drop-target']));
    expect(a.blobs.length).toBe(1);
    expect(b.owner).toMatchObject({ kind: 'workflow', workflowId: tenantWorkflowId(owned.id), migrationId: ownedMigration });
    expect(b.repairs).toEqual([]);
    // Nothing was changed by looking.
    expect(routeOf(fleet, stranded.id)).toMatchObject({ writeMode: 'read_write', outbox: true });
    expect(existsSync(targetFile(stranded.database))).toBe(true);

    const text = await airlift(['reconcile', '-f', fleet.file], { cwd: dir, env });
    expect(text.status).toBe(1);
    expect(text.stdout).toContain(`would: drop target database ${stranded.database} (restored by migration ${a.target.restoredBy}, which no workflow runs)`);
    expect(text.stdout).toContain(`owned by running workflow ${tenantWorkflowId(owned.id)} (migration ${ownedMigration}): left alone`);
    expect(text.stdout).toContain('run again with --apply');

    const applied = await airlift(['reconcile', '-f', fleet.file, '--apply'], { cwd: dir, env });
    expect(applied.stderr).toBe('');
    expect(applied.status).toBe(0);
    expect(applied.stdout).toContain(`done: drop target database ${stranded.database}`);
    expect(routeOf(fleet, stranded.id)).toMatchObject({ primary: 'source', writeMode: 'read_write', outbox: false });
    expect(gateOf(sourceFile(stranded.database))).toBe('open');
    expect(existsSync(targetFile(stranded.database))).toBe(false);
    // The owned tenant is exactly as its workflow left it.
    expect(routeOf(fleet, owned.id)).toMatchObject({ primary: 'source', writeMode: 'read_write', outbox: true });
    expect(existsSync(targetFile(owned.database))).toBe(true);
    expect((await handles[1].query(statusQuery)).phase).toBe('awaiting_cutover');

    // A fresh migration of the repaired tenant passes preflight and completes.
    const again = await startTenant(fleet, stranded.id, { cutover: 'auto' });
    const result = (await again.result()) as TenantResult;
    expect(result.outcome).toBe('completed');
    expect(routeOf(fleet, stranded.id)).toMatchObject({ primary: 'target', writeMode: 'read_write', outbox: false });

    const after = await airlift(['reconcile', '-f', fleet.file], { cwd: dir, env });
    expect(after.status).toBe(0);
    expect(after.stdout).toContain('nothing to repair');
    // The owned tenant's own workflow ends it cleanly.
    await handles[1].signal(rollbackSignal, 'test over');
    expect(((await handles[1].result()) as TenantResult).outcome).toBe('rolled_back');
  } finally {
    await worker.stop();
    cleanup();
  }
}, 240000);

test('a gateway fence left behind by a terminated workflow is lifted, and the tenant takes events again on its source', async () => {
  const port = await freePort();
  const { dir, fleet, cleanup } = makeFleet({ tenants: 1, rows: 100, gatewayUrl: `http://127.0.0.1:${port}`, policy: { cutover: 'manual' } });
  const gateway = await listenGateway(createGateway({ fleet, adminToken: TEST_ADMIN_TOKEN }), port);
  const tenant = fleet.tenants[0];
  const env = { ...workerEnv(stack, fleet), TEMPORAL_ADDRESS: stack.env.address };
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const admin = new GatewayAdmin([gateway.url], TEST_ADMIN_TOKEN, { log: () => undefined });
  try {
    const handle = await startTenant(fleet, tenant.id);
    await waitFor('awaiting approval', async () => ((await handle.query(statusQuery)).phase === 'awaiting_cutover' ? true : undefined));
    // As a cut-over that died after fencing the node would leave it.
    await admin.fence(tenant.id);
    await handle.terminate('terminated by hand mid cut-over');

    const dry = await airlift(['reconcile', '-f', fleet.file, '--json'], { cwd: dir, env });
    expect(dry.status).toBe(1);
    const [found] = JSON.parse(dry.stdout).tenants;
    expect(found.gateways).toEqual([{ gateway: gateway.url, fenced: true, primary: 'source' }]);
    expect(found.repairs).toContainEqual({ step: 'unfence', gateways: [gateway.url] });

    const applied = await airlift(['reconcile', '-f', fleet.file, '--apply'], { cwd: dir, env });
    expect(applied.stderr).toBe('');
    expect(applied.status).toBe(0);
    expect((await admin.view(tenant.id))[0]).toMatchObject({ fenced: false, primary: 'source', writeMode: 'read_write', outbox: false });
    const res = await fetch(`${gateway.url}/t/${tenant.id}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event_id: 'after-reconcile-1', kind: 'click' }) });
    expect(res.status).toBe(200);
    const db = new Database(join(sqliteDirectory(fleet.sources.onprem), `${tenant.database}.db`), { readonly: true });
    try {
      expect(db.prepare("SELECT count(*) AS n FROM tracking_events WHERE event_id = 'after-reconcile-1'").get()).toEqual({ n: 1 });
    } finally {
      db.close();
    }
  } finally {
    await worker.stop();
    await gateway.stop();
    cleanup();
  }
}, 240000);

test('reconcile --apply refuses with one line when Temporal cannot be reached; status of a missing workflow says what to do', async () => {
  const { dir, fleet, cleanup } = makeFleet({ tenants: 1, rows: 50 });
  try {
    const nowhere = `127.0.0.1:${await freePort()}`;
    const refused = await airlift(['reconcile', '-f', fleet.file, '--apply'], { cwd: dir, env: { ...workerEnv(stack, fleet), TEMPORAL_ADDRESS: nowhere } });
    expect(refused.status).toBe(2);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toContain(`reconcile --apply refused, since which tenants a running migration owns cannot be known: cannot reach Temporal at ${nowhere}`);

    const env = { ...workerEnv(stack, fleet), TEMPORAL_ADDRESS: stack.env.address };
    const wave = await airlift(['status', 'k1'], { cwd: dir, env });
    expect(wave.status).toBe(2);
    expect(wave.stderr.trim().split('\n')).toEqual([
      `airlift: no wave k1 (workflow airlift-wave-k1) on ${stack.env.address}; check the wave id, or if the Temporal state was lost, run \`airlift reconcile -f <fleet file>\` to repair what no workflow owns`,
    ]);
    const tenant = await airlift(['status', '--tenant', fleet.tenants[0].id], { cwd: dir, env });
    expect(tenant.status).toBe(2);
    expect(tenant.stderr.trim().split('\n')).toHaveLength(1);
    expect(tenant.stderr).toContain(`tenant ${fleet.tenants[0].id} has no migration workflow (airlift-tenant-${fleet.tenants[0].id})`);
    expect(tenant.stderr).toContain(`on ${stack.env.address}; if the Temporal state was lost, run \`airlift reconcile`);
    expect(tenant.stderr).not.toContain('    at ');
  } finally {
    cleanup();
  }
}, 120000);
