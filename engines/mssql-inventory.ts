// Preflight inventory of a SQL Server source database and what its target needs before a restore:
// version, edition, recovery model, TDE, size, compatibility level, users and their logins, Agent
// jobs and cross-database references. Read-only catalog queries; `assessInventory` turns them into
// ready / warning / blocking findings, each with its fix. `airlift plan --check` prints them.
import { checkDatabaseName, quoteBracketed as b } from './identifiers';
import type { Statement } from './mssql-sql';
import { serverLevel, serverLevelQuery, NEWEST_LEVEL } from './mssql-row-hash';
import type { Finding, Verdict } from './plan-check';

/** Runs one statement on a server's `master` connection and returns its rows. */
export interface SqlRunner {
  run<T = Record<string, unknown>>(statement: Statement, values?: Record<string, unknown>): Promise<T[]>;
}

/** The server: its version, edition and engine edition (the query verification also reads). */
export const serverInventoryQuery = serverLevelQuery;

/** Whether the database exists and the login may back it up (source). */
export function backupPermissionQuery(database: string): Statement {
  return {
    sql: "SELECT DB_ID(@database) AS id, HAS_PERMS_BY_NAME(@database, 'DATABASE', 'BACKUP DATABASE') AS can_backup;",
    params: { database: checkDatabaseName(database) },
    types: { database: 'nvarchar(128)' },
  };
}

/** What a SQL Server target's restore login needs: CREATE ANY DATABASE and ALTER ANY CREDENTIAL. */
export const restorePermissionsQuery: Statement = {
  sql: "SELECT HAS_PERMS_BY_NAME(NULL, NULL, 'CREATE ANY DATABASE') AS create_db, HAS_PERMS_BY_NAME(NULL, NULL, 'ALTER ANY CREDENTIAL') AS credential;",
  params: {},
};

/** One database from sys.databases: recovery model, compatibility level, TDE flag, collation, state, size. */
export function databaseInventoryQuery(database: string): Statement {
  return {
    sql: [
      'SELECT d.recovery_model_desc, d.compatibility_level, d.is_encrypted, d.collation_name, d.state_desc,',
      '       (SELECT SUM(CAST(f.size AS bigint)) * 8192 FROM sys.master_files AS f WHERE f.database_id = d.database_id) AS size_bytes',
      'FROM sys.databases AS d WHERE d.name = @database;',
    ].join('\n'),
    params: { database: checkDatabaseName(database) },
    types: { database: 'nvarchar(128)' },
  };
}

/**
 * The database's users that a login maps to by SID (SQL users, Windows users and groups), with the
 * login the SID finds on this server (none: orphaned already). dbo, guest, sys and
 * INFORMATION_SCHEMA (principal_id 1 to 4) are the database's own.
 */
export function usersInventoryQuery(database: string): Statement {
  const db = b(checkDatabaseName(database));
  return {
    sql: [
      'SELECT dp.name AS user_name, dp.type AS user_type, dp.sid, sp.name AS login_name',
      `FROM ${db}.sys.database_principals AS dp`,
      'LEFT JOIN sys.server_principals AS sp ON sp.sid = dp.sid',
      "WHERE dp.type IN ('S', 'U', 'G') AND dp.principal_id > 4 AND dp.sid IS NOT NULL AND DATALENGTH(dp.sid) > 0",
      'ORDER BY dp.name;',
    ].join('\n'),
    params: {},
  };
}

/** Logins on a server, by SID: a restored user finds its login only when the SIDs match. */
export const loginsInventoryQuery: Statement = {
  sql: "SELECT sp.name AS login_name, sp.sid, sp.type AS login_type FROM sys.server_principals AS sp WHERE sp.type IN ('S', 'U', 'G', 'E', 'X') ORDER BY sp.name;",
  params: {},
};

/** SQL Server Agent job steps that run in the database: they stay behind on the source. */
export function agentJobsInventoryQuery(database: string): Statement {
  return {
    sql: [
      'SELECT j.name AS job_name, s.step_name, j.enabled',
      'FROM msdb.dbo.sysjobs AS j JOIN msdb.dbo.sysjobsteps AS s ON s.job_id = j.job_id',
      'WHERE s.database_name = @database',
      'ORDER BY j.name, s.step_id;',
    ].join('\n'),
    params: { database: checkDatabaseName(database) },
    types: { database: 'nvarchar(128)' },
  };
}

/** Objects that name another database (three- or four-part names): that database must move too, or be reachable. */
export function crossDatabaseInventoryQuery(database: string): Statement {
  const db = b(checkDatabaseName(database));
  return {
    sql: [
      'SELECT DISTINCT d.referenced_server_name, d.referenced_database_name,',
      '       OBJECT_SCHEMA_NAME(d.referencing_id, DB_ID(@database)) AS referencing_schema, OBJECT_NAME(d.referencing_id, DB_ID(@database)) AS referencing_object',
      `FROM ${db}.sys.sql_expression_dependencies AS d`,
      'WHERE d.referenced_database_name IS NOT NULL AND d.referenced_database_name <> @database',
      'ORDER BY d.referenced_database_name, referencing_schema, referencing_object;',
    ].join('\n'),
    params: { database: checkDatabaseName(database) },
    types: { database: 'nvarchar(128)' },
  };
}

export interface SourceInventory {
  database: string;
  server: { version: string; level: number; edition: string; engineEdition: number };
  /** Undefined when the database does not exist. */
  db?: { recoveryModel: string; compatibilityLevel: number; encrypted: boolean; collation: string; state: string; sizeBytes: number };
  users: { name: string; type: 'S' | 'U' | 'G'; sid: string; login: string | null }[];
  agentJobs: { job: string; step: string; enabled: boolean }[];
  crossDatabase: { server: string | null; database: string; object: string }[];
}

const hex = (sid: unknown) => (Buffer.isBuffer(sid) ? `0x${sid.toString('hex').toUpperCase()}` : String(sid));

/** Reads a source database's inventory; a database that is not there comes back without `db`. */
export async function readSourceInventory(runner: SqlRunner, database: string): Promise<SourceInventory> {
  const [server] = await runner.run<{ product_version: string; engine_edition: number; edition: string }>(serverInventoryQuery);
  const [db] = await runner.run<{ recovery_model_desc: string; compatibility_level: number; is_encrypted: boolean; collation_name: string; state_desc: string; size_bytes: string | number }>(databaseInventoryQuery(database));
  const inventory: SourceInventory = {
    database,
    server: { version: server.product_version, level: serverLevel(server), edition: server.edition, engineEdition: server.engine_edition },
    users: [],
    agentJobs: [],
    crossDatabase: [],
  };
  if (!db) return inventory;
  inventory.db = {
    recoveryModel: db.recovery_model_desc, compatibilityLevel: Number(db.compatibility_level), encrypted: Boolean(db.is_encrypted),
    collation: db.collation_name, state: db.state_desc, sizeBytes: Number(db.size_bytes ?? 0),
  };
  if (db.state_desc !== 'ONLINE') return inventory;
  const users = await runner.run<{ user_name: string; user_type: 'S' | 'U' | 'G'; sid: Buffer; login_name: string | null }>(usersInventoryQuery(database));
  inventory.users = users.map((u) => ({ name: u.user_name, type: u.user_type, sid: hex(u.sid), login: u.login_name }));
  // msdb is not readable by every login; no access means "not known", said as a warning.
  inventory.agentJobs = await runner.run<{ job_name: string; step_name: string; enabled: boolean }>(agentJobsInventoryQuery(database)).then(
    (rows) => rows.map((r) => ({ job: r.job_name, step: r.step_name, enabled: Boolean(r.enabled) })),
    () => [{ job: '(msdb not readable by this login)', step: '', enabled: false }],
  );
  const refs = await runner.run<{ referenced_server_name: string | null; referenced_database_name: string; referencing_schema: string | null; referencing_object: string | null }>(crossDatabaseInventoryQuery(database));
  inventory.crossDatabase = refs.map((r) => ({ server: r.referenced_server_name, database: r.referenced_database_name, object: `${r.referencing_schema ?? '?'}.${r.referencing_object ?? '?'}` }));
  return inventory;
}

export interface TargetFacts {
  kind: 'managed-instance' | 'sql-server';
  /** The collation the fleet file sets for the target database, if any. */
  collation?: string;
  /** The target server's version level, when it could be read. */
  level?: number;
  /** Logins on the target (name and SID as 0x hex), when they could be read. */
  logins?: { name: string; sid: string }[];
  /** Managed Instance storage (ARM storageSizeInGB) and what the tenants of this fleet bound for it add up to. */
  storageBytes?: number;
  plannedBytes?: number;
}

export type { Finding, Verdict } from './plan-check';

const GiB = 1024 ** 3;
const gib = (bytes: number) => `${(bytes / GiB).toFixed(1)} GiB`;

/**
 * What stands between a source database and its target, by the rules of the Log Replay Service
 * ("Migrate databases from SQL Server by using Log Replay Service", Limitations and prerequisites)
 * and of RESTORE:
 * - a backup restores only on the same or a newer version (LRS takes SQL Server 2008 and later), and
 *   airlift's change capture needs SQL Server 2016 SP1 or later (`MIN_CAPTURE_VERSION`);
 * - LRS restores full, differential and log backups of databases in the FULL recovery model;
 * - a database encrypted with TDE needs its certificate on the target first;
 * - Managed Instance supports compatibility level 100 and higher;
 * - the databases must fit the instance's reserved storage;
 * - users map to logins by SID: a restored user whose SID has no login is orphaned
 *   ("Troubleshoot orphaned users"): create the login with that SID, or ALTER USER … WITH LOGIN.
 */
export function assessInventory(inv: SourceInventory, target: TargetFacts): Finding[] {
  const findings: Finding[] = [];
  const add = (item: string, verdict: Verdict, detail: string, fix?: string) => findings.push({ item, verdict, detail, ...(fix ? { fix } : {}) });
  const mi = target.kind === 'managed-instance';
  const { server } = inv;
  const major = server.level;
  const version = `${server.version} (${major >= NEWEST_LEVEL ? 'Azure SQL' : `SQL Server ${releaseName(major)}`}), ${server.edition}`;
  const tooOld = captureVersionProblem(server.version, server.engineEdition);
  if (tooOld) add('version', 'blocking', `${version}: ${tooOld}`, `upgrade the source to SQL Server 2016 SP1 (${MIN_CAPTURE_VERSION}) or later`);
  else if (target.level !== undefined && target.level < major)
    add('version', 'blocking', `${version}; the target runs SQL Server ${releaseName(target.level)}`, 'restore onto a target of the same or a newer version: a backup never restores on an older one');
  else add('version', 'ready', version);
  const noCompression = /^(Express|Web)/i.test(server.edition) || (server.engineEdition !== 3 && inv.server.version.startsWith('10.0.'));
  add('edition', noCompression ? 'warning' : 'ready', noCompression ? `${server.edition}: BACKUP … WITH COMPRESSION is not available, the backup is written uncompressed` : `${server.edition}: compressed backups`, noCompression ? 'allow for an uncompressed backup (larger copy to blob storage); nothing to change' : undefined);
  if (!inv.db) {
    add('database', 'blocking', `${inv.database} does not exist on the source`, 'check tenants[].database in the fleet file');
    return findings;
  }
  const db = inv.db;
  if (db.state !== 'ONLINE') add('database', 'blocking', `${inv.database} is ${db.state}`, 'bring the database ONLINE');
  if (db.recoveryModel !== 'FULL')
    add('recovery model', mi ? 'blocking' : 'warning', `${db.recoveryModel}`,
      mi ? `ALTER DATABASE ${b(inv.database)} SET RECOVERY FULL; then take a full backup: LRS restores only databases in the FULL recovery model`
        : `the restore works from one full backup, but log backups cannot ship: ALTER DATABASE ${b(inv.database)} SET RECOVERY FULL to shorten the freeze with log shipping`);
  else add('recovery model', 'ready', 'FULL');
  if (db.encrypted)
    add('TDE', 'warning', 'the database is encrypted with TDE: the restore needs its certificate on the target',
      mi ? 'upload the TDE certificate to the Managed Instance first (Add-AzSqlManagedInstanceTransparentDataEncryptionCertificate)' : 'BACKUP CERTIFICATE … WITH PRIVATE KEY on the source and CREATE CERTIFICATE … FROM FILE in master on the target, before the restore');
  else add('TDE', 'ready', 'not encrypted');
  if (mi && db.compatibilityLevel < 100)
    add('compatibility level', 'blocking', `${db.compatibilityLevel}: Managed Instance supports 100 and higher`, `ALTER DATABASE ${b(inv.database)} SET COMPATIBILITY_LEVEL = 100 (test the application at that level first)`);
  else add('compatibility level', 'ready', String(db.compatibilityLevel));
  if (target.collation && target.collation !== db.collation)
    add('collation', 'warning', `the database uses ${db.collation}; the fleet file sets ${target.collation} for the target`, `restore with the database's own collation: set collation: ${db.collation} for this target, or remove it`);
  else add('collation', 'ready', db.collation);
  if (target.storageBytes !== undefined && target.plannedBytes !== undefined) {
    const detail = `${gib(db.sizeBytes)}; all tenants bound for this instance: ${gib(target.plannedBytes)} of ${gib(target.storageBytes)} reserved storage`;
    if (target.plannedBytes > target.storageBytes) add('size', 'blocking', detail, 'raise the instance\'s storageSizeInGB, or move some tenants to another instance or wave');
    else if (target.plannedBytes > 0.9 * target.storageBytes) add('size', 'warning', detail, 'less than 10% of the instance storage would stay free: raise storageSizeInGB');
    else add('size', 'ready', detail);
  } else add('size', mi ? 'warning' : 'ready', `${gib(db.sizeBytes)}${mi ? '; the instance storage could not be read' : ''}`, mi ? 'check the instance\'s reserved storage (needs SQL Managed Instance Contributor)' : undefined);
  const targetSids = target.logins ? new Map(target.logins.map((l) => [l.sid, l.name])) : undefined;
  const targetNames = target.logins ? new Map(target.logins.map((l) => [l.name.toLowerCase(), l])) : undefined;
  for (const u of inv.users) {
    const item = `user ${u.name}`;
    if (mi && u.type !== 'S') {
      add(item, 'warning', `Windows ${u.type === 'G' ? 'group' : 'user'} (login ${u.login ?? 'none'}): Managed Instance has no Windows logins`, `after the restore: ALTER USER ${b(u.name)} WITH LOGIN = [<Microsoft Entra login>] (or map it with the LRS Windows-to-Entra migration)`);
      continue;
    }
    if (!u.login) {
      add(item, 'warning', `orphaned on the source already (SID ${u.sid} has no login)`, `ALTER USER ${b(u.name)} WITH LOGIN = [<login>] on the target, or drop the user`);
      continue;
    }
    if (!targetSids) {
      add(item, 'warning', `maps to login ${u.login} by SID ${u.sid}; the target's logins could not be read`, `make sure login ${u.login} exists on the target with SID = ${u.sid}`);
      continue;
    }
    const sameSid = targetSids.get(u.sid);
    if (sameSid) add(item, 'ready', `maps to login ${sameSid} on the target by SID`);
    else if (targetNames!.has(u.login.toLowerCase()))
      add(item, 'warning', `login ${u.login} exists on the target with another SID: the restored user would be orphaned`, `after the restore: ALTER USER ${b(u.name)} WITH LOGIN = ${b(u.login)}`);
    else
      add(item, 'warning', `login ${u.login} does not exist on the target: the restored user would be orphaned`,
        u.type === 'S' ? `before the restore: CREATE LOGIN ${b(u.login)} WITH PASSWORD = N'…', SID = ${u.sid}` : `before the restore: CREATE LOGIN ${b(u.login)} FROM WINDOWS`);
  }
  for (const j of inv.agentJobs)
    add(`Agent job ${j.job}`, 'warning', j.step ? `step "${j.step}" runs in ${inv.database}${j.enabled ? '' : ' (job disabled)'}; Agent jobs stay on the source` : j.job,
      mi ? 'script the job and create it on the Managed Instance\'s SQL Agent, then disable it on the source at cut-over' : 'script the job and create it on the target\'s SQL Agent, then disable it on the source at cut-over');
  const referenced = [...new Set(inv.crossDatabase.map((r) => (r.server ? `${r.server}.${r.database}` : r.database)))];
  for (const name of referenced) {
    const objects = inv.crossDatabase.filter((r) => (r.server ? `${r.server}.${r.database}` : r.database) === name).map((r) => r.object);
    add(`reference to ${name}`, 'warning', `${objects.slice(0, 5).join(', ')}${objects.length > 5 ? ` and ${objects.length - 5} more` : ''} name ${name}`,
      `migrate ${name} to the same target, or point these objects at where it will live (a linked server on the target)`);
  }
  return findings;
}

/**
 * The oldest source change capture runs on: SQL Server 2016 SP1 (13.0.4001). Its T-SQL uses CREATE OR
 * ALTER ("CREATE TRIGGER (Transact-SQL)": SQL Server 2016 (13.x) SP1 and later), CURRENT_TRANSACTION_ID()
 * and SESSION_CONTEXT ("CURRENT_TRANSACTION_ID (Transact-SQL)", "SESSION_CONTEXT (Transact-SQL)":
 * SQL Server 2016 (13.x) and later). Azure SQL (EngineEdition 5, 8) runs the newest.
 */
export const MIN_CAPTURE_VERSION = '13.0.4001';

/** Why a server of `productVersion` cannot run change capture, or undefined when it can. */
export function captureVersionProblem(productVersion: string, engineEdition?: number): string | undefined {
  if (engineEdition === 5 || engineEdition === 8) return undefined;
  const have = productVersion.split('.').map(Number);
  const need = MIN_CAPTURE_VERSION.split('.').map(Number);
  for (let i = 0; i < need.length; i++) {
    if ((have[i] ?? 0) > need[i]) return undefined;
    if ((have[i] ?? 0) < need[i])
      return `change capture needs SQL Server 2016 SP1 (${MIN_CAPTURE_VERSION}) or later: its triggers use CREATE OR ALTER, CURRENT_TRANSACTION_ID() and SESSION_CONTEXT, which ${productVersion} does not accept`;
  }
  return undefined;
}

function releaseName(level: number): string {
  const names: Record<number, string> = { 9: '2005', 10: '2008 / 2008 R2', 11: '2012', 12: '2014', 13: '2016', 14: '2017', 15: '2019', 16: '2022', 17: '2025' };
  return level >= NEWEST_LEVEL ? 'Azure SQL' : (names[level] ?? `major ${level}`);
}

/** Logins read from a target server, SIDs as 0x hex. */
export async function readTargetLogins(runner: SqlRunner): Promise<{ name: string; sid: string }[]> {
  const rows = await runner.run<{ login_name: string; sid: Buffer }>(loginsInventoryQuery);
  return rows.map((r) => ({ name: r.login_name, sid: hex(r.sid) }));
}

/** The target's version level, read like the source's. */
export async function readServerLevel(runner: SqlRunner): Promise<number> {
  const [row] = await runner.run<{ product_version: string; engine_edition: number }>(serverInventoryQuery);
  return serverLevel(row);
}
