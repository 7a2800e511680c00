// Phases 4-6: snapshot the source, copy the artifact to blob storage, restore it on the target.
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import type { Artifact } from '../engines';
import { artifactBlobName } from '../azure/blob-store';
import { uploadResumable } from '../azure/block-upload';
import { downloadVerified } from '../azure/block-download';
import { containerReadSas } from '../azure/sas';
import { managedInstance } from './managed-instance';
import { type ActivityDeps, cancellation, tenantSides, withHeartbeat } from './context';
import { assertOnSource } from './cutover';

export interface TransferProgress {
  bytesDone: number;
  bytesTotal: number;
}

export interface CopyResult {
  blobName: string;
  bytes: number;
  blocksSent: number;
  blocksReused: number;
}

const MiB = 1024 * 1024;

/** The part of the migration policy that tunes transfers; it comes with each call from the workflow. */
export interface TransferTuning {
  blockSizeMiB: number;
  uploadConcurrency: number;
  maxUploadMiBps?: number;
  /** A SAS handed to a restoring server lives this long and no longer. */
  activityTimeoutMinutes: number;
}

export function transferActivities(deps: ActivityDeps) {
  const transferOptions = (tuning: TransferTuning, heartbeat: (p: TransferProgress) => void) => ({
    blockSizeBytes: Math.round(tuning.blockSizeMiB * MiB),
    concurrency: tuning.uploadConcurrency,
    signal: cancellation(),
    onProgress: (bytesDone: number, bytesTotal: number) => heartbeat({ bytesDone, bytesTotal }),
  });
  return {
    async snapshotSource(tenantId: string, migrationId: string): Promise<Artifact> {
      const { tenant, source, workDir } = tenantSides(deps, tenantId, migrationId);
      const file = source.kind === 'sqlite' ? `${tenant.database}.sqlite` : `${tenant.database}-${migrationId}.bak`;
      return withHeartbeat((heartbeat) => source.snapshot(tenant.database, join(workDir, file), (fraction) => heartbeat({ fraction })));
    },

    async copyArtifact(tenantId: string, migrationId: string, artifact: Artifact, tuning: TransferTuning): Promise<CopyResult> {
      const blobName = artifactBlobName(tenantId, migrationId, artifact.file.split(/[\\/]/).pop()!);
      const result = await withHeartbeat((heartbeat) =>
        uploadResumable(deps.container, blobName, artifact.file, {
          ...transferOptions(tuning, heartbeat),
          sha256: artifact.sha256,
          maxMiBps: tuning.maxUploadMiBps,
          metadata: { tenant: tenantId, migration: migrationId },
        }),
      );
      return { blobName, bytes: result.bytes, blocksSent: result.blocksSent, blocksReused: result.blocksReused };
    },

    async restoreTarget(tenantId: string, migrationId: string, blobName: string, tuning: TransferTuning): Promise<void> {
      assertOnSource(deps, tenantId, 'restoring');
      await withHeartbeat((heartbeat) => restore(tenantId, migrationId, blobName, tuning, heartbeat));
    },
  };

  /** Restores the artifact on the target: through ARM, from a blob URL, or from a downloaded file. */
  async function restore(tenantId: string, migrationId: string, blobName: string, tuning: TransferTuning, heartbeat: (details: unknown) => void): Promise<void> {
    const { tenant, target, workDir } = tenantSides(deps, tenantId, migrationId);
    const endpoint = deps.fleet.targets[tenant.target];
    const blob = deps.container.getBlobClient(blobName);
    const sas = () => containerReadSas(deps.container, tuning.activityTimeoutMinutes);
    if (endpoint.engine === 'azure-sql-mi') {
      // The Managed Instance reads the container itself; the restore runs through ARM.
      await managedInstance(endpoint).restore(
        tenant.database,
        { containerUri: deps.container.url, lastBackupName: blobName.split('/').pop()!, migrationId, sas },
        (p) => heartbeat({ fraction: p.percent / 100, filesRestored: p.filesRestored }),
        cancellation(),
      );
      return;
    }
    if (target.restoresFrom === 'blob') {
      const props = await blob.getProperties();
      await target.restore(
        tenant.database,
        { url: blob.url, containerUrl: deps.container.url, blobName, sizeBytes: props.contentLength ?? 0, sha256: props.metadata?.sha256 ?? '', sas },
        migrationId,
        (fraction) => heartbeat({ fraction }),
      );
      return;
    }
    const downloaded = await downloadVerified(deps.container, blobName, join(workDir, 'download', blobName.split('/').pop()!), transferOptions(tuning, heartbeat));
    cancellation().throwIfAborted();
    await target.restore(tenant.database, { file: downloaded.file, sizeBytes: downloaded.bytes, sha256: downloaded.sha256 }, migrationId, (fraction) =>
      heartbeat({ bytesDone: downloaded.bytes, bytesTotal: downloaded.bytes, fraction }),
    );
    await rm(downloaded.file, { force: true });
  }
}
