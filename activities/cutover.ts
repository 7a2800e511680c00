// Journaling (change capture), the fenced switch of primary (cut-over, and rollback after it), and the
// compensations that undo what this migration created. The switch itself is protocol/switch.ts.
import { rm } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import { type ActivityDeps, keptAlive, tenantSides } from './context';
import type { ModeOrder, Side } from '../ingestion/catalog';
import { artifactFolder } from '../azure/artifact-folder';
import { endSwitchAttempt, schemaRefusal, switchPrimary, type SwitchContext, type SwitchEnd, type SwitchOptions, type SwitchResult } from '../protocol/switch';
import { logShippingOf, tailLogShipping } from './log-shipping';
import { StaleModeChangeError, TargetInUseError, TenantMovedError } from '../protocol/errors';

export type { SwitchEnd, SwitchOptions, SwitchResult } from '../protocol/switch';

/**
 * Steps that prepare a move from the source stop when the tenant is not served from it: a workflow
 * reset to before the cut-over must not reopen a source or restore over a target the tenant is on.
 */
export function assertOnSource(deps: ActivityDeps, tenantId: string, step: string): void {
  const route = deps.catalog.ensure(tenantId);
  if (route.primary !== 'source')
    throw new TenantMovedError(`${tenantId}: ${step} refused: the catalog says the tenant is served from its ${route.primary} (a workflow reset past its cut-over?); nothing was changed`);
  assertNotUnderRepair(deps, tenantId, step);
}

/** No migration step begins on a tenant that `airlift reconcile --apply` is repairing. */
export function assertNotUnderRepair(deps: ActivityDeps, tenantId: string, step: string): void {
  const repair = deps.catalog.repairHolder(tenantId);
  if (repair)
    throw new TenantMovedError(`${tenantId}: ${step} refused: ${repair.holder} is repairing the tenant (until ${new Date(repair.untilMs).toISOString()} at the latest); nothing was changed; start the migration again once it is done`);
}

/** Runs `work` over the tenant's switch context, heartbeating every second and on each drain batch. */
async function withSwitchContext<T>(deps: ActivityDeps, tenantId: string, migrationId: string, work: (ctx: SwitchContext) => Promise<T>, logShipping = false): Promise<T> {
  const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
  const context = Context.current();
  const beat = () => context.heartbeat();
  const keepAlive = setInterval(beat, 1000);
  const shipping = logShipping ? tailLogShipping(logShippingOf(deps, tenantId, migrationId), 500, beat) : undefined;
  try {
    return await work({ tenantId, migrationId, database: tenant.database, engines: { source, target }, catalog: deps.catalog, routes: deps.routes, beat, logShipping: shipping });
  } finally {
    clearInterval(keepAlive);
  }
}

export function cutoverActivities(deps: ActivityDeps) {
  return {
    /**
     * Installs change capture on the source (every write after it is in the change log, whoever
     * writes) and opens its write gate; returns the watermark w0. Safe to repeat.
     */
    startJournaling: (tenantId: string, migrationId: string, order: ModeOrder): Promise<number> =>
      keptAlive(async () => {
        const { tenant, source } = tenantSides(deps, tenantId, migrationId);
        assertOnSource(deps, tenantId, 'journaling');
        // An attempt that wakes after its run moved on (a switch fenced the source, or a later
        // migration holds its gate) changes nothing: it is turned away before it installs anything.
        const refused = () => new TenantMovedError(`${tenantId}: journaling of migration ${migrationId} refused: the source database's write gate is closed or held by another migration (a switch or a later migration has it); nothing was changed`);
        const gate = await source.writeGate(tenant.database);
        if (gate && (gate.state !== 'open' || gate.migrationId !== migrationId)) throw refused();
        // Claimed before anything is installed: an attempt from before a workflow reset (an earlier
        // run of this migration) or an earlier step of this run is refused here, having changed nothing.
        if (!deps.catalog.setMode(tenantId, {}, order))
          throw new StaleModeChangeError(`${tenantId}: journaling (step ${order.step} of workflow run ${order.owner}) refused: a later run or step of this migration changed the tenant already; nothing was installed`);
        const head = await source.startCapture(tenant.database);
        if (!(await source.setWriteGate(tenant.database, { state: 'open', migrationId }, { states: ['none', 'open'], migrationId }))) throw refused();
        try {
          await deps.routes.setMode(tenantId, { outbox: true }, order);
        } catch (err) {
          // An attempt that woke after a later step of its run (the rollback's stopJournaling) leaves
          // nothing of its own behind: capture off again, the source as it was.
          // (A source the tenant has left keeps only its fence.)
          if (err instanceof StaleModeChangeError) await source.stopCapture(tenant.database, { keepFence: deps.catalog.ensure(tenantId).primary !== 'source' });
          throw err;
        }
        return head;
      }),

    /**
     * Removes change capture: from the tenant's primary entirely (its schema is as it was before the
     * migration), and from the other side all but the fence, so a stale writer still cannot write
     * where nobody reads. `order` is the migration's step number: a change is refused when a later
     * step changed the mode already (an earlier attempt that woke up late must not undo a later step).
     */
    stopJournaling: (tenantId: string, migrationId: string, order: ModeOrder): Promise<void> =>
      keptAlive(async () => {
        const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
        await deps.routes.setMode(tenantId, { outbox: false }, order);
        const primary = deps.catalog.ensure(tenantId).primary;
        // The primary loses capture entirely. A source the tenant left keeps its fence; a target the
        // tenant never moved to is dropped by the rollback (or left fenced for reconcile), never reached here.
        await (primary === 'source' ? source : target).stopCapture(tenant.database, { keepFence: false });
        if (primary === 'target') await source.stopCapture(tenant.database, { keepFence: true });
      }),

    /**
     * The fenced switch of protocol/switch.ts, heartbeating through the drain. Every retry of one
     * scheduled activity is the same attempt (its activity id): the pause budget counts from its first fence.
     */
    async switchPrimary(tenantId: string, migrationId: string, to: Side, options: SwitchOptions): Promise<SwitchResult> {
      const { info } = Context.current();
      const attemptKey = `${info.workflowExecution?.runId ?? info.workflowType}:${info.activityId}`;
      const logShipping = options.catchUp === 'log-shipping' && to === 'target';
      return withSwitchContext(deps, tenantId, migrationId, (ctx) => switchPrimary(ctx, to, { ...options, attemptKey }), logShipping);
    },

    /**
     * Ends a switch attempt that failed or whose worker died (protocol/switch.ts `endSwitchAttempt`):
     * called off if the catalog was not flipped, finished forward if it was. Run by the workflow
     * before it waits or gives up, so no tenant stays fenced while nothing is switching.
     */
    // `_options` stays for the calls already in workflow histories; ending an attempt compares nothing.
    endSwitchAttempt: (tenantId: string, migrationId: string, to: Side, _options?: Pick<SwitchOptions, 'chunkRows'>): Promise<SwitchEnd> =>
      withSwitchContext(deps, tenantId, migrationId, (ctx) => endSwitchAttempt(ctx, to)),

    /**
     * Whether a route back to the source would be refused for the schema (a table created or changed
     * on the target in the rollback window), read online: the reason, or null. A rollback refused
     * here leaves the tenant in its window with reverse replication running.
     */
    routeBackRefusal: (tenantId: string, migrationId: string): Promise<string | null> =>
      keptAlive(async () => {
        const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
        const refusal = await schemaRefusal({ database: tenant.database, origin: 'target', from: target, to: source });
        return refusal === undefined ? null : `rollback refused: ${refusal}. The tenant stays on its target, reverse replication running; carry the change to the source (create the table, add the column there), then roll back again, or complete the migration`;
      }),

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
