// Journaling, freezing, the fenced switch of primary (cut-over, and rollback after it), and the
// compensations that undo what this migration created. The switch itself is protocol/switch.ts.
import { rm } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import { type ActivityDeps, keptAlive, tenantSides } from './context';
import type { ModeOrder, Side, WriteMode } from '../ingestion/catalog';
import { artifactFolder } from '../azure/artifact-folder';
import { switchPrimary, type SwitchOptions, type SwitchResult } from '../protocol/switch';
import { TargetInUseError, TenantMovedError } from '../protocol/errors';

export type { SwitchOptions, SwitchResult } from '../protocol/switch';

/**
 * Steps that prepare a move from the source stop when the tenant is not served from it: a workflow
 * reset to before the cut-over must not reopen a source or restore over a target the tenant is on.
 */
export function assertOnSource(deps: ActivityDeps, tenantId: string, step: string): void {
  const route = deps.catalog.ensure(tenantId);
  if (route.primary !== 'source')
    throw new TenantMovedError(`${tenantId}: ${step} refused: the catalog says the tenant is served from its ${route.primary} (a workflow reset past its cut-over?); nothing was changed`);
}

export function cutoverActivities(deps: ActivityDeps) {
  return {
    /**
     * Turns the outbox on for this tenant and opens the source's write gate. Fenced while the mode
     * changes, so it returns only when every write begun without the outbox has finished; returns
     * the watermark w0. Safe to repeat.
     */
    startJournaling: (tenantId: string, migrationId: string, order: ModeOrder): Promise<number> =>
      keptAlive(async () => {
        const { tenant, source } = tenantSides(deps, tenantId, migrationId);
        assertOnSource(deps, tenantId, 'journaling');
        await source.ensureOutbox(tenant.database);
        if (!(await source.setWriteGate(tenant.database, { state: 'open', migrationId }, { states: ['none', 'open'] })))
          throw new TenantMovedError(`${tenantId}: journaling refused: the source database's write gate is closed (a switch or another migration holds it); nothing was changed`);
        await deps.routes.fence(tenantId);
        try {
          await deps.routes.setMode(tenantId, { outbox: true }, order);
        } finally {
          await deps.routes.unfence(tenantId);
        }
        return source.outboxHead(tenant.database);
      }),

    /**
     * `order` is the migration's step number: a change is refused when a later step changed the
     * mode already (an earlier attempt that woke up late must not undo the rollback's thaw).
     */
    stopJournaling: (tenantId: string, order: ModeOrder): Promise<void> => keptAlive(() => deps.routes.setMode(tenantId, { outbox: false }, order)),

    /** The application's non-tracking writes: paused (read_only) or allowed (read_write). */
    setWriteMode: (tenantId: string, writeMode: WriteMode, order: ModeOrder): Promise<void> => keptAlive(() => deps.routes.setMode(tenantId, { writeMode }, order)),

    /** The fenced switch of protocol/switch.ts, heartbeating through the drain. */
    async switchPrimary(tenantId: string, migrationId: string, to: Side, options: SwitchOptions): Promise<SwitchResult> {
      const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
      const context = Context.current();
      const beat = () => context.heartbeat();
      const keepAlive = setInterval(beat, 1000);
      try {
        return await switchPrimary(
          { tenantId, migrationId, database: tenant.database, engines: { source, target }, catalog: deps.catalog, routes: deps.routes, beat },
          to,
          options,
        );
      } finally {
        clearInterval(keepAlive);
      }
    },

    /** Drops the target database only if this migration created it. */
    dropTarget: (tenantId: string, migrationId: string): Promise<boolean> =>
      keptAlive(async () => {
        const { tenant, restorer } = tenantSides(deps, tenantId, migrationId);
        if (deps.catalog.ensure(tenantId).primary === 'target')
          throw new TargetInUseError(`${tenantId}: the catalog names the target as the tenant's primary; it is not dropped`);
        return restorer.dropRestored(tenant.database, migrationId);
      }),

    /** Deletes this migration's blobs and local files; the source is never touched. */
    discardArtifact: (tenantId: string, migrationId: string): Promise<number> =>
      keptAlive(async () => {
        const { workDir } = tenantSides(deps, tenantId, migrationId);
        let deleted = 0;
        // A container that is not there holds nothing of this migration.
        if (await deps.container.exists())
          for await (const blob of deps.container.listBlobsFlat({ prefix: `${artifactFolder(tenantId, migrationId)}/`, includeUncommitedBlobs: true })) {
            await deps.container.deleteBlob(blob.name, { deleteSnapshots: 'include' }).catch(() => undefined);
            deleted++;
          }
        await rm(workDir, { recursive: true, force: true });
        return deleted;
      }),

    /** After completion the local snapshot is no longer needed; the blob stays per retention. */
    cleanWorkDirectory: (tenantId: string, migrationId: string): Promise<void> =>
      keptAlive(() => rm(tenantSides(deps, tenantId, migrationId).workDir, { recursive: true, force: true })),
  };
}
