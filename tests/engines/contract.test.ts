// The engine contract: what every engine must do for airlift to move its tenants. SQLite runs it
// always. SQL Server runs it when AIRLIFT_MSSQL_URL is set (mssql://user:password@host:port); else
// those tests are reported as skipped, with the reason in their names, never as passed.
import Database from 'better-sqlite3';
import sql from 'mssql';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Engine, OutboxEntry } from '../../engines/engine';
import { SqliteEngine } from '../../engines/sqlite';
import { MssqlEngine } from '../../engines/mssql';
import * as tsql from '../../engines/mssql-sql';
import { compareTable } from '../../engines/table-verifier';
import { createTenantDatabase } from '../../cli/demo-data';

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

for (const subject of [sqlite, mssqlLive]) {
  if (subject.skipReason) {
    describe.skip(`${subject.name} engine contract — skipped: ${subject.skipReason}`, () => {
      test('lists tables, compares, names differences, applies the outbox idempotently', () => undefined);
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

    test('outbox entries apply once: a second apply adds nothing and the cursor keeps the highest seq', async () => {
      const { engine, database } = f.b;
      await engine.ensureOutbox(database);
      expect(await engine.outboxHead(database)).toBe(0);
      const row = (seq: number) => ({ seq, event_id: `contract-${seq}`, ad_id: 1, kind: 'view', occurred_at: '2026-11-27T00:00:00Z', user_agent: null, payload: null });
      const entries: OutboxEntry[] = [100001, 100002].map((seq) => ({ seq, eventId: `contract-${seq}`, row: row(seq) }));
      expect(await engine.applyOutbox(database, 'source', entries)).toBe(2);
      expect(await engine.applyOutbox(database, 'source', entries)).toBe(0);
      expect(await engine.applyOutbox(database, 'source', entries.slice(0, 1))).toBe(0);
      expect(await engine.appliedCursor(database, 'source')).toBe(100002);
      const table = (await engine.listTables(database)).find((t) => t.name === 'tracking_events')!;
      expect(Number((await engine.trackingHead(database, table))![0])).toBe(100002);
    });
  });
}

// SQL Server (live) only: what the T-SQL snapshots promise, checked against a real server.
(MSSQL_URL ? describe : describe.skip)(`SQL Server (live) outbox, gate and errors${MSSQL_URL ? '' : ' — skipped: AIRLIFT_MSSQL_URL is not set'}`, () => {
  let f: Fixture;
  let engine: MssqlEngine;
  let database: string;
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
  /** Runs the tracking write inside a transaction the test holds open (its own COMMIT only nests). */
  const openWrite = async (id: string) => {
    const table = (await engine.listTables(database)).find((t) => t.name === 'tracking_events')!;
    const statement = tsql.writeEventStatement({ schema: 'dbo', name: table.name, key: table.key, columns: [{ name: 'seq', type: 'bigint', identity: true }, ...table.columns.filter((c) => c !== 'seq').map((c) => ({ name: c, type: 'nvarchar' }))] });
    const held = new sql.Transaction(side);
    await held.begin();
    const request = new sql.Request(held);
    for (const [k, v] of Object.entries({ ...statement.params, ...Object.fromEntries(Object.entries(event(id)).map(([c, v]) => [`v_${c}`, v])), outbox: 1 })) request.input(k, v as never);
    await request.query(statement.sql);
    return held;
  };

  beforeEach(async () => {
    f = await mssqlLive.setup();
    engine = f.b.engine as MssqlEngine;
    database = f.b.database;
    const url = new URL(MSSQL_URL!);
    const login = { server: url.hostname, port: Number(url.port || 1433), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), options: { encrypt: url.searchParams.get('encrypt') !== 'false', trustServerCertificate: url.searchParams.get('trustServerCertificate') !== 'false' } };
    // Azure SQL's default, and the setting under which issue 7 item 9 loses events.
    const master = await new sql.ConnectionPool({ ...login, database: 'master' }).connect();
    await master.request().query(`ALTER DATABASE [${database}] SET READ_COMMITTED_SNAPSHOT ON WITH ROLLBACK IMMEDIATE`);
    await master.close();
    side = await new sql.ConnectionPool({ ...login, database }).connect();
    await engine.ensureOutbox(database);
  });
  afterEach(async () => {
    await side?.close();
    await f?.cleanup();
  });

  test('a write that commits later cannot get a lower seq than one a reader already saw: no event skipped', async () => {
    const first = await openWrite('held-1'); // holds the outbox lock and seq N, uncommitted
    const second = engine.writeEvents(database, [event('after-2')], true); // must wait for the lock
    await someoneWaitsOnALock();
    const { recordset } = await side.request().query('SELECT COUNT(*) AS n FROM dbo.airlift_outbox WITH (NOLOCK)');
    expect(recordset[0].n).toBe(1); // the second writer has no seq yet
    await first.commit();
    expect(await second).toBe(1);
    const read = await engine.readOutbox(database, 0, 100);
    expect(read.map((e) => e.eventId)).toEqual(['held-1', 'after-2']);
    expect(read[0].seq).toBeLessThan(read[1].seq);
  });

  test('a fence set while a writer is in its transaction waits for it; writers after it are refused with FencedWriteError', async () => {
    const order: string[] = [];
    await engine.setWriteGate(database, { state: 'open', migrationId: 'contract' });
    const writer = await openWrite('before-fence');
    const fence = engine.setWriteGate(database, { state: 'fenced', migrationId: 'contract' }).then(() => order.push('fenced'));
    await someoneWaitsOnALock();
    order.push('writer committed');
    await writer.commit();
    await fence;
    expect(order).toEqual(['writer committed', 'fenced']);
    await expect(engine.writeEvents(database, [event('after-fence')], true)).rejects.toMatchObject({ name: 'FencedWriteError', retryable: true });
    expect(await engine.writeGate(database)).toMatchObject({ state: 'fenced', migrationId: 'contract' });
    await engine.setWriteGate(database, { state: 'open', migrationId: 'contract' });
    expect(await engine.writeEvents(database, [event('after-fence')], true)).toBe(1);
  });

  test('a replicated event whose key holds a different event stops replication with ReplicationConflictError', async () => {
    const row = (seq: number, id: string) => ({ seq, event_id: id, ad_id: 1, kind: 'view', occurred_at: '2026-11-27T00:00:00Z', user_agent: null, payload: null });
    expect(await engine.applyOutbox(database, 'm1:source', [{ seq: 200001, eventId: 'mine', row: row(200001, 'mine') }])).toBe(1);
    await expect(engine.applyOutbox(database, 'm1:source', [{ seq: 200002, eventId: 'theirs', row: row(200001, 'theirs') }])).rejects.toMatchObject({ name: 'ReplicationConflictError' });
    expect(await engine.appliedCursor(database, 'm1:source')).toBe(200001);
    expect(await engine.appliedCursor(database, 'm2:source')).toBe(0);
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
    const denied = await wrong.listTables(database).catch((e: Error) => e);
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
