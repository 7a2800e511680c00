// The SQL Server engine (also the verification side of Azure SQL Managed Instance): BACKUP to a
// folder the worker reads as a share, RESTORE FROM URL, catalog views, and row hashes computed by
// the server. Every statement comes from mssql-sql.ts.
import sql from 'mssql';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { renderKey, sha256File } from './checksum';
import { FleetConfigError, PermissionError, ReplicationConflictError, VerificationUnsupportedError } from '../protocol/errors';
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
  type OutboxEntry,
  type Progress,
  type RowDigest,
  type TableInfo,
  type DigestFormat,
  type TrackingEvent,
  type WriteGate,
  type GateExpectation,
} from './engine';
import * as tsql from './mssql-sql';
import * as rowHash from './mssql-row-hash';

/** Rows per page of row hashes: verification holds one page, never a whole table. */
export const ROW_HASH_PAGE_ROWS = 2000;

/** The mssql type a T-SQL declaration names (`varchar(20)`, `decimal(18, 4)`, `datetime2(7)`, …). */
export function sqlTypeOf(declaration: string): sql.ISqlType {
  const m = /^([a-z0-9]+)(?:\((max|\d+)(?:,\s*(\d+))?\))?$/.exec(declaration);
  if (!m) throw new Error(`cannot declare a parameter of type ${declaration}`);
  const [, name, first, second] = m;
  const length = first === 'max' ? sql.MAX : Number(first);
  const types: Record<string, () => sql.ISqlType> = {
    varchar: () => sql.VarChar(length), nvarchar: () => sql.NVarChar(length), char: () => sql.Char(length), nchar: () => sql.NChar(length),
    varbinary: () => sql.VarBinary(length), binary: () => (sql.Binary as unknown as (length: number) => sql.ISqlType)(length), // typed without a length, declared with one
    decimal: () => sql.Decimal(Number(first), Number(second)), numeric: () => sql.Numeric(Number(first), Number(second)),
    datetime2: () => sql.DateTime2(Number(first)), time: () => sql.Time(Number(first)), datetimeoffset: () => sql.DateTimeOffset(Number(first)),
    int: () => sql.Int(), bigint: () => sql.BigInt(), smallint: () => sql.SmallInt(), tinyint: () => sql.TinyInt(), bit: () => sql.Bit(),
    float: () => sql.Float(), real: () => sql.Real(), uniqueidentifier: () => sql.UniqueIdentifier(), date: () => sql.Date(),
    datetime: () => sql.DateTime(), smalldatetime: () => sql.SmallDateTime(), money: () => sql.Money(), smallmoney: () => sql.SmallMoney(),
  };
  const make = types[name];
  if (!make) throw new Error(`cannot declare a parameter of type ${declaration}`);
  return make();
}

/**
 * Binds a statement's parameters: those with a declared type (`statement.types`) are sent as exactly
 * that type, never one guessed from the JavaScript value (a string would go as nvarchar and turn a
 * varchar key comparison into an nvarchar one: "Data type precedence" converts the column up, which
 * scans the index and, under a SQL_* collation, sorts differently from the column's ORDER BY).
 */
export function bindParameters(request: sql.Request, statement: tsql.Statement, values: Record<string, unknown> = {}): sql.Request {
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
const TRANSIENT = new Set([1205, 1204, 1222, 40613, 40501, 40197, 40540, 40143, 49918, 49919, 49920, 4221, 10928, 10929, 10053, 10054, 10060, 233, 64, tsql.OUTBOX_LOCK_ERROR]);
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
 * Whether an apply failed because the replicated row's key holds another event: THROWn by the apply
 * statement (CONFLICT_ERROR) or raised by a unique index (2627 constraint, 2601 index).
 */
export function isKeyConflict(err: unknown): boolean {
  return facts(err as DriverError).numbers.some((n) => n === tsql.CONFLICT_ERROR || n === 2627 || n === 2601);
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

export class MssqlEngine implements Engine {
  readonly kind: string = 'mssql';
  readonly restoresFrom: 'file' | 'blob' = 'blob';
  private readonly pools = new Map<string, Promise<sql.ConnectionPool>>();
  private readonly tableSchemas = new Map<string, tsql.MssqlTable>();

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
    const request = bindParameters((await this.pool(database)).request(), statement, values);
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
          `USE [${restoring}];\n${tsql.renderStatement(tsql.outboxSchema)}\n${tsql.renderStatement(tsql.setGateStatement, { state: 'standby', migration: artifact.migrationId })}`,
          tsql.renderStatement(tsql.renameDatabaseStatement(restoring, database)),
        ].map((text) => text.split(restoring).join(`${tsql.RESTORING_PREFIX}${artifact.migrationId}`)),
      ],
    };
  }

  async snapshot(database: string, destFile: string, onProgress?: Progress): Promise<Artifact> {
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
    return { file, sizeBytes: size, sha256: await sha256File(file) };
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
      if (!(await this.setWriteGate(database, { state: 'fenced', migrationId, token: 'dropped' }, { states: ['standby', 'fenced', 'none'] })))
        throw new TargetInUseError(`target database ${database} takes writes (its write gate is open): it is the tenant's primary and is not dropped; run \`airlift reconcile\` to see why`);
      await this.closePool(database);
      await this.run('master', tsql.dropDatabaseStatement(database));
      dropped = true;
    }
    return dropped;
  }

  private async schemaOf(database: string, table: TableInfo): Promise<tsql.MssqlTable> {
    const cached = this.tableSchemas.get(`${database}.${table.name}`);
    if (cached) return cached;
    await this.listTables(database);
    return this.tableSchemas.get(`${database}.${table.name}`)!;
  }

  async listTables(database: string): Promise<TableInfo[]> {
    const tables = tsql.tablesFromCatalog(await this.run<tsql.CatalogColumnRow>(database, tsql.listTablesQuery()));
    return [...tables].map(([id, table]) => {
      this.tableSchemas.set(`${database}.${id}`, table);
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

  async rowDigests(database: string, table: TableInfo, range: KeyRange, format?: DigestFormat): Promise<RowDigest[]> {
    const out: RowDigest[] = [];
    for await (const row of this.hashedRows(database, table, range, format))
      out.push({ key: renderKey(table.key, row.key), digest: `${row.hash.toString('hex')}${row.copies > 1 ? ` x${row.copies}` : ''}` });
    return out;
  }

  async ensureOutbox(database: string): Promise<void> {
    await this.run(database, tsql.outboxSchema);
  }

  async outboxHead(database: string): Promise<number> {
    await this.ensureOutbox(database);
    const [row] = await this.run<{ head: string | number }>(database, tsql.outboxHeadQuery);
    return Number(row.head);
  }

  async readOutbox(database: string, afterSeq: number, limit: number): Promise<OutboxEntry[]> {
    const rows = await this.run<{ seq: string | number; event_id: string; row_json: string }>(database, tsql.readOutboxQuery, { after: afterSeq, limit });
    return rows.map((r) => ({ seq: Number(r.seq), eventId: r.event_id, row: JSON.parse(r.row_json) as Record<string, unknown> }));
  }

  async applyOutbox(database: string, stream: string, entries: OutboxEntry[]): Promise<number> {
    if (!entries.length) return 0;
    await this.ensureOutbox(database);
    const table = (await this.listTables(database)).find((t) => t.name === this.trackingTable);
    if (!table) throw new DatabaseMissingError(`${this.where(database)}: no ${this.trackingTable} table to apply events to; restore the tenant database first`);
    const schema = await this.schemaOf(database, table);
    const statement = tsql.applyEventStatement(schema);
    const pool = await this.pool(database);
    const transaction = new sql.Transaction(pool);
    let applied = 0;
    let entry: OutboxEntry | undefined;
    try {
      await transaction.begin();
      for (entry of entries) {
        const request = new sql.Request(transaction);
        for (const [i, c] of table.columns.entries()) request.input(`c${i}`, (entry.row[c] ?? null) as never);
        request.input('eventId', entry.eventId);
        const result = await request.query<{ applied: number }>(statement.sql);
        applied += result.recordset?.[0]?.applied ?? 0;
      }
      entry = undefined;
      const advance = new sql.Request(transaction);
      advance.input('stream', stream).input('cursor', entries[entries.length - 1].seq);
      await advance.query(tsql.advanceCursorStatement.sql);
      await transaction.commit();
    } catch (err) {
      await transaction.rollback().catch(() => undefined);
      if (entry && isKeyConflict(err))
        throw new ReplicationConflictError(
          `${this.where(database)}: event ${entry.eventId} (outbox seq ${entry.seq}, stream ${stream}) conflicts with a different row already in ${this.trackingTable} (${(err as Error).message}); replication stopped so that neither is lost — compare the two rows and resolve by hand`,
        );
      throw this.classify(err, database);
    }
    return applied;
  }

  async appliedCursor(database: string, stream: string): Promise<number> {
    await this.ensureOutbox(database);
    const [row] = await this.run<{ cursor_seq: string | number }>(database, tsql.appliedCursorQuery, { stream });
    return row ? Number(row.cursor_seq) : 0;
  }

  async writeGate(database: string): Promise<WriteGate | null> {
    await this.ensureOutbox(database);
    const [row] = await this.run<{ state: WriteGate['state']; migration_id: string | null; token: string | null }>(database, tsql.readGateQuery);
    return row ? { state: row.state, migrationId: row.migration_id, token: row.token } : null;
  }

  async setWriteGate(database: string, gate: WriteGate, expect?: GateExpectation): Promise<boolean> {
    await this.ensureOutbox(database);
    const [row] = await this.run<{ applied: boolean | number }>(database, tsql.setGateStatement, {
      state: gate.state,
      migration: gate.migrationId,
      token: gate.token ?? null,
      expectStates: expect?.states ? `,${expect.states.join(',')},` : null,
      expectToken: expect?.token ?? null,
    });
    return Boolean(row?.applied);
  }

  async trackingHead(database: string, table: TableInfo): Promise<KeyValue[] | null> {
    const schema = await this.schemaOf(database, table);
    const [row] = await this.run<Record<string, unknown>>(database, tsql.headKeyQuery(schema));
    return row ? schema.key.map((k) => row[k] as KeyValue) : null;
  }

  /**
   * Writes tracking events the way the gateway (or an application writing its own) must: each in
   * its own transaction with `writeEventStatement` (outbox lock, gate check, event, outbox row).
   * Returns how many were new; throws FencedWriteError, having written none of the rest, when the
   * gate is not open. The asynchronous counterpart of `openEventWriter`.
   */
  async writeEvents(database: string, events: TrackingEvent[], outbox: boolean): Promise<number> {
    const table = (await this.listTables(database)).find((t) => t.name === this.trackingTable);
    if (!table) throw new DatabaseMissingError(`${this.where(database)}: no ${this.trackingTable} table to write events to; check the tracking table in the fleet file`);
    const schema = await this.schemaOf(database, table);
    const statement = tsql.writeEventStatement(schema);
    let fresh = 0;
    for (const event of events) {
      const values: Record<string, unknown> = { outbox: outbox ? 1 : 0 };
      schema.columns.forEach((c, i) => {
        if (!c.identity) values[tsql.eventParam(c.name, i)] = (event as unknown as Record<string, unknown>)[c.name] ?? null;
      });
      const [row] = await this.run<{ inserted: number }>(database, statement, values);
      fresh += row?.inserted ?? 0;
    }
    return fresh;
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
