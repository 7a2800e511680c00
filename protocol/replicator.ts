// The replicator: tails one side's change log and copies each changed row as it is now to the other
// side, batch by batch in seq order, with its cursor advanced in the same transaction as the apply.
// Copying the current row (not the change) makes a repeat harmless: a row read before a later change
// is copied again when that change's turn comes, so when the log is drained both sides agree. A
// stream is named by migration and origin, so a later migration of the same tenant never inherits an
// old cursor.
import type { Change, ChangeApplier, ChangeReader, RowImage, TableInfo } from '../engines/engine';
import { encodeValue } from '../engines/checksum';

export type Direction = 'forward' | 'reverse';
export type Origin = 'source' | 'target';

/** The engines and names of one direction of one migration. */
export interface ReplicationStream<From extends ChangeReader = ChangeReader, To extends ChangeApplier = ChangeApplier> {
  database: string;
  from: From;
  to: To;
  origin: Origin;
  /** `<migrationId>:<origin>`: the key of the cursor kept in the destination. */
  name: string;
}

export function streamName(migrationId: string, origin: Origin): string {
  return `${migrationId}:${origin}`;
}

export function originOf(direction: Direction): Origin {
  return direction === 'forward' ? 'source' : 'target';
}

const BATCH = 500;

/** The tables of a stream's database by name, read once per stream (the schema does not change under a migration). */
const tableCache = new WeakMap<ReplicationStream, Map<string, TableInfo>>();

async function tableOf(stream: ReplicationStream, name: string): Promise<TableInfo | undefined> {
  let tables = tableCache.get(stream);
  if (!tables?.has(name)) tableCache.set(stream, (tables = new Map((await stream.from.listTables(stream.database)).map((t) => [t.name, t]))));
  return tables.get(name);
}

/** The rows the changes name, as they are now on `from`: one image per distinct key, in log order. */
export async function currentImages(stream: ReplicationStream, changes: Change[]): Promise<RowImage[]> {
  const byTable = new Map<string, Map<string, Change['key']>>();
  for (const change of changes) {
    let keys = byTable.get(change.table);
    if (!keys) byTable.set(change.table, (keys = new Map()));
    keys.set(change.key.map(encodeValue).join(''), change.key);
  }
  const images: RowImage[] = [];
  for (const [name, keys] of byTable) {
    const table = await tableOf(stream, name);
    if (!table) continue; // a table dropped since: nothing of it to copy
    const list = [...keys.values()];
    const rows = await stream.from.readRows(stream.database, table, list);
    list.forEach((key, i) => images.push({ table, key, row: rows[i] }));
  }
  return images;
}

/**
 * Applies the change log after `cursor` up to `until` (inclusive), batch by batch; `onBatch` runs
 * after every committed batch (a heartbeat, a budget check that may throw). Returns the new cursor.
 */
export async function applyRange(
  stream: ReplicationStream,
  cursor: number,
  until: number,
  onBatch?: (progress: { cursor: number; applied: number }) => void,
): Promise<{ cursor: number; applied: number }> {
  let applied = 0;
  while (cursor < until) {
    const batch = (await stream.from.readChanges(stream.database, cursor, BATCH)).filter((e) => e.seq <= until);
    if (!batch.length) break;
    const upTo = batch[batch.length - 1].seq;
    applied += await stream.to.applyChanges(stream.database, stream.name, upTo, await currentImages(stream, batch));
    cursor = upTo;
    onBatch?.({ cursor, applied });
  }
  return { cursor, applied };
}

/** Where a stream resumes: past its start watermark and past what the destination already holds. */
export async function resumePoint(stream: ReplicationStream, fromSeq: number): Promise<number> {
  return Math.max(fromSeq, await stream.to.appliedCursor(stream.database, stream.name));
}

export interface ReplicationProgress {
  /** The cursor this run started from: after a crash, where it picked up. */
  resumedFrom: number;
  cursor: number;
  head: number;
  lag: number;
  applied: number;
}

/**
 * Replicates until `signal` aborts: reads the head, applies up to it, reports after every batch (so
 * a large backlog never outlives a heartbeat timeout), and idles briefly when caught up.
 */
export async function replicate(
  stream: ReplicationStream,
  fromSeq: number,
  signal: AbortSignal,
  report: (progress: ReplicationProgress) => void,
  idle: (ms: number) => Promise<void>,
): Promise<ReplicationProgress> {
  const start = await resumePoint(stream, fromSeq);
  const state: ReplicationProgress = { resumedFrom: start, cursor: start, head: 0, lag: 0, applied: 0 };
  while (!signal.aborted) {
    state.head = await stream.from.changeHead(stream.database);
    const before = state.applied;
    await applyRange(stream, state.cursor, state.head, ({ cursor, applied }) => {
      Object.assign(state, { cursor, applied: before + applied, lag: Math.max(0, state.head - cursor) });
      report({ ...state });
      if (signal.aborted) throw signal.reason ?? new Error('replication cancelled');
    });
    state.lag = Math.max(0, state.head - state.cursor);
    report({ ...state });
    if (state.cursor >= state.head) await idle(100);
  }
  return state;
}
