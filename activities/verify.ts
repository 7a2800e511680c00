// Phase 8: every table compared source vs target; a mismatching chunk is narrowed to its keys.
// The heartbeat carries the tables already compared, so a retry continues where it stopped.
import { compareTable, compareTableSets, type TableComparison } from '../engines/table-verifier';
import { type ActivityDeps, cancellation, checkpoint, tenantSides } from './context';
import { Context } from '@temporalio/activity';

export function verifyActivities(deps: ActivityDeps) {
  return {
    async verifyTables(tenantId: string, migrationId: string, chunkRows: number): Promise<TableComparison[]> {
      const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
      const sourceSide = { engine: source, database: tenant.database };
      const targetSide = { engine: target, database: tenant.database };
      const done = checkpoint<TableComparison[]>() ?? [];
      const { both, differences } = await compareTableSets(sourceSide, targetSide);
      const results = [...done];
      for (const table of both) {
        if (results.some((r) => r.table === table.name)) continue;
        cancellation().throwIfAborted();
        results.push(await compareTable(sourceSide, targetSide, table, chunkRows));
        Context.current().heartbeat(results);
      }
      return [...results, ...differences];
    },
  };
}
