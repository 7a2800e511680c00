// Log shipping to a target that keeps restoring (a Managed Instance under LRS in continuous mode):
// after the full backup, the source's log is backed up into airlift's backup folder and each backup
// is uploaded to the tenant's artifact folder, where the target restores it. Temporal-free.
//
// The chain. A log backup holds the log records from its first LSN up to (not including) its last
// LSN ("Log Sequence Numbers and Restore Planning"): the first one shipped must reach back to the
// full backup's last LSN, each later one must start where the one before ended. A log backup that
// someone else takes (a SQL Agent job, a backup product) moves the chain on without being shipped,
// so LRS can never restore past it: shipping stops with LogChainBrokenError naming the LSN range
// and the file that holds it, and never uploads a backup that does not follow the last one shipped.
//
// The cursor is the last shipped backup: its number (n in `<database>-<migration>-log-<n>.trn`) and
// last LSN. Interleavings it survives:
//  - an attempt dies after BACKUP LOG and before the upload: the next attempt finds backup n+1 in the
//    server's backup history by its file name, does not take it again, and uploads it;
//  - an attempt dies after the upload and before its checkpoint: the folder lists backup n+1, so
//    `resumeCursor` starts after it; the upload of an existing blob is skipped;
//  - another log backup taken by someone else between two of ours: caught before the next BACKUP LOG
//    (backup history after the cursor) or after it (the new backup does not start at the cursor);
//  - the tail-log backup under the cut-over's fence is the same step, so it cannot overlap a
//    background attempt: the workflow stops the background shipping before it fences.
import { LogChainBrokenError } from './errors';
import type { BackupSet, LogBackupSource } from '../engines/engine';

/** Where the backups go: the tenant's artifact folder (`<tenant>.<migration>/` in the container). */
export interface ShippingFolder {
  /** File names in the folder. */
  list(): Promise<string[]>;
  /** Uploads a local file under `name` unless a complete blob of that name is there. */
  upload(localFile: string, name: string): Promise<void>;
}

export interface LogShippingCursor {
  /** How many log backups this migration has shipped; 0: only the full backup. */
  seq: number;
  /** The last LSN of the last shipped backup (the full backup's when seq is 0). */
  lastLsn: string;
  /** The file name of the last shipped backup, as the target's restore details name it. */
  lastBackupName: string;
}

export interface LogShipping {
  database: string;
  migrationId: string;
  source: LogBackupSource;
  folder: ShippingFolder;
  /** The full backup's file name (already in the folder). */
  fullBackupName: string;
}

/** `<database>-<migration>-log-000001.trn`: one name per backup, so a retry finds what it took. */
export function logBackupName(database: string, migrationId: string, seq: number): string {
  return `${database}-${migrationId}-log-${String(seq).padStart(6, '0')}.trn`;
}

const LOG_NAME = /-log-(\d{6})\.trn$/;

const lsn = (text: string): bigint => BigInt(text);

/** Where shipping stands: the newest of this migration's log backups in the folder, or the full backup. */
export async function resumeCursor(s: LogShipping): Promise<LogShippingCursor> {
  const prefix = `${s.database}-${s.migrationId}-log-`;
  let seq = 0;
  for (const name of await s.folder.list()) {
    const m = LOG_NAME.exec(name);
    if (m && name.startsWith(prefix)) seq = Math.max(seq, Number(m[1]));
  }
  const name = seq ? logBackupName(s.database, s.migrationId, seq) : s.fullBackupName;
  const set = await s.source.backupSetOf(s.database, name);
  if (!set)
    throw new LogChainBrokenError(
      `${s.database}: the server's backup history has no record of ${name} (msdb history cleaned up?); the chain cannot be followed from it. Roll back and migrate again`,
    );
  return { seq, lastLsn: set.lastLsn, lastBackupName: name };
}

/**
 * Takes (or finds, after a retry) the next log backup and ships it; returns the new cursor. Refuses,
 * shipping nothing, when the chain from `cursor` is broken.
 */
export async function shipNext(s: LogShipping, cursor: LogShippingCursor): Promise<LogShippingCursor> {
  const name = logBackupName(s.database, s.migrationId, cursor.seq + 1);
  let set = await s.source.backupSetOf(s.database, name);
  if (!set) {
    await assertNoForeignBackups(s, cursor);
    await s.source.takeLogBackup(s.database, name);
    set = await s.source.backupSetOf(s.database, name);
    if (!set) throw new LogChainBrokenError(`${s.database}: BACKUP LOG to ${s.source.serverPath(name)} left no record in the server's backup history`);
  }
  // The first log backup reaches back over the full backup's last LSN; each later one starts at the last one's end.
  if (lsn(set.firstLsn) > lsn(cursor.lastLsn)) {
    await assertNoForeignBackups(s, cursor);
    throw brokenChain(s, cursor, set.firstLsn, []);
  }
  await s.folder.upload(s.source.localPath(name), name);
  return { seq: cursor.seq + 1, lastLsn: set.lastLsn, lastBackupName: name };
}

/** Log backups after the cursor that are not this migration's: their records never reach the target. */
async function assertNoForeignBackups(s: LogShipping, cursor: LogShippingCursor): Promise<void> {
  const ours = (device: string) => {
    const file = device.split(/[\\/]/).pop()!;
    return LOG_NAME.test(file) && file.startsWith(`${s.database}-${s.migrationId}-log-`) && device === s.source.serverPath(file);
  };
  const foreign = (await s.source.logBackupsAfter(s.database, cursor.lastLsn)).filter((b) => !ours(b.device));
  if (foreign.length) throw brokenChain(s, cursor, foreign[foreign.length - 1].lastLsn, foreign);
}

function brokenChain(s: LogShipping, cursor: LogShippingCursor, upTo: string, foreign: BackupSet[]): LogChainBrokenError {
  const where = foreign.length
    ? `in ${foreign.map((b) => `${b.device} (LSN ${b.firstLsn} to ${b.lastLsn}${b.finishedAt ? `, ${b.finishedAt.toISOString()}` : ''})`).join(', ')}, a log backup airlift did not take`
    : 'in a log backup airlift did not take (see msdb.dbo.backupset)';
  return new LogChainBrokenError(
    `${s.database}: the log chain shipped to the target is broken: the log records from LSN ${cursor.lastLsn} (after ${cursor.lastBackupName}) to LSN ${upTo} are ${where}; ` +
      'LRS cannot restore past the gap. Stop the job that takes log backups of this database (airlift plan --check names it), roll back and migrate again',
  );
}

/**
 * Ships a log backup every `intervalMs` until `signal` aborts, reporting each new cursor; starts from
 * what the folder and the backup history say (`resumeCursor`), never from a remembered position.
 */
export async function shipContinuously(
  s: LogShipping,
  options: { intervalMs: number; signal: AbortSignal; onShipped: (cursor: LogShippingCursor) => void; sleep: (ms: number) => Promise<void> },
): Promise<LogShippingCursor> {
  let cursor = await resumeCursor(s);
  options.onShipped(cursor);
  while (!options.signal.aborted) {
    await options.sleep(options.intervalMs);
    if (options.signal.aborted) break;
    cursor = await shipNext(s, cursor);
    options.onShipped(cursor);
  }
  return cursor;
}
