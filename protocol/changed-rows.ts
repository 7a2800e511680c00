// The rows the change log names since a point, and their comparison across the two sides. Used by
// verification while the tenant keeps writing (a row that differs because its change is still on its
// way is not a mismatch; it is compared again under the cut-over's fence) and by the switch, which
// compares every row changed since verification once the log is drained and nobody writes.
import { encodeValue, renderKey } from '../engines/checksum';
import type { Engine, KeyValue, TableInfo } from '../engines/engine';
import type { Difference } from '../engines/table-verifier';

const BATCH = 5000;

/** The keys changed after a seq, per table, as the verifier renders them; `refresh` reads what is new. */
export class ChangedKeys {
  private readonly keys = new Map<string, Map<string, KeyValue[]>>();
  private tables?: Map<string, TableInfo>;

  constructor(
    private readonly engine: Engine,
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
  from: { engine: Engine; database: string },
  to: { engine: Engine; database: string },
  after: number,
  until: number,
): Promise<{ rows: number; differences: (Difference & { table: string })[] }> {
  const changed = await new ChangedKeys(from.engine, from.database, after).refresh(until);
  const differences: (Difference & { table: string })[] = [];
  let rows = 0;
  for (const [table, keys] of changed.entries()) {
    for (let i = 0; i < keys.length; i += BATCH) {
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
