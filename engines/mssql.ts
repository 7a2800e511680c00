// The SQL Server engine (also the verification side of Azure SQL Managed Instance): BACKUP to a
// folder the worker reads as a share, RESTORE FROM URL, catalog views, and row hashes computed by
// the server. Every statement comes from mssql-sql.ts.
import sql from 'mssql';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { renderKey, sha256File } from './checksum';
import { FleetConfigError, PermissionError } from '../protocol/errors';
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
  type EventWriter,
  type KeyRange,
  type KeyValue,
  type Change,
  type Progress,
  type RowDigest,
  type TableInfo,
  type TrackingEvent,
  type WriteGate,
  type GateExpectation,
} from './engine';
import * as tsql from './mssql-sql';

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
    const request = (await this.pool(database)).request();
    for (const [name, value] of Object.entries({ ...statement.params, ...values })) request.input(name, value as never);
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
  private async withProgress<T>(database: string, onProgress: Progress | undefined, work: Promise<T>): Promise<T> {
    let finished = false;
    const poll = (async () => {
      while (!finished) {
        await new Promise((r) => setTimeout(r, 2000));
        const [row] = await this.run<{ percent_complete: number }>('master', tsql.progressQuery(database)).catch(() => []);
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

  async snapshot(database: string, destFile: string, onProgress?: Progress): Promise<Artifact> {
    const { backupDirectory, backupShare } = this.endpoint;
    if (!backupDirectory || !backupShare)
      throw new FleetConfigError('backupDirectory and backupShare must be set on a SQL Server source: the folder the server writes and the same folder as the worker reads it');
    const name = destFile.split(/[\\/]/).pop()!;
    const serverPath = `${backupDirectory.replace(/[\\/]+$/, '')}${backupDirectory.includes('\\') ? '\\' : '/'}${name}`;
    const [{ supported }] = await this.run<{ supported: boolean }>('master', tsql.compressionSupportedQuery);
    await this.withProgress(database, onProgress, this.run('master', tsql.backupStatement(database, [serverPath], { compression: this.endpoint.compression && supported })));
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
      await this.withProgress(restoring, onProgress, this.run('master', statement, values));
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
    const rows = await this.run<{ schema_name: string; table_name: string; column_name: string; type_name: string; is_identity: boolean; key_ordinal: number | null }>(database, tsql.listTablesQuery);
    const tables = new Map<string, tsql.MssqlTable & { ordinals: Map<string, number> }>();
    for (const r of rows) {
      const id = r.schema_name === 'dbo' ? r.table_name : `${r.schema_name}.${r.table_name}`;
      const t = tables.get(id) ?? { schema: r.schema_name, name: r.table_name, columns: [] as tsql.MssqlColumn[], key: [] as string[], ordinals: new Map<string, number>() };
      t.columns.push({ name: r.column_name, type: r.type_name, identity: r.is_identity });
      if (r.key_ordinal) t.ordinals.set(r.column_name, r.key_ordinal);
      tables.set(id, t);
    }
    return [...tables].map(([id, t]) => {
      // No primary key: every column orders and identifies the rows (duplicates compare as a group).
      t.key = t.ordinals.size ? [...t.ordinals].sort((a, b) => a[1] - b[1]).map(([c]) => c) : t.columns.map((c) => c.name);
      this.tableSchemas.set(`${database}.${id}`, t);
      return { name: id, columns: t.columns.map((c) => c.name), key: t.key, keyKind: 'primary-key' as const };
    });
  }

  private async rowHashes(database: string, table: TableInfo, range: KeyRange): Promise<{ key: KeyValue[]; hash: Buffer }[]> {
    const schema = await this.schemaOf(database, table);
    const statement = tsql.rowHashQuery(schema, { lower: Boolean(range.lower), upper: Boolean(range.upper) });
    const values: Record<string, unknown> = {};
    range.lower?.forEach((v, i) => (values[`lo${i}`] = v));
    range.upper?.forEach((v, i) => (values[`hi${i}`] = v));
    const rows = await this.run<Record<string, unknown>>(database, statement, values);
    return rows.map((r) => ({ key: schema.key.map((k) => r[k] as KeyValue), hash: r.row_hash as Buffer }));
  }

  async chunkDigests(database: string, table: TableInfo, chunkRows: number, within: KeyRange = { lower: null, upper: null }): Promise<ChunkDigest[]> {
    const rows = await this.rowHashes(database, table, within);
    const chunks: ChunkDigest[] = [];
    const sameKey = (a: KeyValue[], b: KeyValue[]) => a.every((v, i) => (Buffer.isBuffer(v) && Buffer.isBuffer(b[i]) ? v.equals(b[i] as Buffer) : v === b[i]));
    let start = 0;
    do {
      let end = Math.min(rows.length, start + chunkRows);
      // Rows with equal keys (a table without a primary key) stay in one chunk, as a range query sees them.
      while (end < rows.length && sameKey(rows[end].key, rows[end - 1].key)) end++;
      const hash = createHash('sha256');
      for (const r of rows.slice(start, end)) hash.update(r.hash);
      const last = end >= rows.length;
      chunks.push({ lower: start === 0 ? within.lower : rows[start - 1].key, upper: last ? within.upper : rows[end - 1].key, rows: end - start, digest: hash.digest('hex') });
      start = end;
    } while (start < rows.length);
    return chunks;
  }

  async rangeDigest(database: string, table: TableInfo, range: KeyRange): Promise<{ rows: number; digest: string }> {
    const rows = await this.rowHashes(database, table, range);
    const hash = createHash('sha256');
    for (const r of rows) hash.update(r.hash);
    return { rows: rows.length, digest: hash.digest('hex') };
  }

  async rowDigests(database: string, table: TableInfo, range: KeyRange): Promise<RowDigest[]> {
    return (await this.rowHashes(database, table, range)).map((r) => ({ key: renderKey(table.key, r.key), digest: r.hash.toString('hex') }));
  }

  private async ensureOutbox(database: string): Promise<void> {
    await this.run(database, tsql.outboxSchema);
  }

  // TODO(issue 9): SQL Server change capture (triggers into a change log, SESSION_CONTEXT for the applier).
  async startCapture(): Promise<number> {
    throw new Error('SQL Server change capture is not implemented yet');
  }

  async stopCapture(): Promise<void> {
    throw new Error('SQL Server change capture is not implemented yet');
  }

  async changeHead(): Promise<number> {
    throw new Error('SQL Server change capture is not implemented yet');
  }

  async readChanges(): Promise<Change[]> {
    throw new Error('SQL Server change capture is not implemented yet');
  }

  async readRows(): Promise<(KeyValue[] | null)[]> {
    throw new Error('SQL Server change capture is not implemented yet');
  }

  async applyChanges(): Promise<number> {
    throw new Error('SQL Server change capture is not implemented yet');
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
