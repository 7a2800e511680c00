// The PostgreSQL engine, source and target, through node-postgres. Change capture is trigger based
// (engines/postgres-sql.ts): every user table's writes are logged by key in the same transaction and
// refused by the database while its write gate is not open. The reader never passes a change that
// a transaction still open may commit below; the snapshot is `pg_dump -Fc` in an exported snapshot;
// the restore is `pg_restore` into a database whose ownership was recorded first. Every value
// crosses as PostgreSQL's own text form and is cast back to its column's type, so nothing is lost.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import pg from 'pg';
import { digestArtifact, renderKey, sha256File } from './checksum';
import { checkDatabaseName, quoteDoubled as q } from './identifiers';
import { postgresBinDirectory } from './postgres-bin';
import * as pgsql from './postgres-sql';
import {
  gateMatches,
  streamMigration,
  type Artifact,
  type BlobArtifact,
  type Change,
  type ChunkDigest,
  type Engine,
  type EventWriter,
  type GateExpectation,
  type KeyRange,
  type KeyValue,
  type PlannedArtifact,
  type PlanStep,
  type Progress,
  type RowDigest,
  type RowImage,
  type SqlSession,
  type TableInfo,
  type TrackingEvent,
  type TrackingMapping,
  type WriteGate,
} from './engine';
import {
  ArtifactChecksumError,
  ConnectionError,
  DatabaseMissingError,
  FencedWriteError,
  PermissionError,
  ReplicationConflictError,
  TargetExistsError,
  TargetInUseError,
} from '../protocol/errors';

export interface PostgresEndpoint {
  host: string;
  port: number;
  user: string;
  /** Resolved by the worker from the env var the fleet names (a password, or an Entra access token); never in a workflow input. */
  password?: string;
  /** `disable` for a private cluster on loopback; `require` or `verify-full` (Azure needs TLS). */
  ssl: 'disable' | 'require' | 'verify-full';
  /** `pg_restore --jobs`. */
  restoreJobs: number;
  /** The database airlift's own bookkeeping (who restored which database) lives in. */
  maintenanceDatabase?: string;
}

/** What airlift keeps of a table beyond TableInfo: its OID and each column's type, to cast text back. */
interface PgTable extends TableInfo {
  oid: number;
  types: Record<string, string>;
  generated: string[];
  kind: string;
}

/** The longest a reader waits for transactions open at its snapshot before it reads nothing new this time. */
const SAFE_HEAD_WAIT_MS = 1000;
const EMPTY_DIGEST = createHash('md5').update('').digest('hex');

const CONNECTION_CODES = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', '53300']);

/** A driver error as one of airlift's domain errors; anything else is returned as it is. */
export function classifyPostgresError(err: unknown, where: string): unknown {
  const e = err as { code?: string; message?: string };
  const said = e?.message ?? String(err);
  if (e?.code === pgsql.FENCED_SQLSTATE) return new FencedWriteError(said.replace(/^airlift: /, ''));
  if (e?.code === '3D000') return new DatabaseMissingError(`${where}: ${said}`);
  if (e?.code === '42501' || e?.code === '28P01' || e?.code === '28000') return new PermissionError(`${where}: ${said}; check the user and passwordEnv for this server in the fleet file, and its privileges`);
  if ((e?.code && CONNECTION_CODES.has(e.code)) || /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|Connection terminated|connection timeout|Client has encountered a connection error/i.test(said))
    return new ConnectionError(`${where}: ${said}`);
  return err;
}

const INTEGER_TYPES = /^(smallint|integer|bigint)$/;

/** A key read as text, with integer columns as bigint: rendered `id=2` as the other engines render it. */
function typedKey(table: PgTable, values: (string | null)[]): KeyValue[] {
  return values.map((v, i) => (v !== null && INTEGER_TYPES.test(table.types[table.key[i]] ?? '') ? BigInt(v) : v));
}

interface GateRow {
  state: WriteGate['state'];
  migration_id: string | null;
  token: string | null;
  lapsed: boolean;
}

/**
 * The gate as the protocol sees it. The open row capture installs before any migration sets the gate
 * (so that every later change is an UPDATE that writers' share locks order) reads as no gate yet.
 */
const gateOf = (row: GateRow | undefined): WriteGate | null =>
  row && !(row.state === 'open' && row.migration_id === null && row.token === null)
    ? { state: row.state, migrationId: row.migration_id, token: row.token, ...(row.lapsed ? { lapsed: true } : {}) }
    : null;

const isUndefinedTable = (err: unknown) => (err as { code?: string })?.code === '42P01' || (err as { code?: string })?.code === '3F000';

export class PostgresEngine implements Engine {
  readonly kind = 'postgres';
  readonly restoresFrom = 'file' as const;
  private readonly pools = new Map<string, pg.Pool>();
  private readonly tables = new Map<string, Map<string, PgTable>>();
  /** The last head each database's reader found safe: what it falls back to while a transaction stays open. */
  private readonly safeHeads = new Map<string, number>();

  constructor(private readonly endpoint: PostgresEndpoint) {}

  private get maintenance(): string {
    return this.endpoint.maintenanceDatabase ?? 'postgres';
  }

  private where(database: string): string {
    return `PostgreSQL ${this.endpoint.host}:${this.endpoint.port} database ${database}`;
  }

  private pool(database: string): pg.Pool {
    let pool = this.pools.get(database);
    if (!pool) {
      const { host, port, user, ssl } = this.endpoint;
      pool = new pg.Pool({
        host, port, user, database,
        password: this.endpoint.password,
        ssl: ssl === 'disable' ? false : { rejectUnauthorized: ssl === 'verify-full' },
        max: 6,
        connectionTimeoutMillis: 10_000,
        idleTimeoutMillis: 10_000,
        application_name: 'airlift',
      });
      // A backend terminated while idle (a restart, pg_terminate_backend) must not crash the worker:
      // the pool drops that client and the next query connects again.
      pool.on('error', () => undefined);
      this.pools.set(database, pool);
    }
    return pool;
  }

  private async query<T extends pg.QueryResultRow>(database: string, text: string, values: unknown[] = []): Promise<T[]> {
    try {
      return (await this.pool(database).query<T>(text, values)).rows;
    } catch (err) {
      throw classifyPostgresError(err, this.where(database));
    }
  }

  /** Runs `work` in one transaction on one connection; rolls back on any error. */
  private async transaction<T>(database: string, work: (client: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool(database).connect();
    } catch (err) {
      throw classifyPostgresError(err, this.where(database));
    }
    let broken = false;
    try {
      await client.query(begin);
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw classifyPostgresError(err, this.where(database));
    } finally {
      client.release(broken);
    }
  }

  /** The connection settings for pg_dump and pg_restore: in their environment, never on a command line. */
  private programEnv(database: string): NodeJS.ProcessEnv {
    const { host, port, user, password, ssl } = this.endpoint;
    return { ...process.env, PGHOST: host, PGPORT: String(port), PGUSER: user, PGDATABASE: database, PGSSLMODE: ssl, PGAPPNAME: 'airlift', ...(password ? { PGPASSWORD: password } : { PGPASSWORD: '' }) };
  }

  private async program(name: 'pg_dump' | 'pg_restore', args: string[], database: string): Promise<void> {
    const bin = postgresBinDirectory();
    if (!bin) throw new DatabaseMissingError(`${name} not found on this worker: install the PostgreSQL client programs (apt-get install postgresql-client) or set AIRLIFT_PG_BIN`);
    await new Promise<void>((resolve, reject) => {
      const child = spawn(`${bin}/${name}`, args, { env: this.programEnv(database), stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) => {
        if (code === 0) return resolve();
        const message = `${this.where(database)}: ${name} failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
        reject(/could not connect|Connection refused|terminat|server closed/i.test(stderr) ? new ConnectionError(message) : new Error(message));
      });
    });
  }

  // Inventory

  describe(): string {
    return `PostgreSQL ${this.endpoint.host}:${this.endpoint.port}`;
  }

  /** airlift's record of who restored which database, in the maintenance database (made on first use). */
  private async restores(): Promise<void> {
    await this.query(this.maintenance, `CREATE SCHEMA IF NOT EXISTS airlift; CREATE TABLE IF NOT EXISTS airlift.restores (database text PRIMARY KEY, migration_id text NOT NULL, completed boolean NOT NULL DEFAULT false, at timestamptz NOT NULL DEFAULT now())`).catch((err: unknown) => {
      // Two restores making it at once: one wins, the other finds it made.
      if ((err as { code?: string }).code !== '23505') throw err;
    });
  }

  private async marker(database: string): Promise<{ migration_id: string; completed: boolean } | undefined> {
    try {
      return (await this.query<{ migration_id: string; completed: boolean }>(this.maintenance, 'SELECT migration_id, completed FROM airlift.restores WHERE database = $1', [database]))[0];
    } catch (err) {
      if (isUndefinedTable(err)) return undefined;
      throw err;
    }
  }

  async probe(database: string): Promise<{ exists: boolean; sizeBytes?: number; restoredBy?: string }> {
    checkDatabaseName(database);
    const [row] = await this.query<{ size: string }>(this.maintenance, 'SELECT pg_database_size(datname)::text AS size FROM pg_database WHERE datname = $1', [database]);
    const marker = await this.marker(database);
    return { exists: Boolean(row), ...(row ? { sizeBytes: Number(row.size) } : {}), ...(marker ? { restoredBy: marker.migration_id } : {}) };
  }

  async listTables(database: string): Promise<TableInfo[]> {
    checkDatabaseName(database);
    const rows = await this.query<{ oid: number; name: string; kind: string; columns: string[]; generated: string[] | null; types: string[]; uniques: { primary: boolean; columns: string[]; notNull: boolean }[] | null }>(database, pgsql.listTablesQuery);
    const found = new Map<string, PgTable>();
    for (const r of rows) {
      const uniques = r.uniques ?? [];
      const chosen = uniques.find((u) => u.primary) ?? uniques.find((u) => u.notNull);
      found.set(r.name, {
        name: r.name,
        columns: r.columns,
        key: chosen ? chosen.columns : r.columns,
        keyKind: chosen?.primary ? 'primary-key' : chosen ? 'unique-index' : 'all-columns',
        uniqueKeys: uniques.map((u) => u.columns),
        oid: r.oid,
        kind: r.kind,
        generated: r.generated ?? [],
        types: Object.fromEntries(r.columns.map((c, i) => [c, r.types[i]])),
      });
    }
    this.tables.set(database, found);
    return [...found.values()].map(({ name, columns, key, keyKind, uniqueKeys }) => ({ name, columns, key, keyKind, uniqueKeys }));
  }

  private async table(database: string, name: string): Promise<PgTable> {
    let table = this.tables.get(database)?.get(name);
    if (!table) {
      await this.listTables(database);
      table = this.tables.get(database)?.get(name);
    }
    if (!table) throw new DatabaseMissingError(`${this.where(database)}: no table ${name} in the public schema`);
    return table;
  }

  async captureReadiness(database: string): Promise<{ problems: string[]; warnings: string[] }> {
    const [facts] = await this.query<{ version: number; version_text: string; can_create_schema: boolean; not_owned: string[]; extensions: string[] }>(database, pgsql.serverFactsQuery);
    const problems: string[] = [];
    const warnings: string[] = [];
    if (facts.version < 130000) problems.push(`${this.where(database)}: PostgreSQL ${facts.version_text}; change capture needs 13 or later (pg_current_xact_id); upgrade the server first`);
    if (!facts.can_create_schema) problems.push(`${this.where(database)}: user ${this.endpoint.user} may not create the airlift schema; GRANT CREATE ON DATABASE ${q(database)} TO ${q(this.endpoint.user)}`);
    for (const t of facts.not_owned) problems.push(`table ${q(t)}: user ${this.endpoint.user} does not own it, so capture triggers cannot be made on it; ALTER TABLE ${q(t)} OWNER TO ${q(this.endpoint.user)} (or migrate as its owner)`);
    for (const t of await this.listTables(database).then(() => [...(this.tables.get(database)?.values() ?? [])])) {
      if (t.keyKind === 'all-columns') problems.push(`table ${q(t.name)} has no primary key and no unique index of NOT NULL columns: change capture cannot tell its rows apart; add a primary key`);
      if (t.kind === 'p') problems.push(`table ${q(t.name)} is partitioned: capture of partitioned tables is not supported yet; migrate it another way or detach its partitions`);
    }
    for (const { name } of await this.query<{ name: string }>(database, pgsql.otherSchemasQuery))
      problems.push(`table ${name} is outside the public schema, which is all change capture covers; move it to public (ALTER TABLE … SET SCHEMA public) or migrate it another way`);
    if (facts.extensions.length) warnings.push(`extensions ${facts.extensions.join(', ')}: the target must allow and offer each (Azure Database for PostgreSQL: the azure.extensions server parameter)`);
    return { problems, warnings };
  }

  // Snapshot

  artifactName(database: string, migrationId: string): string {
    return `${checkDatabaseName(database)}.${migrationId}.pgdump`;
  }

  planSnapshot(database: string, migrationId: string): PlanStep {
    return {
      phase: 'snapshotting',
      action: `pg_dump --format=custom of ${database} on ${this.describe()}, inside one REPEATABLE READ transaction that exports its snapshot (pg_export_snapshot); the dump reads exactly that snapshot, while writes go on`,
      detail: ['BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT pg_export_snapshot();', `pg_dump --format=custom --snapshot=<exported id> --file=${this.artifactName(database, migrationId)} ${database}   (connection in PG* variables, the password never on the command line)`],
    };
  }

  async snapshot(database: string, destFile: string, onProgress?: Progress, blockSizeOf?: (sizeBytes: number) => number): Promise<Artifact> {
    checkDatabaseName(database);
    await mkdir(dirname(destFile), { recursive: true });
    await rm(destFile, { force: true });
    onProgress?.(0);
    // The transaction that exported the snapshot stays open until pg_dump has read it.
    await this.transaction(database, async (client) => {
      const [{ id }] = (await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows;
      await this.program('pg_dump', ['--format=custom', '--compress=6', `--snapshot=${id}`, `--file=${destFile}`, '--no-password'], database);
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    onProgress?.(1);
    const { size } = await stat(destFile);
    return digestArtifact(destFile, size, destFile, blockSizeOf);
  }

  // Restore

  planRestore(database: string, artifact: PlannedArtifact): PlanStep {
    return {
      phase: 'restoring',
      action: `download ${artifact.blobName} to the worker, check its sha256, record in airlift.restores of ${this.describe()} that ${artifact.migrationId} owns ${database} (before anything is made), CREATE DATABASE, pg_restore with ${this.endpoint.restoreJobs} jobs`,
      detail: [
        `INSERT INTO airlift.restores (database, migration_id) VALUES ('${database}', '${artifact.migrationId}') ON CONFLICT DO NOTHING;`,
        `CREATE DATABASE ${q(database)} TEMPLATE template0;`,
        `pg_restore --jobs=${this.endpoint.restoreJobs} --no-owner --no-privileges --exit-on-error --dbname=${database} <artifact>   (TLS: sslmode=${this.endpoint.ssl})`,
      ],
    };
  }

  async restore(database: string, artifact: Artifact | BlobArtifact, migrationId: string, onProgress?: Progress): Promise<void> {
    checkDatabaseName(database);
    if (!('file' in artifact)) throw new Error('the PostgreSQL restore reads a downloaded artifact file');
    const before = await this.probe(database);
    const marker = await this.marker(database);
    if (before.exists && !marker) throw new TargetExistsError(`${this.where(database)} already exists and was not restored by airlift; airlift will not overwrite it`);
    if (marker && marker.migration_id !== migrationId) throw new TargetInUseError(`${this.where(database)} is held by migration ${marker.migration_id}; roll that one back (or drop it) first`);
    if (marker?.completed && before.exists) return;
    if ((await sha256File(artifact.file)) !== artifact.sha256) throw new ArtifactChecksumError(`${artifact.file}: sha256 differs from the snapshot's; the artifact is damaged, copy it again`);
    // Ownership first: a crash from here on leaves a database this migration may drop or restore again.
    await this.restores();
    await this.query(this.maintenance, 'INSERT INTO airlift.restores (database, migration_id) VALUES ($1, $2) ON CONFLICT (database) DO NOTHING', [database, migrationId]);
    const owner = await this.marker(database);
    if (owner?.migration_id !== migrationId) throw new TargetInUseError(`${this.where(database)} is held by migration ${owner?.migration_id}; roll that one back first`);
    onProgress?.(0.05);
    // A half-made database of this same migration is made again from the start.
    await this.query(this.maintenance, `DROP DATABASE IF EXISTS ${q(database)} WITH (FORCE)`);
    await this.query(this.maintenance, `CREATE DATABASE ${q(database)} TEMPLATE template0`);
    onProgress?.(0.1);
    await this.program('pg_restore', [`--jobs=${this.endpoint.restoreJobs}`, '--no-owner', '--no-privileges', '--exit-on-error', `--dbname=${database}`, '--no-password', artifact.file], database);
    await this.query(this.maintenance, 'UPDATE airlift.restores SET completed = true WHERE database = $1 AND migration_id = $2', [database, migrationId]);
    this.tables.delete(database);
    onProgress?.(1);
  }

  async dropRestored(database: string, migrationId: string): Promise<boolean> {
    checkDatabaseName(database);
    const marker = await this.marker(database);
    if (marker?.migration_id !== migrationId) return false;
    await this.closePool(database);
    await this.query(this.maintenance, `DROP DATABASE IF EXISTS ${q(database)} WITH (FORCE)`);
    await this.query(this.maintenance, 'DELETE FROM airlift.restores WHERE database = $1 AND migration_id = $2', [database, migrationId]);
    this.tables.delete(database);
    return true;
  }

  // Change capture and the write gate

  async startCapture(database: string): Promise<number> {
    this.safeHeads.delete(database);
    const tables = await this.listTables(database);
    await this.transaction(database, async (client) => {
      await client.query(pgsql.captureSchema);
      // The gate row exists from here on: every later gate change is an UPDATE that writers' share locks order.
      await client.query("INSERT INTO airlift.gate (state) VALUES ('open') ON CONFLICT (id) DO NOTHING");
      // Every table locked at once, in one order, in the mode the triggers need: writers in flight
      // finish first, later ones wait for the commit and then write through the triggers.
      if (tables.length) await client.query(`LOCK TABLE ${tables.map((t) => `public.${q(t.name)}`).join(', ')} IN SHARE ROW EXCLUSIVE MODE`);
      for (const t of tables) {
        const info = await this.table(database, t.name);
        for (const statement of pgsql.captureTriggerStatements({ oid: info.oid, name: info.name, key: info.key })) await client.query(statement);
      }
    });
    return this.changeHead(database);
  }

  async stopCapture(database: string, options: { keepFence: boolean }): Promise<void> {
    this.safeHeads.delete(database);
    const tables = await this.listTables(database);
    await this.transaction(database, async (client) => {
      const installed = (await client.query("SELECT to_regnamespace('airlift') IS NOT NULL AS installed")).rows[0].installed as boolean;
      if (!installed) return;
      for (const t of tables) {
        const target = `public.${q(t.name)}`;
        await client.query(`DROP TRIGGER IF EXISTS airlift_capture ON ${target}`);
        await client.query(`DROP TRIGGER IF EXISTS airlift_capture_truncate ON ${target}`);
        if (!options.keepFence) await client.query(`DROP TRIGGER IF EXISTS airlift_gate ON ${target}`);
      }
      if (!options.keepFence) await client.query('DROP SCHEMA airlift CASCADE');
      else for (const { fn } of (await client.query<{ fn: string }>("SELECT p.oid::regprocedure::text AS fn FROM pg_proc p WHERE p.pronamespace = 'airlift'::regnamespace AND p.proname LIKE 'capture\\_%'")).rows) await client.query(`DROP FUNCTION ${fn}`);
    });
  }

  async captureGaps(database: string): Promise<string[]> {
    const tables = await this.listTables(database);
    const triggers = await this.query<{ name: string; trigger: string; args: string }>(database, pgsql.captureTriggersQuery).catch(() => []);
    return tables
      .filter((t) => {
        const mine = triggers.filter((x) => x.name === t.name);
        const capture = mine.find((x) => x.trigger === 'airlift_capture');
        const keyArgs = t.key.map((k) => `${k}\\000`).join('');
        return !capture || capture.args !== keyArgs || !mine.some((x) => x.trigger === 'airlift_gate') || !mine.some((x) => x.trigger === 'airlift_capture_truncate');
      })
      .map((t) => t.name);
  }

  async writeGate(database: string): Promise<WriteGate | null> {
    try {
      const [row] = await this.query<GateRow>(database, pgsql.readGateQuery);
      return gateOf(row);
    } catch (err) {
      if (isUndefinedTable(err)) return null;
      throw err;
    }
  }

  async setWriteGate(database: string, gate: WriteGate, expect?: GateExpectation): Promise<boolean> {
    return this.transaction(database, async (client) => {
      await client.query(pgsql.captureSchema);
      // The row lock waits for every writer that read the old gate (each holds a share lock on the row
      // until it ends), and every writer after this commit reads the new one.
      const [row] = (await client.query<GateRow>(`${pgsql.readGateQuery} FOR UPDATE`)).rows;
      if (!gateMatches(gateOf(row), expect)) return false;
      await client.query(
        `INSERT INTO airlift.gate (state, migration_id, token, set_at, expires_at) VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp() + $4::int * interval '1 millisecond')
         ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, migration_id = EXCLUDED.migration_id, token = EXCLUDED.token, set_at = EXCLUDED.set_at, expires_at = EXCLUDED.expires_at`,
        [gate.state, gate.migrationId, gate.token ?? null, gate.leaseMs ?? null],
      );
      return true;
    });
  }

  // Change reader

  /**
   * The highest seq a reader may pass: the log's head, once every transaction that could hold a seq
   * below it has ended (any of them may still commit a change numbered below the head). While one
   * stays open longer than SAFE_HEAD_WAIT_MS, the last head found safe is answered instead.
   */
  private async safeHead(database: string): Promise<number> {
    let head: { head: string; horizon: string } | undefined;
    try {
      [head] = await this.query<{ head: string; horizon: string }>(database, pgsql.headSnapshotQuery);
    } catch (err) {
      if (isUndefinedTable(err)) return 0;
      throw err;
    }
    const deadline = Date.now() + SAFE_HEAD_WAIT_MS;
    for (;;) {
      const [{ open }] = await this.query<{ open: number }>(database, pgsql.openTransactionsQuery, [head.horizon]);
      if (open === 0) break;
      if (Date.now() >= deadline) return this.safeHeads.get(database) ?? 0;
      await new Promise((r) => setTimeout(r, 10));
    }
    const safe = Number(head.head);
    this.safeHeads.set(database, safe);
    return safe;
  }

  async changeHead(database: string): Promise<number> {
    return this.safeHead(database);
  }

  async readChanges(database: string, afterSeq: number, limit: number): Promise<Change[]> {
    const safe = await this.safeHead(database);
    if (safe <= afterSeq) return [];
    const rows = await this.query<{ seq: string; tbl: string; key: string[] }>(database, pgsql.readChangesQuery, [afterSeq, safe, limit]);
    const changes: Change[] = [];
    for (const r of rows) {
      const table = this.tables.get(database)?.get(r.tbl) ?? (await this.table(database, r.tbl).catch(() => undefined));
      changes.push({ seq: Number(r.seq), table: r.tbl, key: table ? typedKey(table, r.key) : r.key });
    }
    return changes;
  }

  /** `t.k0 = k.c0::type0 AND …`: the key of table alias `t` matched against text column `c<i>` of alias `k`. */
  private static keyJoin(table: PgTable, alias: string): string {
    return table.key.map((k, i) => `t.${q(k)} = ${alias}.c${i}::${table.types[k]}`).join(' AND ');
  }

  private static unnestKeys(table: PgTable, firstParam = 1): string {
    return `unnest(${table.key.map((_, i) => `$${firstParam + i}::text[]`).join(', ')}) WITH ORDINALITY AS k(${table.key.map((_, i) => `c${i}`).join(', ')}, i)`;
  }

  private static keyColumns(keys: KeyValue[][], width: number): (string | null)[][] {
    return Array.from({ length: width }, (_, i) => keys.map((k) => (k[i] === null || k[i] === undefined ? null : String(k[i]))));
  }

  async readRows(database: string, tableInfo: TableInfo, keys: KeyValue[][]): Promise<(KeyValue[] | null)[]> {
    if (!keys.length) return [];
    const table = await this.table(database, tableInfo.name);
    const rows = await this.query<{ i: string; row: (string | null)[] }>(
      database,
      `SELECT k.i::text AS i, ARRAY[${tableInfo.columns.map((c) => `t.${q(c)}::text`).join(', ')}] AS row FROM ${PostgresEngine.unnestKeys(table)} JOIN public.${q(table.name)} t ON ${PostgresEngine.keyJoin(table, 'k')}`,
      PostgresEngine.keyColumns(keys, table.key.length),
    );
    const found = new Map(rows.map((r) => [Number(r.i), r.row]));
    return keys.map((_, i) => found.get(i + 1) ?? null);
  }

  // Change applier

  async applyChanges(database: string, stream: string, upTo: number, images: RowImage[]): Promise<number> {
    return this.transaction(database, async (client) => {
      // Applied rows fire no trigger: not the tenant's own (their effects came with the rows), not
      // capture, not the gate (the applier writes only where the gate is closed, checked below).
      await client.query("SET LOCAL session_replication_role = 'replica'");
      let gate: { state: string; migration_id: string | null } | undefined;
      try {
        [gate] = (await client.query<{ state: string; migration_id: string | null }>('SELECT state, migration_id FROM airlift.gate FOR SHARE')).rows;
      } catch (err) {
        if (isUndefinedTable(err)) throw new ReplicationConflictError(`${database}: changes cannot be applied: the database holds no airlift gate (capture was removed or it was never restored by airlift)`);
        throw err;
      }
      if (!gate || gate.state === 'open')
        throw new ReplicationConflictError(`${database}: changes are not applied to a database that takes writes (its write gate is ${gate?.state ?? 'absent'}); this replication stream has ended`);
      if (gate.migration_id !== streamMigration(stream))
        throw new ReplicationConflictError(`${database}: changes of migration ${streamMigration(stream)} are not applied here: its write gate belongs to migration ${gate.migration_id ?? 'unknown'}; this replication stream has ended`);
      const [cursor] = (await client.query<{ seq: string }>('SELECT seq::text AS seq FROM airlift.cursors WHERE stream = $1 FOR UPDATE', [stream])).rows;
      if (cursor && Number(cursor.seq) >= upTo) return 0;
      // The last image of each row wins; images are grouped by table, deletes before inserts.
      const byTable = new Map<string, { info: TableInfo; rows: Map<string, RowImage> }>();
      for (const image of images) {
        let group = byTable.get(image.table.name);
        if (!group) byTable.set(image.table.name, (group = { info: image.table, rows: new Map() }));
        group.rows.set(JSON.stringify(image.key.map((v) => (v === null ? null : String(v)))), image);
      }
      let written = 0;
      for (const { info, rows } of byTable.values()) {
        const table = await this.table(database, info.name);
        const all = [...rows.values()];
        const deleted = await client.query(`DELETE FROM public.${q(table.name)} t USING ${PostgresEngine.unnestKeys(table)} WHERE ${PostgresEngine.keyJoin(table, 'k')}`, PostgresEngine.keyColumns(all.map((r) => r.key), table.key.length));
        const present = all.filter((r) => r.row);
        written += all.length - present.length ? Math.min(deleted.rowCount ?? 0, all.length - present.length) : 0;
        if (!present.length) continue;
        const writable = info.columns.map((c, i) => ({ c, i })).filter(({ c }) => !table.generated.includes(c));
        const values = writable.map(({ i }) => present.map((r) => (r.row![i] === null ? null : String(r.row![i]))));
        const source = `unnest(${writable.map((_, j) => `$${j + 1}::text[]`).join(', ')}) AS r(${writable.map((_, j) => `c${j}`).join(', ')})`;
        // As SQLite's REPLACE: a row holding a unique value an incoming row takes gives way; its own change comes later.
        for (const unique of table.uniqueKeys ?? []) {
          if (unique.join('\u0000') === table.key.join('\u0000') || !unique.every((c) => writable.some((w) => w.c === c))) continue;
          const match = unique.map((c) => `t.${q(c)} = r.c${writable.findIndex((w) => w.c === c)}::${table.types[c]}`).join(' AND ');
          await client.query(`DELETE FROM public.${q(table.name)} t USING ${source} WHERE ${match}`, values);
        }
        const inserted = await client.query(
          `INSERT INTO public.${q(table.name)} (${writable.map(({ c }) => q(c)).join(', ')}) OVERRIDING SYSTEM VALUE SELECT ${writable.map(({ c }, j) => `r.c${j}::${table.types[c]}`).join(', ')} FROM ${source}`,
          values,
        );
        written += inserted.rowCount ?? 0;
      }
      await client.query('INSERT INTO airlift.cursors (stream, seq) VALUES ($1, $2) ON CONFLICT (stream) DO UPDATE SET seq = greatest(airlift.cursors.seq, EXCLUDED.seq)', [stream, upTo]);
      return written;
    });
  }

  async appliedCursor(database: string, stream: string): Promise<number> {
    try {
      const [row] = await this.query<{ seq: string }>(database, 'SELECT seq::text AS seq FROM airlift.cursors WHERE stream = $1', [stream]);
      return row ? Number(row.seq) : 0;
    } catch (err) {
      if (isUndefinedTable(err)) return 0;
      throw err;
    }
  }

  // Digester: md5 of each row's text form, concatenated in key order, computed in the server.

  private static rangeWhere(table: PgTable, range: KeyRange, firstParam: number): { sql: string; params: (string | null)[] } {
    const parts: string[] = [];
    const params: (string | null)[] = [];
    const tuple = (from: number) => `(${table.key.map((k, i) => `$${from + i}::${table.types[k]}`).join(', ')})`;
    const keys = `(${table.key.map((k) => `t.${q(k)}`).join(', ')})`;
    if (range.lower) {
      parts.push(`${keys} > ${tuple(firstParam + params.length)}`);
      params.push(...range.lower.map((v) => (v === null ? null : String(v))));
    }
    if (range.upper) {
      parts.push(`${keys} <= ${tuple(firstParam + params.length)}`);
      params.push(...range.upper.map((v) => (v === null ? null : String(v))));
    }
    return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
  }

  private static orderBy(table: PgTable): string {
    return table.key.map((k) => `t.${q(k)}`).join(', ');
  }

  async chunkDigests(database: string, tableInfo: TableInfo, chunkRows: number, within: KeyRange = { lower: null, upper: null }): Promise<ChunkDigest[]> {
    const table = await this.table(database, tableInfo.name);
    const where = PostgresEngine.rangeWhere(table, within, 2);
    const rows = await this.query<{ rows: number; digest: string; last: string[] }>(
      database,
      `SELECT count(*)::int AS rows, md5(string_agg(h, '' ORDER BY n)) AS digest, (array_agg(k ORDER BY n DESC))[1:1] AS last
       FROM (SELECT n, n / $1::bigint AS c, h, k FROM (
               SELECT row_number() OVER (ORDER BY ${PostgresEngine.orderBy(table)}) - 1 AS n, md5(t::text) AS h,
                      ARRAY[${table.key.map((k) => `t.${q(k)}::text`).join(', ')}] AS k
               FROM public.${q(table.name)} t ${where.sql}) numbered) r
       GROUP BY c ORDER BY c`,
      [chunkRows, ...where.params],
    );
    const chunks: ChunkDigest[] = [];
    let lower = within.lower;
    rows.forEach((r, i) => {
      const last = i === rows.length - 1;
      // The 1:1 slice of a two-dimensional array is [[…]]: its one row is the chunk's last key.
      const upper = last ? within.upper : ((r.last as unknown as string[][])[0] as KeyValue[]);
      chunks.push({ lower, upper, rows: r.rows, digest: r.digest });
      lower = upper;
    });
    if (!chunks.length) chunks.push({ lower: within.lower, upper: within.upper, rows: 0, digest: EMPTY_DIGEST });
    return chunks;
  }

  async rangeDigest(database: string, tableInfo: TableInfo, range: KeyRange): Promise<{ rows: number; digest: string }> {
    const table = await this.table(database, tableInfo.name);
    const where = PostgresEngine.rangeWhere(table, range, 1);
    const [row] = await this.query<{ rows: number; digest: string | null }>(
      database,
      `SELECT count(*)::int AS rows, md5(string_agg(md5(t::text), '' ORDER BY ${PostgresEngine.orderBy(table)})) AS digest FROM public.${q(table.name)} t ${where.sql}`,
      where.params,
    );
    return { rows: row.rows, digest: row.digest ?? EMPTY_DIGEST };
  }

  async rowDigests(database: string, tableInfo: TableInfo, range: KeyRange): Promise<RowDigest[]> {
    const table = await this.table(database, tableInfo.name);
    const where = PostgresEngine.rangeWhere(table, range, 1);
    const rows = await this.query<{ k: string[]; h: string }>(
      database,
      `SELECT ARRAY[${table.key.map((k) => `t.${q(k)}::text`).join(', ')}] AS k, md5(t::text) AS h FROM public.${q(table.name)} t ${where.sql} ORDER BY ${PostgresEngine.orderBy(table)}`,
      where.params,
    );
    return rows.map((r) => ({ key: renderKey(table.key, typedKey(table, r.k)), digest: r.h }));
  }

  // Key counters: the tenant's sequences (serial, identity and free-standing).

  async keyCounters(database: string): Promise<Record<string, number>> {
    const rows = await this.query<{ name: string; value: string }>(database, pgsql.sequencesQuery);
    return Object.fromEntries(rows.map((r) => [r.name, Number(r.value)]));
  }

  async raiseKeyCounters(database: string, counters: Record<string, number>): Promise<void> {
    const mine = new Map((await this.query<{ name: string; value: string }>(database, pgsql.sequencesQuery)).map((r) => [r.name, Number(r.value)]));
    const exists = new Set((await this.query<{ name: string }>(database, "SELECT format('%I.%I', schemaname, sequencename) AS name FROM pg_sequences")).map((r) => r.name));
    for (const [name, value] of Object.entries(counters)) {
      if (!exists.has(name) || (mine.get(name) ?? -Infinity) >= value) continue;
      await this.query(database, pgsql.setSequenceStatement, [name, value]);
    }
  }

  // Event writer

  openEventWriter(database: string, mapping: TrackingMapping): EventWriter {
    const fields = (Object.keys(mapping.columns) as (keyof TrackingEvent)[]).filter((f) => mapping.columns[f] !== null);
    const idColumn = mapping.columns.event_id;
    if (!idColumn) throw new Error('tracking mapping: columns.event_id is required (the column that makes an event unique)');
    return {
      write: async (events) => {
        const table = await this.table(database, mapping.table);
        const columns = fields.map((f) => mapping.columns[f]!);
        return this.transaction(database, async (client) => {
          // The gate, read in the write's own transaction under a share lock: a fence committed
          // before it is always seen, whatever this node believes the route to be.
          const installed = (await client.query("SELECT to_regclass('airlift.gate') IS NOT NULL AS installed")).rows[0].installed as boolean;
          if (installed) {
            const [gate] = (await client.query<GateRow>(`${pgsql.readGateQuery} FOR SHARE`)).rows;
            if (gate && gate.state !== 'open' && !gate.lapsed) throw new FencedWriteError(`tenant database ${database} is ${gate.state} (migration ${gate.migration_id ?? 'unknown'}); reload the route and retry`);
          }
          const values = fields.map((f) => events.map((e) => (e[f] === null || e[f] === undefined ? null : String(e[f]))));
          const result = await client.query(
            `INSERT INTO public.${q(table.name)} (${columns.map(q).join(', ')}) SELECT ${columns.map((c, j) => `r.c${j}::${table.types[c]}`).join(', ')}
             FROM unnest(${columns.map((_, j) => `$${j + 1}::text[]`).join(', ')}) AS r(${columns.map((_, j) => `c${j}`).join(', ')}) ON CONFLICT (${q(idColumn)}) DO NOTHING`,
            values,
          );
          return result.rowCount ?? 0;
        });
      },
      close: async () => undefined,
    };
  }

  async openSession(database: string): Promise<SqlSession> {
    checkDatabaseName(database);
    const { host, port, user, ssl } = this.endpoint;
    const client = new pg.Client({ host, port, user, database, password: this.endpoint.password, ssl: ssl === 'disable' ? false : { rejectUnauthorized: ssl === 'verify-full' }, application_name: 'tenant-app', connectionTimeoutMillis: 10_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (err) {
      throw classifyPostgresError(err, this.where(database));
    }
    const run = async <T>(sql: string, params: unknown[] = []): Promise<T[]> => {
      let n = 0;
      try {
        return (await client.query(sql.replace(/\?/g, () => `$${++n}`), params)).rows as T[];
      } catch (err) {
        throw classifyPostgresError(err, this.where(database));
      }
    };
    return {
      query: run,
      transaction: async (work) => {
        await run('BEGIN');
        try {
          const result = await work();
          await run('COMMIT');
          return result;
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      },
      close: () => client.end().catch(() => undefined),
    };
  }

  private async closePool(database: string): Promise<void> {
    const pool = this.pools.get(database);
    this.pools.delete(database);
    await pool?.end().catch(() => undefined);
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  }
}
