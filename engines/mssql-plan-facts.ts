// What `airlift plan` says about a SQL Server source beyond its steps (issue 20): the checks preflight
// runs on it, what the cut-over does to its foreign keys and key counters, how long the restore's
// credential lives against the Log Replay Service's window, and how often log backups ship. Built from
// the same statements the engine sends.
import * as capture from './mssql-capture-sql';
import * as counters from './mssql-counters-sql';
import * as logsql from './mssql-log-sql';
import { MIN_CAPTURE_VERSION } from './mssql-inventory';
import { renderStatement } from './mssql-sql';

/** "A single LRS job can run for a maximum of 30 days" (Overview of Log Replay Service, Limitations). */
export const LRS_MAX_DAYS = 30;
/** A log backup every this many seconds or more keeps a month of shipping to a few thousand files at most. */
export const RECOMMENDED_LOG_BACKUP_SECONDS = 300;

export interface SqlServerPlanInput {
  database: string;
  /** The target restores through LRS (a Managed Instance); `continuous`: it keeps restoring log backups until completed. */
  managedInstance?: { continuous: boolean; logShipping: boolean };
  restoreAccess: 'managed-identity' | 'sas';
  /** How long a restore's SAS is made valid for (the restore timeout). */
  sasMinutes: number;
  logBackupSeconds: number;
}

export interface SqlServerPlan {
  minimumVersion: { version: string; release: string; why: string; checkedBy: string };
  recoveryModel: { required: string; checks: string[]; statement: string };
  managedInstanceLimits?: { checked: string[]; notChecked: string[] };
  foreignKeys: { underTheFence: string; afterTheFlip: string; source: string; statements: string[] };
  keyCounters: { carried: string; statements: string[] };
  credential: { kind: 'managed-identity' | 'sas'; validFor: string; lrsWindow: string; ok: boolean; fix?: string };
  logBackups?: { shipped: boolean; everySeconds: number; filesPerDay: number; ok: boolean; note: string };
}

export function sqlServerPlan(input: SqlServerPlanInput): SqlServerPlan {
  const mi = input.managedInstance;
  const continuous = Boolean(mi?.continuous);
  const credentialOk = input.restoreAccess === 'managed-identity' || !continuous;
  const filesPerDay = Math.round(86400 / input.logBackupSeconds);
  return {
    minimumVersion: {
      version: MIN_CAPTURE_VERSION,
      release: 'SQL Server 2016 SP1',
      why: 'change capture uses CREATE OR ALTER, CURRENT_TRANSACTION_ID() and SESSION_CONTEXT; an older source is refused at preflight with the reason',
      checkedBy: "SELECT SERVERPROPERTY('ProductVersion'), SERVERPROPERTY('EngineEdition')",
    },
    recoveryModel: {
      required: mi ? 'FULL (LRS restores FULL only; BULK_LOGGED and SIMPLE refused)' : 'any for a restore onto SQL Server (FULL needed only to ship log backups)',
      checks: [
        'recovery model FULL (sys.databases.recovery_model_desc)',
        'log chain started: sys.database_recovery_status.last_log_backup_lsn is set (otherwise BACKUP LOG fails: take one full backup that is not COPY_ONLY)',
        "log backups by others in msdb (COPY_ONLY ones excepted) and SQL Agent jobs that take them: each would break the shipped chain",
      ],
      statement: renderStatement(logsql.recoveryModelQuery(input.database)),
    },
    ...(mi
      ? {
          managedInstanceLimits: {
            checked: [
              "the instance's reserved storage against every database bound for it (storageSizeInGB)",
              'at most 100 LRS restores per instance: a restore waits for a free one',
              'compatibility level 100 or higher; TDE certificate; Windows logins',
            ],
            notChecked: [
              'databases per instance (100 on General Purpose, 500 on next-gen General Purpose)',
              'restores per subscription, 280 database files and no In-Memory OLTP on General Purpose, FILESTREAM/FileTable, a single log file',
            ],
          },
        }
      : {}),
    foreignKeys: {
      underTheFence: 'the target is opened with its foreign keys re-enabled WITH NOCHECK: no row is read while writes wait',
      afterTheFlip: 'the keys that were trusted are re-validated online (WITH CHECK CHECK CONSTRAINT, one at a time) when capture leaves the primary',
      source: "never touched: the source's gate stops its writers, its keys stay as they are",
      statements: [renderStatement(capture.releaseStatement), renderStatement(capture.retrustStatement)],
    },
    keyCounters: {
      carried: 'under the fence, both ways: IDENTITY (IDENT_CURRENT, DBCC CHECKIDENT … RESEED) and SEQUENCE (sys.sequences, ALTER SEQUENCE … RESTART WITH), never lowered',
      statements: [renderStatement(counters.keyCountersQuery), renderStatement(counters.raiseIdentityStatement), renderStatement(counters.raiseSequenceStatement)],
    },
    credential: {
      kind: input.restoreAccess,
      validFor: input.restoreAccess === 'managed-identity' ? "the instance's managed identity (no expiry)" : `a SAS valid ${input.sasMinutes} minutes from each restore's start`,
      lrsWindow: continuous ? `LRS keeps reading new log backups until completeRestore, up to ${LRS_MAX_DAYS} days` : 'LRS reads the folder once, for the restore',
      ok: credentialOk,
      ...(credentialOk ? {} : { fix: `storage.restoreAccess: managed-identity (a SAS of ${input.sasMinutes} minutes expires long before a continuous restore is completed)` }),
    },
    ...(mi
      ? {
          logBackups: {
            shipped: mi.logShipping,
            everySeconds: input.logBackupSeconds,
            filesPerDay,
            ok: !mi.logShipping || input.logBackupSeconds >= RECOMMENDED_LOG_BACKUP_SECONDS,
            note: !mi.logShipping
              ? 'none shipped: the target catches up by the change log (log shipping needs autoCompleteRestore: false and the source\'s backup folder)'
              : input.logBackupSeconds >= RECOMMENDED_LOG_BACKUP_SECONDS
                ? `${filesPerDay} log backups a day per tenant`
                : `${filesPerDay} log backups a day per tenant: the LRS documentation warns that thousands of files can make the migration fail; set policy.logBackupSeconds to ${RECOMMENDED_LOG_BACKUP_SECONDS} or more`,
          },
        }
      : {}),
  };
}

/** The plan above as the human-readable plan prints it, one line per fact. */
export function renderSqlServerPlan(p: SqlServerPlan): string[] {
  const lines = [
    `minimum version: ${p.minimumVersion.release} (${p.minimumVersion.version}): ${p.minimumVersion.why}`,
    `recovery model: ${p.recoveryModel.required}; checked: ${p.recoveryModel.checks.join('; ')}`,
  ];
  if (p.managedInstanceLimits) lines.push(`Managed Instance limits checked: ${p.managedInstanceLimits.checked.join('; ')}; NOT checked yet: ${p.managedInstanceLimits.notChecked.join('; ')}`);
  lines.push(`foreign keys: ${p.foreignKeys.underTheFence}; ${p.foreignKeys.afterTheFlip}; source: ${p.foreignKeys.source}`);
  lines.push(`key counters: ${p.keyCounters.carried}`);
  lines.push(`credential: ${p.credential.validFor}; ${p.credential.lrsWindow}${p.credential.ok ? '' : `: TOO SHORT, set ${p.credential.fix}`}`);
  if (p.logBackups) lines.push(p.logBackups.shipped ? `log backups: every ${p.logBackups.everySeconds} s: ${p.logBackups.note}` : `log backups: ${p.logBackups.note}`);
  return lines;
}
