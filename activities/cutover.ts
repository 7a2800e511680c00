// Journaling, freezing, the fenced switch of primary (cut-over, and rollback after it), and the
// compensations that undo what this migration created.
import { rm } from 'node:fs/promises';
import { type ActivityDeps, tenantSides } from './context';
import { applyOutboxRange, directionSides } from './dual-write';
import type { Side, WriteMode } from '../ingestion/catalog';
import { compareTable } from '../engines/table-verifier';
import { managedInstance } from './managed-instance';

export class PauseBudgetExceededError extends Error {
  override name = 'PauseBudgetExceededError';
}
export class VerificationMismatchError extends Error {
  override name = 'VerificationMismatchError';
}

export interface SwitchOptions {
  /**
   * The outbox seq the drain starts from (the journal watermark w0); absent for a switch back, which
   * starts from the watermark the switch to the other side recorded.
   */
  fromSeq?: number;
  /** Abort, unharmed, if events would be held longer than this; absent for a rollback. */
  budgetMs?: number;
  /** Compare the tracking table's rows after this key (the part that grew since verifying). */
  verifyTrackingAfter?: number | null;
  chunkRows: number;
}

export interface SwitchResult {
  pauseMs: number;
  held: number;
  /** The new primary's outbox head at the flip: the reverse dual-write starts here. */
  reverseFrom: number;
}

export function cutoverActivities(deps: ActivityDeps) {
  return {
    /**
     * Turns the outbox on for this tenant. Fenced while it changes, so it returns only when every
     * write begun without the outbox has finished; returns the watermark w0.
     */
    async startJournaling(tenantId: string, migrationId: string): Promise<number> {
      const { tenant, source } = tenantSides(deps, tenantId, migrationId);
      await source.ensureOutbox(tenant.database);
      await deps.routes.fence(tenantId);
      try {
        await deps.routes.setMode(tenantId, { outbox: true });
      } finally {
        await deps.routes.unfence(tenantId);
      }
      return source.outboxHead(tenant.database);
    },

    async stopJournaling(tenantId: string): Promise<void> {
      await deps.routes.setMode(tenantId, { outbox: false });
    },

    /** The application's non-tracking writes: paused (read_only) or allowed (read_write). */
    async setWriteMode(tenantId: string, writeMode: WriteMode): Promise<void> {
      await deps.routes.setMode(tenantId, { writeMode });
    },

    /**
     * Fence, drain the old primary's outbox to the fence, verify the tracking delta, flip, release.
     * Any step past the pause budget calls it off: the fence lifts and the old primary stays.
     * Safe to repeat: when the tenant is already on `to` (a retry after the flip, or a rollback of a
     * tenant that never left its source) it only makes sure the fence is lifted.
     */
    async switchPrimary(tenantId: string, migrationId: string, to: Side, options: SwitchOptions): Promise<SwitchResult> {
      const { database, from, to: dest, origin } = directionSides(deps, tenantId, migrationId, to === 'target' ? 'forward' : 'reverse');
      const watermark = `${migrationId}:to-${to}`;
      const { fencedAt } = await deps.routes.fence(tenantId);
      if (deps.catalog.get(tenantId)?.primary === to) {
        const released = await deps.routes.unfence(tenantId);
        return { pauseMs: released.pauseMs, held: released.held, reverseFrom: deps.catalog.rememberWatermark(tenantId, watermark, await dest.outboxHead(database)) };
      }
      const checkBudget = (step: string) => {
        const held = Date.now() - fencedAt;
        if (options.budgetMs !== undefined && held > options.budgetMs)
          throw new PauseBudgetExceededError(`cut-over called off while ${step}: events held ${held} ms, over the pause budget of ${options.budgetMs} ms; the tenant stays on its ${origin}, unharmed`);
      };
      let reverseFrom: number;
      try {
        const fenceSeq = await from.outboxHead(database);
        // Without an explicit start, drain from where the old primary began journaling for this switch.
        const fromSeq = options.fromSeq ?? deps.catalog.watermark(tenantId, `${migrationId}:to-${origin}`) ?? fenceSeq;
        const start = Math.max(fromSeq, await dest.appliedCursor(database, origin));
        await applyOutboxRange(from, dest, database, origin, start, fenceSeq, () => checkBudget('draining the outbox'));
        checkBudget('draining the outbox');
        if (options.verifyTrackingAfter !== undefined) {
          const table = (await from.listTables(database)).find((t) => t.name === from.trackingTable);
          if (table) {
            const lower = options.verifyTrackingAfter === null ? null : [options.verifyTrackingAfter];
            const delta = await compareTable({ engine: from, database }, { engine: dest, database }, table, options.chunkRows, { lower, upper: null });
            if (delta.mismatchedChunks)
              throw new VerificationMismatchError(`tracking delta differs after the drain: ${delta.differences.slice(0, 5).map((d) => `${d.key} ${d.kind.replace(/_/g, ' ')}`).join(', ')}`);
          }
          checkBudget('verifying the tracking delta');
        }
        // Recorded once, before the flip: a retry after the release must not move it past events written since.
        reverseFrom = deps.catalog.rememberWatermark(tenantId, watermark, await dest.outboxHead(database));
        await deps.routes.setPrimary(tenantId, to, true);
      } catch (err) {
        await deps.routes.unfence(tenantId);
        throw err;
      }
      const released = await deps.routes.unfence(tenantId);
      return { pauseMs: released.pauseMs, held: released.held, reverseFrom };
    },

    /** Drops the target database only if this migration created it. */
    async dropTarget(tenantId: string, migrationId: string): Promise<boolean> {
      const { tenant, target } = tenantSides(deps, tenantId, migrationId);
      const endpoint = deps.fleet.targets[tenant.target];
      if (endpoint.engine === 'azure-sql-mi') return managedInstance(endpoint).dropIfCreatedBy(tenant.database, migrationId);
      return target.dropRestored(tenant.database, migrationId);
    },

    /** Deletes this migration's blobs and local files; the source is never touched. */
    async discardArtifact(tenantId: string, migrationId: string): Promise<number> {
      const { workDir } = tenantSides(deps, tenantId, migrationId);
      let deleted = 0;
      for await (const blob of deps.container.listBlobsFlat({ prefix: `${tenantId}/${migrationId}/`, includeUncommitedBlobs: true })) {
        await deps.container.deleteBlob(blob.name, { deleteSnapshots: 'include' }).catch(() => undefined);
        deleted++;
      }
      await rm(workDir, { recursive: true, force: true });
      return deleted;
    },

    /** After completion the local snapshot is no longer needed; the blob stays per retention. */
    async cleanWorkDirectory(tenantId: string, migrationId: string): Promise<void> {
      await rm(tenantSides(deps, tenantId, migrationId).workDir, { recursive: true, force: true });
    },
  };
}
