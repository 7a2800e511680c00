// The SQL Server engine (also the verification side of Azure SQL Managed Instance): BACKUP to a
// folder the worker reads as a share, RESTORE FROM URL, catalog views, and row hashes computed by
// the server. Every statement comes from mssql-sql.ts.
import sql from 'mssql';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { renderKey, sha256File } from './checksum';
import { FleetConfigError } from '../protocol/errors';
import {
  ConnectionError,
  DatabaseMissingError,
  TargetExistsError,
  type Artifact,
  type BlobArtifact,
  type ChunkDigest,
  type Engine,
  type EventWriter,
  type KeyRange,
  type KeyValue,
  type OutboxEntry,
  type Progress,
  type RowDigest,
  type TableInfo,
  type WriteGate,
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

export class MssqlEngine implements Engine {
  readonly kind: string = 'mssql';
  readonly restoresFrom: 'file' | 'blob' = 'blob';
  private readonly pools = new Map<string, Promise<sql.ConnectionPool>>();
  private readonly tableSchemas = new Map<string, tsql.MssqlTable>();

  constructor(
    protected readonly endpoint: MssqlEndpoint,
    readonly trackingTable = 'tracking_events',
  ) {}

  protected pool(database = 'master'): Promise<sql.ConnectionPool> {
    let pool = this.pools.get(database);
    if (!pool) {
      const config: sql.config = {
        server: this.endpoint.server,
        port: this.endpoint.port,
        user: this.endpoint.user,
        password: this.endpoint.password,
        database,
        requestTimeout: 0,
        options: { encrypt: this.endpoint.encrypt, trustServerCertificate: this.endpoint.trustServerCertificate },
      };
      pool = new sql.ConnectionPool(config).connect().catch((err: Error) => {
        this.pools.delete(database);
        // The driver's message names server and login, never the password.
        throw new ConnectionError(`SQL Server ${this.endpoint.server}:${this.endpoint.port} (${database}): ${err.message}`);
      });
      this.pools.set(database, pool);
    }
    return pool;
  }

  protected async run<T = Record<string, unknown>>(database: string, statement: tsql.Statement, values: Record<string, unknown> = {}): Promise<T[]> {
    const request = (await this.pool(database)).request();
    for (const [name, value] of Object.entries({ ...statement.params, ...values })) request.input(name, value as never);
    const result = await request.query(statement.sql);
    return (result.recordset ?? []) as T[];
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

  /** SQL Server target: credential for the container, then RESTORE … FROM URL with the files moved. */
  async restore(database: string, artifact: Artifact | BlobArtifact, migrationId: string, onProgress?: Progress): Promise<void> {
    if (!('url' in artifact)) throw new Error('the SQL Server engine restores from a blob URL');
    const existing = await this.probe(database);
    if (existing.exists && existing.restoredBy !== migrationId)
      throw new TargetExistsError(`target database ${database} already exists on ${this.endpoint.server}; airlift will not overwrite it`);
    if (existing.exists) return;
    await this.run('master', tsql.createCredentialStatement(artifact.containerUrl), { sas: await artifact.sas() });
    const files = await this.run<{ LogicalName: string; Type: string }>('master', tsql.fileListStatement(), { url: artifact.url });
    const [paths] = await this.run<{ data_path: string; log_path: string }>('master', tsql.defaultPathsQuery);
    const statement = tsql.restoreFromUrlStatement(database, files.map((f) => ({ logicalName: f.LogicalName, type: f.Type })));
    const values: Record<string, unknown> = { url: artifact.url };
    files.forEach((f, i) => {
      const folder = f.Type === 'L' ? paths.log_path : paths.data_path;
      values[`physical${i}`] = `${folder}${database}_${i}${f.Type === 'L' ? '.ldf' : '.mdf'}`;
    });
    await this.withProgress(database, onProgress, this.run('master', statement, values));
    await this.run(database, tsql.markCreatedStatement(database), { migration: migrationId });
    // The backup carries the source's gate; a target takes no write until a switch opens it.
    await this.setWriteGate(database, { state: 'standby', migrationId });
  }

  async dropRestored(database: string, migrationId: string): Promise<boolean> {
    const found = await this.probe(database);
    if (!found.exists || found.restoredBy !== migrationId) return false;
    await this.run('master', tsql.dropDatabaseStatement(database));
    return true;
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
    const table = (await this.listTables(database)).find((t) => t.name === this.trackingTable);
    if (!table) throw new DatabaseMissingError(`${database}: no ${this.trackingTable} table to apply events to`);
    const schema = await this.schemaOf(database, table);
    const statement = tsql.applyEventStatement(schema);
    const pool = await this.pool(database);
    const transaction = new sql.Transaction(pool);
    await transaction.begin();
    let applied = 0;
    try {
      for (const entry of entries) {
        const request = new sql.Request(transaction);
        table.columns.forEach((c, i) => request.input(`c${i}`, (entry.row[c] ?? null) as never));
        request.input('eventId', entry.eventId);
        applied += (await request.query(statement.sql)).rowsAffected.reduce((a, n) => a + n, 0) > 0 ? 1 : 0;
      }
      const advance = new sql.Request(transaction);
      advance.input('stream', stream).input('cursor', entries[entries.length - 1].seq);
      await advance.query(tsql.advanceCursorStatement.sql);
      await transaction.commit();
    } catch (err) {
      await transaction.rollback().catch(() => undefined);
      throw err;
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
    const [row] = await this.run<{ state: WriteGate['state']; migration_id: string | null }>(database, tsql.readGateQuery);
    return row ? { state: row.state, migrationId: row.migration_id } : null;
  }

  async setWriteGate(database: string, gate: WriteGate): Promise<void> {
    await this.ensureOutbox(database);
    await this.run(database, tsql.setGateStatement, { state: gate.state, migration: gate.migrationId });
  }

  async trackingHead(database: string, table: TableInfo): Promise<KeyValue[] | null> {
    const schema = await this.schemaOf(database, table);
    const [row] = await this.run<Record<string, unknown>>(database, tsql.headKeyQuery(schema));
    return row ? schema.key.map((k) => row[k] as KeyValue) : null;
  }

  openEventWriter(): EventWriter {
    throw new Error('the SQL Server event write path is asynchronous and not wired into the gateway yet; run ingestion against SQLite tenants');
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.then((x) => x.close()).catch(() => undefined)));
  }
}
