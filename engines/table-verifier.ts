// Compares one table on two engines: key-ordered chunk digests on the source, the same key ranges
// digested on the target, and any chunk that differs narrowed down to the keys that differ.
import { agreedDigestFormat, type Engine, type KeyRange, type TableInfo } from './engine';

export interface Difference {
  key: string;
  kind: 'changed' | 'missing_on_target' | 'extra_on_target';
}

export interface TableComparison {
  table: string;
  rows: number;
  chunks: number;
  mismatchedChunks: number;
  differences: Difference[];
}

/** Keeps reports readable; the count of mismatched chunks still tells the whole size. */
const MAX_DIFFERENCES_PER_TABLE = 50;

export interface Side {
  engine: Engine;
  database: string;
}

/** Compares `table`, or only the rows `within` a key range (for a table that keeps growing). */
export async function compareTable(source: Side, target: Side, table: TableInfo, chunkRows: number, within?: KeyRange): Promise<TableComparison> {
  // Both sides hash with the expression the older server can run (SQL Server: HASHBYTES by version).
  const format = agreedDigestFormat(await source.engine.digestFormat?.(source.database), await target.engine.digestFormat?.(target.database));
  const chunks = await source.engine.chunkDigests(source.database, table, chunkRows, within, format);
  const result: TableComparison = { table: table.name, rows: 0, chunks: chunks.length, mismatchedChunks: 0, differences: [] };
  for (const chunk of chunks) {
    result.rows += chunk.rows;
    const theirs = await target.engine.rangeDigest(target.database, table, chunk, format);
    if (theirs.digest === chunk.digest && theirs.rows === chunk.rows) continue;
    result.mismatchedChunks++;
    if (result.differences.length >= MAX_DIFFERENCES_PER_TABLE) continue;
    const [mine, other] = await Promise.all([
      source.engine.rowDigests(source.database, table, chunk, format),
      target.engine.rowDigests(target.database, table, chunk, format),
    ]);
    const onTarget = new Map(other.map((r) => [r.key, r.digest]));
    for (const row of mine) {
      const digest = onTarget.get(row.key);
      if (digest === undefined) result.differences.push({ key: row.key, kind: 'missing_on_target' });
      else if (digest !== row.digest) result.differences.push({ key: row.key, kind: 'changed' });
      onTarget.delete(row.key);
    }
    for (const key of onTarget.keys()) result.differences.push({ key, kind: 'extra_on_target' });
    result.differences.length = Math.min(result.differences.length, MAX_DIFFERENCES_PER_TABLE);
  }
  return result;
}

/** Tables present on one side only are differences too; they are reported under the table's name. */
export async function compareTableSets(source: Side, target: Side): Promise<{ both: TableInfo[]; differences: TableComparison[] }> {
  const [mine, theirs] = await Promise.all([source.engine.listTables(source.database), target.engine.listTables(target.database)]);
  const theirNames = new Set(theirs.map((t) => t.name));
  const myNames = new Set(mine.map((t) => t.name));
  const lonely = (name: string, kind: Difference['kind']): TableComparison => ({
    table: name, rows: 0, chunks: 0, mismatchedChunks: 1, differences: [{ key: '(whole table)', kind }],
  });
  return {
    both: mine.filter((t) => theirNames.has(t.name)),
    differences: [
      ...mine.filter((t) => !theirNames.has(t.name)).map((t) => lonely(t.name, 'missing_on_target')),
      ...theirs.filter((t) => !myNames.has(t.name)).map((t) => lonely(t.name, 'extra_on_target')),
    ],
  };
}
