// Phase 7 and the rollback window: the dual-write, a thin activity over protocol/replicator.ts. The
// heartbeat after every batch carries cursor and lag, so a killed worker resumes where it was and a
// large backlog never outlives the heartbeat timeout.
import { Context } from '@temporalio/activity';
import { type ActivityDeps, cancellation, keptAlive, sleepUnlessCancelled, tenantSides } from './context';
import { originOf, replicate, resumePoint, streamName, type Direction, type ReplicationProgress, type ReplicationStream } from '../protocol/replicator';

export type { Direction } from '../protocol/replicator';

export interface DualWriteCheckpoint {
  cursor: number;
  lag: number;
  applied: number;
  /** The cursor this attempt started from: after a crash, where it picked up. */
  resumedFrom: number;
  /** Which attempt wrote this checkpoint. */
  attempt: number;
}

export function replicationStream(deps: ActivityDeps, tenantId: string, migrationId: string, direction: Direction): ReplicationStream {
  const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
  const origin = originOf(direction);
  const [from, to] = direction === 'forward' ? [source, target] : [target, source];
  return { database: tenant.database, from, to, origin, name: streamName(migrationId, origin) };
}

export function dualWriteActivities(deps: ActivityDeps) {
  return {
    /** Runs until cancelled; the workflow cancels it at cut-over, completion or rollback. */
    async dualWrite(tenantId: string, migrationId: string, direction: Direction, fromSeq: number): Promise<DualWriteCheckpoint> {
      const stream = replicationStream(deps, tenantId, migrationId, direction);
      const context = Context.current();
      const checkpoint = ({ cursor, lag, applied, resumedFrom }: ReplicationProgress): DualWriteCheckpoint => ({ cursor, lag, applied, resumedFrom, attempt: context.info.attempt });
      const signal = cancellation();
      const done = await replicate(stream, fromSeq, signal, (p) => context.heartbeat(checkpoint(p)), sleepUnlessCancelled);
      signal.throwIfAborted();
      return checkpoint(done);
    },

    /** How many changes the other side is behind in this direction. */
    replicationLag: (tenantId: string, migrationId: string, direction: Direction, fromSeq: number): Promise<{ head: number; cursor: number; lag: number }> =>
      keptAlive(async () => {
        const stream = replicationStream(deps, tenantId, migrationId, direction);
        const head = await stream.from.changeHead(stream.database);
        const cursor = await resumePoint(stream, fromSeq);
        return { head, cursor, lag: Math.max(0, head - cursor) };
      }),
  };
}
