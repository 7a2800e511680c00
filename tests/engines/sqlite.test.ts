// The SQLite engine on real files: snapshot under live writes from another process, restore checks,
// table discovery, and verification that names the rows that differ.
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteEngine } from '../../engines/sqlite';
import { ArtifactChecksumError, TargetExistsError, type Artifact } from '../../engines/engine';
import { compareTable, compareTableSets } from '../../engines/table-verifier';
import { createTenantDatabase } from '../../cli/demo-data';

let dir: string;
let source: SqliteEngine;
let target: SqliteEngine;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'airlift-sqlite-'));
  source = new SqliteEngine(join(dir, 'source'));
  target = new SqliteEngine(join(dir, 'target'));
  createTenantDatabase(join(dir, 'source'), 'acme', 2000, 7);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function migrated(migrationId = 'm1'): Promise<Artifact> {
  const artifact = await source.snapshot('acme', join(dir, 'work', 'acme.sqlite'));
  await target.restore('acme', artifact, migrationId);
  return artifact;
}

async function differences() {
  const src = { engine: source, database: 'acme' };
  const tgt = { engine: target, database: 'acme' };
  const { both, differences: tableLevel } = await compareTableSets(src, tgt);
  const perTable = await Promise.all(both.map((t) => compareTable(src, tgt, t, 100)));
  return [...perTable, ...tableLevel].filter((t) => t.mismatchedChunks > 0).map((t) => ({ table: t.table, differences: t.differences }));
}

test('tables are listed with their keys: composite, WITHOUT ROWID, and none (row id)', async () => {
  const tables = await source.listTables('acme');
  expect(tables.map((t) => [t.name, t.keyKind, t.key.join(',')])).toEqual([
    ['ads', 'primary-key', 'id'],
    ['audit_log', 'rowid', 'rowid'],
    ['budgets', 'primary-key', 'campaign_id,day'],
    ['campaigns', 'primary-key', 'id'],
    ['tracking_events', 'primary-key', 'seq'],
  ]);
});

test('snapshot, restore and verify: identical, with size and sha256 recorded', async () => {
  const artifact = await migrated();
  expect(artifact.sha256).toMatch(/^[0-9a-f]{64}$/);
  expect(artifact.sizeBytes).toBeGreaterThan(100_000);
  expect(await differences()).toEqual([]);
  expect(await target.probe('acme')).toMatchObject({ exists: true, restoredBy: 'm1' });
});

test('a snapshot taken while another process keeps writing is consistent and has no gaps', async () => {
  const file = source.fileOf('acme');
  const script = join(dir, 'writer.js');
  writeFileSync(script, `
    const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))});
    const db = new Database(${JSON.stringify(file)});
    db.pragma('busy_timeout = 5000');
    const ins = db.prepare("INSERT INTO tracking_events (event_id, ad_id, kind, occurred_at, payload) VALUES (?, 1, 'click', '2026-11-27', ?)");
    let i = 0;
    process.stdout.write('writing\\n');
    for (;;) { ins.run('live-' + (i++), 'x'.repeat(200)); }
  `);
  const writer = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => writer.stdout!.once('data', resolve));
  await new Promise((r) => setTimeout(r, 200));
  try {
    const artifact = await source.snapshot('acme', join(dir, 'work', 'acme.sqlite'));
    const snap = new Database(artifact.file, { readonly: true });
    expect(snap.pragma('integrity_check', { simple: true })).toBe('ok');
    const { n, max } = snap.prepare('SELECT count(*) AS n, max(seq) AS max FROM tracking_events').get() as { n: number; max: number };
    snap.close();
    expect(n).toBeGreaterThan(2000); // live rows made it in
    expect(max).toBe(n); // and no seq is missing: one consistent point in time
  } finally {
    writer.kill('SIGKILL');
  }
  const live = new Database(file, { readonly: true });
  const after = (live.prepare('SELECT count(*) AS n FROM tracking_events').get() as { n: number }).n;
  live.close();
  expect(after).toBeGreaterThan(2000);
});

test('restore refuses an artifact whose sha256 does not match, and creates nothing', async () => {
  const artifact = await source.snapshot('acme', join(dir, 'work', 'acme.sqlite'));
  appendFileSync(artifact.file, 'garbage');
  await expect(target.restore('acme', artifact, 'm1')).rejects.toThrow(ArtifactChecksumError);
  expect(existsSync(target.fileOf('acme'))).toBe(false);
});

test('restore never overwrites a target it did not create, and drop removes only its own', async () => {
  await migrated('m1');
  const again = await source.snapshot('acme', join(dir, 'work', 'again.sqlite'));
  await expect(target.restore('acme', again, 'm2')).rejects.toThrow(TargetExistsError);
  expect(await target.dropRestored('acme', 'm2')).toBe(false);
  expect(existsSync(target.fileOf('acme'))).toBe(true);
  expect(await target.dropRestored('acme', 'm1')).toBe(true);
  expect(existsSync(target.fileOf('acme'))).toBe(false);
  expect(existsSync(source.fileOf('acme'))).toBe(true);
});

test('verification names changed, missing and extra rows, composite keys and rows without a key', async () => {
  await migrated();
  const db = new Database(target.fileOf('acme'));
  db.prepare("UPDATE campaigns SET notes = 'edited' WHERE id = 3").run();
  db.prepare('DELETE FROM tracking_events WHERE seq = 1234').run();
  db.prepare("INSERT INTO tracking_events (seq, event_id, ad_id, kind, occurred_at) VALUES (99999, 'extra', 1, 'view', 'now')").run();
  db.prepare("UPDATE budgets SET spend_cents = spend_cents + 1 WHERE campaign_id = 2 AND day = '2026-11-05'").run();
  db.prepare("UPDATE ads SET creative = X'00' WHERE id = 5").run();
  db.prepare("UPDATE audit_log SET actor = 'mallory' WHERE rowid = 4").run();
  db.close();
  expect(await differences()).toEqual([
    { table: 'ads', differences: [{ key: 'id=5', kind: 'changed' }] },
    { table: 'audit_log', differences: [{ key: 'rowid=4', kind: 'changed' }] },
    { table: 'budgets', differences: [{ key: "campaign_id=2, day='2026-11-05'", kind: 'changed' }] },
    { table: 'campaigns', differences: [{ key: 'id=3', kind: 'changed' }] },
    {
      table: 'tracking_events',
      differences: [
        { key: 'seq=1234', kind: 'missing_on_target' },
        { key: 'seq=99999', kind: 'extra_on_target' },
      ],
    },
  ]);
});

test('a value that changes only its type (the same bytes as BLOB and as TEXT) is a difference', async () => {
  await migrated();
  const db = new Database(target.fileOf('acme'));
  db.prepare("UPDATE ads SET creative = CAST(creative AS TEXT) WHERE id = 2 AND creative IS NOT NULL").run();
  const changed = db.prepare("SELECT typeof(creative) AS t FROM ads WHERE id = 2").get() as { t: string };
  db.close();
  expect(changed.t).toBe('text');
  expect(await differences()).toEqual([{ table: 'ads', differences: [{ key: 'id=2', kind: 'changed' }] }]);
});

test('a table missing on the target is reported by name', async () => {
  await migrated();
  const db = new Database(target.fileOf('acme'));
  db.exec('DROP TABLE audit_log');
  db.close();
  expect(await differences()).toEqual([{ table: 'audit_log', differences: [{ key: '(whole table)', kind: 'missing_on_target' }] }]);
});

test('a database name that is not a safe identifier is refused before any file is touched', async () => {
  await expect(source.probe('../etc/passwd')).rejects.toThrow('is not a valid SQL identifier');
  await expect(source.snapshot('a]b', join(dir, 'x'))).rejects.toThrow('"a]b" is not a valid SQL identifier');
});

test('item 12: a write that reaches a side that is not the primary is refused there, so no two rows ever meet under one key', async () => {
  await source.startCapture('acme');
  await migrated();
  // A standby target (a gateway or application writing with a stale route) refuses any writer.
  const db = new Database(target.fileOf('acme'));
  expect(() => db.prepare("INSERT INTO tracking_events (seq, event_id, kind, occurred_at) VALUES (2001, 'on-target', 'click', '2026-11-27T00:00:01Z')").run()).toThrow(/fenced/);
  db.close();
  expect(await target.appliedCursor('acme', 'm1:source')).toBe(0);
});
