// Phase 7 and the rollback window: the dual-write. It tails one side's outbox and applies each event
// to the other side (skipping what is already there), advancing a cursor kept in the destination in the same
// transaction. The heartbeat carries cursor and lag, so a killed worker resumes where it was.
import { Context } from '@temporalio/activity';
import { type ActivityDeps, cancellation, checkpoint, sleepUnlessCancelled, tenantSides } from './context';
import type { Engine } from '../engines';

export type Direction = 'forward' | 'reverse';

export interface DualWriteCheckpoint {
  cursor: number;
  lag: number;
  applied: number;
  /** The cursor this attempt started from: after a crash, where it picked up. */
  resumedFrom: number;
  /** Which attempt wrote this checkpoint. */
  attempt: number;
}

const BATCH = 500;

export function directionSides(deps: ActivityDeps, tenantId: string, migrationId: string, direction: Direction) {
  const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
  const [from, to]: Engine[] = direction === 'forward' ? [source, target] : [target, source];
  return { database: tenant.database, from, to, origin: direction === 'forward' ? 'source' : 'target' };
}

/** Applies the `from` side's outbox after `cursor` up to `until` (or its head); returns the new cursor. */
export async function applyOutboxRange(from: Engine, to: Engine, database: string, origin: string, cursor: number, until: number, onBatch?: (cursor: number, applied: number) => void): Promise<{ cursor: number; applied: number }> {
  let applied = 0;
  while (cursor < until) {
    const batch = (await from.readOutbox(database, cursor, BATCH)).filter((e) => e.seq <= until);
    if (!batch.length) break;
    applied += await to.applyOutbox(database, origin, batch);
    cursor = batch[batch.length - 1].seq;
    onBatch?.(cursor, applied);
  }
  return { cursor, applied };
}

export function dualWriteActivities(deps: ActivityDeps) {
  return {
    /** Runs until cancelled; the workflow cancels it at cut-over, completion or rollback. */
    async dualWrite(tenantId: string, migrationId: string, direction: Direction, fromSeq: number): Promise<DualWriteCheckpoint> {
      const { database, from, to, origin } = directionSides(deps, tenantId, migrationId, direction);
      const saved = checkpoint<DualWriteCheckpoint>();
      let cursor = Math.max(fromSeq, saved?.cursor ?? 0, await to.appliedCursor(database, origin));
      const state: DualWriteCheckpoint = { cursor, lag: 0, applied: saved?.applied ?? 0, resumedFrom: cursor, attempt: Context.current().info.attempt };
      const signal = cancellation();
      while (!signal.aborted) {
        const head = await from.outboxHead(database);
        const done = await applyOutboxRange(from, to, database, origin, cursor, head);
        cursor = done.cursor;
        Object.assign(state, { cursor, lag: Math.max(0, head - cursor), applied: state.applied + done.applied });
        Context.current().heartbeat(state);
        if (!done.applied && cursor >= head) await sleepUnlessCancelled(100);
      }
      signal.throwIfAborted();
      return state;
    },

    /** How far the other side is behind this direction's source of events. */
    async replicationLag(tenantId: string, migrationId: string, direction: Direction, fromSeq: number): Promise<{ head: number; cursor: number; lag: number }> {
      const { database, from, to, origin } = directionSides(deps, tenantId, migrationId, direction);
      const head = await from.outboxHead(database);
      const cursor = Math.max(fromSeq, await to.appliedCursor(database, origin));
      return { head, cursor, lag: Math.max(0, head - cursor) };
    },
  };
}
