// The rows the change log names since a point, and their comparison across the two sides. Used by
// verification while the tenant keeps writing (a row that differs because its change is still on its
// way is not a mismatch; it is compared again under the cut-over's fence) and by the switch, which
// compares every row changed since verification once the log is drained and nobody writes.
import { encodeValue, renderKey } from '../engines/checksum';
import type { ChangeReader, Digester, KeyValue, TableInfo } from '../engines/engine';

/** What comparing changed rows reads of a side: its change log, its rows and their digests. */
type ComparedSide = ChangeReader & Digester;
import { compareTable, type Difference } from '../engines/table-verifier';
import { VerificationMismatchError } from './errors';

const BATCH = 5000;

/** The keys changed after a seq, per table, as the verifier renders them; `refresh` reads what is new. */
export class ChangedKeys {
  private readonly keys = new Map<string, Map<string, KeyValue[]>>();
  private tables?: Map<string, TableInfo>;

  constructor(
    private readonly engine: ChangeReader,
    private readonly database: string,
    /** The last seq read. */
    public seq: number,
  ) {}

  /** Reads the log up to its head (or `until`). */
  async refresh(until = Number.POSITIVE_INFINITY): Promise<this> {
    this.tables ??= new Map((await this.engine.listTables(this.database)).map((t) => [t.name, t]));
    for (;;) {
      const batch = (await this.engine.readChanges(this.database, this.seq, BATCH)).filter((c) => c.seq <= until);
      if (!batch.length) return this;
      for (const change of batch) {
        const table = this.tables.get(change.table);
        if (!table) continue;
        let keys = this.keys.get(change.table);
        if (!keys) this.keys.set(change.table, (keys = new Map()));
        keys.set(renderKey(table.key, change.key), change.key);
      }
      this.seq = batch[batch.length - 1].seq;
      if (batch.length < BATCH) return this;
    }
  }

  has(table: string, renderedKey: string): boolean {
    return this.keys.get(table)?.has(renderedKey) ?? false;
  }

  get size(): number {
    let n = 0;
    for (const keys of this.keys.values()) n += keys.size;
    return n;
  }

  /** Each changed table with its keys. */
  *entries(): Generator<[TableInfo, KeyValue[][]]> {
    for (const [name, keys] of this.keys) yield [this.tables!.get(name)!, [...keys.values()]];
  }
}

/**
 * Compares, row by row, every row changed in the log of `from` after `after` (up to `until`):
 * the rows a switch must find identical once the log is drained.
 */
export async function compareChangedRows(
  from: { engine: ComparedSide; database: string },
  to: { engine: ComparedSide; database: string },
  after: number,
  until: number,
  onBatch?: () => void,
): Promise<{ rows: number; differences: (Difference & { table: string })[] }> {
  const changed = await new ChangedKeys(from.engine, from.database, after).refresh(until);
  const differences: (Difference & { table: string })[] = [];
  let rows = 0;
  for (const [table, keys] of changed.entries()) {
    for (let i = 0; i < keys.length; i += BATCH) {
      onBatch?.();
      const slice = keys.slice(i, i + BATCH);
      const [mine, theirs] = await Promise.all([from.engine.readRows(from.database, table, slice), to.engine.readRows(to.database, table, slice)]);
      slice.forEach((key, j) => {
        rows++;
        const a = mine[j];
        const b = theirs[j];
        if (a === null && b === null) return;
        const kind: Difference['kind'] | undefined =
          a === null ? 'extra_on_target' : b === null ? 'missing_on_target' : a.map(encodeValue).join('') !== b.map(encodeValue).join('') ? 'changed' : undefined;
        if (kind) differences.push({ table: table.name, key: renderKey(table.key, key), kind });
      });
    }
  }
  return { rows, differences };
}

/**
 * After a flip whose compare was deferred (log shipping): every row the source's log names in
 * (after, until] must be identical on the target, except rows the target's own log names after
 * `windowFrom` (written in the rollback window, so they differ for a reason; the target's log is read
 * after the comparison, so a write made while it ran counts). The source is fenced and changes only
 * by the reverse dual-write, which copies exactly those rows.
 */
export async function compareAfterFlip(
  source: { engine: ComparedSide; database: string },
  target: { engine: ComparedSide; database: string },
  span: { after: number; until: number },
  windowFrom: number,
  onBatch?: () => void,
): Promise<(Difference & { table: string })[]> {
  const { differences } = await compareChangedRows(source, target, span.after, span.until, onBatch);
  if (!differences.length) return [];
  const window = await new ChangedKeys(target.engine, target.database, windowFrom).refresh();
  return differences.filter((d) => !window.has(d.table, d.key));
}

/**
 * Moves the point the cut-over compares from (`after`) up to `appliedUpTo`, the destination's cursor,
 * online: every row changed in between is compared now, so the fenced compare covers only what changed
 * since this check, however long the tenant waited for approval. A row that differs is in flux (not a
 * mismatch) when the log names it again after `appliedUpTo` (read after the comparison, so a change
 * made while it ran counts): the cut-over compares it under its fence. Any other difference is a
 * mismatch. Returns the new point (`after` when there is nothing to move over).
 *
 * Why it is enough: a row compared identical here and not named after `appliedUpTo` is not written on
 * either side any more (the source would log it; the applier writes only rows the log names after its
 * cursor), so it is still identical under the fence.
 *
 * Except where a row moves without a change in the log: a table keyed by rowid that a VACUUM
 * renumbered. Those tables are compared here in full (chunk digests on both sides, the rowids
 * digested too), rows the log names after `appliedUpTo` in flux as above; the fence checks them again
 * cheaply (protocol/switch.ts `verifyRowidsUnmoved`). The cost: every row of those tables read on
 * both sides before each cut-over attempt, online.
 */
export async function rebaseline(
  from: { engine: ComparedSide; database: string },
  to: { engine: ComparedSide; database: string },
  after: number,
  appliedUpTo: number,
  onBatch?: () => void,
  chunkRows = REBASELINE_CHUNK_ROWS,
): Promise<number> {
  const later = new ChangedKeys(from.engine, from.database, appliedUpTo);
  if (appliedUpTo > after) {
    const { differences } = await compareChangedRows(from, to, after, appliedUpTo, onBatch);
    if (differences.length) await later.refresh();
    const mismatches = differences.filter((d) => !later.has(d.table, d.key));
    if (mismatches.length)
      throw new VerificationMismatchError(`rows changed since verification differ on the target although replication passed them: ${someDifferences(mismatches)}`);
  }
  const theirs = new Set((await to.engine.listTables(to.database)).map((t) => t.name));
  for (const table of (await from.engine.listTables(from.database)).filter((t) => t.keyKind === 'rowid' && theirs.has(t.name))) {
    onBatch?.();
    const compared = await compareTable(from, to, table, chunkRows, undefined, later);
    if (compared.differences.length)
      throw new VerificationMismatchError(renumberedMessage(table.name, 'source', `rows ${someDifferences(compared.differences)}`));
  }
  return Math.max(after, appliedUpTo);
}

/** The first five differences for a person (`campaigns: id=2 changed, …`), and `…` when there are more. */
export function someDifferences(differences: (Difference & { table?: string })[]): string {
  const named = differences.slice(0, 5).map((d) => `${d.table ? `${d.table}: ` : ''}${d.key} ${d.kind.replace(/_/g, ' ')}`);
  return `${named.join(', ')}${differences.length > 5 ? ', …' : ''}`;
}

/** Rows of a rebaseline's full comparison of a rowid-keyed table per chunk. */
const REBASELINE_CHUNK_ROWS = 1000;

/** A table keyed by rowid differs between the sides: why that is, most likely, and what to do. */
export function renumberedMessage(table: string, side: string, detail: string): string {
  return `table "${table}" (no primary key, keyed by rowid) differs between the sides although no change in the log explains it (${detail}); a VACUUM (or another rowid change) on the ${side} since journaling is the likely cause: it renumbers such tables. The tenant stays where it is; migrate it again and do not VACUUM while it migrates`;
}
