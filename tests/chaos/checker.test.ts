// The fault matrix's judge, judged: a checker that lets a lost, duplicated or stranded tenant pass
// would make every figure of `npm run chaos` worthless. Each test builds the databases, the catalog
// and a gateway node's answer as a broken run would leave them, and asks the checker.
import Database from 'better-sqlite3';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTenantDatabase } from '../../cli/demo-data';
import { check, schemaDigest, type Observation } from '../../chaos/checker';

let dir: string;
let sourceFile: string;
let targetFile: string;
let before: { whole: string; tenantOnly: string };

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'airlift-checker-'));
  sourceFile = createTenantDatabase(join(dir, 'source'), 'tenant_1', 50, 1);
  targetFile = join(dir, 'cloud', 'tenant_1.db');
  before = { whole: schemaDigest(sourceFile), tenantOnly: schemaDigest(sourceFile, true) };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Stores these load events (by id) in a side's tracking table; an id given twice is stored twice. */
function storeEvents(file: string, ids: string[]): void {
  const db = new Database(file);
  const insert = db.prepare("INSERT INTO tracking_events (event_id, kind, occurred_at) VALUES (?, 'view', '2026-01-01T00:00:00Z')");
  for (const id of ids) insert.run(id);
  db.close();
}

/** A target restored from the source as it is now (the tenant's own schema, no airlift objects). */
function restoreTarget(): void {
  mkdirSync(join(dir, 'cloud'), { recursive: true });
  copyFileSync(sourceFile, targetFile);
}

function catalog(primary: 'source' | 'target', writeMode = 'read_write', outbox = 0): string {
  const file = join(dir, 'catalog.db');
  const db = new Database(file);
  db.exec('CREATE TABLE IF NOT EXISTS tenants (tenant_id TEXT PRIMARY KEY, primary_side TEXT, write_mode TEXT, outbox INTEGER)');
  db.prepare('INSERT OR REPLACE INTO tenants VALUES (?, ?, ?, ?)').run('t1', primary, writeMode, outbox);
  db.close();
  return file;
}

function observe(over: Partial<Observation> & Pick<Observation, 'expected' | 'ended' | 'acked'>): Promise<ReturnType<typeof check> extends Promise<infer V> ? V : never> {
  return check({
    files: { tenantId: 't1', sourceFile, targetFile, trackingTable: 'tracking_events' },
    catalogFile: join(dir, 'catalog.db'),
    gateways: [],
    adminToken: 'token',
    eventPrefix: 'load-t1-',
    sourceSchemaBefore: before,
    app: { lostOn: async () => [], writes: 0 },
    ...over,
  });
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => `load-t1-${i}`);

describe('the checker', () => {
  it('passes a tenant that rolled back cleanly, and one that completed cleanly', async () => {
    storeEvents(sourceFile, ids(5));
    catalog('source');
    expect((await observe({ expected: 'rolled_back', ended: 'rolled_back', acked: new Set(ids(5)) })).broken).toEqual([]);

    restoreTarget();
    storeEvents(targetFile, ['load-t1-5']);
    catalog('target');
    expect((await observe({ expected: 'completed', ended: 'completed', acked: new Set(ids(6)) })).broken).toEqual([]);
  });

  it('fails a tenant that lost an acknowledged event, and says where it is', async () => {
    restoreTarget();
    storeEvents(targetFile, ids(9));
    storeEvents(sourceFile, ['load-t1-9']); // acknowledged on the source after the target stopped receiving
    catalog('target');
    const verdict = await observe({ expected: 'completed', ended: 'completed', acked: new Set(ids(10)) });
    expect(verdict.ok).toBe(false);
    expect(verdict.eventsLost).toBe(1);
    expect(verdict.broken).toEqual([{ invariant: 'events', detail: expect.stringContaining('1 of 10 acknowledged events missing on the target (e.g. load-t1-9); 1 of them are on the source') }]);
  });

  it('fails a tenant that stored an acknowledged event twice', async () => {
    // A tenant's own tracking table need not have a unique event id (the fleet file names it).
    const db = new Database(sourceFile);
    db.exec('ALTER TABLE tracking_events RENAME TO tracking_events_keyed; CREATE TABLE tracking_events AS SELECT * FROM tracking_events_keyed WHERE 0; DROP TABLE tracking_events_keyed');
    db.close();
    before = { whole: schemaDigest(sourceFile), tenantOnly: schemaDigest(sourceFile, true) };
    storeEvents(sourceFile, [...ids(4), 'load-t1-2']);
    catalog('source');
    const verdict = await observe({ expected: 'rolled_back', ended: 'rolled_back', acked: new Set(ids(4)) });
    expect(verdict).toMatchObject({ ok: false, eventsDuplicated: 1, eventsLost: 0, stranded: false });
    expect(verdict.broken[0].detail).toContain('1 acknowledged events stored more than once on the source');
  });

  it('fails and calls stranded a tenant left fenced, frozen, journaled or routed to the wrong side', async () => {
    storeEvents(sourceFile, ids(3));
    const db = new Database(sourceFile);
    db.exec("CREATE TABLE airlift_gate (id INTEGER PRIMARY KEY, state TEXT NOT NULL); INSERT INTO airlift_gate VALUES (1, 'fenced');");
    db.close();
    catalog('target', 'read_only', 1);
    const verdict = await observe({ expected: 'rolled_back', ended: 'rolled_back', acked: new Set(ids(3)) });
    expect(verdict.stranded).toBe(true);
    expect(verdict.broken.map((b) => b.invariant).sort()).toEqual(['catalog', 'fence', 'journaling', 'source', 'write mode']);
  });

  it("fails a tenant whose gateway node still holds its fence or routes it to the other side", async () => {
    storeEvents(sourceFile, ids(2));
    catalog('source');
    const node: Server = createServer((req, res) => {
      const authorized = req.headers.authorization === 'Bearer token';
      res.writeHead(authorized ? 200 : 401, { 'content-type': 'application/json' });
      res.end(JSON.stringify(authorized ? { primary: 'target', writeMode: 'read_write', outbox: false, fenced: true } : { error: 'bad token' }));
    });
    await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(node.address() as { port: number }).port}`;
      const verdict = await observe({ expected: 'rolled_back', ended: 'rolled_back', acked: new Set(ids(2)), gateways: [url] });
      expect(verdict.stranded).toBe(true);
      expect(verdict.broken).toEqual([
        { invariant: 'fence', detail: `gateway ${url} still has the tenant fenced` },
        { invariant: 'routes', detail: `gateway ${url} routes to the target, the tenant lives on the source` },
      ]);
    } finally {
      await new Promise<void>((r) => node.close(() => r()));
    }
  });

  it('judges a terminated, reconciled tenant where the catalog says it lives, and a leftover target there as a failure', async () => {
    restoreTarget();
    storeEvents(targetFile, ids(4));
    catalog('target');
    expect((await observe({ expected: 'terminated', ended: 'terminated', acked: new Set(ids(4)) })).broken).toEqual([]);

    // Reconcile put it back on its source but left the target: a second copy nobody serves.
    storeEvents(sourceFile, ids(4));
    catalog('source');
    const leftover = await observe({ expected: 'terminated', ended: 'terminated', acked: new Set(ids(4)) });
    expect(leftover.broken).toEqual([{ invariant: 'target', detail: 'terminated and repaired, the tenant lives on its source, but the target database is still there' }]);
  });

  it('accepts a refusal only with its documented reason, and fails the rows of a deploy that were lost', async () => {
    storeEvents(sourceFile, ids(2));
    catalog('source');
    const db = new Database(sourceFile);
    db.exec("CREATE TABLE release_notes (id INTEGER PRIMARY KEY, note TEXT); INSERT INTO release_notes (note) VALUES ('v2 shipped')");
    db.close();
    const changed = { whole: schemaDigest(sourceFile), tenantOnly: schemaDigest(sourceFile, true) };
    const expected = [{ outcome: 'completed' as const }, { outcome: 'failed' as const, reason: /changed on the \w+ since journaling/ }];
    const rows = [{ table: 'release_notes', column: 'note', value: 'v2 shipped' }];

    const refused = await observe({ expected, ended: 'failed', detail: 'table(s) release_notes changed on the source since journaling', acked: new Set(ids(2)), sourceSchemaChanged: changed, harnessRows: rows });
    expect(refused.broken).toEqual([]);

    const otherReason = await observe({ expected, ended: 'failed', detail: 'the worker ran out of disk', acked: new Set(ids(2)), sourceSchemaChanged: changed, harnessRows: rows });
    expect(otherReason.broken.map((b) => b.invariant)).toEqual(['outcome']);

    const noChangeAllowed = await observe({ expected, ended: 'failed', detail: 'table(s) release_notes changed on the source since journaling', acked: new Set(ids(2)), harnessRows: rows });
    expect(noChangeAllowed.broken.map((b) => b.invariant)).toEqual(['source', 'source']);

    const lostRow = await observe({ expected, ended: 'failed', detail: 'table(s) release_notes changed on the source since journaling', acked: new Set(ids(2)), sourceSchemaChanged: changed, harnessRows: [...rows, { table: 'release_notes', column: 'note', value: 'v3 shipped' }] });
    expect(lostRow.broken).toEqual([{ invariant: 'app writes', detail: expect.stringContaining('1 of the rows written by the harness') }]);
  });

  it("fails a tenant whose application writes are missing, or whose application could not write", async () => {
    storeEvents(sourceFile, ids(1));
    catalog('source');
    const verdict = await observe({ expected: 'rolled_back', ended: 'rolled_back', acked: new Set(ids(1)), app: { lostOn: async (side) => (side === 'source' ? ['ads id=1000001'] : []), writes: 3, stuck: 'a write waited 31 s' } });
    expect(verdict.broken.map((b) => b.detail)).toEqual(['1 acknowledged application writes missing on the source (e.g. ads id=1000001)', 'the application could not write: a write waited 31 s']);
    expect(verdict.appWritesLost).toBe(1);
  });

  it('fails a workflow still running at the bound as stranded', async () => {
    storeEvents(sourceFile, ids(1));
    catalog('source');
    const verdict = await observe({ expected: 'completed', ended: 'running', acked: new Set(ids(1)) });
    expect(verdict).toMatchObject({ ok: false, stranded: true });
    expect(verdict.broken.map((b) => b.invariant)).toEqual(['ended']);
  });
});
