// The restoring step, for every target kind: the restorer of the target (a restored file, RESTORE
// FROM URL, a Managed Instance through LRS) creates the database, then the protocol makes it a
// standby target once, here. A backup carries the source's write gate as it was (`open`, set by this
// migration's journaling): a restorer that forgot to close it left the first forward apply refused
// (issue 20, defect 1: the Managed Instance restorer did). Temporal-free.
import type { Artifact, BlobArtifact, Engine, Progress, RestoreOptions, RestoreTarget } from '../engines/engine';
import { TargetInUseError } from './errors';

/**
 * Restores `database` with `restorer`, then closes its write gate to `standby` for `migrationId`
 * through the target engine (which holds the tenant's triggers and foreign keys aside while the
 * gate is not open). A target still restoring log backups (`keepRestoring` on a continuous target)
 * cannot be connected to: its gate is the source's as the tail-log backup carries it, which the
 * cut-over's switch closes to `standby` itself before it opens the side.
 */
export async function restoreAsStandby(
  restorer: RestoreTarget,
  target: Pick<Engine, 'setWriteGate'>,
  database: string,
  artifact: Artifact | BlobArtifact,
  migrationId: string,
  onProgress?: Progress,
  signal?: AbortSignal,
  options: RestoreOptions = {},
): Promise<void> {
  await restorer.restore(database, artifact, migrationId, onProgress, signal, options);
  if (options.keepRestoring && restorer.continuous) return;
  signal?.throwIfAborted();
  await standbyAfterRestore(target, database, migrationId);
}

/**
 * The one place "a restored side is `standby` until the switch opens it" is kept: from the gate the
 * backup carried (`open` or `fenced`, this migration's), from `standby` (a retry), or from none (a
 * source that had no gate). A gate another migration set is not this restore's to close.
 */
export async function standbyAfterRestore(target: Pick<Engine, 'setWriteGate'>, database: string, migrationId: string): Promise<void> {
  if (!(await target.setWriteGate(database, { state: 'standby', migrationId }, { states: ['open', 'fenced', 'standby', 'none'], migrationId })))
    throw new TargetInUseError(`target database ${database}: its write gate is held by another migration than ${migrationId}; the restored database is not made a standby target`);
}
