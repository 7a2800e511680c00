// Table verification of one tenant with a large tracking table, beside a raw primary-key-ordered scan
// of both databases (every column of every row read and dropped): the limit of any row-by-row
// comparison. Both run on the same files, in the same process.
import Database from 'better-sqlite3';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTenantDatabase } from '../cli/demo-data';
import { SqliteEngine } from '../engines/sqlite';
import { compareTable, compareTableSets } from '../engines/table-verifier';
import { quoteDoubled as q } from '../engines/identifiers';
import type { TableInfo } from '../engines/engine';
import { measured, ratio, round, type BenchResult } from './measure';

const DATABASE = 'bench';

/** Reads every row of every table in key order and drops it. */
function scan(file: string, tables: TableInfo[]): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  db.defaultSafeIntegers(true);
  let rows = 0;
  try {
    for (const t of tables) {
      const key = t.key.map((k) => (t.keyKind === 'rowid' ? '_rowid_' : q(k))).join(', ');
      const iterator = db.prepare(`SELECT ${key}, ${t.columns.map(q).join(', ')} FROM ${q(t.name)} ORDER BY ${key}`).raw(true).iterate();
      while (!iterator.next().done) rows++;
    }
  } finally {
    db.close();
  }
  return rows;
}

export async function benchVerify(trackingRows: number, chunkRows: number): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'airlift-bench-verify-'));
  try {
    createTenantDatabase(join(dir, 'source'), DATABASE, trackingRows);
    mkdirSync(join(dir, 'target'));
    copyFileSync(join(dir, 'source', `${DATABASE}.db`), join(dir, 'target', `${DATABASE}.db`));
    const source = { engine: new SqliteEngine(join(dir, 'source')), database: DATABASE };
    const target = { engine: new SqliteEngine(join(dir, 'target')), database: DATABASE };
    const tables = await source.engine.listTables(DATABASE);

    // Warm the page cache for both, so neither side pays the first read from disk.
    scan(source.engine.fileOf(DATABASE), tables);
    scan(target.engine.fileOf(DATABASE), tables);

    const raw = await measured(async () => scan(source.engine.fileOf(DATABASE), tables) + scan(target.engine.fileOf(DATABASE), tables));
    const rows = raw.value / 2;
    const ours = await measured(async () => {
      const { both } = await compareTableSets(source, target);
      const results = [];
      for (const table of both) results.push(await compareTable(source, target, table, chunkRows));
      return results;
    });
    const compared = ours.value.reduce((n, t) => n + t.rows, 0);
    const differing = ours.value.reduce((n, t) => n + t.mismatchedChunks, 0);
    if (compared !== rows || differing) throw new Error(`verify bench: compared ${compared} of ${rows} rows, ${differing} chunks differ on identical copies`);
    const scanRate = rows / raw.seconds;
    const ourRate = rows / ours.seconds;
    return {
      rows: [
        { method: 'raw key-ordered scan of both databases (limit)', rows, chunkRows: '', seconds: round(raw.seconds, 2), rowsPerSecond: Math.round(scanRate), peakRssMiB: round(raw.peakRssMiB) },
        { method: 'airlift verify (chunk digests, both sides)', rows, chunkRows, seconds: round(ours.seconds, 2), rowsPerSecond: Math.round(ourRate), peakRssMiB: round(ours.peakRssMiB) },
        { method: 'ratio airlift / scan', rows: '', chunkRows: '', seconds: '', rowsPerSecond: ratio(ourRate, scanRate), peakRssMiB: '' },
      ],
      ratios: { verifyVsScan: ratio(ourRate, scanRate) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
