// Phase 10 and the compensations: catalog flips, and undoing what this migration created.
import { rm } from 'node:fs/promises';
import { type ActivityDeps, tenantSides } from './context';
import type { Side } from '../ingestion/catalog';

export function cutoverActivities(deps: ActivityDeps) {
  return {
    /** Makes `side` the tenant's primary; returns the catalog epoch now in force. */
    async flipPrimary(tenantId: string, side: Side): Promise<number> {
      return deps.catalog.setPrimary(tenantId, side).epoch;
    },

    /** Drops the target database only if this migration created it. */
    async dropTarget(tenantId: string, migrationId: string): Promise<boolean> {
      const { tenant, target } = tenantSides(deps, tenantId, migrationId);
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
