// Phases 4-6: snapshot the source, copy the artifact to blob storage, restore it on the target.
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { Context } from '@temporalio/activity';
import type { BlockDigests } from '../engines/checksum';
import { ArtifactMissingError } from '../protocol/errors';
import type { Artifact } from '../engines';
import { artifactBlobName } from '../azure/blob-store';
import { uploadBlockSize, uploadResumable } from '../azure/block-upload';
import { downloadRangeBytes, downloadVerified } from '../azure/block-download';
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
  /** Where this worker keeps the snapshot of a tenant's migration. */
  const snapshotFile = (tenantId: string, migrationId: string): string => {
    const { tenant, source, workDir } = tenantSides(deps, tenantId, migrationId);
    return join(workDir, source.artifactName(tenant.database, migrationId));
  };
  /** The artifact to its blob, the sha256 in the metadata, each block checked against the MD5 the snapshot recorded. */
  const sendArtifact = (tenantId: string, migrationId: string, blobName: string, artifact: Pick<Artifact, 'file' | 'sha256' | 'blockDigests'>, tuning: TransferTuning, heartbeat: (p: TransferProgress) => void) =>
    uploadResumable(deps.container, blobName, artifact.file, {
      ...transferOptions(tuning, heartbeat),
      maxMiBps: tuning.maxUploadMiBps,
      sha256: artifact.sha256,
      blockDigests: artifact.blockDigests,
      metadata: { tenant: tenantId, migration: migrationId },
    });
  return {
    /** With the transfer tuning, the snapshot also records the MD5 of each block the copy will send. */
    async snapshotSource(tenantId: string, migrationId: string, tuning?: TransferTuning): Promise<Artifact> {
      const { tenant, source } = tenantSides(deps, tenantId, migrationId);
      const blockSizeOf = tuning && ((size: number) => uploadBlockSize(size, uploadSettings(tuning)));
      return withHeartbeat((heartbeat) => source.snapshot(tenant.database, snapshotFile(tenantId, migrationId), (fraction) => heartbeat({ fraction }), blockSizeOf));
    },

    async copyArtifact(tenantId: string, migrationId: string, artifact: Artifact, tuning: TransferTuning): Promise<CopyResult> {
      const blobName = artifactBlobName(tenantId, migrationId, artifact.file.split(/[\\/]/).pop()!);
      const result = await withHeartbeat((heartbeat) => sendArtifact(tenantId, migrationId, blobName, artifact, tuning, heartbeat));
      return { blobName, bytes: result.bytes, blocksSent: result.blocksSent, blocksReused: result.blocksReused };
    },

    /** With `keepRestoring` (log shipping), returns once the full backup is restored, the target still restoring. */
    async restoreTarget(tenantId: string, migrationId: string, blobName: string, tuning: TransferTuning, keepRestoring = false): Promise<void> {
      assertOnSource(deps, tenantId, 'restoring');
      await withHeartbeat((heartbeat) => restore(tenantId, migrationId, blobName, tuning, heartbeat, keepRestoring));
    },
  };

  /**
   * The artifact's blob, there for the restore. A blob that is gone (a lifecycle rule, a hand, a
   * storage emulator killed before it saved) is sent again from the snapshot this worker still holds,
   * each block checked by the service against the MD5 the snapshot recorded; the download then checks
   * the whole against the snapshot's sha256. Without that snapshot the restore cannot happen, and
   * says so once instead of retrying.
   */
  async function ensureArtifactBlob(tenantId: string, migrationId: string, blobName: string, tuning: TransferTuning, heartbeat: (p: TransferProgress) => void): Promise<void> {
    if (await deps.container.getBlobClient(blobName).exists()) return;
    const file = snapshotFile(tenantId, migrationId);
    const blockDigests = `${file}.blocks.json`;
    const recorded = await readFile(blockDigests, 'utf8').then((text) => JSON.parse(text) as BlockDigests, () => undefined);
    if (!recorded || !existsSync(file))
      throw new ArtifactMissingError(`the artifact blob ${blobName} is gone and this worker holds no snapshot of ${tenantId} to send again; roll the tenant back and migrate it again`);
    Context.current().log.warn(`restoring ${tenantId}: the artifact blob ${blobName} is gone; sending it again from the snapshot`);
    await sendArtifact(tenantId, migrationId, blobName, { file, sha256: recorded.sha256, blockDigests }, tuning, heartbeat);
  }

  /** Restores the artifact on the target: the target reads the blob itself (ARM, RESTORE FROM URL), or from a downloaded file. */
  async function restore(tenantId: string, migrationId: string, blobName: string, tuning: TransferTuning, heartbeat: (details: unknown) => void, keepRestoring: boolean): Promise<void> {
    await ensureArtifactBlob(tenantId, migrationId, blobName, tuning, heartbeat);
    const { tenant, restorer, workDir } = tenantSides(deps, tenantId, migrationId);
    const signal = cancellation();
    if (restorer.restoresFrom === 'blob') {
      const blob = deps.container.getBlobClient(blobName);
      const props = await blob.getProperties();
      const folder = blobName.slice(0, blobName.lastIndexOf('/'));
      // The container's one SAS (or the instance's identity), from the worker's wiring; never in the workflow.
      const sas = () => deps.restoreAccess.sas(tuning.activityTimeoutMinutes);
      await restorer.restore(
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
    });
    signal.throwIfAborted();
    await restorer.restore(tenant.database, { file: downloaded.file, sizeBytes: downloaded.bytes, sha256: downloaded.sha256 }, migrationId, (fraction) =>
      heartbeat({ bytesDone: downloaded.bytes, bytesTotal: downloaded.bytes, fraction }),
    );
    await rm(downloaded.file, { force: true });
  }
}
