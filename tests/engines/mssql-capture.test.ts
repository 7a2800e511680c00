// What MssqlEngine sends for change capture, statement by statement, through a recording stand-in for
// the driver (not SQL Server, not an emulator: it answers each statement from a script and keeps the
// order, the transaction and the declared parameter types). The server's behaviour is the live
// contract suite's (tests/engines/contract.test.ts, AIRLIFT_MSSQL_URL).
import sql from 'mssql';
import { MssqlEngine, type Transaction } from '../../engines/mssql';
import * as capture from '../../engines/mssql-capture-sql';
import * as tsql from '../../engines/mssql-sql';
import type { TableInfo } from '../../engines/engine';

interface Sent {
  sql: string;
  inputs: Record<string, { type?: { type: unknown; length?: number }; value: unknown }>;
  via: 'pool' | 'transaction';
}

/** The catalog of the destination: campaigns (identity key) and budgets (composite key with a date). */
const catalog = [
  { schema_name: 'dbo', table_name: 'budgets', column_name: 'campaign_id', type_name: 'int', is_identity: false, key_ordinal: 1, max_length: 4, precision: 10, scale: 0, is_computed: false },
  { schema_name: 'dbo', table_name: 'budgets', column_name: 'day', type_name: 'date', is_identity: false, key_ordinal: 2, max_length: 3, precision: 10, scale: 0, is_computed: false },
  { schema_name: 'dbo', table_name: 'budgets', column_name: 'spend', type_name: 'decimal', is_identity: false, key_ordinal: null, max_length: 9, precision: 18, scale: 4, is_computed: false },
  { schema_name: 'dbo', table_name: 'campaigns', column_name: 'id', type_name: 'int', is_identity: true, key_ordinal: 1, max_length: 4, precision: 10, scale: 0, is_computed: false },
  { schema_name: 'dbo', table_name: 'campaigns', column_name: 'name', type_name: 'nvarchar', is_identity: false, key_ordinal: null, max_length: 200, precision: 0, scale: 0, is_computed: false },
];

class RecordingEngine extends MssqlEngine {
  readonly sent: Sent[] = [];
  readonly outcomes: string[] = [];
  constructor(private readonly answer: (sqlText: string) => Record<string, unknown>[]) {
    super({ server: 'sql01', port: 1433, encrypt: false, trustServerCertificate: true, compression: false });
  }
  private request(via: Sent['via']) {
    const sent: Sent = { sql: '', inputs: {}, via };
    const request = {
      input: (name: string, ...args: unknown[]) => {
        sent.inputs[name] = args.length === 1 ? { value: args[0] } : { type: args[0] as Sent['inputs'][string]['type'], value: args[1] };
        return request;
      },
      query: async (text: string) => {
        sent.sql = text;
        this.sent.push(sent);
        return { recordset: this.answer(text) };
      },
    };
    return request as unknown as sql.Request;
  }
  protected override pool(): Promise<sql.ConnectionPool> {
    return Promise.resolve({ request: () => this.request('pool') } as unknown as sql.ConnectionPool);
  }
  protected override async transaction(): Promise<Transaction> {
    this.outcomes.push('begin');
    return { request: () => this.request('transaction'), commit: async () => void this.outcomes.push('commit'), rollback: async () => void this.outcomes.push('rollback') };
  }
}

const scripted = (answers: { starts: string; rows: Record<string, unknown>[] }[]) => (text: string) => {
  if (text === tsql.listTablesQuery.sql) return catalog;
  return answers.find((a) => text.startsWith(a.starts))?.rows ?? [];
};

const campaigns: TableInfo = { name: 'campaigns', columns: ['name', 'id'], key: ['id'], keyKind: 'primary-key' }; // the origin's column order differs
const budgets: TableInfo = { name: 'budgets', columns: ['campaign_id', 'day', 'spend'], key: ['campaign_id', 'day'], keyKind: 'primary-key' };

describe('applyChanges sends one transaction: refuse or skip, deletes, upserts, clear the mark, advance the cursor', () => {
  test('in that order, each value with its declared type, columns matched by name', async () => {
    const engine = new RecordingEngine(scripted([
      { starts: capture.applyBeginStatement.sql, rows: [{ skip: false }] },
      { starts: 'DELETE t FROM', rows: [{ written: 1 }] },
      { starts: 'DECLARE @updated', rows: [{ written: 1 }] },
    ]));
    const written = await engine.applyChanges('acme', 'm1:source', 42, [
      { table: campaigns, key: [7], row: ['Über', 7] },
      { table: budgets, key: [1, '2026-11-01'], row: null },
    ]);
    expect(written).toBe(2);
    const inTx = engine.sent.filter((s) => s.via === 'transaction');
    expect(inTx.map((s) => s.sql.split('\n')[0].slice(0, 40))).toEqual([
      capture.applyBeginStatement.sql.split('\n')[0],
      'DELETE t FROM [dbo].[budgets] AS t JOIN ',
      'DECLARE @updated int = 0, @inserted int ',
      capture.applyEndStatement.sql.slice(0, 40),
      tsql.advanceCursorStatement.sql.slice(0, 40),
    ]);
    expect(engine.outcomes).toEqual(['begin', 'commit']);
    const [begin, del, upsert, , advance] = inTx;
    expect(begin.inputs.upTo).toEqual({ type: expect.objectContaining({ type: sql.BigInt }), value: 42 });
    expect(begin.inputs.stream.value).toBe('m1:source');
    expect(del.inputs.k0_0).toEqual({ type: expect.objectContaining({ type: sql.Int }), value: 1 });
    expect(del.inputs.k0_1).toEqual({ type: expect.objectContaining({ type: sql.NVarChar, length: 64 }), value: '2026-11-01' });
    // Destination order is (id, name); the image came as (name, id).
    expect(upsert.inputs.r0_0.value).toBe(7);
    expect(upsert.inputs.r0_1).toEqual({ type: expect.objectContaining({ type: sql.NVarChar, length: 100 }), value: 'Über' });
    expect(upsert.sql).toContain('SET IDENTITY_INSERT [dbo].[campaigns] ON;');
    expect(advance.inputs.cursor).toEqual({ type: expect.objectContaining({ type: sql.BigInt }), value: 42 });
  });

  test('a batch the cursor has passed writes nothing and does not move the cursor', async () => {
    const engine = new RecordingEngine(scripted([{ starts: capture.applyBeginStatement.sql, rows: [{ skip: true }] }]));
    expect(await engine.applyChanges('acme', 'm1:source', 42, [{ table: campaigns, key: [7], row: ['x', 7] }])).toBe(0);
    expect(engine.sent.filter((s) => s.via === 'transaction').map((s) => s.sql)).toEqual([capture.applyBeginStatement.sql]);
    expect(engine.outcomes).toEqual(['begin', 'commit']);
  });

  test('a refusal from the server rolls the transaction back and arrives as ReplicationConflictError', async () => {
    const engine = new RecordingEngine((text) => {
      if (text === tsql.listTablesQuery.sql) return catalog;
      if (text === capture.applyBeginStatement.sql) throw Object.assign(new Error('airlift_conflict: changes are not applied to a database that takes writes (its write gate is open)'), { number: capture.CONFLICT_ERROR });
      return [];
    });
    await expect(engine.applyChanges('acme', 'm1:source', 42, [{ table: campaigns, key: [7], row: ['x', 7] }])).rejects.toMatchObject({ name: 'ReplicationConflictError' });
    expect(engine.outcomes).toEqual(['begin', 'rollback']);
  });
});

describe('readChanges never reads past the safe point', () => {
  test('no safe point granted (a writer holds the log): the previous one stands, and nothing past it is read', async () => {
    let safe: number | null = null;
    const answer = (text: string) => {
      if (text === capture.captureInstalledQuery.sql) return [{ installed: true }];
      if (text === capture.safePointStatement.sql) return [{ safe_head: safe }];
      if (text === capture.readChangesQuery.sql) return [{ seq: '7', tbl: 'budgets', k0: 1, k1: '2026-11-01', k2: null, k3: null, k4: null, k5: null, k6: null, k7: null }];
      return [];
    };
    const live = new RecordingEngine(answer);
    expect(await live.readChanges('acme', 0, 100)).toEqual([]);
    expect(live.sent.some((s) => s.sql === capture.readChangesQuery.sql)).toBe(false);
    safe = 7;
    expect(await live.readChanges('acme', 0, 100)).toEqual([{ seq: 7, table: 'budgets', key: [1, '2026-11-01'] }]);
    const read = live.sent.find((s) => s.sql === capture.readChangesQuery.sql)!;
    expect(read.inputs.upTo).toEqual({ type: expect.objectContaining({ type: sql.BigInt }), value: 7 });
    safe = null;
    expect(await live.changeHead('acme')).toBe(7); // the last safe point, not a guess past it
  });
});

describe('foreign keys: held on a standby target only, given back without a scan under the fence, trusted again online (issue 20, defect 2)', () => {
  const gateRow = (state: string) => (text: string) => (text === tsql.lockGateQuery.sql ? [{ state, migration_id: 'm1', token: null }] : text === tsql.setGateStatement.sql ? [{ applied: true }] : []);

  test('standby holds triggers and foreign keys; fenced (the source) holds triggers only; open gives back WITH NOCHECK', async () => {
    const sentFor = async (from: string, to: 'standby' | 'fenced' | 'open') => {
      const engine = new RecordingEngine(gateRow(from));
      expect(await engine.setWriteGate('acme', { state: to, migrationId: 'm1' })).toBe(true);
      return engine.sent.filter((s) => s.via === 'transaction').map((s) => s.sql);
    };
    expect(await sentFor('open', 'standby')).toContain(capture.holdStatement.sql);
    const fencing = await sentFor('open', 'fenced');
    expect(fencing).toContain(capture.holdTriggersStatement.sql);
    expect(fencing).not.toContain(capture.holdStatement.sql);
    expect(await sentFor('standby', 'open')).toContain(capture.releaseStatement.sql);
  });

  test('stopCapture on the primary gives back what is held in one transaction, then re-trusts the keys online, then drops the record', async () => {
    const engine = new RecordingEngine(scripted([]));
    await engine.stopCapture('acme', { keepFence: false });
    const order = engine.sent.map((s) => `${s.via}:${s.sql === capture.releaseStatement.sql ? 'release' : s.sql === capture.retrustStatement.sql ? 'retrust' : s.sql.startsWith("IF OBJECT_ID(N'dbo.airlift_changes'") ? 'drop' : 'other'}`);
    const at = (step: string) => order.indexOf(step);
    expect(at('transaction:release')).toBeGreaterThan(-1);
    expect(at('pool:retrust')).toBeGreaterThan(at('transaction:release'));
    expect(at('transaction:drop')).toBeGreaterThan(at('pool:retrust'));
    expect(engine.outcomes).toEqual(['begin', 'commit', 'begin', 'commit']);
    expect(capture.dropCaptureTablesStatement(true).sql).toContain('DROP TABLE dbo.airlift_untrusted;');
  });

  test('a retired source (keepFence) is not re-trusted: its keys were never held', async () => {
    const engine = new RecordingEngine(scripted([]));
    await engine.stopCapture('acme', { keepFence: true });
    expect(engine.sent.some((s) => s.sql === capture.retrustStatement.sql)).toBe(false);
  });
});

describe('preflight refuses a source older than SQL Server 2016 SP1 with the reason (issue 20, defect 4)', () => {
  const at = (product_version: string, engine_edition = 3) => new RecordingEngine((text) => (text.startsWith("SELECT CAST(SERVERPROPERTY('ProductVersion')") ? [{ product_version, engine_edition }] : []));
  test.each([
    ['10.50.6000.34', true],
    ['13.0.1601.5', true],
    ['13.0.4001.0', false],
    ['16.0.4135.4', false],
  ])('%s refused: %s', async (version, refused) => {
    const { problems } = await at(version).captureReadiness();
    if (refused) expect(problems).toEqual([expect.stringMatching(new RegExp(`change capture needs SQL Server 2016 SP1 \\(13\\.0\\.4001\\) or later: .*which ${version.replace(/\./g, '\\.')} does not accept; upgrade the source first`))]);
    else expect(problems).toEqual([]);
  });
  test('Azure SQL (EngineEdition 5 or 8) runs the newest T-SQL', async () => {
    expect((await at('12.0.2000.8', 8).captureReadiness()).problems).toEqual([]);
  });
});
