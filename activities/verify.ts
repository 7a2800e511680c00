// Phase 8: every table compared source vs target while the tenant writes; a mismatching chunk is
// narrowed to its keys, and keys whose change is still on its way are left to the cut-over.
// The heartbeat carries the tables already compared, so a retry continues where it stopped.
import { compareTable, compareTableSets, type TableComparison } from '../engines/table-verifier';
import { ChangedKeys, compareAfterFlip, rebaseline, someDifferences } from '../protocol/changed-rows';
import { VerificationMismatchError } from '../protocol/errors';
import { schemaRefusal } from '../protocol/switch';
import { resumePoint } from '../protocol/replicator';
import { replicationStream } from './dual-write';
import { type ActivityDeps, cancellation, checkpoint, tenantSides, withHeartbeat } from './context';

export function verifyActivities(deps: ActivityDeps) {
  return {
    /**
     * The tenant keeps writing: a row that differs while its change is still on its way is in flux,
     * not a mismatch. `verifiedFrom` (where replication stood when verification began) is returned:
     * the switch compares every row changed after it, row by row, once the log is drained.
     */
    async verifyTables(tenantId: string, migrationId: string, chunkRows: number, journalFrom: number): Promise<{ tables: TableComparison[]; verifiedFrom: number }> {
      const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
      const sourceSide = { engine: source, database: tenant.database };
      const targetSide = { engine: target, database: tenant.database };
      // A table created or changed on the source since journaling (a deploy while the tenant catches
      // up) is a refusal with its reason, not an error retried until the activity's timeout.
      const refusal = await schemaRefusal({ database: tenant.database, origin: 'source', from: source, to: target });
      if (refusal) throw new VerificationMismatchError(`${refusal}; the tenant stays on its source: migrate it again once the schema is settled`);
      const saved = checkpoint<{ tables: TableComparison[]; verifiedFrom: number }>();
      const verifiedFrom = saved?.verifiedFrom ?? (await resumePoint(replicationStream(deps, tenantId, migrationId, 'forward'), journalFrom));
      const changing = new ChangedKeys(source, tenant.database, verifiedFrom);
      const { both, differences } = await compareTableSets(sourceSide, targetSide);
      const results = [...(saved?.tables ?? [])];
      await withHeartbeat(async (heartbeat) => {
        for (const table of both) {
          if (results.some((r) => r.table === table.name)) continue;
          cancellation().throwIfAborted();
          results.push(await compareTable(sourceSide, targetSide, table, chunkRows, undefined, changing));
          heartbeat({ tables: results, verifiedFrom });
        }
      }, 0);
      return { tables: [...results, ...differences], verifiedFrom };
    },

    /**
     * Before each cut-over attempt (the dual-write stopped): compares online the rows changed since
     * `verifiedFrom` up to where replication stands, and returns that point, so the fenced compare
     * covers only what changed since (protocol/changed-rows.ts `rebaseline`).
     */
    /**
     * Log shipping: the rows changed since journaling that the cut-over did not compare under its
     * fence, compared now in the rollback window (protocol/changed-rows.ts `compareAfterFlip`). A
     * difference fails the migration, and the rollback puts the tenant back on its source.
     */
    compareAfterFlip: (tenantId: string, migrationId: string, span: { after: number; until: number }, windowFrom: number): Promise<number> =>
      withHeartbeat(async (beat) => {
        const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
        const differences = await compareAfterFlip({ engine: source, database: tenant.database }, { engine: target, database: tenant.database }, span, windowFrom, () => beat(span));
        if (differences.length)
          throw new VerificationMismatchError(`rows changed before the cut-over differ on the target (compared after the flip): ${someDifferences(differences)}; the tenant is rolled back to its source`);
        return span.until - span.after;
      }),

    rebaselineVerification: (tenantId: string, migrationId: string, journalFrom: number, verifiedFrom: number): Promise<number> =>
      withHeartbeat(async (beat) => {
        const { tenant, source, target } = tenantSides(deps, tenantId, migrationId);
        const appliedUpTo = await resumePoint(replicationStream(deps, tenantId, migrationId, 'forward'), journalFrom);
        return rebaseline({ engine: source, database: tenant.database }, { engine: target, database: tenant.database }, verifiedFrom, appliedUpTo, () => {
          cancellation().throwIfAborted();
          beat({ verifiedFrom, appliedUpTo });
        });
      }),
  };
}
