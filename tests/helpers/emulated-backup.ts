// TEST FORMAT, not SQL Server's backup format: the backup files the SQL Server stand-in
// (fake-sql-server.ts) writes and the Managed Instance emulator (mi-emulator.ts) restores. A real
// backup carries its header (RESTORE HEADERONLY: BackupType, FirstLSN, LastLSN, HasBackupChecksums);
// this one carries the same facts as one JSON line after a magic line, then the rows the backup
// holds (a full backup: every row; a log backup: the rows written in its LSN range).
import { readFileSync, writeFileSync } from 'node:fs';

const MAGIC = 'AIRLIFT-EMULATED-BACKUP/1';

export interface EmulatedBackup {
  /** D: full (database) backup; L: log backup (msdb backupset.type). */
  type: 'D' | 'L';
  database: string;
  firstLsn: string;
  lastLsn: string;
  checksum: boolean;
  rows: { lsn: string; row: Record<string, unknown> }[];
}

export function writeEmulatedBackup(file: string, backup: EmulatedBackup): void {
  writeFileSync(file, `${MAGIC}\n${JSON.stringify(backup)}\n`);
}

/** The backup in a file's bytes, or undefined when the file is not in this format (a SQLite snapshot). */
export function parseEmulatedBackup(bytes: Buffer): EmulatedBackup | undefined {
  const text = bytes.toString('utf8');
  if (!text.startsWith(`${MAGIC}\n`)) return undefined;
  return JSON.parse(text.slice(MAGIC.length + 1)) as EmulatedBackup;
}

export const readEmulatedBackup = (file: string): EmulatedBackup | undefined => parseEmulatedBackup(readFileSync(file));
