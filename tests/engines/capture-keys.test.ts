// Keys the change log cannot tell apart. SQLite lets a primary key column of a rowid table that is not
// the INTEGER PRIMARY KEY hold NULL, in any number of rows ("CREATE TABLE", a documented legacy
// quirk): the log would record each as [NULL]. Preflight refuses a table that holds such rows, and
// capture refuses a write that makes one. Tables without a primary key are keyed by rowid, which a
// VACUUM may renumber ("VACUUM" documentation): preflight warns. The preflight activity runs in
// Temporal's mock activity environment over real SQLite files.
import Database from 'better-sqlite3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { ContainerClient } from '@azure/storage-blob';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Catalog } from '../../ingestion/catalog';
import { catalogRoutes } from '../../ingestion/routes';
import { SqliteEngine } from '../../engines/sqlite';
import { sqliteDirectory } from '../../engines/sqlite-kind';
import { preflightActivities } from '../../activities/preflight';
import type { ActivityDeps } from '../../activities/context';
import { fleetEngines } from '../../engines';
import type { PreflightResult } from '../../activities/preflight';
import { makeFleet } from '../helpers/stack';
import { CUSTOMERS, createHeldOutDatabase, dumpRows, schemaOf } from '../helpers/held-out-schema';

/** Preflight's storage probe only: a container that takes the probe blob (the container is not under test here). */
const writableContainer = {
  containerName: 'airlift-test',
  createIfNotExists: async () => undefined,
  getBlockBlobClient: () => ({ upload: async () => undefined, delete: async () => undefined }),
} as unknown as ContainerClient;

function preflightTenant() {
  const made = makeFleet({ tenants: 1, rows: 20 });
  const catalog = new Catalog(made.fleet.catalog.path);
  const deps = { fleet: made.fleet, catalog, routes: catalogRoutes(catalog), engines: fleetEngines(made.fleet, process.env, { managedInstance: () => { throw new Error('no Managed Instance here'); } }), container: writableContainer } as unknown as ActivityDeps;
  const tenant = made.fleet.tenants[0];
  const source = new SqliteEngine(sqliteDirectory(made.fleet.sources.onprem));
  const preflight = () =>
    new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR', () => undefined) }).run(preflightActivities(deps).preflight, tenant.id, 'm1');
  return { tenant, preflight, file: source.fileOf(tenant.database), close: () => { catalog.close(); made.cleanup(); } };
}

test('preflight refuses a table whose primary key holds NULL, in one line naming table, column, row count and the fix', async () => {
  const t = preflightTenant();
  try {
    const app = new Database(t.file);
    app.exec('CREATE TABLE "Kunden" ("Kunden-Nr" TEXT PRIMARY KEY, name TEXT)');
    app.exec("INSERT INTO \"Kunden\" VALUES (NULL, 'a'), (NULL, 'b'), ('K-1', 'c')");
    app.close();
    await expect(t.preflight()).rejects.toThrow(
      `preflight failed for ${t.tenant.id}: source onprem: table "Kunden" has 2 row(s) with NULL in its primary key column "Kunden-Nr", which change capture cannot tell apart; give those rows a key (and declare the column NOT NULL so no new ones come)`,
    );
    // Given keys, the table passes; the demo's audit_log (no primary key) is named in the VACUUM warning.
    const fix = new Database(t.file);
    fix.exec("UPDATE \"Kunden\" SET \"Kunden-Nr\" = 'K-' || rowid || '-fixed' WHERE \"Kunden-Nr\" IS NULL");
    fix.close();
    const result = (await t.preflight()) as PreflightResult;
    expect(result.warnings).toEqual([`source onprem: do not VACUUM ${t.tenant.database} while it migrates; tables without a primary key are keyed by rowid: "audit_log" (a VACUUM may renumber them, and the cut-over then refuses)`]);
  } finally {
    t.close();
  }
});

describe('capture on the held-out schema', () => {
  let dir: string;
  let source: SqliteEngine;
  const db = 'shop';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'airlift-keys-'));
    mkdirSync(join(dir, 'source'));
    source = new SqliteEngine(join(dir, 'source'));
    createHeldOutDatabase(source.fileOf(db), 20);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('a write that puts NULL into a primary key column is refused while the database migrates, nothing captured; removing capture gives the schema back', async () => {
    const before = schemaOf(source.fileOf(db));
    const w0 = await source.startCapture(db);
    expect(await source.setWriteGate(db, { state: 'open', migrationId: 'm1' }, { states: ['none', 'open'] })).toBe(true);
    const rowsBefore = dumpRows(source.fileOf(db));
    const table = `"${CUSTOMERS.replace(/"/g, '""')}"`;
    const refusal = `airlift: table ${table} column "Kunden-Nr": a NULL primary key is refused while this database migrates (rows with a NULL key cannot be told apart); give the row a key`;
    const app = new Database(source.fileOf(db));
    try {
      expect(() => app.prepare(`INSERT INTO ${table} (\"Kunden-Nr\", name) VALUES (NULL, 'ohne Nummer')`).run()).toThrow(refusal);
      expect(() => app.prepare(`UPDATE ${table} SET \"Kunden-Nr\" = NULL WHERE \"Kunden-Nr\" = 'K-3-ü'`).run()).toThrow(refusal);
      // Nothing was written and nothing captured.
      expect(dumpRows(source.fileOf(db))).toEqual(rowsBefore);
      expect(await source.changeHead(db)).toBe(w0);
      // A row with a key is written and captured as ever.
      app.prepare(`INSERT INTO ${table} (\"Kunden-Nr\", name) VALUES ('K-neu', 'mit Nummer')`).run();
      expect(await source.readChanges(db, w0, 10)).toEqual([{ seq: w0 + 1, table: CUSTOMERS, key: ['K-neu'] }]);
    } finally {
      app.close();
    }
    await source.stopCapture(db, { keepFence: false });
    expect(schemaOf(source.fileOf(db))).toEqual(before);
    // The refusal was airlift's: without capture, SQLite takes the NULL key again.
    const after = new Database(source.fileOf(db));
    expect(after.prepare(`INSERT INTO ${table} (\"Kunden-Nr\", name) VALUES (NULL, 'ohne Nummer')`).run().changes).toBe(1);
    after.close();
  });
});

test('a NULL key written after preflight and before capture is caught where capture is installed: nothing is installed', async () => {
  const t = preflightTenant();
  try {
    const app = new Database(t.file);
    app.exec('CREATE TABLE "Kunden" ("Kunden-Nr" TEXT PRIMARY KEY, name TEXT)');
    app.exec("INSERT INTO \"Kunden\" VALUES ('K-1', 'c')");
    app.close();
    await t.preflight();
    const late = new Database(t.file);
    late.exec("INSERT INTO \"Kunden\" VALUES (NULL, 'late')");
    const before = late.prepare("SELECT name FROM sqlite_schema WHERE name LIKE 'airlift%' ORDER BY name").pluck().all();
    late.close();
    const source = new SqliteEngine(join(t.file, '..'));
    await expect(source.startCapture(t.tenant.database)).rejects.toThrow(/table "Kunden" has 1 row\(s\) with NULL in its primary key column "Kunden-Nr"/);
    const after = new Database(t.file, { readonly: true });
    expect(after.prepare("SELECT name FROM sqlite_schema WHERE name LIKE 'airlift%' ORDER BY name").pluck().all()).toEqual(before);
    after.close();
  } finally {
    t.close();
  }
});
