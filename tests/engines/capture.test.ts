// Change capture on SQLite, on a tenant schema unlike the demo's (quoted and unicode names, text and
// composite keys, WITHOUT ROWID, no primary key, BLOBs, a unique column, a trigger of the tenant's
// own), written to by a separate process the whole time: the replicated target is identical row for
// row, the tenant's trigger fires once, a closed gate refuses the tenant's own writes, and removing
// capture gives the schema back exactly as it was.
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteEngine } from '../../engines/sqlite';
import { ReplicationConflictError } from '../../protocol/errors';
import { applyRange, streamName, type ReplicationStream } from '../../protocol/replicator';
import { ChangedKeys, compareChangedRows } from '../../protocol/changed-rows';
import { compareTable, compareTableSets } from '../../engines/table-verifier';
import { CUSTOMERS, createHeldOutDatabase, dumpRows, schemaOf, writerScript } from '../helpers/held-out-schema';

let dir: string;
let source: SqliteEngine;
let target: SqliteEngine;
let stream: ReplicationStream;
const db = 'shop';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'airlift-capture-'));
  source = new SqliteEngine(join(dir, 'source'));
  target = new SqliteEngine(join(dir, 'target'));
  require('node:fs').mkdirSync(join(dir, 'source'));
  createHeldOutDatabase(source.fileOf(db));
  stream = { database: db, from: source, to: target, origin: 'source', name: streamName('m1', 'source') };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Journaling as the activity does it: capture, then the source's gate open. */
async function journal(): Promise<number> {
  const w0 = await source.startCapture(db);
  expect(await source.setWriteGate(db, { state: 'open', migrationId: 'm1' }, { states: ['none', 'open'] })).toBe(true);
  return w0;
}

function startWriter(seed: number): { child: ChildProcess; stop: () => Promise<{ ok: number; refused: number }> } {
  const script = join(dir, `writer-${seed}.js`);
  writeFileSync(script, writerScript(source.fileOf(db), seed));
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return {
    child,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      return JSON.parse(out.trim().split('\n').pop()!) as { ok: number; refused: number };
    },
  };
}

const started = (child: ChildProcess) => new Promise((resolve) => child.stdout!.once('data', resolve));

test('a tenant written to by its own process the whole time replicates identically, row for row, across a fenced drain', async () => {
  const before = schemaOf(source.fileOf(db));
  const w0 = await journal();
  const writer = startWriter(11);
  await started(writer.child);
  try {
    // Snapshot and restore while the writer writes.
    const artifact = await source.snapshot(db, join(dir, 'work', 'shop.sqlite'));
    await target.restore(db, artifact, 'm1');
    // The restored standby holds the tenant's trigger aside: applied changes must not fire it again.
    expect(schemaOf(target.fileOf(db)).filter((o) => o.type === 'trigger' && !o.name.startsWith('airlift_'))).toEqual([]);
    // Catch up while the writer goes on, then verify online: rows whose change is on its way are in flux, none differ.
    let cursor = w0;
    for (let i = 0; i < 5; i++) {
      cursor = (await applyRange(stream, cursor, await source.changeHead(db))).cursor;
      await new Promise((r) => setTimeout(r, 100));
    }
    const changing = new ChangedKeys(source, db, cursor);
    const S = { engine: source, database: db };
    const T = { engine: target, database: db };
    const { both, differences } = await compareTableSets(S, T);
    expect(differences).toEqual([]);
    for (const table of both) expect(await compareTable(S, T, table, 50, undefined, changing)).toMatchObject({ mismatchedChunks: 0 });

    // The fence: the writer's own connection is refused from here on.
    expect(await source.setWriteGate(db, { state: 'fenced', migrationId: 'm1', token: 't1' }, { states: ['open'] })).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    const head = await source.changeHead(db);
    await applyRange(stream, cursor, head);
    expect(await compareChangedRows(S, T, cursor, head)).toMatchObject({ differences: [] });
  } finally {
    const counts = await writer.stop();
    expect(counts.ok).toBeGreaterThan(200);
    expect(counts.refused).toBeGreaterThan(0);
  }
  expect(dumpRows(target.fileOf(db))).toEqual(dumpRows(source.fileOf(db)));
  const history = dumpRows(source.fileOf(db)).history;
  expect(history.length).toBeGreaterThan(0); // the tenant's trigger fired on the source, once per rename, and arrived as rows

  // Rolled back: the source opens again and capture comes off; the schema is exactly as before.
  expect(await source.setWriteGate(db, { state: 'open', migrationId: 'm1' }, { states: ['fenced'], token: 't1' })).toBe(true);
  await source.stopCapture(db, { keepFence: false });
  expect(schemaOf(source.fileOf(db))).toEqual(before);
});

test('a closed gate refuses every writer, not only airlift\'s; the applier alone writes, and never into an open side', async () => {
  await journal();
  const artifact = await source.snapshot(db, join(dir, 'work', 'shop.sqlite'));
  await target.restore(db, artifact, 'm1');
  const app = new Database(target.fileOf(db));
  // The standby target refuses the application (a stale route), and changes from the source land.
  expect(() => app.prepare(`UPDATE "${CUSTOMERS.replace(/"/g, '""')}" SET name = 'x'`).run()).toThrow(/fenced/);
  const writer = new Database(source.fileOf(db));
  writer.prepare(`UPDATE "${CUSTOMERS.replace(/"/g, '""')}" SET name = 'renamed' WHERE "Kunden-Nr" = 'K-1-ü'`).run();
  writer.close();
  const head = await source.changeHead(db);
  // The rename, and the history row the tenant's own trigger wrote in the same transaction.
  expect(await source.readChanges(db, 0, 10)).toEqual([{ seq: head - 1, table: CUSTOMERS, key: ['K-1-ü'] }, { seq: head, table: 'history', key: [1n] }]);
  expect((await applyRange(stream, 0, head)).applied).toBe(2);
  // Applied once: the same batch again finds its cursor passed.
  expect((await applyRange(stream, 0, head)).applied).toBe(0);
  expect(await target.appliedCursor(db, stream.name)).toBe(head);
  // Once the target is open (the primary), an applier that outlived its switch is refused.
  expect(await target.setWriteGate(db, { state: 'open', migrationId: 'm1' }, { states: ['standby'] })).toBe(true);
  await expect(target.applyChanges(db, stream.name, head + 1, [])).rejects.toThrow(ReplicationConflictError);
  // Open, the target writes and gives its tenant trigger back.
  app.prepare(`UPDATE "${CUSTOMERS.replace(/"/g, '""')}" SET name = 'on target' WHERE "Kunden-Nr" = 'K-2-ü'`).run();
  expect(app.prepare("SELECT what FROM history WHERE who = 'K-2-ü'").pluck().all()).toEqual(['renamed Kunde 2 -> on target']);
  app.close();
});

test('a retired source keeps only the fence; the target, completed, gives back exactly the schema the source had', async () => {
  const before = schemaOf(source.fileOf(db), false);
  await journal();
  const artifact = await source.snapshot(db, join(dir, 'work', 'shop.sqlite'));
  await target.restore(db, artifact, 'm1');
  await source.setWriteGate(db, { state: 'fenced', migrationId: 'm1' });
  await target.setWriteGate(db, { state: 'open', migrationId: 'm1' });
  await source.stopCapture(db, { keepFence: true });
  await target.stopCapture(db, { keepFence: false });
  expect(schemaOf(target.fileOf(db))).toEqual(schemaOf(join(dir, 'work', 'shop.sqlite')).filter((o) => !o.name.startsWith('airlift_')));
  expect(schemaOf(target.fileOf(db))).toEqual(before);
  const stale = new Database(source.fileOf(db));
  expect(() => stale.prepare('DELETE FROM events_nopk').run()).toThrow(/fenced/);
  stale.close();
  // Writes on the completed target are no longer captured: nothing of airlift is left there.
  const app = new Database(target.fileOf(db));
  app.prepare('DELETE FROM events_nopk').run();
  app.close();
});

test('applied rows never cascade: a parent row copied again keeps its children on the target (foreign keys with ON DELETE CASCADE)', async () => {
  const setup = new Database(source.fileOf(db));
  setup.exec('CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE);');
  setup.exec("INSERT INTO parent VALUES (1, 'p'); INSERT INTO child VALUES (10, 1), (11, 1);");
  setup.close();
  const w0 = await journal();
  await target.restore(db, await source.snapshot(db, join(dir, 'work', 'shop.sqlite')), 'm1');
  const app = new Database(source.fileOf(db));
  app.pragma('foreign_keys = ON');
  app.prepare("UPDATE parent SET name = 'renamed' WHERE id = 1").run();
  // A child inserted before its parent in the log's table order still applies.
  app.prepare("INSERT INTO parent VALUES (2, 'new')").run();
  app.prepare('INSERT INTO child VALUES (12, 2)').run();
  app.close();
  await applyRange(stream, w0, await source.changeHead(db));
  expect(dumpRows(target.fileOf(db)).child).toEqual(dumpRows(source.fileOf(db)).child);
  expect(dumpRows(target.fileOf(db)).child.length).toBe(3);
});

test('a table created or renamed after journaling is named as a gap in capture, so no cut-over can lose its writes', async () => {
  await journal();
  expect(await source.captureGaps(db)).toEqual([]);
  const app = new Database(source.fileOf(db));
  app.exec('CREATE TABLE late (id INTEGER PRIMARY KEY, v TEXT); ALTER TABLE events_nopk RENAME TO events_renamed;');
  app.close();
  expect((await source.captureGaps(db)).sort()).toEqual(['events_renamed', 'late']);
});

test('a unique index added after journaling is a gap too: REPLACE would delete the rows holding its values unrecorded', async () => {
  await journal();
  const app = new Database(source.fileOf(db));
  app.exec('CREATE UNIQUE INDEX line_sku ON "order lines" (order_id, sku)');
  app.close();
  expect(await source.captureGaps(db)).toEqual(['order lines']);
});
