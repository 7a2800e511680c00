// Log shipping from SQL Server to Managed Instance (LRS in continuous mode), the source's side as
// T-SQL: the log backups airlift takes while the tenant writes, and what preflight must know about
// anyone else taking log backups of the same database (a log backup that is not shipped breaks the
// chain LRS restores). The Managed Instance side (restore details, lag, complete) lives with the
// Managed Instance adapter.
import { checkDatabaseName, quoteBracketed as b } from './identifiers';
import type { Statement } from './mssql-sql';

/**
 * One log backup into the tenant's folder: WITH CHECKSUM (LRS restores only backups with checksums),
 * not COPY_ONLY (a copy-only log backup does not move the chain on, so the next one would overlap
 * it), one file per backup (FORMAT, INIT). After the fence the same statement takes the last one:
 * nothing is written after it, so once it is restored the target has every committed write. No
 * NORECOVERY: the source stays online for the reverse direction of the rollback window.
 */
export function logBackupStatement(database: string, file: string, options: { compression: boolean }): Statement {
  const withs = ['CHECKSUM', 'FORMAT', 'INIT', 'STATS = 10', ...(options.compression ? ['COMPRESSION'] : [])];
  return { sql: `BACKUP LOG ${b(checkDatabaseName(database))} TO DISK = @disk0 WITH ${withs.join(', ')};`, params: { disk0: file }, types: { disk0: 'nvarchar(260)' } };
}

/**
 * The database's recovery model, and whether its log chain has started: "sys.database_recovery_status
 * (Transact-SQL)": last_log_backup_lsn is NULL when "a transaction log backup cannot be performed
 * because the database is in SIMPLE recovery or there is no current database backup" (a database
 * switched to FULL whose only backups are COPY_ONLY: airlift's own full backup does not start a chain).
 */
export function recoveryModelQuery(database: string): Statement {
  return {
    sql: [
      'SELECT d.recovery_model_desc AS recovery_model, CAST(CASE WHEN rs.last_log_backup_lsn IS NULL THEN 0 ELSE 1 END AS bit) AS log_chain_started',
      'FROM sys.databases AS d JOIN sys.database_recovery_status AS rs ON rs.database_id = d.database_id',
      'WHERE d.name = @database;',
    ].join('\n'),
    params: { database: checkDatabaseName(database) },
    types: { database: 'nvarchar(128)' },
  };
}

/**
 * SQL Agent job steps that take log backups of this database: a T-SQL `BACKUP LOG` naming it, or a
 * maintenance solution's `@BackupType = 'LOG'` for it or for all user databases. The name is matched
 * with `_` escaped (a LIKE wildcard). Reading msdb job steps needs SQLAgentReaderRole or sysadmin.
 */
export function logBackupJobsQuery(database: string): Statement {
  return {
    sql: [
      'DECLARE @name nvarchar(260) = REPLACE(@database, N\'_\', N\'[_]\');',
      'SELECT j.name AS job_name, s.step_id, s.step_name, CAST(j.enabled AS bit) AS enabled',
      'FROM msdb.dbo.sysjobs AS j JOIN msdb.dbo.sysjobsteps AS s ON s.job_id = j.job_id',
      "WHERE (s.command LIKE N'%BACKUP%LOG%' OR s.command LIKE N'%@BackupType%LOG%')",
      "  AND (s.database_name = @database OR s.command LIKE N'%' + @name + N'%' OR s.command LIKE N'%USER[_]DATABASES%' OR s.command LIKE N'%ALL[_]DATABASES%')",
      'ORDER BY j.name, s.step_id;',
    ].join('\n'),
    params: { database: checkDatabaseName(database) },
    types: { database: 'nvarchar(128)' },
  };
}

/**
 * Log backups of this database recorded in msdb since `@since`, whoever took them (an Agent job, a
 * maintenance plan, a backup product): the ones not in airlift's folder are the ones LRS never sees.
 * A COPY_ONLY log backup is not one of them: it leaves the chain as it was ("Copy-only backups":
 * the log is not truncated and the next regular log backup holds the same records), and
 * msdb.dbo.backupset marks it is_copy_only = 1.
 */
export function logBackupHistoryQuery(database: string): Statement {
  return {
    sql: [
      'SELECT bs.backup_finish_date AS finished_at, CONVERT(nvarchar(30), bs.first_lsn) AS first_lsn, CONVERT(nvarchar(30), bs.last_lsn) AS last_lsn, mf.physical_device_name AS device',
      'FROM msdb.dbo.backupset AS bs JOIN msdb.dbo.backupmediafamily AS mf ON mf.media_set_id = bs.media_set_id',
      "WHERE bs.database_name = @database AND bs.type = 'L' AND bs.is_copy_only = 0 AND bs.backup_finish_date >= @since",
      'ORDER BY bs.last_lsn;',
    ].join('\n'),
    params: { database: checkDatabaseName(database) },
    types: { database: 'nvarchar(128)', since: 'datetime2(3)' },
  };
}

/**
 * The LSN range of the backup written to one file (`@device`, as the server wrote it), newest first:
 * how airlift finds out whether a log backup it meant to take is already taken (a retried attempt
 * must not take it twice), and where the full backup's chain starts. msdb keeps LSNs as
 * numeric(25,0); they travel as text so no digit is lost in a JavaScript number.
 */
export function backupSetByDeviceQuery(database: string): Statement {
  return {
    sql: [
      'SELECT TOP (1) bs.type, CONVERT(nvarchar(30), bs.first_lsn) AS first_lsn, CONVERT(nvarchar(30), bs.last_lsn) AS last_lsn, mf.physical_device_name AS device, bs.backup_finish_date AS finished_at',
      'FROM msdb.dbo.backupset AS bs JOIN msdb.dbo.backupmediafamily AS mf ON mf.media_set_id = bs.media_set_id',
      'WHERE bs.database_name = @database AND mf.physical_device_name = @device',
      'ORDER BY bs.backup_finish_date DESC;',
    ].join('\n'),
    params: { database: checkDatabaseName(database) },
    types: { database: 'nvarchar(128)', device: 'nvarchar(260)' },
  };
}

/**
 * Every log backup of this database that holds log records after `@after_lsn`, whoever took it, in
 * chain order: one that is not airlift's holds records LRS will never see (the chain is broken). A
 * COPY_ONLY one breaks nothing (see `logBackupHistoryQuery`) and is left out.
 */
export function logBackupsAfterQuery(database: string): Statement {
  return {
    sql: [
      'SELECT CONVERT(nvarchar(30), bs.first_lsn) AS first_lsn, CONVERT(nvarchar(30), bs.last_lsn) AS last_lsn, mf.physical_device_name AS device, bs.backup_finish_date AS finished_at',
      'FROM msdb.dbo.backupset AS bs JOIN msdb.dbo.backupmediafamily AS mf ON mf.media_set_id = bs.media_set_id',
      "WHERE bs.database_name = @database AND bs.type = 'L' AND bs.is_copy_only = 0 AND bs.last_lsn > CAST(@after_lsn AS numeric(25, 0))",
      'ORDER BY bs.first_lsn, bs.backup_finish_date;',
    ].join('\n'),
    params: { database: checkDatabaseName(database) },
    types: { database: 'nvarchar(128)', after_lsn: 'varchar(30)' },
  };
}
