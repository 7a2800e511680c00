// Log shipping to Managed Instance, the SQL Server side (issue 9): the log backups airlift takes and
// what preflight says about anyone else taking log backups. T-SQL text and findings only; the LRS
// continuous restore itself is the Managed Instance adapter's (and its emulator's).
import * as logsql from '../../engines/mssql-log-sql';
import * as tsql from '../../engines/mssql-sql';
import { logBackupFindings } from '../../engines/mssql';

test('a log backup is a real one (not COPY_ONLY) WITH CHECKSUM, to a parameterised file, leaving the source online', () => {
  // BACKUP (Transact-SQL): COPY_ONLY log backups leave the log chain where it was; CHECKSUM is what
  // LRS requires of every backup it restores; NORECOVERY would take the source offline, and the
  // rollback window replicates back into it.
  const s = logsql.logBackupStatement('acme_db', "D:\\airlift\\acme_db'-log-0001.trn", { compression: true });
  expect(s.sql).toBe('BACKUP LOG [acme_db] TO DISK = @disk0 WITH CHECKSUM, FORMAT, INIT, STATS = 10, COMPRESSION;');
  expect(s.params).toEqual({ disk0: "D:\\airlift\\acme_db'-log-0001.trn" });
  expect(s.sql).not.toMatch(/COPY_ONLY|NORECOVERY/);
  expect(() => logsql.logBackupStatement("x'; DROP DATABASE y --", 'f', { compression: false })).toThrow(/is not a valid SQL identifier/);
});

test('log backup jobs are found by their step text, the database name matched literally (_ is a LIKE wildcard)', () => {
  const s = logsql.logBackupJobsQuery('acme_db');
  expect(s.sql).toContain("DECLARE @name nvarchar(260) = REPLACE(@database, N'_', N'[_]');");
  expect(s.sql).toContain('FROM msdb.dbo.sysjobs AS j JOIN msdb.dbo.sysjobsteps AS s ON s.job_id = j.job_id');
  expect(s.sql).toContain("s.command LIKE N'%BACKUP%LOG%'");
  expect(s.types).toEqual({ database: 'nvarchar(128)' });
  expect(logsql.logBackupHistoryQuery('acme_db').types).toEqual({ database: 'nvarchar(128)', since: 'datetime2(3)' });
});

describe('preflight findings about log backups', () => {
  const facts = { database: 'acme', recoveryModel: 'FULL', jobs: [] as never[], backups: [] as { finished_at: Date; device: string }[], ourFolder: 'D:\\airlift\\' };

  test('nothing to say about a FULL database nobody else backs up', () => {
    expect(logBackupFindings(facts)).toEqual([]);
  });

  test('the SIMPLE recovery model, a log backup job and a foreign log backup are each named with the fix', () => {
    const findings = logBackupFindings({
      ...facts,
      recoveryModel: 'SIMPLE',
      jobs: [{ job_name: 'DatabaseBackup - USER_DATABASES - LOG', step_id: 1, step_name: 'backup', enabled: true }],
      backups: [
        { finished_at: new Date('2026-11-29T10:00:00Z'), device: 'D:\\airlift\\acme-log-1.trn' },
        { finished_at: new Date('2026-11-29T10:15:00Z'), device: '\\\\nas\\sql\\acme_LOG_20261129_1015.trn' },
      ],
    });
    expect(findings).toEqual([
      'database acme uses the SIMPLE recovery model: log shipping to Managed Instance needs FULL (ALTER DATABASE [acme] SET RECOVERY FULL, then a full backup that is not COPY_ONLY)',
      "SQL Agent job 'DatabaseBackup - USER_DATABASES - LOG' step 1 ('backup') takes log backups of acme: a log backup airlift does not ship breaks the chain; disable the job for the migration or let airlift take the log backups",
      "1 log backup(s) of acme were written outside airlift's folder recently (last: \\\\nas\\sql\\acme_LOG_20261129_1015.trn at 2026-11-29T10:15:00.000Z): whoever takes them must stop during the migration",
    ]);
  });

  // "Migrate databases from SQL Server to SQL Managed Instance by using Log Replay Service"
  // (learn.microsoft.com/azure/azure-sql/managed-instance/log-replay-service-migrate): the databases
  // must use the full recovery model. "sys.database_recovery_status (Transact-SQL)": last_log_backup_lsn
  // NULL means no log backup can be taken (no current database backup) (issue 20, defect 6).
  test('BULK_LOGGED is refused, and a FULL database with no log chain yet is named with the full backup to take', () => {
    expect(logBackupFindings({ ...facts, recoveryModel: 'BULK_LOGGED' })).toEqual([expect.stringMatching(/^database acme uses the BULK_LOGGED recovery model: log shipping to Managed Instance needs FULL/)]);
    expect(logBackupFindings({ ...facts, logChainStarted: false })).toEqual([
      "database acme has no log chain yet (recovery model FULL, but no full backup since: BACKUP LOG would fail and airlift's COPY_ONLY backup does not start one); take one full backup that is not COPY_ONLY (BACKUP DATABASE [acme] TO …) before the migration",
    ]);
    const q = logsql.recoveryModelQuery('acme');
    expect(q.sql).toContain('CAST(CASE WHEN rs.last_log_backup_lsn IS NULL THEN 0 ELSE 1 END AS bit) AS log_chain_started');
    expect(q.sql).toContain('JOIN sys.database_recovery_status AS rs ON rs.database_id = d.database_id');
  });

  // "Copy-only backups (SQL Server)": a copy-only log backup does not truncate the log or move the
  // chain; msdb.dbo.backupset.is_copy_only marks it ("backupset (Transact-SQL)").
  test("someone else's COPY_ONLY log backup is not called a break in the chain", () => {
    for (const q of [logsql.logBackupHistoryQuery('acme'), logsql.logBackupsAfterQuery('acme')]) expect(q.sql).toContain("bs.type = 'L' AND bs.is_copy_only = 0");
  });

  test('a login that cannot read msdb gets a finding naming the role, not a crash', () => {
    expect(logBackupFindings({ ...facts, jobs: 'unreadable' })).toEqual([expect.stringMatching(/grant the login SQLAgentReaderRole in msdb/)]);
  });
});

test.each([
  ['log backup', logsql.logBackupStatement('acme_db', 'D:\\airlift\\acme_db-log-0001.trn', { compression: false })],
  ['recovery model', logsql.recoveryModelQuery('acme_db')],
  ['log backup jobs', logsql.logBackupJobsQuery('acme_db')],
  ['log backup history', logsql.logBackupHistoryQuery('acme_db')],
])('%s statement', (_name, statement) => {
  expect(tsql.renderStatement(statement)).toMatchSnapshot();
});
