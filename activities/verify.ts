// Phase 8: every table compared source vs target; a mismatching chunk is narrowed to its keys.
// The heartbeat carries the tables already compared, so a retry continues where it stopped.
import { compareTable, compareTableSets, type TableComparison } from '../engines/table-verifier';
import { type ActivityDeps, cancellation, checkpoint, tenantSides } from './context';
import { Context } from '@temporalio/activity';

export function verifyActivities(deps: ActivityDeps) {
  return {
    /**
     * With `liveTracking`, the tracking table keeps growing on the source: it is compared up to the
     * highest key the dual-write has applied to the target, returned as `trackingUpTo`; the rest is
     * compared at cut-over.
     */
    async verifyTables(tenantId: string, migrationId: string, chunkRows: number, liveTracking = false): Promise<{ tables: TableComparison[]; trackingUpTo: number | null }> {
      const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
      const sourceSide = { engine: source, database: tenant.database };
      const targetSide = { engine: target, database: tenant.database };
      const saved = checkpoint<{ tables: TableComparison[]; trackingUpTo: number | null }>();
      const { both, differences } = await compareTableSets(sourceSide, targetSide);
      const tracking = both.find((t) => t.name === source.trackingTable);
      const head = liveTracking && tracking ? await target.trackingHead(tenant.database, tracking) : null;
      const trackingUpTo = saved?.trackingUpTo ?? (head ? Number(head[0]) : null);
      const results = [...(saved?.tables ?? [])];
      for (const table of both) {
        if (results.some((r) => r.table === table.name)) continue;
        cancellation().throwIfAborted();
        const within = liveTracking && table === tracking ? { lower: null, upper: trackingUpTo === null ? null : [trackingUpTo] } : undefined;
        results.push(await compareTable(sourceSide, targetSide, table, chunkRows, within));
        Context.current().heartbeat({ tables: results, trackingUpTo });
      }
      return { tables: [...results, ...differences], trackingUpTo };
    },
  };
}
