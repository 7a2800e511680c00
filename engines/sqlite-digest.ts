// How SQLite rows are read and digested for verification, the same on both sides and on any
// thread: key-ordered, each row's values type-tagged (checksum.ts `encodeValue`) and fed to sha256.
// Kept apart from the engine so a digest thread (sqlite-digest-thread.ts) loads only this.
import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { encodeValue } from './checksum';
import { quoteDoubled as q } from './identifiers';
import type { ChunkDigest, KeyRange, KeyValue, TableInfo } from './engine';

/** The row query for `table` within `range`, in key order: key columns first, then the rest. */
function selectRows(table: TableInfo, range: KeyRange | null): { sql: string; params: KeyValue[] } {
  const keyList = table.key.map((k) => (table.keyKind === 'rowid' ? '_rowid_' : q(k))).join(', ');
  const tuple = `(${keyList})`;
  const marks = `(${table.key.map(() => '?').join(', ')})`;
  const where: string[] = [];
  const params: KeyValue[] = [];
  if (range?.lower) {
    where.push(`${tuple} > ${marks}`);
    params.push(...range.lower);
  }
  if (range?.upper) {
    where.push(`${tuple} <= ${marks}`);
    params.push(...range.upper);
  }
  const cols = table.columns.map(q).join(', ');
  const sql = `SELECT ${keyList}, ${cols} FROM ${q(table.name)}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${keyList}`;
  return { sql, params };
}

export function rawRows(db: Database.Database, table: TableInfo, range: KeyRange | null): Iterable<KeyValue[]> {
  const { sql, params } = selectRows(table, range);
  return db.prepare(sql).raw(true).iterate(...params) as Iterable<KeyValue[]>;
}

/** Key-ordered chunks of about `chunkRows` rows of `table` within `within`, each with its digest (see `BatchedHash`). */
export function chunkDigestsOf(db: Database.Database, table: TableInfo, chunkRows: number, within: KeyRange): ChunkDigest[] {
  const chunks: ChunkDigest[] = [];
  const n = table.key.length;
  const from = digestFrom(table);
  let hash = new BatchedHash();
  let rows = 0;
  let lower: KeyValue[] | null = within.lower;
  let last: KeyValue[] | null = null;
  for (const row of rawRows(db, table, within)) {
    if (rows === chunkRows) {
      const upper = last!.slice(0, n);
      chunks.push({ lower, upper, rows, digest: hash.digest() });
      lower = upper;
      hash = new BatchedHash();
      rows = 0;
    }
    hash.add(encodeRow(row, from));
    rows++;
    last = row;
  }
  chunks.push({ lower, upper: within.upper, rows, digest: hash.digest() });
  return chunks;
}

/**
 * Where a row's digested values start: after its key, which its columns hold again, except for a
 * table keyed by rowid: there the rowid is digested too, since replication keys those rows by it (a
 * VACUUM that renumbers them changes their digests even where their values line up).
 */
export const digestFrom = (table: TableInfo): number => (table.keyKind === 'rowid' ? 0 : table.key.length);

/** A row's non-key values (from column `from` on), each encoded by `encodeValue`, end to end. */
export function encodeRow(row: KeyValue[], from: number): string {
  let encoded = '';
  for (let c = from; c < row.length; c++) encoded += encodeValue(row[c]);
  return encoded;
}

/**
 * The sha256 of rows each followed by a newline, fed to the hash in batches of about 64 KiB: the same
 * digest as one update per row, at a fraction of the calls.
 */
export class BatchedHash {
  private readonly hash = createHash('sha256');
  private pending = '';

  add(encodedRow: string): void {
    this.pending += encodedRow + '\n';
    if (this.pending.length >= 65536) {
      this.hash.update(this.pending);
      this.pending = '';
    }
  }

  digest(): string {
    return this.hash.update(this.pending).digest('hex');
  }
}
