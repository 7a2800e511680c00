// The PostgreSQL engine on airlift's private cluster (or the server PG* variables name): what the
// contract test cannot show on SQLite. Sessions of the test's own stand in for the application; the
// assertions read the databases through those sessions, not through the engine under test.
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type pg from 'pg';
import { PostgresEngine } from '../../engines/postgres';
import { createPostgresTenantDatabase } from '../../cli/demo-data-postgres';
import { compareTable } from '../../engines/table-verifier';
import { DEFAULT_TRACKING } from '../../config/fleet';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres';

let pgs: TestPostgres;
let engine: PostgresEngine;
let db: string;
let work: string;
const clients: pg.Client[] = [];
const session = async (database = db) => {
  const c = await pgs.client(database);
  clients.push(c);
  return c;
};
const event = (id: string) => ({ event_id: id, ad_id: 1, kind: 'view', occurred_at: '2026-11-27T00:00:00Z', user_agent: null, payload: null });

beforeAll(async () => {
  pgs = await startTestPostgres();
  work = mkdtempSync(join(tmpdir(), 'airlift-pg-work-'));
});
afterAll(async () => {
  await pgs?.stop();
  rmSync(work, { recursive: true, force: true });
});
beforeEach(async () => {
  db = pgs.name('tenant');
  await createPostgresTenantDatabase(pgs.server, db, 200, 3);
  engine = new PostgresEngine({ ...pgs.server, ssl: 'disable', restoreJobs: 2 });
});
afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
  await engine.close();
});

test('a change that took its seq first and commits last is not skipped: while that transaction is open the reader passes nothing, then reads both in seq order', async () => {
  const w0 = await engine.startCapture(db);
  const [slow, fast] = [await session(), await session()];
  await slow.query('BEGIN');
  await slow.query("INSERT INTO campaigns (id, name, status, starts_at) VALUES (100, 'slow', 'active', '2026-01-01')"); // seq w0+1, held open
  await fast.query("INSERT INTO campaigns (id, name, status, starts_at) VALUES (101, 'fast', 'active', '2026-01-01')"); // seq w0+2, committed
  // The window is held open across the read: the committed later change must not be passed alone.
  expect(await engine.readChanges(db, w0, 100)).toEqual([]);
  expect(await engine.changeHead(db)).toBe(w0);
  await slow.query('COMMIT');
  const read = await engine.readChanges(db, w0, 100);
  expect(read.map((c) => [c.table, Number(c.key[0])])).toEqual([['campaigns', 100], ['campaigns', 101]]);
  expect(read[0].seq).toBeLessThan(read[1].seq);
});

test('under concurrent writers committing out of seq order, a reader that only ever moves its cursor forward sees every committed key', async () => {
  const w0 = await engine.startCapture(db);
  const writers = await Promise.all([1, 2, 3, 4].map(() => session()));
  const seen = new Set<number>();
  let cursor = w0;
  let writing = true;
  const reader = (async () => {
    while (writing) {
      for (const c of await engine.readChanges(db, cursor, 50)) {
        cursor = Math.max(cursor, c.seq);
        if (c.table === 'campaigns') seen.add(Number(c.key[0]));
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const written: number[] = [];
  await Promise.all(writers.map(async (w, n) => {
    for (let i = 0; i < 25; i++) {
      const id = 1000 + n * 100 + i;
      await w.query('BEGIN');
      await w.query("INSERT INTO campaigns (id, name, status, starts_at) VALUES ($1, 'load', 'active', '2026-01-01')", [id]);
      // Each transaction stays open a different while, so commits land out of seq order.
      await new Promise((r) => setTimeout(r, (id * 7) % 13));
      await w.query('COMMIT');
      written.push(id);
    }
  }));
  writing = false;
  await reader;
  for (const c of await engine.readChanges(db, cursor, 1000)) if (c.table === 'campaigns') seen.add(Number(c.key[0]));
  // The checker: every id the writers committed, read from the table itself, was seen by the reader.
  const committed = (await (await session()).query<{ id: number }>('SELECT id FROM campaigns WHERE id >= 1000 ORDER BY id')).rows.map((r) => r.id);
  expect(committed.length).toBe(100);
  expect(committed.filter((id) => !seen.has(id))).toEqual([]);
});

test('a fence waits for a writer inside its transaction; after it every writer is refused inside the database, the tracking writer with FencedWriteError', async () => {
  await engine.startCapture(db);
  await engine.setWriteGate(db, { state: 'open', migrationId: 'm1' });
  const app = await session();
  await app.query('BEGIN');
  await app.query("UPDATE campaigns SET name = 'before the fence' WHERE id = 1");
  const order: string[] = [];
  const fence = engine.setWriteGate(db, { state: 'fenced', migrationId: 'm1' }).then(() => order.push('fenced'));
  await new Promise((r) => setTimeout(r, 300));
  order.push('writer committed');
  await app.query('COMMIT');
  await fence;
  expect(order).toEqual(['writer committed', 'fenced']);
  await expect(app.query("UPDATE campaigns SET name = 'late' WHERE id = 1")).rejects.toMatchObject({ code: 'AL409' });
  await expect(app.query('TRUNCATE budgets')).rejects.toMatchObject({ code: 'AL409' });
  const writer = engine.openEventWriter(db, DEFAULT_TRACKING);
  await expect(writer.write([event('after-fence')])).rejects.toMatchObject({ name: 'FencedWriteError', retryable: true });
  await engine.setWriteGate(db, { state: 'open', migrationId: 'm1' });
  expect(await writer.write([event('after-fence'), event('after-fence')])).toBe(1);
  expect(await writer.write([event('after-fence')])).toBe(0);
});

test('TRUNCATE is captured row by row, and an update that moves a key logs the old key and the new', async () => {
  const w0 = await engine.startCapture(db);
  const app = await session();
  const budgets = (await app.query<{ n: number }>('SELECT count(*)::int AS n FROM budgets')).rows[0].n;
  await app.query('UPDATE tracking_events SET seq = 5000 WHERE seq = 3');
  await app.query('TRUNCATE budgets');
  const changes = await engine.readChanges(db, w0, 10_000);
  expect(changes.filter((c) => c.table === 'tracking_events').map((c) => Number(c.key[0]))).toEqual([3, 5000]);
  expect(changes.filter((c) => c.table === 'budgets').length).toBe(budgets);
  expect(new Set(changes.filter((c) => c.table === 'budgets').map((c) => c.key.join('/'))).size).toBe(budgets);
});

test('snapshot, restore under ownership, apply, compare: the restored copy is identical; another migration may not take or drop it', async () => {
  await engine.startCapture(db);
  const artifact = await engine.snapshot(db, join(work, `${db}.pgdump`));
  const copy = pgs.name('restored');
  await engine.restore(copy, artifact, 'm1');
  expect(await engine.probe(copy)).toMatchObject({ exists: true, restoredBy: 'm1' });
  for (const table of await engine.listTables(db)) expect((await compareTable({ engine, database: db }, { engine, database: copy }, table, 64)).differences).toEqual([]);
  await expect(engine.restore(copy, artifact, 'm2')).rejects.toMatchObject({ name: 'TargetInUseError' });
  await expect(engine.restore(db, artifact, 'm1')).rejects.toMatchObject({ name: 'TargetExistsError' });
  expect(await engine.dropRestored(copy, 'm2')).toBe(false);
  expect(await engine.dropRestored(copy, 'm1')).toBe(true);
  expect(await engine.probe(copy)).toEqual({ exists: false });
});

test('sequences and identity columns are carried as key counters, raised and never lowered', async () => {
  const other = pgs.name('other');
  await createPostgresTenantDatabase(pgs.server, other, 10, 3);
  const counters = await engine.keyCounters(db);
  expect(counters['public.tracking_events_seq_seq']).toBe(200);
  await engine.raiseKeyCounters(other, { ...counters, 'public.not_there': 5 });
  expect((await engine.keyCounters(other))['public.tracking_events_seq_seq']).toBe(200);
  await engine.raiseKeyCounters(other, { 'public.tracking_events_seq_seq': 50 });
  expect((await engine.keyCounters(other))['public.tracking_events_seq_seq']).toBe(200);
  const app = await session(other);
  expect((await app.query<{ seq: string }>("INSERT INTO tracking_events (event_id, kind, occurred_at) VALUES ('n', 'view', 'x') RETURNING seq")).rows[0].seq).toBe('201');
});

test('removing capture leaves the schema as it was; a retired source keeps only its fence', async () => {
  const app = await session();
  const objects = async () => (await app.query<{ o: string }>(`
    SELECT 'trigger ' || tgname AS o FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL SELECT 'function ' || p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1`)).rows.map((r) => r.o);
  const before = await objects();
  await engine.startCapture(db);
  await engine.setWriteGate(db, { state: 'fenced', migrationId: 'm1' });
  await engine.stopCapture(db, { keepFence: true });
  expect((await objects()).filter((o) => !before.includes(o) && o.startsWith('trigger')).sort()).toEqual(Array(5).fill('trigger airlift_gate'));
  await expect(app.query('DELETE FROM budgets')).rejects.toMatchObject({ code: 'AL409' });
  await engine.stopCapture(db, { keepFence: false });
  expect(await objects()).toEqual(before);
});

test('preflight names what capture cannot carry, each with its fix', async () => {
  const app = await session();
  await app.query('CREATE TABLE heap (v int)');
  await app.query('CREATE SCHEMA reports; CREATE TABLE reports.daily (id int PRIMARY KEY)');
  const { problems } = await engine.captureReadiness(db);
  expect(problems).toEqual([
    expect.stringMatching(/^table "heap" has no primary key .*add a primary key$/),
    expect.stringMatching(/^table reports\.daily is outside the public schema.*SET SCHEMA public/),
  ]);
});

test('a fence with a lease lapses by the database clock: writers then pass, and a compare-and-set that needs it unexpired is refused', async () => {
  await engine.startCapture(db);
  await engine.setWriteGate(db, { state: 'fenced', migrationId: 'm1', token: 't1', leaseMs: 400 });
  const app = await session();
  await expect(app.query("UPDATE campaigns SET name = 'held' WHERE id = 1")).rejects.toMatchObject({ code: 'AL409' });
  await new Promise((r) => setTimeout(r, 600));
  expect(await engine.writeGate(db)).toMatchObject({ state: 'fenced', lapsed: true });
  await app.query("UPDATE campaigns SET name = 'after the lease' WHERE id = 1");
  expect(await engine.setWriteGate(db, { state: 'open', migrationId: 'm1' }, { token: 't1', unexpired: true })).toBe(false);
});
