// Phase 8: every table compared source vs target; a mismatching chunk is narrowed to its keys.
// The heartbeat carries the tables already compared, so a retry continues where it stopped.
import { compareTable, compareTableSets, type TableComparison } from '../engines/table-verifier';
import { type ActivityDeps, cancellation, checkpoint, tenantSides, withHeartbeat } from './context';

export function verifyActivities(deps: ActivityDeps) {
  return {
    /**
     * The tracking table keeps growing on the source: it is compared up to the highest key the
     * dual-write has applied to the target, returned as `trackingUpTo`; the rest is compared at cut-over.
     */
    async verifyTables(tenantId: string, migrationId: string, chunkRows: number): Promise<{ tables: TableComparison[]; trackingUpTo: number | null }> {
      const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
      const sourceSide = { engine: source, database: tenant.database };
      const targetSide = { engine: target, database: tenant.database };
      const saved = checkpoint<{ tables: TableComparison[]; trackingUpTo: number | null }>();
      const { both, differences } = await compareTableSets(sourceSide, targetSide);
      const tracking = both.find((t) => t.name === source.trackingTable);
      const head = tracking ? await target.trackingHead(tenant.database, tracking) : null;
      const trackingUpTo = saved?.trackingUpTo ?? (head ? Number(head[0]) : null);
      const results = [...(saved?.tables ?? [])];
      await withHeartbeat(async (heartbeat) => {
        for (const table of both) {
          if (results.some((r) => r.table === table.name)) continue;
          cancellation().throwIfAborted();
          const within = table === tracking ? { lower: null, upper: trackingUpTo === null ? null : [trackingUpTo] } : undefined;
          results.push(await compareTable(sourceSide, targetSide, table, chunkRows, within));
          heartbeat({ tables: results, trackingUpTo });
        }
      }, 0);
      return { tables: [...results, ...differences], trackingUpTo };
    },
  };
}
