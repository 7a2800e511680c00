// Phases 4-6: snapshot the source, copy the artifact to blob storage, restore it on the target.
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import type { Artifact } from '../engines';
import { artifactBlobName } from '../azure/blob-store';
import { uploadResumable } from '../azure/block-upload';
import { downloadVerified } from '../azure/block-download';
import { type ActivityDeps, cancellation, tenantSides, throttledHeartbeat } from './context';

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
      const heartbeat = throttledHeartbeat(500);
      return source.snapshot(tenant.database, join(workDir, `${tenant.database}.${source.kind}`), (fraction) => heartbeat({ fraction }));
    },

    async copyArtifact(tenantId: string, migrationId: string, artifact: Artifact, tuning: TransferTuning): Promise<CopyResult> {
      const heartbeat = throttledHeartbeat(500);
      const blobName = artifactBlobName(tenantId, migrationId, artifact.file.split(/[\\/]/).pop()!);
      const result = await uploadResumable(deps.container, blobName, artifact.file, {
        ...transferOptions(tuning, heartbeat),
        sha256: artifact.sha256,
        maxMiBps: tuning.maxUploadMiBps,
        metadata: { tenant: tenantId, migration: migrationId },
      });
      return { blobName, bytes: result.bytes, blocksSent: result.blocksSent, blocksReused: result.blocksReused };
    },

    async restoreTarget(tenantId: string, migrationId: string, blobName: string, tuning: TransferTuning): Promise<void> {
      const { tenant, target, workDir } = tenantSides(deps, tenantId, migrationId);
      const heartbeat = throttledHeartbeat(500);
      const downloaded = await downloadVerified(deps.container, blobName, join(workDir, 'download', blobName.split('/').pop()!), transferOptions(tuning, heartbeat));
      cancellation().throwIfAborted();
      await target.restore(tenant.database, { file: downloaded.file, sizeBytes: downloaded.bytes, sha256: downloaded.sha256 }, migrationId, (fraction) =>
        heartbeat({ bytesDone: downloaded.bytes, bytesTotal: downloaded.bytes, fraction }),
      );
      await rm(downloaded.file, { force: true });
    },
  };
}
