// The replicator: tails one side's outbox and applies each event to the other side, in seq order,
// idempotently, with its cursor advanced in the same transaction as the apply. A stream is named
// by migration and origin, so a later migration of the same tenant never inherits an old cursor.
import type { Engine, OutboxEntry } from '../engines/engine';

export type Direction = 'forward' | 'reverse';
export type Origin = 'source' | 'target';

/** The engines and names of one direction of one migration. */
export interface ReplicationStream {
  database: string;
  from: Engine;
  to: Engine;
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

/**
 * Applies the outbox after `cursor` up to `until` (inclusive), batch by batch; `onBatch` runs after
 * every committed batch (a heartbeat, a budget check that may throw). Returns the new cursor.
 */
export async function applyRange(
  stream: ReplicationStream,
  cursor: number,
  until: number,
  onBatch?: (progress: { cursor: number; applied: number }) => void,
): Promise<{ cursor: number; applied: number }> {
  let applied = 0;
  while (cursor < until) {
    const batch: OutboxEntry[] = (await stream.from.readOutbox(stream.database, cursor, BATCH)).filter((e) => e.seq <= until);
    if (!batch.length) break;
    applied += await stream.to.applyOutbox(stream.database, stream.name, batch);
    cursor = batch[batch.length - 1].seq;
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
    state.head = await stream.from.outboxHead(stream.database);
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
