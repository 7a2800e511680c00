// Phases 4-6: snapshot the source, copy the artifact to blob storage, restore it on the target.
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { ArtifactMissingError } from '../protocol/errors';
import type { Artifact } from '../engines';
import { artifactBlobName } from '../azure/blob-store';
import { uploadBlockSize, uploadResumable } from '../azure/block-upload';
import { downloadRangeBytes, downloadVerified } from '../azure/block-download';
import { restoreAsStandby } from '../protocol/restore';
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
  /** The restore timeout: the container's SAS is valid at least this long when a restore starts. */
  activityTimeoutMinutes: number;
}

export function transferActivities(deps: ActivityDeps) {
  /** The policy's transfer settings, as the upload and the snapshot's plan of its blocks take them. */
  const uploadSettings = (tuning: TransferTuning) => ({ blockSizeBytes: Math.round(tuning.blockSizeMiB * MiB), concurrency: tuning.uploadConcurrency, maxMiBps: tuning.maxUploadMiBps });
  const transferOptions = (tuning: TransferTuning, heartbeat: (p: TransferProgress) => void) => {
    const { blockSizeBytes, concurrency } = uploadSettings(tuning);
    return { blockSizeBytes, concurrency, signal: cancellation(), onProgress: (bytesDone: number, bytesTotal: number) => heartbeat({ bytesDone, bytesTotal }) };
  };
  /**
   * A blob that is gone (a lifecycle rule, a hand, a storage emulator killed before it saved) cannot
   * be restored from, and retrying cannot bring it back: the restore fails at once, and the tenant is
   * rolled back onto its source. It is not sent again from here: a restore attempt that outlived its
   * heartbeat could then put a blob back after a rollback had removed the migration's blobs.
   */
  const artifactGone = (blobName: string) => (err: { statusCode?: number }) => {
    if (err.statusCode === 404)
      throw new ArtifactMissingError(`the artifact blob ${blobName} is gone (deleted, or lost by the storage); nothing can be restored from it: the tenant stays on its source, migrate it again`);
    throw err;
  };

  return {
    /** With the transfer tuning, the snapshot also records the MD5 of each block the copy will send. */
    async snapshotSource(tenantId: string, migrationId: string, tuning?: TransferTuning): Promise<Artifact> {
      const { tenant, source, workDir } = tenantSides(deps, tenantId, migrationId);
      const blockSizeOf = tuning && ((size: number) => uploadBlockSize(size, uploadSettings(tuning)));
      return withHeartbeat((heartbeat) => source.snapshot(tenant.database, join(workDir, source.artifactName(tenant.database, migrationId)), (fraction) => heartbeat({ fraction }), blockSizeOf));
    },

    async copyArtifact(tenantId: string, migrationId: string, artifact: Artifact, tuning: TransferTuning): Promise<CopyResult> {
      const blobName = artifactBlobName(tenantId, migrationId, artifact.file.split(/[\\/]/).pop()!);
      const result = await withHeartbeat((heartbeat) =>
        uploadResumable(deps.container, blobName, artifact.file, {
          ...transferOptions(tuning, heartbeat),
          maxMiBps: tuning.maxUploadMiBps,
          sha256: artifact.sha256,
          blockDigests: artifact.blockDigests,
          metadata: { tenant: tenantId, migration: migrationId },
        }),
      );
      return { blobName, bytes: result.bytes, blocksSent: result.blocksSent, blocksReused: result.blocksReused };
    },

    /** With `keepRestoring` (log shipping), returns once the full backup is restored, the target still restoring. */
    async restoreTarget(tenantId: string, migrationId: string, blobName: string, tuning: TransferTuning, keepRestoring = false): Promise<void> {
      assertOnSource(deps, tenantId, 'restoring');
      await withHeartbeat((heartbeat) => restore(tenantId, migrationId, blobName, tuning, heartbeat, keepRestoring));
    },
  };

  /**
   * Restores the artifact on the target (the target reads the blob itself, ARM or RESTORE FROM URL, or
   * a downloaded file), and leaves it standby (protocol/restore.ts), whatever the restorer.
   */
  async function restore(tenantId: string, migrationId: string, blobName: string, tuning: TransferTuning, heartbeat: (details: unknown) => void, keepRestoring: boolean): Promise<void> {
    const { tenant, restorer, target, workDir } = tenantSides(deps, tenantId, migrationId);
    const signal = cancellation();
    if (restorer.restoresFrom === 'blob') {
      const blob = deps.container.getBlobClient(blobName);
      const props = await blob.getProperties().catch(artifactGone(blobName));
      const folder = blobName.slice(0, blobName.lastIndexOf('/'));
      // The container's one SAS (or the instance's identity), from the worker's wiring; never in the workflow.
      const sas = () => deps.restoreAccess.sas(tuning.activityTimeoutMinutes);
      await restoreAsStandby(
        restorer,
        target,
        tenant.database,
        {
          url: blob.url,
          containerUrl: deps.container.url,
          folderUrl: `${deps.container.url}/${folder}`,
          blobName,
          lastBackupName: blobName.slice(folder.length + 1),
          sizeBytes: props.contentLength ?? 0,
          sha256: props.metadata?.sha256 ?? '',
          sas: async () => (await sas()).token,
          access: async () => (deps.fleet.storage.restoreAccess === 'managed-identity' ? { kind: 'managed-identity' } : { kind: 'sas', ...(await sas()) }),
        },
        migrationId,
        (fraction, detail) => heartbeat({ fraction, ...detail }),
        signal,
        { keepRestoring },
      );
      return;
    }
    const options = transferOptions(tuning, heartbeat);
    const downloaded = await downloadVerified(deps.container, blobName, join(workDir, 'download', blobName.split('/').pop()!), {
      ...options,
      blockSizeBytes: downloadRangeBytes(options.blockSizeBytes),
    }).catch(artifactGone(blobName));
    signal.throwIfAborted();
    await restoreAsStandby(restorer, target, tenant.database, { file: downloaded.file, sizeBytes: downloaded.bytes, sha256: downloaded.sha256 }, migrationId, (fraction) =>
      heartbeat({ bytesDone: downloaded.bytes, bytesTotal: downloaded.bytes, fraction }),
    signal);
    await rm(downloaded.file, { force: true });
  }
}
