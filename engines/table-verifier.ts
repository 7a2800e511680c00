// Compares one table on two engines: key-ordered chunk digests on both sides at once, paired chunk by
// chunk; where the target's chunks do not line up with the source's, the source's key ranges digested
// on the target; and any chunk that differs narrowed down to the keys that differ.
import { agreedDigestFormat, type ChunkDigest, type DigestFormat, type Digester, type KeyRange, type KeyValue, type TableInfo } from './engine';
import { encodeValue, renderKey } from './checksum';
import type { ChangedKeys } from '../protocol/changed-rows';

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
  /** Rows that differed while their change was still on its way; compared again at cut-over. */
  inFlux?: number;
}

/** Keeps reports readable; the count of mismatched chunks still tells the whole size. */
const MAX_DIFFERENCES_PER_TABLE = 50;

export interface Side {
  engine: Digester;
  database: string;
}

/**
 * Compares `table`, or only the rows `within` a key range. With `changing` (the keys the source's
 * change log names since replication had caught up when verification began), a row that differs
 * while its change is still on its way is counted as in flux, not as a mismatch: the switch compares
 * it again once the log is drained under its fence.
 */
export async function compareTable(source: Side, target: Side, table: TableInfo, chunkRows: number, within?: KeyRange, changing?: ChangedKeys): Promise<TableComparison> {
  // Both sides hash with the expression the older server can run (SQL Server: HASHBYTES by version).
  const format = agreedDigestFormat(await source.engine.digestFormat?.(source.database), await target.engine.digestFormat?.(target.database));
  // Both sides chunk the same way, so where their rows agree their chunks pair up one to one.
  const [chunks, targetChunks] = await Promise.all([
    source.engine.chunkDigests(source.database, table, chunkRows, within, format),
    target.engine.chunkDigests(target.database, table, chunkRows, within, format),
  ]);
  const result: TableComparison = { table: table.name, rows: 0, chunks: chunks.length, mismatchedChunks: 0, differences: [] };
  for (const [i, chunk] of chunks.entries()) {
    result.rows += chunk.rows;
    if (targetChunks[i] && sameChunk(chunk, targetChunks[i])) continue;
    const theirs = await target.engine.rangeDigest(target.database, table, chunk, format);
    if (theirs.digest === chunk.digest && theirs.rows === chunk.rows) continue;
    if (!changing && result.differences.length >= MAX_DIFFERENCES_PER_TABLE) {
      result.mismatchedChunks++;
      continue;
    }
    const found = await rowDifferences(source, target, table, chunk, format);
    // Read after the rows were: a change made while they were compared is seen.
    if (changing) await changing.refresh();
    // Digests that differ over rows that do not: rows the key order cannot tell apart (a NULL key).
    // Online that may be a change that landed in between; offline it is a difference all the same.
    if (!found.length && !changing) found.push({ key: `rows with ${bound(table, chunk.lower, 'after')} and ${bound(table, chunk.upper, 'up to')} (the range's digests differ)`, kind: 'changed' });
    const real = changing ? found.filter((d) => !changing.has(table.name, d.key)) : found;
    if (found.length > real.length) result.inFlux = (result.inFlux ?? 0) + found.length - real.length;
    if (!real.length) continue;
    result.mismatchedChunks++;
    result.differences.push(...real.slice(0, Math.max(0, MAX_DIFFERENCES_PER_TABLE - result.differences.length)));
  }
  return result;
}

const bound = (table: TableInfo, key: KeyValue[] | null, how: string): string => (key ? `key ${how} ${renderKey(table.key, key)}` : `any key ${how === 'after' ? 'from the first' : 'to the last'}`);

const sameKey = (a: KeyValue[] | null, b: KeyValue[] | null): boolean =>
  a === null || b === null ? a === b : a.length === b.length && a.every((v, i) => encodeValue(v) === encodeValue(b[i]));

/** The same key range with the same rows and digest: the two sides hold the same rows there. */
const sameChunk = (a: ChunkDigest, b: ChunkDigest): boolean => a.rows === b.rows && a.digest === b.digest && sameKey(a.lower, b.lower) && sameKey(a.upper, b.upper);

async function rowDifferences(source: Side, target: Side, table: TableInfo, range: KeyRange, format?: DigestFormat): Promise<Difference[]> {
  const [mine, other] = await Promise.all([source.engine.rowDigests(source.database, table, range, format), target.engine.rowDigests(target.database, table, range, format)]);
  const differences: Difference[] = [];
  const onTarget = new Map(other.map((r) => [r.key, r.digest]));
  for (const row of mine) {
    const digest = onTarget.get(row.key);
    if (digest === undefined) differences.push({ key: row.key, kind: 'missing_on_target' });
    else if (digest !== row.digest) differences.push({ key: row.key, kind: 'changed' });
    onTarget.delete(row.key);
  }
  for (const key of onTarget.keys()) differences.push({ key, kind: 'extra_on_target' });
  return differences;
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
