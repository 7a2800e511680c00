// Change capture's cost, side by side in one run on the same tenant: the application's write
// throughput (single-row transactions on four tables, as the demo's application writes) with capture
// off and on, and the dual-write's apply rate (changed rows copied to the other side per second).
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTenantDatabase } from '../cli/demo-data';
import { SqliteEngine } from '../engines/sqlite';
import { applyRange } from '../protocol/replicator';

const SECONDS = 3;

/** Single-row write transactions for `seconds`, round robin over four tables; writes per second. */
function writeFor(file: string, seconds: number, offset: number): number {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  const statements = [
    db.prepare('UPDATE campaigns SET notes = ? WHERE id = ?'),
    db.prepare("INSERT INTO ads (id, campaign_id, headline, cpc) VALUES (?, 1, 'bench', 0.5)"),
    db.prepare('INSERT INTO budgets (campaign_id, day, spend_cents) VALUES (1, ?, 1) ON CONFLICT (campaign_id, day) DO UPDATE SET spend_cents = spend_cents + 1'),
    db.prepare("INSERT INTO audit_log (at, actor, action, detail) VALUES ('now', 'bench', 'bench', ?)"),
  ];
  const one = [
    (n: number) => statements[0].run(`n${n}`, 1 + (n % 5)),
    (n: number) => statements[1].run(offset + n),
    (n: number) => statements[2].run(`d${n % 100}`),
    (n: number) => statements[3].run(`n${n}`),
  ];
  const until = Date.now() + seconds * 1000;
  let n = 0;
  while (Date.now() < until) {
    for (let i = 0; i < 100; i++, n++) db.transaction(() => one[n % 4](n)).immediate();
  }
  db.close();
  return Math.round(n / seconds);
}

export async function benchCapture(): Promise<Record<string, unknown>[]> {
  const dir = mkdtempSync(join(tmpdir(), 'airlift-bench-capture-'));
  try {
    createTenantDatabase(join(dir, 'source'), 'bench', 10_000);
    const source = new SqliteEngine(join(dir, 'source'));
    const target = new SqliteEngine(join(dir, 'target'));
    const file = source.fileOf('bench');
    writeFor(file, 1, 10_000_000); // warm-up, not reported
    const off = writeFor(file, SECONDS, 20_000_000);
    const w0 = await source.startCapture('bench');
    await source.setWriteGate('bench', { state: 'open', migrationId: 'bench' });
    await target.restore('bench', await source.snapshot('bench', join(dir, 'bench.sqlite')), 'bench');
    const on = writeFor(file, SECONDS, 30_000_000);
    const head = await source.changeHead('bench');
    const started = process.hrtime.bigint();
    const { applied } = await applyRange({ database: 'bench', from: source, to: target, origin: 'source', name: 'bench:source' }, w0, head);
    const applySeconds = Number(process.hrtime.bigint() - started) / 1e9;
    return [
      { case: 'application writes, capture off (reference)', perSecond: off, ratio: 1 },
      { case: 'application writes, capture on', perSecond: on, ratio: +(on / off).toFixed(2), costX: +(off / on).toFixed(2) },
      { case: 'dual-write apply (rows copied)', perSecond: Math.round(applied / applySeconds), changes: head - w0, rows: applied, seconds: +applySeconds.toFixed(2) },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
