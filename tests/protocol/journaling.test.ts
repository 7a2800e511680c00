// Item 9 of the change-capture review: a journaling attempt that wakes after its run moved on (its
// activity retried late, or an attempt of an earlier, rolled-back migration) is turned away having
// changed nothing. The activity runs in Temporal's mock activity environment over real SQLite files.
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { Catalog } from '../../ingestion/catalog';
import { catalogRoutes } from '../../ingestion/routes';
import { SqliteEngine } from '../../engines/sqlite';
import { sqliteDirectory } from '../../engines/sqlite-kind';
import { cutoverActivities } from '../../activities/cutover';
import type { ActivityDeps } from '../../activities/context';
import { fleetEngines } from '../../engines';
import { makeFleet } from '../helpers/stack';
import { schemaOf } from '../helpers/held-out-schema';

function journalingTenant() {
  const made = makeFleet({ tenants: 1, rows: 20 });
  const catalog = new Catalog(made.fleet.catalog.path);
  // Journaling needs the fleet, the catalog and the routes only.
  const deps = { fleet: made.fleet, catalog, routes: catalogRoutes(catalog), engines: fleetEngines(made.fleet, process.env, { managedInstance: () => { throw new Error('no Managed Instance here'); } }) } as unknown as ActivityDeps;
  const activities = cutoverActivities(deps);
  const tenant = made.fleet.tenants[0];
  const source = new SqliteEngine(sqliteDirectory(made.fleet.sources.onprem));
  const journal = (migrationId: string, step: number) =>
    // Quiet: the refusals are expected.
    new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR', () => undefined) }).run(activities.startJournaling, tenant.id, migrationId, { owner: `${migrationId}:run`, step });
  return { tenant, source, journal, file: source.fileOf(tenant.database), close: () => { catalog.close(); made.cleanup(); } };
}

test('a journaling attempt of an earlier migration, waking while the next one journals, changes nothing', async () => {
  const t = journalingTenant();
  try {
    await t.journal('m-new', 1);
    const before = { gate: await t.source.writeGate(t.tenant.database), schema: schemaOf(t.file) };
    await expect(t.journal('m-old', 1)).rejects.toThrow(/journaling of migration m-old refused: .* held by another migration/);
    expect(await t.source.writeGate(t.tenant.database)).toEqual(before.gate);
    expect(schemaOf(t.file)).toEqual(before.schema);
  } finally {
    t.close();
  }
});

test('a journaling retry that wakes after its own cut-over fenced the source changes nothing there', async () => {
  const t = journalingTenant();
  try {
    await t.journal('m1', 1);
    // The cut-over's fence, as the switch raises it.
    expect(await t.source.setWriteGate(t.tenant.database, { state: 'fenced', migrationId: 'm1', token: 'switch-attempt' }, { states: ['open'] })).toBe(true);
    const schema = schemaOf(t.file);
    await expect(t.journal('m1', 1)).rejects.toThrow(/refused: .* closed/);
    expect(await t.source.writeGate(t.tenant.database)).toMatchObject({ state: 'fenced', token: 'switch-attempt' });
    expect(schemaOf(t.file)).toEqual(schema);
  } finally {
    t.close();
  }
});
