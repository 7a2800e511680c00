// The engine contract: what every engine must do for airlift to move its tenants. SQLite runs it
// always. SQL Server runs it when AIRLIFT_MSSQL_URL is set (mssql://user:password@host:port); else
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
      await expect(f.tamper('a')).rejects.toThrow(/fenced/);
      await f.a.engine.setWriteGate(f.a.database, { state: 'open', migrationId: 'm1' });
      await f.a.engine.stopCapture(f.a.database, { keepFence: false });
      expect(await f.a.engine.changeHead(f.a.database)).toBe(0);
    });
  });
}


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
  },
);

if (!MSSQL_URL || miMissing.length)
  console.warn(
    `live engine tests skipped: ${[!MSSQL_URL ? 'SQL Server (set AIRLIFT_MSSQL_URL=mssql://user:password@host:port)' : '', miMissing.length ? `Managed Instance (set ${miMissing.join(', ')})` : ''].filter(Boolean).join('; ')}`,
  );
