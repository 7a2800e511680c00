// The engine contract: what every engine must do for airlift to move its tenants. SQLite and
// PostgreSQL (airlift's private cluster, or the server PG* variables name) run it always. SQL Server runs it when AIRLIFT_MSSQL_URL is set (mssql://user:password@host:port); else
// those tests are reported as skipped, with the reason in their names, never as passed.
import Database from 'better-sqlite3';
import sql from 'mssql';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Engine } from '../../engines/engine';
import { SqliteEngine } from '../../engines/sqlite';
import { MssqlEngine } from '../../engines/mssql';
import * as tsql from '../../engines/mssql-sql';
import { compareTable } from '../../engines/table-verifier';
import { applyRange } from '../../protocol/replicator';
import { createTenantDatabase } from '../../cli/demo-data';
import { createPostgresTenantDatabase } from '../../cli/demo-data-postgres';
import { PostgresEngine } from '../../engines/postgres';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres';

interface Side {
  engine: Engine;
  database: string;
}

interface Fixture {
  /** Two databases holding the same rows. */
  a: Side;
  b: Side;
  /** Changes campaigns row id=2 on one side. */
  tamper(side: 'a' | 'b'): Promise<void>;
  cleanup(): Promise<void>;
}

interface EngineUnderTest {
  name: string;
  skipReason?: string;
  setup(): Promise<Fixture>;
}

const sqlite: EngineUnderTest = {
  name: 'SQLite',
  async setup() {
    const dir = mkdtempSync(join(tmpdir(), 'airlift-contract-'));
    createTenantDatabase(join(dir, 'a'), 'acme', 300, 5);
    createTenantDatabase(join(dir, 'b'), 'acme', 300, 5);
    return {
      a: { engine: new SqliteEngine(join(dir, 'a')), database: 'acme' },
      b: { engine: new SqliteEngine(join(dir, 'b')), database: 'acme' },
      tamper: async (side) => {
        const h = new Database(join(dir, side === 'a' ? 'a' : 'b', 'acme.db'));
        h.prepare("UPDATE campaigns SET name = 'tampered' WHERE id = 2").run();
        h.close();
      },
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
};

const MSSQL_URL = process.env.AIRLIFT_MSSQL_URL;
const mssqlLive: EngineUnderTest = {
  name: 'SQL Server (live)',
  skipReason: MSSQL_URL ? undefined : 'AIRLIFT_MSSQL_URL is not set (mssql://user:password@host:port)',
  async setup() {
    const url = new URL(MSSQL_URL!);
    const endpoint = {
      server: url.hostname, port: Number(url.port || 1433), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password),
      encrypt: url.searchParams.get('encrypt') !== 'false', trustServerCertificate: url.searchParams.get('trustServerCertificate') !== 'false', compression: false,
    };
    const suffix = randomBytes(4).toString('hex');
    const [a, b] = [`airlift_contract_${suffix}_a`, `airlift_contract_${suffix}_b`];
    const admin = await new sql.ConnectionPool({ ...endpoint, database: 'master', options: { encrypt: endpoint.encrypt, trustServerCertificate: endpoint.trustServerCertificate } }).connect();
    for (const db of [a, b]) {
      await admin.request().query(`CREATE DATABASE [${db}]`);
      await admin.request().query(`USE [${db}];
        CREATE TABLE campaigns (id int NOT NULL PRIMARY KEY, name nvarchar(100) NOT NULL, notes nvarchar(max) NULL);
        CREATE TABLE budgets (campaign_id int NOT NULL, day date NOT NULL, spend_cents bigint NOT NULL, PRIMARY KEY (campaign_id, day));
        CREATE TABLE tracking_events (seq bigint IDENTITY(1, 1) NOT NULL PRIMARY KEY, event_id nvarchar(64) NOT NULL UNIQUE, ad_id int NULL,
          kind nvarchar(32) NOT NULL, occurred_at nvarchar(40) NOT NULL, user_agent nvarchar(512) NULL, payload nvarchar(max) NULL);
        INSERT INTO campaigns VALUES (1, N'Summer ☀️', NULL), (2, N'Über', N'note'), (3, N'東京', NULL);
        INSERT INTO budgets VALUES (1, '2026-11-01', 100), (1, '2026-11-02', 200), (2, '2026-11-01', 300);
        INSERT INTO tracking_events (event_id, ad_id, kind, occurred_at) SELECT CONCAT(N'e-', value), value % 7, N'view', N'2026-11-01T00:00:00Z' FROM GENERATE_SERIES(1, 300);`);
    }
    const engine = new MssqlEngine(endpoint);
    return {
      a: { engine, database: a },
      b: { engine, database: b },
      tamper: async (which) => void (await admin.request().query(`UPDATE [${which === 'a' ? a : b}].dbo.campaigns SET name = N'tampered' WHERE id = 2`)),
      cleanup: async () => {
        await engine.close();
        for (const db of [a, b]) await admin.request().query(`ALTER DATABASE [${db}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [${db}]`).catch(() => undefined);
        await admin.close();
      },
    };
  },
};

let postgresServer: TestPostgres | undefined;
afterAll(async () => postgresServer?.stop());
const postgres: EngineUnderTest = {
  name: 'PostgreSQL',
  async setup() {
    postgresServer ??= await startTestPostgres();
    const pgs = postgresServer;
    const [a, b] = [pgs.name('contract_a'), pgs.name('contract_b')];
    for (const db of [a, b]) await createPostgresTenantDatabase(pgs.server, db, 300, 5, 'acme');
    const engine = new PostgresEngine({ ...pgs.server, ssl: 'disable', restoreJobs: 2 });
    return {
      a: { engine, database: a },
      b: { engine, database: b },
      tamper: async (side) => {
        const c = await pgs.client(side === 'a' ? a : b);
        try {
          await c.query("UPDATE campaigns SET name = 'tampered' WHERE id = 2");
        } finally {
          await c.end();
        }
      },
      cleanup: async () => {
        await engine.close();
        const c = await pgs.client();
        for (const db of [a, b]) await c.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
        await c.end();
      },
    };
  },
};

for (const subject of [sqlite, postgres, mssqlLive]) {
  if (subject.skipReason) {
    describe.skip(`${subject.name} engine contract — skipped: ${subject.skipReason}`, () => {
      test('lists tables, compares, names differences, captures writes and applies row images once', () => undefined);
    });
    continue;
  }

  describe(`${subject.name} engine contract`, () => {
    let f: Fixture;
    beforeEach(async () => {
      f = await subject.setup();
    });
    afterEach(async () => f?.cleanup());


    test('lists tables with their primary keys, composite ones in key order', async () => {
      const tables = await f.a.engine.listTables(f.a.database);
      expect(tables.find((t) => t.name === 'campaigns')?.key).toEqual(['id']);
      expect(tables.find((t) => t.name === 'budgets')?.key).toEqual(['campaign_id', 'day']);
      expect(tables.find((t) => t.name === 'tracking_events')?.key).toEqual(['seq']);
    });

    test('two databases with the same rows compare identical, table by table', async () => {
      for (const table of await f.a.engine.listTables(f.a.database)) {
        const result = await compareTable(f.a, f.b, table, 50);
        expect({ table: table.name, mismatched: result.mismatchedChunks }).toEqual({ table: table.name, mismatched: 0 });
      }
    });

    test('every chunk digest equals the range digest of its own range', async () => {
      const table = (await f.a.engine.listTables(f.a.database)).find((t) => t.name === 'tracking_events')!;
      const chunks = await f.a.engine.chunkDigests(f.a.database, table, 64);
      expect(chunks.length).toBe(5);
      expect(chunks.reduce((n, c) => n + c.rows, 0)).toBe(300);
      for (const c of chunks) expect(await f.a.engine.rangeDigest(f.a.database, table, c)).toEqual({ rows: c.rows, digest: c.digest });
    });

    test('a changed row is named by its key', async () => {
      await f.tamper('b');
      const table = (await f.a.engine.listTables(f.a.database)).find((t) => t.name === 'campaigns')!;
      expect((await compareTable(f.a, f.b, table, 50)).differences).toEqual([{ key: 'id=2', kind: 'changed' }]);
    });

    test('capture records every write of a table by key, whoever writes; applied row images land once and the cursor keeps the highest seq', async () => {
      const w0 = await f.a.engine.startCapture(f.a.database);
      await f.a.engine.setWriteGate(f.a.database, { state: 'open', migrationId: 'm1' }, { states: ['none', 'open'] });
      await f.b.engine.setWriteGate(f.b.database, { state: 'standby', migrationId: 'm1' });
      await f.tamper('a'); // the application's own write, on its own connection
      const changes = await f.a.engine.readChanges(f.a.database, w0, 10);
      expect(changes.map((c) => ({ table: c.table, key: c.key.map(Number) }))).toEqual([{ table: 'campaigns', key: [2] }]);
      expect(await f.a.engine.changeHead(f.a.database)).toBe(changes[0].seq);
      const campaigns = (await f.a.engine.listTables(f.a.database)).find((t) => t.name === 'campaigns')!;
      const stream = { database: f.a.database, from: f.a.engine, to: f.b.engine, origin: 'source' as const, name: 'm1:source' };
      // The two fixtures' databases may differ in name (SQL Server); the stream reads and writes by its own.
      const image = { table: campaigns, key: changes[0].key, row: (await f.a.engine.readRows(f.a.database, campaigns, [changes[0].key]))[0] };
      expect(await f.b.engine.applyChanges(f.b.database, stream.name, changes[0].seq, [image])).toBe(1);
      expect(await f.b.engine.applyChanges(f.b.database, stream.name, changes[0].seq, [image])).toBe(0);
      expect(await f.b.engine.appliedCursor(f.b.database, stream.name)).toBe(changes[0].seq);
      expect((await compareTable(f.a, f.b, campaigns, 50)).differences).toEqual([]);
      // A closed gate refuses the application's write; the applier still writes.
      await f.a.engine.setWriteGate(f.a.database, { state: 'fenced', migrationId: 'm1' });
      // By its message: better-sqlite3's native binding keeps the SqliteError class of the first test
      // file that loaded it in this jest worker, so in a later file its errors are not `instanceof`
      // this file's Error, and `rejects.toThrow` would call the refusal "did not throw".
      const refusal = await f.tamper('a').then(() => undefined, (err: Error) => err);
      expect(refusal?.message).toMatch(/fenced/);
      await f.a.engine.setWriteGate(f.a.database, { state: 'open', migrationId: 'm1' });
      await f.a.engine.stopCapture(f.a.database, { keepFence: false });
      expect(await f.a.engine.changeHead(f.a.database)).toBe(0);
    });
  });
}

// SQL Server (live) only: what the T-SQL snapshots (tests/engines/mssql-capture-sql.test.ts) promise,
// checked against a real server. Run with AIRLIFT_MSSQL_URL (SQL Server 2016 SP1 or later); skipped otherwise.
(MSSQL_URL ? describe : describe.skip)(`SQL Server (live) change capture, gate and errors${MSSQL_URL ? '' : ' — skipped: AIRLIFT_MSSQL_URL is not set'}`, () => {
  let f: Fixture;
  let engine: MssqlEngine;
  let a: string;
  let b: string;
  let side: sql.ConnectionPool;
  const event = (id: string) => ({ event_id: id, ad_id: 1, kind: 'view', occurred_at: '2026-11-27T00:00:00Z', user_agent: null, payload: null });
  /** Waits until some session waits on a lock (sys.dm_exec_requests; the fixture's login sees all). */
  const someoneWaitsOnALock = async () => {
    for (;;) {
      const { recordset } = await side.request().query("SELECT COUNT(*) AS n FROM sys.dm_exec_requests WHERE wait_type LIKE N'LCK[_]M[_]%'");
      if (recordset[0].n > 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  /** A write the test holds open in its own transaction (the capture trigger has run: its seq is taken). */
  const openWrite = async (database: string, statement: string) => {
    const held = new sql.Transaction(side);
    await held.begin();
    await new sql.Request(held).query(`USE [${database}]; ${statement}`);
    return held;
  };
  /** The engine with database `from` read as `to`: a stream names one database, here the two sides differ in name. */
  const as = (from: string, to: string): Engine =>
    new Proxy(engine, { get: (t, p) => (typeof (t as never)[p] === 'function' ? (db: string, ...rest: unknown[]) => ((t as never)[p] as (...x: unknown[]) => unknown).call(t, db === from ? to : db, ...rest) : (t as never)[p]) }) as Engine;
  const stream = () => ({ database: a, from: engine as Engine, to: as(a, b), origin: 'source' as const, name: 'contract:source' });
  /** Every object and trigger state of a database, to compare a schema before and after capture. */
  const schemaOf = async (database: string) =>
    (await side.request().query(`SELECT o.name, o.type, ISNULL(tr.is_disabled, 0) AS disabled FROM [${database}].sys.objects AS o LEFT JOIN [${database}].sys.triggers AS tr ON tr.object_id = o.object_id WHERE o.is_ms_shipped = 0 ORDER BY o.name`)).recordset;

  beforeEach(async () => {
    f = await mssqlLive.setup();
    engine = f.a.engine as MssqlEngine;
    [a, b] = [f.a.database, f.b.database];
    const url = new URL(MSSQL_URL!);
    const login = { server: url.hostname, port: Number(url.port || 1433), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), options: { encrypt: url.searchParams.get('encrypt') !== 'false', trustServerCertificate: url.searchParams.get('trustServerCertificate') !== 'false' } };
    // Azure SQL's default, under which a plain read misses a row committed a moment ago.
    const master = await new sql.ConnectionPool({ ...login, database: 'master' }).connect();
    for (const db of [a, b]) await master.request().query(`ALTER DATABASE [${db}] SET READ_COMMITTED_SNAPSHOT ON WITH ROLLBACK IMMEDIATE`);
    await master.close();
    side = await new sql.ConnectionPool({ ...login, database: 'master' }).connect();
  });
  afterEach(async () => {
    await side?.close();
    await f?.cleanup();
  });

  test('multi-row inserts, a key change and deletes are captured and replicate so that every row compares identical', async () => {
    const w0 = await engine.startCapture(a);
    const headOfB = await engine.startCapture(b);
    await engine.setWriteGate(b, { state: 'standby', migrationId: 'contract' });
    await side.request().query(`USE [${a}];
      INSERT INTO campaigns VALUES (10, N'x', NULL), (11, N'y', N'ü'), (12, N'z', NULL);
      UPDATE campaigns SET id = 13 WHERE id = 12;
      DELETE FROM budgets WHERE campaign_id = 1;
      UPDATE budgets SET day = '2026-12-01' WHERE campaign_id = 2;`);
    const changes = await engine.readChanges(a, w0, 100);
    // The old key of the updated row is there as well as the new one (the other side must delete it).
    expect([...new Set(changes.filter((c) => c.table === 'campaigns').map((c) => Number(c.key[0])))].sort()).toEqual([10, 11, 12, 13]);
    expect(changes.filter((c) => c.table === 'budgets').length).toBeGreaterThanOrEqual(4);
    const { cursor } = await applyRange(stream(), w0, await engine.changeHead(a));
    expect(await engine.appliedCursor(b, 'contract:source')).toBe(cursor);
    for (const table of await engine.listTables(a)) expect((await compareTable(f.a, f.b, table, 50)).differences).toEqual([]);
    // Applied changes are neither refused by the standby side's triggers nor captured there.
    expect(await engine.changeHead(b)).toBe(headOfB);
  });

  test('a transaction that took its seq and commits later is not skipped: readers stop at the safe point', async () => {
    const w0 = await engine.startCapture(a);
    const held = await openWrite(a, "INSERT INTO campaigns VALUES (20, N'held', NULL)"); // seq w0+1, uncommitted
    await side.request().query(`USE [${a}]; INSERT INTO campaigns VALUES (21, N'after', NULL)`); // seq w0+2, committed
    // The reader cannot get the change-log lock while the held writer has its seq: it reads nothing past w0.
    expect(await engine.readChanges(a, w0, 100)).toEqual([]);
    await held.commit();
    const read = await engine.readChanges(a, w0, 100);
    expect(read.map((c) => Number(c.key[0]))).toEqual([20, 21]);
  });

  test('a fence set while a writer is in its transaction waits for it; writers after it are refused with FencedWriteError', async () => {
    await engine.startCapture(a);
    await engine.setWriteGate(a, { state: 'open', migrationId: 'contract' });
    const order: string[] = [];
    const writer = await openWrite(a, "INSERT INTO campaigns VALUES (30, N'before fence', NULL)");
    const fence = engine.setWriteGate(a, { state: 'fenced', migrationId: 'contract' }).then(() => order.push('fenced'));
    await someoneWaitsOnALock();
    order.push('writer committed');
    await writer.commit();
    await fence;
    expect(order).toEqual(['writer committed', 'fenced']);
    // Any writer, not only airlift's: a plain UPDATE is refused by the trigger, and so is the tracking write.
    await expect(side.request().query(`USE [${a}]; UPDATE campaigns SET name = N'late' WHERE id = 1`)).rejects.toMatchObject({ number: 51000 });
    await expect(engine.writeEvents(a, [event('after-fence')])).rejects.toMatchObject({ name: 'FencedWriteError', retryable: true });
    await engine.setWriteGate(a, { state: 'open', migrationId: 'contract' });
    expect(await engine.writeEvents(a, [event('after-fence')])).toBe(1);
  });

  test('the applier writes into a standby side, never into an open one, and skips a batch its cursor passed', async () => {
    await engine.startCapture(b);
    await engine.setWriteGate(b, { state: 'standby', migrationId: 'contract' });
    const campaigns = (await engine.listTables(b)).find((t) => t.name === 'campaigns')!;
    const image = { table: campaigns, key: [2], row: [2, 'applied', null] };
    expect(await engine.applyChanges(b, 'contract:source', 5, [image])).toBe(1);
    expect(await engine.applyChanges(b, 'contract:source', 5, [{ ...image, row: [2, 'stale', null] }])).toBe(0);
    expect((await engine.readRows(b, campaigns, [[2]]))[0]).toEqual([2, 'applied', null]);
    expect(await engine.appliedCursor(b, 'contract:source')).toBe(5);
    expect(await engine.appliedCursor(b, 'm2:source')).toBe(0);
    await engine.setWriteGate(b, { state: 'open', migrationId: 'contract' });
    await expect(engine.applyChanges(b, 'contract:source', 6, [image])).rejects.toMatchObject({ name: 'ReplicationConflictError' });
  });

  test("the tenant's own trigger is disabled while the side is not open and enabled again, exactly it", async () => {
    await side.request().query(`USE [${b}]; CREATE TABLE audit (id int IDENTITY NOT NULL PRIMARY KEY, n int NOT NULL)`);
    await side.request().query(`USE [${b}]; EXEC(N'CREATE TRIGGER tenant_audit ON campaigns AFTER UPDATE AS INSERT INTO audit (n) SELECT id FROM inserted')`);
    await side.request().query(`USE [${b}]; EXEC(N'CREATE TRIGGER tenant_off ON budgets AFTER UPDATE AS RETURN'); DISABLE TRIGGER tenant_off ON budgets`);
    await engine.startCapture(b);
    await engine.setWriteGate(b, { state: 'standby', migrationId: 'contract' });
    const campaigns = (await engine.listTables(b)).find((t) => t.name === 'campaigns')!;
    await engine.applyChanges(b, 'contract:source', 1, [{ table: campaigns, key: [1], row: [1, 'via apply', null] }]);
    const audit = async () => (await side.request().query(`SELECT COUNT(*) AS n FROM [${b}].dbo.audit`)).recordset[0].n;
    expect(await audit()).toBe(0);
    await engine.setWriteGate(b, { state: 'open', migrationId: 'contract' });
    const states = (await side.request().query(`SELECT name, is_disabled FROM [${b}].sys.triggers WHERE name LIKE N'tenant[_]%' ORDER BY name`)).recordset;
    expect(states).toEqual([{ name: 'tenant_audit', is_disabled: false }, { name: 'tenant_off', is_disabled: true }]);
    await side.request().query(`USE [${b}]; UPDATE campaigns SET name = N'by the app' WHERE id = 1`);
    expect(await audit()).toBe(1);
  });

  test('removing capture leaves the schema exactly as it was; a retired source keeps only its fence', async () => {
    const before = await schemaOf(a);
    await engine.startCapture(a);
    await engine.setWriteGate(a, { state: 'fenced', migrationId: 'contract' });
    await engine.stopCapture(a, { keepFence: true });
    // Tables and triggers beyond the tenant's own: the gate, the cursors, one fence trigger per table.
    const kept = (await schemaOf(a)).filter((o) => !before.some((x) => x.name === o.name) && ['U', 'TR'].includes(String(o.type).trim()));
    expect(kept.map((o) => String(o.name).replace(/_[0-9a-f]{16}$/, '_<hash>')).sort()).toEqual(['airlift_cursors', 'airlift_fence_<hash>', 'airlift_fence_<hash>', 'airlift_fence_<hash>', 'airlift_gate']);
    await expect(side.request().query(`USE [${a}]; DELETE FROM budgets`)).rejects.toMatchObject({ number: 51000 });
    await engine.stopCapture(a, { keepFence: false });
    expect(await schemaOf(a)).toEqual(before);
  });

  test('a table without a primary key is refused before anything is installed, naming the table and the fix', async () => {
    await side.request().query(`USE [${a}]; CREATE TABLE heap (v int NULL)`);
    const before = await schemaOf(a);
    await expect(engine.startCapture(a)).rejects.toMatchObject({ name: 'PreflightError', message: expect.stringMatching(/table dbo\.heap has no primary key: .*add one/) });
    expect(await schemaOf(a)).toEqual(before);
  });

  test('a database left under its restoring name is dropped by its own migration only', async () => {
    await side.request().query(`CREATE DATABASE [${tsql.restoringName('c0ffee0123456789')}]`);
    expect(await engine.dropRestored('airlift_contract_never', 'another0migration')).toBe(false);
    expect(await engine.dropRestored('airlift_contract_never', 'c0ffee0123456789')).toBe(true);
    const { recordset } = await side.request().query(`SELECT DB_ID(N'${tsql.restoringName('c0ffee0123456789')}') AS id`);
    expect(recordset[0].id).toBeNull();
  });

  test('a wrong password is a PermissionError and a missing database a DatabaseMissingError, neither retried', async () => {
    const url = new URL(MSSQL_URL!);
    const wrong = new MssqlEngine({ server: url.hostname, port: Number(url.port || 1433), user: decodeURIComponent(url.username), password: 'not-the-password-0', encrypt: url.searchParams.get('encrypt') !== 'false', trustServerCertificate: url.searchParams.get('trustServerCertificate') !== 'false', compression: false });
    const denied = await wrong.listTables(a).catch((e: Error) => e);
    await wrong.close();
    expect(denied).toMatchObject({ name: 'PermissionError', retryable: false });
    expect((denied as Error).message).not.toContain('not-the-password-0');
    await expect(engine.listTables('airlift_contract_missing')).rejects.toMatchObject({ name: 'DatabaseMissingError', retryable: false });
  });
});

// Managed Instance (live): the ARM side that restores onto it, read-only here, when Azure is configured.
const MI = {
  subscriptionId: process.env.AIRLIFT_AZURE_SUBSCRIPTION_ID,
  resourceGroup: process.env.AIRLIFT_AZURE_RESOURCE_GROUP,
  managedInstance: process.env.AIRLIFT_AZURE_MANAGED_INSTANCE,
};
const miMissing = Object.entries(MI).filter(([, v]) => !v).map(([k]) => `AIRLIFT_AZURE_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`);
(miMissing.length ? describe.skip : describe)(
  `Azure SQL Managed Instance (live)${miMissing.length ? ` — skipped: ${miMissing.join(', ')} not set` : ''}`,
  () => {
    test('the instance is visible through ARM with DefaultAzureCredential', async () => {
      const { SqlManagementClient } = await import('@azure/arm-sql');
      const { DefaultAzureCredential } = await import('@azure/identity');
      const client = new SqlManagementClient(new DefaultAzureCredential(), MI.subscriptionId!);
      const instance = await client.managedInstances.get(MI.resourceGroup!, MI.managedInstance!);
      expect(instance.name).toBe(MI.managedInstance);
    });

    test('the restorer reads what preflight needs, changing nothing: the instance\'s storage and running restores, a database that is not there', async () => {
      const { ManagedInstanceRestore } = await import('../../azure/managed-instance');
      const { DefaultAzureCredential } = await import('@azure/identity');
      const restorer = ManagedInstanceRestore.connect({ ...MI, subscriptionId: MI.subscriptionId!, resourceGroup: MI.resourceGroup!, managedInstance: MI.managedInstance!, collation: 'SQL_Latin1_General_CP1_CI_AS', autoCompleteRestore: true }, new DefaultAzureCredential());
      expect(await restorer.probe('airlift_contract_never_there')).toEqual({ exists: false });
      expect(await restorer.restoringCount()).toBeGreaterThanOrEqual(0);
      expect(await restorer.prerequisites('airlift_contract_never_there', 1024)).toEqual([]);
    });
  },
);

if (!MSSQL_URL || miMissing.length)
  console.warn(
    `live engine tests skipped: ${[!MSSQL_URL ? 'SQL Server (set AIRLIFT_MSSQL_URL=mssql://user:password@host:port)' : '', miMissing.length ? `Managed Instance (set ${miMissing.join(', ')})` : ''].filter(Boolean).join('; ')}`,
  );
