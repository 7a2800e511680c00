// Phase 6 for a Managed Instance under LRS in continuous mode: the log shipping activity (beside the
// phases, like the dual-write) and the restore lag read from the target's restore details. The
// algorithm is protocol/log-shipping.ts; this wires the tenant's source, folder and restorer to it.
import { artifactFolder } from '../azure/artifact-folder';
import { blobShippingFolder } from '../azure/shipping-folder';
import type { ContinuousRestore, LogBackupSource } from '../engines/engine';
import { FleetConfigError } from '../protocol/errors';
import { resumeCursor, shipContinuously, shipNext, type LogShipping, type LogShippingCursor } from '../protocol/log-shipping';
import type { TailLogShipping } from '../protocol/switch';
import { type ActivityDeps, cancellation, keptAlive, sleepUnlessCancelled, tenantSides, withHeartbeat } from './context';

export interface LogShippingLag {
  lastShipped: string;
  lastRestored?: string;
  /** Files the target has still to restore (queued or restoring). */
  filesBehind: number;
}

/** The tenant's log shipping: its source's log backups into its own artifact folder, restored by its target. */
export function logShippingOf(deps: ActivityDeps, tenantId: string, migrationId: string): LogShipping & { restore: ContinuousRestore } {
  const { tenant, source, restorer } = tenantSides(deps, tenantId, migrationId);
  const logBackups: LogBackupSource | undefined = source.logBackups;
  const restore = restorer.continuous;
  if (!logBackups || !restore)
    throw new FleetConfigError(`${tenantId}: log shipping needs a source that takes log backups (SQL Server with backupDirectory and backupShare) and a Managed Instance target with autoCompleteRestore: false`);
  const folder = blobShippingFolder(deps.container, artifactFolder(tenantId, migrationId), { blockSizeBytes: 4 * 1024 * 1024, concurrency: 4, metadata: { tenant: tenantId, migration: migrationId } });
  return { database: tenant.database, migrationId, source: logBackups, folder, fullBackupName: source.artifactName(tenant.database, migrationId), restore };
}

/** The cut-over's tail-log step over the same shipping (protocol/switch.ts calls it under the fence). */
export function tailLogShipping(s: LogShipping & { restore: ContinuousRestore }, pollMs: number, beat: () => void): TailLogShipping {
  return {
    completed: async () => (await s.restore.state(s.database)).online,
    shipTail: async () => (await shipNext(s, await resumeCursor(s))).lastBackupName,
    async untilRestored(name, check) {
      for (;;) {
        const state = await s.restore.state(s.database);
        beat();
        if (state.lastRestoredFileName === name && state.filesQueued === 0 && state.filesRestoring === 0) return;
        check();
        await new Promise((r) => setTimeout(r, pollMs));
      }
    },
    complete: (name) => s.restore.complete(s.database, name, () => beat()),
  };
}

export function logShippingActivities(deps: ActivityDeps) {
  return {
    /**
     * Ships a log backup every `intervalSeconds` until cancelled (at cut-over, or a rollback). Starts
     * from the folder and the backup history, so a retry neither takes a backup twice nor skips one;
     * the heartbeat carries the last shipped backup. A broken chain fails it, naming the gap.
     */
    shipLogs: (tenantId: string, migrationId: string, intervalSeconds: number): Promise<LogShippingCursor | undefined> =>
      withHeartbeat(async (beat) => {
        const signal = cancellation();
        const cursor = await shipContinuously(logShippingOf(deps, tenantId, migrationId), { intervalMs: intervalSeconds * 1000, signal, onShipped: beat, sleep: sleepUnlessCancelled });
        signal.throwIfAborted();
        return cursor;
      }),

    /** Where the target's restore stands against what was shipped (restoreDetails). */
    logShippingLag: (tenantId: string, migrationId: string): Promise<LogShippingLag> =>
      keptAlive(async () => {
        const s = logShippingOf(deps, tenantId, migrationId);
        const [cursor, state] = await Promise.all([resumeCursor(s), s.restore.state(s.database)]);
        return { lastShipped: cursor.lastBackupName, lastRestored: state.lastRestoredFileName, filesBehind: state.filesQueued + state.filesRestoring };
      }),
  };
}
