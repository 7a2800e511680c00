// The SQL Server engine (also the verification side of Azure SQL Managed Instance): BACKUP to a
// folder the worker reads as a share, RESTORE FROM URL, catalog views, and row hashes computed by
// the server. Every statement comes from mssql-sql.ts.
import sql from 'mssql';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { digestArtifact, renderKey } from './checksum';
import { FleetConfigError, PermissionError, PreflightError, ReplicationConflictError, VerificationUnsupportedError } from '../protocol/errors';
import {
  ConnectionError,
  DatabaseMissingError,
  FencedWriteError,
  TargetExistsError,
  TargetInUseError,
  type Artifact,
  type BlobArtifact,
  type ChunkDigest,
  type Engine,
  type PlanStep,
  type PlannedArtifact,
  type EventWriter,
  type KeyRange,
  type KeyValue,
  type Change,
  type RowImage,
  type Progress,
  type RowDigest,
  type TableInfo,
  type DigestFormat,
  type TrackingEvent,
  type WriteGate,
  type GateExpectation,
  type BackupSet,
  type LogBackupSource,
  streamMigration,
} from './engine';
import * as tsql from './mssql-sql';
import * as rowHash from './mssql-row-hash';
import * as capture from './mssql-capture-sql';
import * as logsql from './mssql-log-sql';
import * as counters from './mssql-counters-sql';
import { captureVersionProblem } from './mssql-inventory';

/** Rows per page of row hashes: verification holds one page, never a whole table. */
export const ROW_HASH_PAGE_ROWS = 2000;

/**
 * The mssql type a T-SQL declaration names (`varchar(20)`, `decimal(18, 4)`, `datetime2(7)`,
 * `nvarchar(max)`, …), for verification's key ranges and change capture alike. Without a length,
 * varchar, nvarchar and varbinary are (max), char, nchar and binary 1, decimal (18, 0), and the
 * time types scale 7, as T-SQL declares them.
 */
export function sqlTypeOf(declaration: string): sql.ISqlType {
  const m = /^([a-z0-9]+)(?:\((max|\d+)(?:,\s*(\d+))?\))?$/.exec(declaration);
  if (!m) throw new Error(`cannot declare a parameter of type ${declaration}`);
  const [, name, first, second] = m;
  const length = first === undefined ? (['varchar', 'nvarchar', 'varbinary'].includes(name) ? sql.MAX : 1) : first === 'max' ? sql.MAX : Number(first);
  const precision = first === undefined ? 18 : Number(first);
  const scale = second === undefined ? 0 : Number(second);
  const fraction = first === undefined ? 7 : Number(first);
  const types: Record<string, () => sql.ISqlType> = {
    varchar: () => sql.VarChar(length), nvarchar: () => sql.NVarChar(length), char: () => sql.Char(length), nchar: () => sql.NChar(length),
    varbinary: () => sql.VarBinary(length), binary: () => (sql.Binary as unknown as (length: number) => sql.ISqlType)(length), // typed without a length, declared with one
    decimal: () => sql.Decimal(precision, scale), numeric: () => sql.Numeric(precision, scale),
    datetime2: () => sql.DateTime2(fraction), time: () => sql.Time(fraction), datetimeoffset: () => sql.DateTimeOffset(fraction),
    int: () => sql.Int(), bigint: () => sql.BigInt(), smallint: () => sql.SmallInt(), tinyint: () => sql.TinyInt(), bit: () => sql.Bit(),
    float: () => sql.Float(), real: () => sql.Real(), uniqueidentifier: () => sql.UniqueIdentifier(), date: () => sql.Date(),
    datetime: () => sql.DateTime(), smalldatetime: () => sql.SmallDateTime(), money: () => sql.Money(), smallmoney: () => sql.SmallMoney(),
  };
  const make = Object.prototype.hasOwnProperty.call(types, name) ? types[name] : undefined;
  if (!make) throw new Error(`cannot declare a parameter of type ${declaration}`);
  return make();
}

/**
 * Binds a statement's parameters: those with a declared type (`statement.types`) are sent as exactly
 * that type, never one guessed from the JavaScript value (a string would go as nvarchar and turn a
 * varchar key comparison into an nvarchar one: "Data type precedence" converts the column up, which
 * scans the index and, under a SQL_* collation, sorts differently from the column's ORDER BY).
 * Works on a pool's request and on a transaction's alike.
 */
export function bindParameters<R extends Pick<sql.Request, 'input'>>(request: R, statement: tsql.Statement, values: Record<string, unknown> = {}): R {
  for (const [name, value] of Object.entries({ ...statement.params, ...values })) {
    const declared = statement.types?.[name];
    if (declared) request.input(name, sqlTypeOf(declared), value as never);
    else request.input(name, value as never);
  }
  return request;
}

export interface MssqlEndpoint {
  server: string;
  port: number;
  user?: string;
  /** Resolved by the worker from the env var the fleet names; never in a workflow input. */
  password?: string;
  encrypt: boolean;
  trustServerCertificate: boolean;
  /** Where the SQL Server writes backups, as the server sees it (e.g. D:\\airlift). */
  backupDirectory?: string;
  /** The same folder as this worker sees it (e.g. /mnt/sql01-backups). */
  backupShare?: string;
  compression: boolean;
}

/**
 * Server error numbers by what a retry can do about them. Numbers and texts: "Database engine events
 * and errors" (learn.microsoft.com/sql/relational-databases/errors-events); transient ones: "Transient
 * fault error codes" (Troubleshoot connectivity issues and other errors with Azure SQL Database) and
 * SqlConfigurableRetryFactory's transient list in Microsoft.Data.SqlClient.
 */
const LOGIN_FAILED = new Set([18456, 18452, 18470, 18486, 18487, 18488]);
const PERMISSION_DENIED = new Set([229, 230, 262, 297, 300, 916]);
const DATABASE_MISSING = new Set([4060, 911]);
const TRANSIENT = new Set([1205, 1204, 1222, 40613, 40501, 40197, 40540, 40143, 49918, 49919, 49920, 4221, 10928, 10929, 10053, 10054, 10060, 233, 64, capture.CHANGES_LOCK_ERROR]);
/** Driver and socket codes of a connection that failed or dropped (tedious, mssql, Node, tarn). */
const NETWORK_CODES = new Set(['ESOCKET', 'ETIMEOUT', 'ECONNRESET', 'ECONNREFUSED', 'ECONNCLOSED', 'ENOTOPEN', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ETIMEDOUT']);
/** TLS failures that only a change of `encrypt` / `trustServerCertificate` in the fleet file fixes. */
const TLS_CONFIG_CODES = new Set(['EENCRYPT', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED']);

interface DriverError {
  name?: string;
  message?: string;
  code?: string;
  number?: number | string;
  info?: { number?: number };
  originalError?: DriverError;
  cause?: DriverError;
  precedingErrors?: DriverError[];
  /** Set by this engine on a failed login: the numbers of the server's login error messages. */
  loginErrorNumbers?: number[];
}

/** Every server error number and driver code an error carries, itself and what it wraps. */
function facts(err: DriverError | undefined, seen = new Set<DriverError>()): { numbers: number[]; codes: string[] } {
  const numbers: number[] = [];
  const codes: string[] = [];
  if (!err || typeof err !== 'object' || seen.has(err)) return { numbers, codes };
  seen.add(err);
  for (const n of [err.number, err.info?.number, ...(err.loginErrorNumbers ?? [])]) if (typeof n === 'number') numbers.push(n);
  if (typeof err.code === 'string') codes.push(err.code);
  if (err.name === 'TimeoutError') codes.push('ETIMEOUT'); // tarn: no pooled connection came in time
  for (const inner of [err.originalError, err.cause, ...(err.precedingErrors ?? [])]) {
    const more = facts(inner, seen);
    numbers.push(...more.numbers);
    codes.push(...more.codes);
  }
  return { numbers, codes };
}

/**
 * Whether an apply failed on a unique key: a row image whose unique value another row of the
 * destination still holds (2627 constraint, 2601 index).
 */
export function isKeyConflict(err: unknown): boolean {
  return facts(err as DriverError).numbers.some((n) => n === 2627 || n === 2601);
}

/**
 * The driver type of a declared parameter type (`nvarchar(64)`, `varbinary(max)`, `bigint`, …): the
 * value goes to the server with exactly that type instead of one the driver guesses from the value.
 * One mapping serves verification and change capture: this is `sqlTypeOf`, case- and space-tolerant.
 */
export function driverType(declared: string): sql.ISqlType {
  try {
    return sqlTypeOf(declared.trim().toLowerCase());
  } catch {
    throw new Error(`parameter type ${declared} has no driver type here`);
  }
}

/**
 * What a SQL Server driver error means for airlift, as one of its domain errors: a login or
 * permission problem is PermissionError, a database that is not there DatabaseMissingError (neither
 * retried); a network fault, a deadlock victim or an Azure SQL transient error ConnectionError
 * (retried); a fenced tracking write FencedWriteError. Anything else is returned as it is. The message
 * names where, the server's words and the fix; `secrets` (the password) are cut out of it.
 */
export function classifyMssqlError(err: unknown, where: string, secrets: (string | undefined)[] = []): Error {
  const e = err as DriverError;
  if (!e || typeof e !== 'object') return new Error(`${where}: ${String(err)}`);
  const { numbers, codes } = facts(e);
  const clean = (text: string) => secrets.reduce<string>((t, secret) => (secret ? t.split(secret).join('[redacted]') : t), text.replace(/\s+/g, ' ').trim());
  const said = clean(e.message ?? '');
  const has = (set: Set<number>) => numbers.some((n) => set.has(n));
  const login = codes.includes('ELOGIN');
  if (numbers.includes(tsql.FENCED_ERROR)) return new FencedWriteError(`${where}: ${said}`);
  if (numbers.includes(tsql.CONFLICT_ERROR)) return new ReplicationConflictError(`${where}: ${said}`);
  // A database that cannot be opened at login comes as 4060 followed by 18456: the first one decides.
  if (has(DATABASE_MISSING) || (login && !numbers.length && /cannot open database/i.test(said)))
    return new DatabaseMissingError(`${where}: ${said}; check the database name in the fleet file and that the login has a user in it`);
  // Azure SQL may follow a transient login error with 18456 too: the transient one decides.
  if (has(TRANSIENT)) return new ConnectionError(`${where}: ${said} (error ${numbers.find((n) => TRANSIENT.has(n))}); retried`);
  if (has(LOGIN_FAILED) || (login && !numbers.length && /login failed/i.test(said)))
    return new PermissionError(`${where}: ${said}; check user and the password in passwordEnv for this server in the fleet file`);
  if (has(PERMISSION_DENIED)) return new PermissionError(`${where}: ${said}; grant the login the permission named (README: SQL Server and Azure SQL, Permissions)`);
  if (codes.some((c) => TLS_CONFIG_CODES.has(c)))
    return new FleetConfigError(`${where}: ${said}; set encrypt (and trustServerCertificate for a self-signed certificate) for this server in the fleet file`);
  if (codes.some((c) => NETWORK_CODES.has(c)) || login) return new ConnectionError(`${where}: ${said}; retried`);
  return err instanceof Error ? err : new Error(`${where}: ${said}`);
}

/** What preflight learns about log backups of a source database (see `logBackupFindings`). */
export interface LogBackupFacts {
  database: string;
  recoveryModel: string | null;
  /** Whether a log backup can be taken now (sys.database_recovery_status.last_log_backup_lsn is set). */
  logChainStarted?: boolean;
  jobs: { job_name: string; step_id: number; step_name: string; enabled: boolean }[] | 'unreadable';
  /** Log backups recorded in msdb recently, with where they were written. */
  backups: { finished_at: Date; device: string }[];
  /** The folder airlift ships from, as the server writes it; backups elsewhere are someone else's. */
  ourFolder?: string;
}

/**
 * Preflight findings for log shipping to Managed Instance, one line each naming the fix: a recovery
 * model without log backups, Agent jobs that take log backups of this database, and log backups
 * written somewhere airlift does not ship from (each one would break the chain LRS restores).
 */
export function logBackupFindings(facts: LogBackupFacts): string[] {
  const findings: string[] = [];
  const db = facts.database;
  // "Migrate databases from SQL Server to SQL Managed Instance by using Log Replay Service": the
  // databases must use the full recovery model (BULK_LOGGED log backups of minimally logged work
  // need the data files too, and LRS does not take them).
  if (facts.recoveryModel !== 'FULL')
    findings.push(`database ${db} uses the ${facts.recoveryModel ?? 'unknown'} recovery model: log shipping to Managed Instance needs FULL (ALTER DATABASE [${db}] SET RECOVERY FULL, then a full backup that is not COPY_ONLY)`);
  else if (facts.logChainStarted === false)
    findings.push(`database ${db} has no log chain yet (recovery model FULL, but no full backup since: BACKUP LOG would fail and airlift's COPY_ONLY backup does not start one); take one full backup that is not COPY_ONLY (BACKUP DATABASE [${db}] TO …) before the migration`);
  if (facts.jobs === 'unreadable') findings.push(`cannot read msdb job steps to find log backup jobs of ${db}: grant the login SQLAgentReaderRole in msdb, or check the jobs yourself`);
  else
    for (const j of facts.jobs)
      findings.push(`SQL Agent job '${j.job_name}' step ${j.step_id} ('${j.step_name}'${j.enabled ? '' : ', job disabled'}) takes log backups of ${db}: a log backup airlift does not ship breaks the chain; disable the job for the migration or let airlift take the log backups`);
  const folder = facts.ourFolder?.replace(/[\\/]+$/, '').toLowerCase();
  const foreign = facts.backups.filter((x) => !folder || !x.device.toLowerCase().startsWith(folder));
  if (foreign.length)
    findings.push(`${foreign.length} log backup(s) of ${db} were written outside airlift's folder recently (last: ${foreign[foreign.length - 1].device} at ${foreign[foreign.length - 1].finished_at.toISOString()}): whoever takes them must stop during the migration`);
  return findings;
}

interface BackupSetRow {
  first_lsn: string;
  last_lsn: string;
  device: string;
  finished_at: Date | null;
}

const backupSet = (r: BackupSetRow): BackupSet => ({ firstLsn: String(r.first_lsn), lastLsn: String(r.last_lsn), device: r.device, ...(r.finished_at ? { finishedAt: r.finished_at } : {}) });

/** One transaction's requests, commit and rollback (a seam the engine's tests record through). */
export interface Transaction {
  request(): Pick<sql.Request, 'input' | 'query'>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

/** A table as the catalog describes it, and whether it has a primary key (change capture needs one). */
type CapturedTable = tsql.MssqlTable & { hasPrimaryKey: boolean };

export class MssqlEngine implements Engine, LogBackupSource {
  readonly kind: string = 'mssql';
  readonly restoresFrom: 'file' | 'blob' = 'blob';
  private readonly pools = new Map<string, Promise<sql.ConnectionPool>>();
  private readonly tableSchemas = new Map<string, CapturedTable>();
  /** The last safe point of each database's change log (see `safeHead`). */
  private readonly safePoints = new Map<string, number>();

  constructor(
    protected readonly endpoint: MssqlEndpoint,
    readonly trackingTable = 'tracking_events',
  ) {}

  /** `SQL Server host:port (database)`, how every error of this engine starts. */
  protected where(database: string): string {
    return `SQL Server ${this.endpoint.server}:${this.endpoint.port} (${database})`;
  }

  /** A driver error as one of airlift's domain errors, the password cut out of its message. */
  protected classify(err: unknown, database: string): Error {
    return classifyMssqlError(err, this.where(database), [this.endpoint.password]);
  }

  protected pool(database = 'master'): Promise<sql.ConnectionPool> {
    let pool = this.pools.get(database);
    if (!pool) {
      // tedious turns a failed login into ConnectionError('…', 'ELOGIN') and drops the server's error
      // number; the login's error message event still carries it, so it is kept for classification.
      const loginErrorNumbers: number[] = [];
      const config: sql.config = {
        server: this.endpoint.server,
        port: this.endpoint.port,
        user: this.endpoint.user,
        password: this.endpoint.password,
        database,
        requestTimeout: 0,
        options: { encrypt: this.endpoint.encrypt, trustServerCertificate: this.endpoint.trustServerCertificate },
        beforeConnect: (connection) => {
          const events = connection as unknown as NodeJS.EventEmitter;
          const onError = (token: { number?: number }) => {
            if (typeof token.number === 'number' && loginErrorNumbers.length < 8) loginErrorNumbers.push(token.number);
          };
          events.on('errorMessage', onError);
          events.once('connect', () => events.removeListener('errorMessage', onError));
        },
      };
      const created = new sql.ConnectionPool(config);
      // A pool emits 'error' for a connection that fails later; the request that needed it gets the error too.
      created.on('error', () => undefined);
      pool = created.connect().catch((err: unknown) => {
        this.pools.delete(database);
        if (err && typeof err === 'object' && loginErrorNumbers.length) (err as DriverError).loginErrorNumbers = loginErrorNumbers;
        throw this.classify(err, database);
      });
      this.pools.set(database, pool);
    }
    return pool;
  }

  protected async run<T = Record<string, unknown>>(database: string, statement: tsql.Statement, values: Record<string, unknown> = {}): Promise<T[]> {
    return this.send<T>(database, (await this.pool(database)).request(), statement, values);
  }

  /** A READ COMMITTED transaction on one pooled connection. */
  protected async transaction(database: string): Promise<Transaction> {
    const tx = new sql.Transaction(await this.pool(database));
    await tx.begin(sql.ISOLATION_LEVEL.READ_COMMITTED);
    return { request: () => new sql.Request(tx), commit: () => tx.commit(), rollback: () => tx.rollback() };
  }

  /** Sends one statement on a request (of the pool, or of a transaction), each parameter with its declared type. */
  private async send<T>(database: string, request: Pick<sql.Request, 'input' | 'query'>, statement: tsql.Statement, values: Record<string, unknown> = {}): Promise<T[]> {
    bindParameters(request, statement, values);
    try {
      const result = await request.query(statement.sql);
      return (result.recordset ?? []) as T[];
    } catch (err) {
      throw this.classify(err, database);
    }
  }

  /** Closes this engine's connections to one database (a rename or a drop needs it alone). */
  private async closePool(database: string): Promise<void> {
    const pool = this.pools.get(database);
    this.pools.delete(database);
    await pool?.then((p) => p.close()).catch(() => undefined);
  }

  /** Reports percent_complete of a running BACKUP or RESTORE every two seconds until `work` ends. */
  private async withProgress<T>(command: 'BACKUP' | 'RESTORE', database: string, onProgress: Progress | undefined, work: Promise<T>): Promise<T> {
    let finished = false;
    const poll = (async () => {
      while (!finished) {
        await new Promise((r) => setTimeout(r, 2000));
        const [row] = await this.run<{ percent_complete: number }>('master', tsql.progressQuery(database, command)).catch(() => []);
        if (row && !finished) onProgress?.(row.percent_complete / 100);
      }
    })();
    try {
      return await work;
    } finally {
      finished = true;
      await poll;
    }
  }

  async probe(database: string): Promise<{ exists: boolean; sizeBytes?: number; restoredBy?: string }> {
    const [row] = await this.run<{ id: number | null; size_bytes: string | null }>('master', tsql.databaseExistsQuery(database));
    if (!row?.id) return { exists: false };
    const [mark] = await this.run<{ migration: string }>('master', tsql.createdByQuery(database)).catch(() => []);
    return { exists: true, sizeBytes: Number(row.size_bytes ?? 0), restoredBy: mark?.migration };
  }

  artifactName(database: string, migrationId: string): string {
    return `${database}-${migrationId}.bak`;
  }

  describe(): string {
    return `SQL Server ${this.endpoint.server}:${this.endpoint.port}`;
  }

  /** Where BACKUP writes, as the server sees it. */
  private serverBackupPath(file: string): string {
    const directory = this.endpoint.backupDirectory!;
    return `${directory.replace(/[\\/]+$/, '')}${directory.includes('\\') ? '\\' : '/'}${file}`;
  }

  planSnapshot(database: string, migrationId: string): PlanStep {
    return {
      phase: 'snapshotting',
      action: `BACKUP on ${this.endpoint.server}, read back by the worker from ${this.endpoint.backupShare}; progress from sys.dm_exec_requests`,
      detail: [
        tsql.renderStatement(tsql.compressionSupportedQuery),
        tsql.renderStatement(tsql.backupStatement(database, [this.serverBackupPath(this.artifactName(database, migrationId))], { compression: this.endpoint.compression })),
        tsql.renderStatement(tsql.progressQuery(database, 'BACKUP')),
      ],
    };
  }

  planRestore(database: string, artifact: PlannedArtifact): PlanStep {
    // Shown with a valid stand-in for the restoring name, then written in its `<migration-id>` form.
    const restoring = tsql.restoringName('planMigrationId');
    return {
      phase: 'restoring',
      action: `RESTORE FROM URL on ${this.endpoint.server}; the credential holds the container's one read+list SAS (valid at least ${artifact.restoreMinutes} min); progress from sys.dm_exec_requests`,
      detail: [
        tsql.renderStatement(tsql.createCredentialStatement(artifact.containerUrl)),
        tsql.renderStatement(tsql.fileListStatement(), { url: artifact.url }),
        // Restored under a name that records the migration, marked and left standby, then renamed.
        ...[
          tsql.renderStatement(tsql.restoreFromUrlStatement(restoring, [{ logicalName: '<from FILELISTONLY>', type: 'D' }]), { url: artifact.url }),
          tsql.renderStatement(tsql.markCreatedStatement(restoring), { migration: artifact.migrationId }),
          `USE [${restoring}];\n${tsql.renderStatement(tsql.gateSchema)}\n${tsql.renderStatement(tsql.setGateStatement, { state: 'standby', migration: artifact.migrationId })}`,
          tsql.renderStatement(tsql.renameDatabaseStatement(restoring, database)),
        ].map((text) => text.split(restoring).join(`${tsql.RESTORING_PREFIX}${artifact.migrationId}`)),
      ],
    };
  }

  async snapshot(database: string, destFile: string, onProgress?: Progress, blockSizeOf?: (sizeBytes: number) => number): Promise<Artifact> {
    const { backupDirectory, backupShare } = this.endpoint;
    if (!backupDirectory || !backupShare)
      throw new FleetConfigError('backupDirectory and backupShare must be set on a SQL Server source: the folder the server writes and the same folder as the worker reads it');
    const name = destFile.split(/[\\/]/).pop()!;
    const serverPath = this.serverBackupPath(name);
    const [{ supported }] = await this.run<{ supported: boolean }>('master', tsql.compressionSupportedQuery);
    await this.withProgress('BACKUP', database, onProgress, this.run('master', tsql.backupStatement(database, [serverPath], { compression: this.endpoint.compression && supported })));
    const file = join(backupShare, name);
    const { size } = await stat(file).catch(() => {
      throw new FleetConfigError(`the backup was written to ${serverPath} but this worker cannot read it at ${file}; mount the backup folder at backupShare`);
    });
    return digestArtifact(file, size, destFile, blockSizeOf);
  }

  /**
   * SQL Server target: credential for the container, then RESTORE … FROM URL with the files moved,
   * under `restoringName(migrationId)`: the database carries this migration's name from the moment
   * RESTORE creates it, so a crash at any point leaves nothing that another migration could mistake
   * for its own, and `dropRestored` finds it. Then the marker and the `standby` gate are written and
   * the database gets its own name.
   */
  async restore(database: string, artifact: Artifact | BlobArtifact, migrationId: string, onProgress?: Progress): Promise<void> {
    if (!('url' in artifact)) throw new Error('the SQL Server engine restores from a blob URL');
    const existing = await this.probe(database);
    if (existing.exists && existing.restoredBy !== migrationId)
      throw new TargetExistsError(`target database ${database} already exists on ${this.endpoint.server}${existing.restoredBy ? ` (restored by migration ${existing.restoredBy})` : ''}; airlift will not overwrite it`);
    if (existing.exists) {
      // Restored by this migration already (a retry after the rename). If it has taken writes since, it is not ours to redo.
      if ((await this.writeGate(database))?.state !== 'standby')
        throw new TargetInUseError(`target database ${database} was restored by this migration and has taken writes since (its write gate is not standby); airlift will not restore over it`);
      return;
    }
    const restoring = tsql.restoringName(migrationId);
    const [half] = await this.run<{ id: number | null; state: string | null }>('master', tsql.databaseStateQuery(restoring));
    if (half?.id && half.state !== 'ONLINE') await this.run('master', tsql.dropDatabaseStatement(restoring)); // an interrupted RESTORE: start again
    if (!half?.id || half.state !== 'ONLINE') {
      await this.run('master', tsql.createCredentialStatement(artifact.containerUrl), { sas: await artifact.sas() });
      const files = await this.run<{ LogicalName: string; Type: string }>('master', tsql.fileListStatement(), { url: artifact.url });
      const [paths] = await this.run<{ data_path: string; log_path: string }>('master', tsql.defaultPathsQuery);
      const statement = tsql.restoreFromUrlStatement(restoring, files.map((f) => ({ logicalName: f.LogicalName, type: f.Type })));
      const values: Record<string, unknown> = { url: artifact.url };
      files.forEach((f, i) => {
        const folder = f.Type === 'L' ? paths.log_path : paths.data_path;
        values[`physical${i}`] = `${folder}${database}_${i}${f.Type === 'L' ? '.ldf' : '.mdf'}`;
      });
      await this.withProgress('RESTORE', restoring, onProgress, this.run('master', statement, values));
    }
    const [mark] = await this.run<{ migration: string }>('master', tsql.createdByQuery(restoring));
    if (!mark) await this.run('master', tsql.markCreatedStatement(restoring), { migration: migrationId });
    // The backup carries the source's gate; a target takes no write until a switch opens it.
    await this.setWriteGate(restoring, { state: 'standby', migrationId });
    // The backup carries the source's change log too; the target starts its own.
    await this.run(restoring, capture.resetChangesStatement);
    await this.closePool(restoring);
    await this.run('master', tsql.renameDatabaseStatement(restoring, database));
  }

  /**
   * Drops what `migrationId` restored: the database if its marker names this migration, and the
   * database still under this migration's restoring name (a restore interrupted before its rename).
   */
  async dropRestored(database: string, migrationId: string): Promise<boolean> {
    let dropped = false;
    const restoring = tsql.restoringName(migrationId);
    const [half] = await this.run<{ id: number | null }>('master', tsql.databaseStateQuery(restoring));
    if (half?.id) {
      await this.closePool(restoring);
      await this.run('master', tsql.dropDatabaseStatement(restoring));
      dropped = true;
    }
    const found = await this.probe(database);
    if (found.exists && found.restoredBy === migrationId) {
      // Fenced for good before it goes, so no switch attempt can open it meanwhile; a database that
      // is open (the tenant's primary) is never dropped.
      if (!(await this.setWriteGate(database, { state: 'fenced', migrationId, token: 'dropped' }, { states: ['standby', 'fenced', 'none'], migrationId })))
        throw new TargetInUseError(`target database ${database} takes writes (its write gate is open): it is the tenant's primary and is not dropped; run \`airlift reconcile\` to see why`);
      await this.closePool(database);
      await this.run('master', tsql.dropDatabaseStatement(database));
      dropped = true;
    }
    return dropped;
  }

  private async schemaOf(database: string, table: TableInfo): Promise<CapturedTable> {
    // Undefined (despite the type) only for a table this database does not have; applyChanges checks.
    const cached = this.tableSchemas.get(`${database}.${table.name}`);
    if (cached) return cached;
    await this.listTables(database);
    return this.tableSchemas.get(`${database}.${table.name}`)!;
  }

  async listTables(database: string): Promise<TableInfo[]> {
    const tables = tsql.tablesFromCatalog(await this.run<tsql.CatalogColumnRow>(database, tsql.listTablesQuery()));
    return [...tables].map(([id, table]) => {
      // Change capture identifies rows by the primary key only (captureRefusals names the others).
      this.tableSchemas.set(`${database}.${id}`, { ...table, hasPrimaryKey: table.keyKind === 'primary-key' && table.key.length > 0 });
      const key = rowHash.verificationKey(table);
      return { name: id, columns: table.columns.map((c) => c.name), key: key.columns, keyKind: key.kind };
    });
  }

  /** The server's version level (10 = 2008 … 16 = 2022; Azure SQL the newest), read once. */
  private level?: Promise<number>;

  async digestFormat(): Promise<DigestFormat> {
    this.level ??= this.run<{ product_version: string | null; engine_edition: number | null }>('master', rowHash.serverLevelQuery)
      .then(([row]) => rowHash.serverLevel(row))
      .catch((err: unknown) => {
        this.level = undefined;
        throw err;
      });
    return { family: 'mssql', level: await this.level };
  }

  /**
   * Row hashes of a key range, one page (`ROW_HASH_PAGE_ROWS`) at a time: each page starts after the
   * last key of the one before. Memory holds one page whatever the table's size.
   */
  private async *hashedRows(database: string, table: TableInfo, range: KeyRange, format?: DigestFormat): AsyncGenerator<{ key: KeyValue[]; hash: Buffer; copies: number }> {
    const schema = await this.schemaOf(database, table);
    const dialect = rowHash.hashDialect(format?.family === 'mssql' ? format.level : (await this.digestFormat()).level);
    const key = rowHash.verificationKey(schema);
    let lower = range.lower;
    for (;;) {
      const statement = rowHash.rowHashQuery(schema, { lower: Boolean(lower), upper: Boolean(range.upper) }, dialect);
      const values: Record<string, unknown> = { page: ROW_HASH_PAGE_ROWS };
      if (lower) Object.assign(values, rowHash.keyParams(schema, dialect, 'lo', lower));
      if (range.upper) Object.assign(values, rowHash.keyParams(schema, dialect, 'hi', range.upper));
      const rows = await this.run<Record<string, unknown>>(database, statement, values).catch((err: unknown) => {
        throw this.tooLong(err, database, schema);
      });
      for (const r of rows) {
        const k = key.columns.map((name, i) => (name === rowHash.ROW_HASH_KEY ? (r.row_hash as Buffer) : (r[`k${i}`] as KeyValue)));
        yield { key: k, hash: r.row_hash as Buffer, copies: Number(r.copies) };
        lower = k;
      }
      if (rows.length < ROW_HASH_PAGE_ROWS) return;
    }
  }

  /** A value too long to hash in pieces before SQL Server 2016, named with its table and column. */
  private tooLong(err: unknown, database: string, table: tsql.MssqlTable): unknown {
    const message = (err as Error)?.message ?? '';
    const m = new RegExp(`${rowHash.TOO_LONG_MARK}: column #(\\d+) holds (\\d+) bytes, more than (\\d+)`).exec(message);
    if (!m) return err;
    const column = table.columns.filter((c) => !rowHash.excludedFromHash(c))[Number(m[1])]?.name;
    return new VerificationUnsupportedError(
      `${this.where(database)}: ${table.schema}.${table.name}.${column} holds a value of ${m[2]} bytes; before SQL Server 2016 HASHBYTES takes 8000 bytes, so airlift hashes in pieces up to ${m[3]} bytes. Upgrade the older server of the pair to 2016 or later, or leave this table out of verification`,
    );
  }

  async chunkDigests(database: string, table: TableInfo, chunkRows: number, within: KeyRange = { lower: null, upper: null }, format?: DigestFormat): Promise<ChunkDigest[]> {
    const chunks: ChunkDigest[] = [];
    let current = { lower: within.lower, last: null as KeyValue[] | null, rows: 0, hash: createHash('sha256') };
    let full: typeof current | null = null;
    const close = (c: typeof current, upper: KeyValue[] | null) => chunks.push({ lower: c.lower, upper, rows: c.rows, digest: c.hash.digest('hex') });
    for await (const row of this.hashedRows(database, table, within, format)) {
      // A full chunk is closed at its own last key once another row follows; the last one reaches to `within.upper`.
      if (full) {
        close(full, full.last);
        full = null;
      }
      for (let i = 0; i < row.copies; i++) current.hash.update(row.hash);
      current.rows += row.copies;
      current.last = row.key;
      if (current.rows >= chunkRows) {
        full = current;
        current = { lower: row.key, last: null, rows: 0, hash: createHash('sha256') };
      }
    }
    if (full) close(full, within.upper);
    else close(current, within.upper);
    return chunks;
  }

  async rangeDigest(database: string, table: TableInfo, range: KeyRange, format?: DigestFormat): Promise<{ rows: number; digest: string }> {
    const hash = createHash('sha256');
    let rows = 0;
    for await (const row of this.hashedRows(database, table, range, format)) {
      for (let i = 0; i < row.copies; i++) hash.update(row.hash);
      rows += row.copies;
    }
    return { rows, digest: hash.digest('hex') };
  }

  /**
   * Row digests, each key rendered as the change log records that key (capture's wire form), so a
   * row that differs while its change is on its way is recognised. mssql-row-hash.ts already selects
   * decimal, money and date/time keys as the same exact text; two types still differ and are
   * aligned here (never in the page keys, which go back to the server as they came): bit, which the
   * log carries as 0/1 and the driver reads as a boolean, and smalldatetime, which the log carries in
   * style 121 (with `.000`) and the verifier selects in style 120.
   */
  async rowDigests(database: string, table: TableInfo, range: KeyRange, format?: DigestFormat): Promise<RowDigest[]> {
    const schema = await this.schemaOf(database, table);
    const types = table.key.map((k) => schema.columns.find((c) => c.name === k)?.type.toLowerCase());
    const wire = (v: KeyValue, i: number): KeyValue => {
      const value = v as KeyValue | boolean;
      if (types[i] === 'bit' && typeof value === 'boolean') return value ? 1 : 0;
      if (types[i] === 'smalldatetime' && typeof value === 'string' && /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(value)) return `${value}.000`;
      return v;
    };
    const out: RowDigest[] = [];
    for await (const row of this.hashedRows(database, table, range, format))
      out.push({ key: renderKey(table.key, row.key.map(wire)), digest: `${row.hash.toString('hex')}${row.copies > 1 ? ` x${row.copies}` : ''}` });
    return out;
  }

  private async ensureGate(database: string): Promise<void> {
    await this.run(database, tsql.gateSchema);
  }

  /** The tables of a database as change capture sees them, refused (PreflightError) when one cannot be captured. */
  private async capturedTables(database: string): Promise<CapturedTable[]> {
    const tables = await this.listTables(database);
    const schemas = tables.map((t) => this.tableSchemas.get(`${database}.${t.name}`)!);
    const refusals = schemas.flatMap((t) => capture.captureRefusals(t, t.hasPrimaryKey));
    if (refusals.length) throw new PreflightError(`${this.where(database)}: change capture cannot be installed: ${refusals.join('; ')}`);
    return schemas;
  }

  /**
   * The highest seq below which nothing can still commit (see mssql-capture-sql.ts, Ordering). When
   * writers hold the change log longer than a reader waits, the previous safe point stands; with
   * `wait`, it asks again until one is granted (startCapture must return a true head).
   */
  private async safeHead(database: string, wait = false): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const [row] = await this.run<{ safe_head: string | number | null }>(database, capture.safePointStatement);
      if (row?.safe_head !== null && row?.safe_head !== undefined) {
        const head = Number(row.safe_head);
        this.safePoints.set(database, head);
        return head;
      }
      if (!wait) return this.safePoints.get(database) ?? 0;
      if (attempt >= 240) throw new ConnectionError(`${this.where(database)}: no safe point of the change log within a minute (a transaction holds it); retried`);
    }
  }

  private async captureInstalled(database: string): Promise<boolean> {
    const [row] = await this.run<{ installed: boolean }>(database, capture.captureInstalledQuery);
    return Boolean(row?.installed);
  }

  /** Preflight: a source older than SQL Server 2016 SP1 cannot run change capture (mssql-inventory.ts `captureVersionProblem`). */
  async captureReadiness(): Promise<{ problems: string[]; warnings: string[] }> {
    const [row] = await this.run<{ product_version: string | null; engine_edition: number | null }>('master', rowHash.serverLevelQuery);
    const problem = captureVersionProblem(String(row?.product_version ?? ''), row?.engine_edition ?? undefined);
    return { problems: problem ? [`${this.describe()}: ${problem}; upgrade the source first`] : [], warnings: [] };
  }

  async startCapture(database: string): Promise<number> {
    const tables = await this.capturedTables(database);
    await this.ensureGate(database);
    await this.run(database, capture.captureSchema);
    // One trigger per batch (CREATE TRIGGER must start its batch). Creating it waits for every
    // transaction that holds locks on its table; every write that commits after it is captured.
    for (const table of tables) await this.run(database, capture.captureTriggerStatement(table));
    return this.safeHead(database, true);
  }

  async stopCapture(database: string, options: { keepFence: boolean }): Promise<void> {
    const tables = (await this.listTables(database)).map((t) => this.tableSchemas.get(`${database}.${t.name}`)!);
    // The fence goes in before capture comes out, so no write slips through in between.
    if (options.keepFence) {
      await this.ensureGate(database);
      for (const table of tables) await this.run(database, capture.fenceTriggerStatement(table));
    }
    await this.inTransaction(database, async (exec) => {
      await exec(capture.dropTriggersStatement('capture'));
      if (!options.keepFence) await exec(capture.dropTriggersStatement('fence'));
      await exec(capture.releaseStatement);
    });
    // Online, once the side is the tenant's for good: the foreign keys given back WITH NOCHECK under
    // the fence are validated again, before the record of them goes.
    if (!options.keepFence) await this.run(database, capture.retrustStatement);
    await this.inTransaction(database, async (exec) => {
      await exec(capture.dropCaptureTablesStatement(!options.keepFence));
    });
    this.safePoints.delete(database);
  }

  /**
   * Tables whose writes would escape the change log: those without their capture trigger, i.e.
   * created, renamed (the trigger's name follows the table's) or rebuilt since `startCapture`.
   */
  async captureGaps(database: string): Promise<string[]> {
    const tables = (await this.listTables(database)).map((t) => ({ id: t.name, schema: this.tableSchemas.get(`${database}.${t.name}`)! }));
    const triggers = await this.run<{ schema_name: string; table_name: string; trigger_name: string }>(database, tsql.captureTriggersQuery);
    const present = new Set(triggers.map((r) => `${r.schema_name}\u0000${r.table_name}\u0000${r.trigger_name}`));
    return tables.filter(({ schema }) => !present.has(`${schema.schema}\u0000${schema.name}\u0000${capture.triggerName(schema, 'capture')}`)).map((t) => t.id);
  }

  /**
   * IDENTITY (by table id) and SEQUENCE (by `sequence:[schema].[name]`) positions, read under the
   * switch's fence (mssql-counters-sql.ts). A value past 2^53 cannot be carried exactly as a number:
   * refused with its name rather than carried lower than it is.
   */
  async keyCounters(database: string): Promise<Record<string, number>> {
    const found: Record<string, number> = {};
    for (const r of await this.run<{ kind: string; schema_name: string; object_name: string; current_value: string | null }>(database, counters.keyCountersQuery)) {
      if (r.current_value === null) continue;
      const key = r.kind === 'sequence' ? counters.sequenceKey(r.schema_name, r.object_name) : capture.tableId({ schema: r.schema_name, name: r.object_name });
      const value = Number(r.current_value);
      if (!Number.isSafeInteger(value))
        throw new VerificationUnsupportedError(`${this.where(database)}: the key counter of ${key} stands at ${r.current_value}, beyond what airlift carries exactly (2^53); carry it by hand (DBCC CHECKIDENT / ALTER SEQUENCE … RESTART WITH) before the cut-over`);
      found[key] = value;
    }
    return found;
  }

  /** Raises each counter so the next key it issues is above the value given; never lowers one. Tables and sequences this side lacks are skipped. */
  async raiseKeyCounters(database: string, values: Record<string, number>): Promise<void> {
    const tables = new Map((await this.listTables(database)).map((t) => [t.name, this.tableSchemas.get(`${database}.${t.name}`)!]));
    for (const [key, value] of Object.entries(values)) {
      const sequence = counters.parseSequenceKey(key);
      const table = sequence ? undefined : tables.get(key);
      if (sequence) await this.run(database, counters.raiseSequenceStatement, { ...sequence, value });
      else if (table?.columns.some((c) => c.identity)) await this.run(database, counters.raiseIdentityStatement, { schema: table.schema, name: table.name, value });
    }
  }

  async changeHead(database: string): Promise<number> {
    return (await this.captureInstalled(database)) ? this.safeHead(database) : 0;
  }

  async readChanges(database: string, afterSeq: number, limit: number): Promise<Change[]> {
    if (!(await this.captureInstalled(database))) return [];
    const upTo = await this.safeHead(database);
    if (upTo <= afterSeq) return [];
    const rows = await this.run<Record<string, KeyValue>>(database, capture.readChangesQuery, { limit, after: afterSeq, upTo });
    return rows.map((r) => {
      // Primary key columns are never NULL: the key is every k up to the first NULL.
      const key: KeyValue[] = [];
      for (let i = 0; i < capture.MAX_KEY_COLUMNS && r[`k${i}`] !== null && r[`k${i}`] !== undefined; i++) key.push(r[`k${i}`]);
      return { seq: Number(r.seq), table: String(r.tbl), key };
    });
  }

  async readRows(database: string, table: TableInfo, keys: KeyValue[][]): Promise<(KeyValue[] | null)[]> {
    const schema = await this.schemaOf(database, table);
    const rows: (KeyValue[] | null)[] = keys.map(() => null);
    const per = capture.rowsPerStatement(schema, 'key');
    for (let start = 0; start < keys.length; start += per) {
      const slice = keys.slice(start, start + per);
      const values: Record<string, unknown> = {};
      slice.forEach((key, r) => key.forEach((v, i) => (values[`k${r}_${i}`] = v)));
      for (const row of await this.run<Record<string, KeyValue>>(database, capture.readRowsQuery(schema, slice.length), values))
        rows[start + Number(row.n)] = schema.columns.map((_, i) => row[`c${i}`]);
    }
    return rows;
  }

  async applyChanges(database: string, stream: string, upTo: number, images: RowImage[]): Promise<number> {
    const byTable = new Map<string, { table: TableInfo; gone: RowImage[]; present: RowImage[] }>();
    for (const image of images) {
      let entry = byTable.get(image.table.name);
      if (!entry) byTable.set(image.table.name, (entry = { table: image.table, gone: [], present: [] }));
      (image.row ? entry.present : entry.gone).push(image);
    }
    const schemas = new Map<string, CapturedTable>();
    for (const { table } of byTable.values()) {
      const schema = await this.schemaOf(database, table);
      if (!schema) throw new ReplicationConflictError(`${this.where(database)}: table ${table.name} changed on the other side but does not exist here; the schemas differ, replication stopped`);
      schemas.set(table.name, schema);
    }
    try {
      return await this.inTransaction(database, async (exec) => {
        const [begin] = await exec<{ skip: boolean }>(capture.applyBeginStatement, { stream, upTo, migration: streamMigration(stream) });
        if (begin?.skip) return 0;
        let written = 0;
        // Deletes first, so a key or unique value a row gave up is free before another row takes it.
        for (const { table, gone } of byTable.values()) {
          const schema = schemas.get(table.name)!;
          const per = capture.rowsPerStatement(schema, 'key');
          for (let start = 0; start < gone.length; start += per) {
            const slice = gone.slice(start, start + per);
            const values: Record<string, unknown> = {};
            slice.forEach((image, r) => image.key.forEach((v, i) => (values[`k${r}_${i}`] = v)));
            const [row] = await exec<{ written: number }>(capture.deleteRowsStatement(schema, slice.length), values);
            written += row?.written ?? 0;
          }
        }
        for (const { table, present } of byTable.values()) {
          const schema = schemas.get(table.name)!;
          const per = capture.rowsPerStatement(schema, 'row');
          for (let start = 0; start < present.length; start += per) {
            const slice = present.slice(start, start + per);
            const values: Record<string, unknown> = {};
            // By column name: the image is in the origin's column order.
            slice.forEach((image, r) => schema.columns.forEach((c, i) => (values[`r${r}_${i}`] = image.row![image.table.columns.indexOf(c.name)] ?? null)));
            const [row] = await exec<{ written: number }>(capture.upsertRowsStatement(schema, slice.length), values);
            written += row?.written ?? 0;
          }
        }
        await exec(capture.applyEndStatement);
        await exec(tsql.advanceCursorStatement, { stream, cursor: upTo });
        return written;
      });
    } catch (err) {
      if (isKeyConflict(err))
        throw new ReplicationConflictError(`${this.where(database)}: a row image clashes with a unique key another row still holds (${(err as Error).message}); replication stopped`);
      throw err;
    }
  }

  /**
   * Runs `work` in one transaction on one pooled connection, rolled back on any error. A batch that
   * THROWs under XACT_ABORT has rolled the transaction back already; the rollback here is then a no-op.
   */
  private async inTransaction<T>(database: string, work: (exec: <R = Record<string, unknown>>(statement: tsql.Statement, values?: Record<string, unknown>) => Promise<R[]>) => Promise<T>): Promise<T> {
    let tx: Transaction;
    try {
      tx = await this.transaction(database);
    } catch (err) {
      throw this.classify(err, database);
    }
    try {
      const result = await work((statement, values) => this.send(database, tx.request(), statement, values));
      await tx.commit();
      return result;
    } catch (err) {
      await tx.rollback().catch(() => undefined);
      throw this.classify(err, database);
    }
  }

  async appliedCursor(database: string, stream: string): Promise<number> {
    const [row] = await this.run<{ cursor_seq: string | number }>(database, tsql.appliedCursorQuery, { stream });
    return row ? Number(row.cursor_seq) : 0;
  }

  async writeGate(database: string): Promise<WriteGate | null> {
    const [row] = await this.run<{ state: WriteGate['state']; migration_id: string | null; token: string | null }>(database, tsql.readGateQuery);
    return row ? { state: row.state, migrationId: row.migration_id, token: row.token } : null;
  }

  /**
   * Compare-and-set of the gate, in one transaction: the gate row read under an update lock (writers'
   * shared locks still pass, so their triggers finish), the tenant's triggers and foreign keys held
   * aside (any state but open) or given back (open), then the gate written, which waits for every
   * writer that read the old state.
   */
  async setWriteGate(database: string, gate: WriteGate, expect?: GateExpectation): Promise<boolean> {
    await this.ensureGate(database);
    return this.inTransaction(database, async (exec) => {
      const [current] = await exec<{ state: WriteGate['state']; migration_id: string | null; token: string | null }>(tsql.lockGateQuery);
      if (expect?.states && !expect.states.includes(current?.state ?? 'none')) return false;
      if (expect?.token !== undefined && current?.token !== expect.token) return false;
      // Read under the update lock above, so it holds until this transaction commits.
      if (expect?.migrationId !== undefined && current && current.migration_id !== expect.migrationId) return false;
      // Foreign keys are held on a standby target only; a fenced side keeps its own (mssql-capture-sql.ts).
      await exec(gate.state === 'open' ? capture.releaseStatement : gate.state === 'standby' ? capture.holdStatement : capture.holdTriggersStatement);
      const [row] = await exec<{ applied: boolean | number }>(tsql.setGateStatement, {
        state: gate.state,
        migration: gate.migrationId,
        token: gate.token ?? null,
        expectStates: expect?.states ? `,${expect.states.join(',')},` : null,
        expectToken: expect?.token ?? null,
      });
      return Boolean(row?.applied);
    });
  }

  /**
   * Writes tracking events the way the gateway (or an application writing its own) must: each in
   * its own transaction with `writeEventStatement` (gate check, event; change capture records it).
   * Returns how many were new; throws FencedWriteError, having written none of the rest, when the
   * gate is not open. The asynchronous counterpart of `openEventWriter`.
   */
  async writeEvents(database: string, events: TrackingEvent[]): Promise<number> {
    const table = (await this.listTables(database)).find((t) => t.name === this.trackingTable);
    if (!table) throw new DatabaseMissingError(`${this.where(database)}: no ${this.trackingTable} table to write events to; check the tracking table in the fleet file`);
    const schema = await this.schemaOf(database, table);
    const statement = tsql.writeEventStatement(schema);
    let fresh = 0;
    for (const event of events) {
      const values: Record<string, unknown> = {};
      schema.columns.forEach((c, i) => {
        if (!c.identity) values[tsql.eventParam(c.name, i)] = (event as unknown as Record<string, unknown>)[c.name] ?? null;
      });
      const [row] = await this.run<{ inserted: number }>(database, statement, values);
      fresh += row?.inserted ?? 0;
    }
    return fresh;
  }

  /**
   * What preflight must say about log backups of a source before shipping its log to Managed
   * Instance (recovery model, Agent jobs, log backups in the last `days`), as findings.
   */
  async logBackupPreflight(database: string, days = 7): Promise<string[]> {
    const [model] = await this.run<{ recovery_model: string; log_chain_started: boolean }>('master', logsql.recoveryModelQuery(database));
    const jobs = await this.run<{ job_name: string; step_id: number; step_name: string; enabled: boolean }>('master', logsql.logBackupJobsQuery(database)).catch((err: unknown) => {
      if ((err as Error).name === 'PermissionError') return 'unreadable' as const;
      throw err;
    });
    const since = new Date(Date.now() - days * 86400000);
    const backups = await this.run<{ finished_at: Date; device: string }>('master', logsql.logBackupHistoryQuery(database), { since }).catch(() => []);
    return logBackupFindings({ database, recoveryModel: model?.recovery_model ?? null, logChainStarted: model ? Boolean(model.log_chain_started) : undefined, jobs, backups, ourFolder: this.endpoint.backupDirectory });
  }

  /** Log shipping needs the backup folder the snapshot uses (backupDirectory and backupShare). */
  get logBackups(): LogBackupSource | undefined {
    return this.endpoint.backupDirectory && this.endpoint.backupShare ? this : undefined;
  }

  serverPath(file: string): string {
    return this.serverBackupPath(file);
  }

  localPath(file: string): string {
    return join(this.endpoint.backupShare!, file);
  }

  async backupSetOf(database: string, file: string): Promise<BackupSet | undefined> {
    const [row] = await this.run<BackupSetRow>('master', logsql.backupSetByDeviceQuery(database), { device: this.serverBackupPath(file) });
    return row ? backupSet(row) : undefined;
  }

  async takeLogBackup(database: string, file: string): Promise<void> {
    await this.run('master', logsql.logBackupStatement(database, this.serverBackupPath(file), { compression: false }));
  }

  async logBackupsAfter(database: string, lsn: string): Promise<BackupSet[]> {
    return (await this.run<BackupSetRow>('master', logsql.logBackupsAfterQuery(database), { after_lsn: lsn })).map(backupSet);
  }

  openEventWriter(): EventWriter {
    throw new Error('the SQL Server event write path is asynchronous (MssqlEngine.writeEvents) and not wired into the gateway yet; run ingestion against SQLite tenants');
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.then((x) => x.close()).catch(() => undefined)));
  }
}
