// Phase 1: everything the migration will touch is reachable and in the expected state.
import { Context } from '@temporalio/activity';
import { PreflightError } from '../protocol/errors';
import { type ActivityDeps, keptAlive, tenantSides } from './context';
import { redactSecrets } from '../azure/blob-store';
import { trackingOf } from '../config/fleet';
import { trackingMappingProblems } from '../engines/tracking-mapping';
import { MAX_CAPTURED_KEY_COLUMNS } from '../engines/engine';
import type { CatchUpMode } from '../protocol/switch';

export { PreflightError };

/** What preflight tells the workflow: how the target will catch up, and what may still go wrong. */
export interface PreflightResult {
  catchUp: CatchUpMode;
  warnings: string[];
}

export function preflightActivities(deps: ActivityDeps) {
  return {
    preflight: (tenantId: string, migrationId: string): Promise<PreflightResult> => keptAlive(() => preflight(tenantId, migrationId)),
  };

  async function preflight(tenantId: string, migrationId: string): Promise<PreflightResult> {
    const { tenant, source, restorer } = tenantSides(deps, tenantId, migrationId);
    const problems: string[] = [];
    const warnings: string[] = [];
    // A source that takes log backups and a target that keeps restoring them: LRS in continuous mode.
    const catchUp: CatchUpMode = source.logBackups && restorer.continuous ? 'log-shipping' : 'change-log';
    const src = await source.probe(tenant.database).catch((err: Error) => {
      problems.push(`source ${tenant.source}: ${err.message}`);
      return undefined;
    });
    if (src && !src.exists) problems.push(`source ${tenant.source}: database ${tenant.database} does not exist`);
    if (src?.exists) {
      const tables = await source.listTables(tenant.database);
      for (const problem of trackingMappingProblems(tables, trackingOf(deps.fleet, tenant))) problems.push(`source ${tenant.source}: ${problem}`);
      for (const t of tables.filter((t) => t.key.length > MAX_CAPTURED_KEY_COLUMNS))
        problems.push(`source ${tenant.source}: table "${t.name}" has a key of ${t.key.length} columns; change capture records at most ${MAX_CAPTURED_KEY_COLUMNS}`);
      const readiness = await source.captureReadiness?.(tenant.database);
      for (const problem of readiness?.problems ?? []) problems.push(`source ${tenant.source}: ${problem}`);
      for (const warning of readiness?.warnings ?? []) warnings.push(`source ${tenant.source}: ${warning}`);
    }
    // This run of the migration is registered: a run made later by a workflow reset outranks it.
    const runId = Context.current().info.workflowExecution?.runId;
    if (runId) deps.catalog.runGeneration(migrationId, runId);
    const repair = deps.catalog.repairHolder(tenantId);
    if (repair) problems.push(`${repair.holder} is repairing the tenant (until ${new Date(repair.untilMs).toISOString()} at the latest); start the migration again once it is done`);
    const gate = src?.exists ? await source.writeGate(tenant.database).catch(() => null) : null;
    if (gate && gate.state !== 'open')
      problems.push(`source ${tenant.source}: database ${tenant.database} does not take writes (write gate ${gate.state}, set by migration ${gate.migrationId ?? 'unknown'}); run \`airlift reconcile\` to see why`);
    const tgt = await restorer.probe(tenant.database).catch((err: Error) => {
      problems.push(`target ${tenant.target}: ${err.message}`);
      return undefined;
    });
    if (tgt?.exists && tgt.restoredBy !== migrationId)
      problems.push(`target ${tenant.target}: database ${tenant.database} already exists there${tgt.restoredBy ? ` (restored by migration ${tgt.restoredBy})` : ''}; the tenant is already on target or the name is taken`);
    // The target's own prerequisites: a Managed Instance's storage against the database's size, its restore limit.
    for (const problem of (await restorer.prerequisites?.(tenant.database, src?.sizeBytes)) ?? []) problems.push(`target ${tenant.target}: ${problem}`);
    const route = deps.catalog.ensure(tenantId);
    if (route.primary !== 'source') problems.push(`catalog: tenant ${tenantId} is already served from its ${route.primary}; nothing to migrate`);
    try {
      await deps.container.createIfNotExists();
      const probe = deps.container.getBlockBlobClient(`.airlift-preflight/${tenantId}-${migrationId}`);
      await probe.upload('ok', 2);
      await probe.delete();
    } catch (err) {
      problems.push(`storage container ${deps.container.containerName}: not writable (${redactSecrets((err as Error).message.split('\n')[0])})`);
    }
    if (catchUp === 'log-shipping' && src?.exists) {
      // A recovery model without log backups stops it; someone else's log backup jobs may break the chain later: warned.
      for (const finding of await source.logBackups!.logBackupPreflight(tenant.database))
        (/recovery model|no log chain/.test(finding) ? problems : warnings).push(`source ${tenant.source}: ${finding}`);
    }
    if (problems.length) throw new PreflightError(`preflight failed for ${tenantId}: ${problems.join('; ')}`);
    return { catchUp, warnings };
  }
}
