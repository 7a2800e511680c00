// reconcile --apply while a cut-over attempt of a terminated workflow is still running on its worker
// (terminate does not stop activities): reconcile takes the tenant in the catalog first (the epoch
// moves on), so the attempt is refused at its flip, and the catalog never names a dropped target.
// Real SQLite databases and catalog; the attempt is held open right before its flip.
import { join } from 'node:path';
import { Catalog } from '../../ingestion/catalog';
import { catalogRoutes } from '../../ingestion/routes';
import { SqliteEngine } from '../../engines/sqlite';
import { DEFAULT_TRACKING } from '../../config/fleet';
import { sqliteDirectory } from '../../engines/sqlite-kind';
import { switchPrimary, type SwitchContext } from '../../protocol/switch';
import { inspectTenant, repairTenant, REPAIR_LEASE_MS, type ReconcileAdapters, type ReconcileTenant } from '../../protocol/reconcile';
import { FencedWriteError } from '../../protocol/errors';
import { makeFleet } from '../helpers/stack';
import { stallBeforeFlip } from '../helpers/stall';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { cutoverActivities } from '../../activities/cutover';
import type { ActivityDeps } from '../../activities/context';
import { fleetEngines } from '../../engines';

async function cutOverTenant() {
  const made = makeFleet({ tenants: 1, rows: 40 });
  const catalog = new Catalog(made.fleet.catalog.path);
  const tenant = made.fleet.tenants[0];
  const source = new SqliteEngine(sqliteDirectory(made.fleet.sources.onprem));
  const target = new SqliteEngine(sqliteDirectory(made.fleet.targets.cloud));
  await source.startCapture(tenant.database);
  await source.setWriteGate(tenant.database, { state: 'open', migrationId: 'm1' });
  await target.restore(tenant.database, await source.snapshot(tenant.database, join(made.dir, 'work', 'm1.sqlite')), 'm1');
  const ctx: SwitchContext = { tenantId: tenant.id, migrationId: 'm1', database: tenant.database, engines: { source, target }, catalog, routes: catalogRoutes(catalog) };
  const adapters: ReconcileAdapters = {
    catalog,
    holder: 'reconcile under test',
    routes: catalogRoutes(catalog),
    ownerOf: async () => ({ kind: 'none', lastRun: 'terminated' }),
    liveMigrations: new Set(),
  };
  const reconciled: ReconcileTenant = { tenantId: tenant.id, database: tenant.database, source, target, dropTarget: (m) => target.dropRestored(tenant.database, m) };
  const writes = async (id: string): Promise<boolean> => {
    const writer = source.openEventWriter(tenant.database, DEFAULT_TRACKING);
    try {
      return (await writer.write([{ event_id: id, kind: 'view', ad_id: 1, occurred_at: '2026-12-08T00:00:00Z', user_agent: null, payload: null }])) === 1;
    } catch (err) {
      if (err instanceof FencedWriteError) return false;
      throw err;
    } finally {
      writer.close();
    }
  };
  return { ...made, catalog, tenant, source, target, ctx, adapters, reconciled, writes, close: () => (catalog.close(), made.cleanup()) };
}

test('reconcile --apply while a terminated workflow\'s cut-over attempt is still running: the attempt cannot flip afterwards, the tenant stays on its source and takes writes, the target is dropped', async () => {
  const t = await cutOverTenant();
  try {
    // The attempt has fenced, drained and compared; it is held right before its flip.
    const held = stallBeforeFlip(t.source, 'after');
    const attempt = switchPrimary({ ...t.ctx, engines: { source: held.engine, target: t.target } }, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 60_000 });
    await held.reached;
    expect(await t.writes('while-the-attempt-holds-the-fence')).toBe(false);

    const report = await inspectTenant(t.adapters, t.reconciled);
    expect(report.repairs.map((r) => r.step)).toEqual(expect.arrayContaining(['open', 'fence', 'drop-target']));
    await repairTenant(t.adapters, t.reconciled, report);
    expect(report.failed).toEqual([]);
    expect(await t.writes('after-reconcile')).toBe(true);

    held.wake();
    await expect(attempt).rejects.toThrow(/catalog moved on|writes reached the source after the drain/);
    // What an operator checks: the catalog names the source, which takes writes; the target is gone.
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('source');
    expect(await t.writes('after-the-attempt-woke')).toBe(true);
    expect((await t.target.probe(t.tenant.database)).exists).toBe(false);
    expect(t.catalog.repairHolder(t.tenant.id)).toBeUndefined();
  } finally {
    t.close();
  }
});

test('reconcile that finds the catalog flipped after it read the tenant changes nothing and says to run it again', async () => {
  const t = await cutOverTenant();
  try {
    const report = await inspectTenant(t.adapters, t.reconciled);
    expect(report.repairs.map((r) => r.step)).toContain('drop-target');
    // Between reconcile's read and its repair, the attempt (still running) flips and settles.
    await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 60_000 });
    await repairTenant(t.adapters, t.reconciled, report);
    expect(report.applied).toEqual([]);
    expect(report.failed).toEqual([expect.stringContaining('the catalog moved to the target since it was read')]);
    expect((await t.target.probe(t.tenant.database)).exists).toBe(true);
    expect(await t.target.writeGate(t.tenant.database)).toMatchObject({ state: 'open' });
  } finally {
    t.close();
  }
});

test('a tenant held by one reconcile is refused to another, and lets go by itself when the hold lapses', () => {
  const made = makeFleet({ tenants: 1, rows: 1 });
  const catalog = new Catalog(made.fleet.catalog.path);
  try {
    const before = catalog.ensure('t1').epoch;
    expect(catalog.takeForRepair('t1', 'first', REPAIR_LEASE_MS)?.epoch).toBe(before + 1);
    expect(catalog.takeForRepair('t1', 'second', REPAIR_LEASE_MS)).toBeUndefined();
    expect(catalog.repairHolder('t1')).toMatchObject({ holder: 'first' });
    catalog.releaseRepair('t1', 'first');
    expect(catalog.takeForRepair('t1', 'second', -1)).toBeDefined(); // a hold already lapsed
    expect(catalog.repairHolder('t1')).toBeUndefined();
  } finally {
    catalog.close();
    made.cleanup();
  }
});

test('a journaling attempt of a terminated migration that wakes after reconcile repaired the tenant is refused, having installed nothing', async () => {
  const made = makeFleet({ tenants: 1, rows: 20 });
  const catalog = new Catalog(made.fleet.catalog.path);
  try {
    const deps = { fleet: made.fleet, catalog, routes: catalogRoutes(catalog), engines: fleetEngines(made.fleet, process.env, { managedInstance: () => { throw new Error('no Managed Instance here'); } }) } as unknown as ActivityDeps;
    const journaling = cutoverActivities(deps).startJournaling;
    const tenant = made.fleet.tenants[0];
    const source = new SqliteEngine(sqliteDirectory(made.fleet.sources.onprem));
    const target = new SqliteEngine(sqliteDirectory(made.fleet.targets.cloud));
    const env = () => new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR', () => undefined) });
    catalog.runGeneration('m1', 'run-1');
    // The second try of run-1's journaling ran (the first is stalled on a frozen worker); the workflow is then terminated.
    await env().run(journaling, tenant.id, 'm1', { owner: 'm1:run-1', step: 1 });
    const adapters: ReconcileAdapters = { catalog, holder: 'reconcile under test', routes: catalogRoutes(catalog), ownerOf: async () => ({ kind: 'none', lastRun: 'terminated' }), liveMigrations: new Set() };
    const reconciled: ReconcileTenant = { tenantId: tenant.id, database: tenant.database, source, target, dropTarget: (m) => target.dropRestored(tenant.database, m) };
    await repairTenant(adapters, reconciled, await inspectTenant(adapters, reconciled));
    expect(await source.writeGate(tenant.database)).toBeNull();
    // The first try wakes now.
    await expect(env().run(journaling, tenant.id, 'm1', { owner: 'm1:run-1', step: 1 })).rejects.toThrow(/refused/);
    expect(await source.writeGate(tenant.database)).toBeNull();
    expect(catalog.get(tenant.id)).toMatchObject({ outbox: false });
  } finally {
    catalog.close();
    made.cleanup();
  }
});
