// The SQLite engine, the embedded default: one `<database>.db` file per tenant in a folder.
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import { encodeValue, renderKey, sha256File } from './checksum';
import {
  ArtifactChecksumError,
  FencedWriteError,
  TargetInUseError,
  IntegrityCheckError,
  DatabaseMissingError,
  TargetExistsError,
  type Artifact,
  type BlobArtifact,
  type ChunkDigest,
  type Engine,
  type PlanStep,
  type PlannedArtifact,
  type EventWriter,
  type WriteGate,
  type GateExpectation,
  type KeyRange,
  type OutboxEntry,
  type TrackingEvent,
  type KeyValue,
  type Progress,
  type RowDigest,
  type TableInfo,
} from './engine';
import { checkDatabaseName, quoteDoubled as q } from './identifiers';
import { ReplicationConflictError } from '../protocol/errors';

/** Sidecar that records which migration created a target database; only that one may drop it. */
const MARKER_SUFFIX = '.airlift.json';

interface Marker {
  migrationId: string;
  createdAt: string;
}

export class SqliteEngine implements Engine {
  readonly kind = 'sqlite';
  readonly restoresFrom = 'file' as const;

  constructor(
    private readonly directory: string,
    /** The table that tracking ingestion appends to and the dual-write replicates. */
    readonly trackingTable = 'tracking_events',
  ) {}

  fileOf(database: string): string {
    return join(this.directory, `${checkDatabaseName(database)}.db`);
  }

  private openReadOnly(database: string): Database.Database {
    const file = this.fileOf(database);
    if (!existsSync(file)) throw new DatabaseMissingError(`database ${database} not found: ${file} does not exist`);
    const db = new Database(file, { readonly: true, fileMustExist: true });
    db.defaultSafeIntegers(true);
    return db;
  }

  private async marker(database: string): Promise<Marker | undefined> {
    try {
      return JSON.parse(await readFile(this.fileOf(database) + MARKER_SUFFIX, 'utf8')) as Marker;
    } catch {
      return undefined;
    }
  }

  async probe(database: string): Promise<{ exists: boolean; sizeBytes?: number; restoredBy?: string }> {
    const file = this.fileOf(database);
    const marker = await this.marker(database);
    if (!existsSync(file)) return { exists: false, restoredBy: marker?.migrationId };
    const db = this.openReadOnly(database);
    try {
      db.prepare('SELECT count(*) FROM sqlite_schema').get();
    } finally {
      db.close();
    }
    return { exists: true, sizeBytes: (await stat(file)).size, restoredBy: marker?.migrationId };
  }

  artifactName(database: string): string {
    return `${database}.sqlite`;
  }

  describe(): string {
    return `SQLite files in ${this.directory}`;
  }

  planSnapshot(database: string): PlanStep {
    return { phase: 'snapshotting', action: `online backup of ${this.fileOf(database)} in one read transaction; size and sha256 recorded`, detail: [] };
  }

  planRestore(database: string, artifact: PlannedArtifact): PlanStep {
    return { phase: 'restoring', action: `download ${artifact.blobName}, check sha256, PRAGMA integrity_check, create ${this.fileOf(database)}`, detail: [] };
  }

  async snapshot(database: string, destFile: string, onProgress?: Progress): Promise<Artifact> {
    const source = this.fileOf(database);
    if (!existsSync(source)) throw new DatabaseMissingError(`database ${database} not found: ${source} does not exist`);
    await mkdir(dirname(destFile), { recursive: true });
    await rm(destFile, { force: true });
    onProgress?.(0);
    await backupInThread(source, destFile);
    onProgress?.(1);
    // The copy must be self-contained: fold any WAL content in and leave a single file.
    const copy = new Database(destFile);
    copy.pragma('journal_mode = DELETE');
    copy.close();
    const { size } = await stat(destFile);
    return { file: destFile, sizeBytes: size, sha256: await sha256File(destFile) };
  }

  async restore(database: string, artifact: Artifact | BlobArtifact, migrationId: string, onProgress?: Progress): Promise<void> {
    if (!('file' in artifact)) throw new Error('the SQLite engine restores from a downloaded file');
    const file = this.fileOf(database);
    const existing = await this.marker(database);
    if (existsSync(file) && existing?.migrationId === migrationId && (await this.writeGate(database))?.state !== 'standby')
      throw new TargetInUseError(`target database ${database} was restored by this migration and has taken writes since (its write gate is not standby); airlift will not restore over it`);
    if (existsSync(file) && existing?.migrationId !== migrationId)
      throw new TargetExistsError(
        `target database ${database} already exists at ${file}${existing ? ` (restored by migration ${existing.migrationId})` : ''}; airlift will not overwrite it — remove it or choose another target`,
      );
    const actual = await sha256File(artifact.file);
    if (actual !== artifact.sha256)
      throw new ArtifactChecksumError(`artifact ${artifact.file} has sha256 ${actual}, expected ${artifact.sha256}`);
    onProgress?.(0.3);
    await mkdir(this.directory, { recursive: true });
    // Claim the name before the file appears, so a crash in between can still be cleaned up.
    const marker: Marker = { migrationId, createdAt: new Date().toISOString() };
    await writeFile(file + MARKER_SUFFIX, JSON.stringify(marker));
    // One partial file per attempt: an attempt still running on a worker that lost its heartbeat
    // never writes into the file a newer attempt is checking.
    const partial = `${file}.partial-${randomBytes(4).toString('hex')}`;
    await copyFile(artifact.file, partial);
    onProgress?.(0.6);
    // On a thread: a multi-gigabyte check must not stop this process's heartbeats.
    const problems = await integrityProblemsInThread(partial).catch(async (err: unknown) => {
      await rm(partial, { force: true });
      throw err;
    });
    if (problems.length) {
      await rm(partial, { force: true });
      throw new IntegrityCheckError(`integrity_check of restored ${database} failed: ${problems.slice(0, 5).join('; ')}`);
    }
    const db = new Database(partial, { fileMustExist: true });
    try {
      // The snapshot carries the source's gate; a target takes no write until a switch opens it.
      db.exec(OUTBOX_SCHEMA);
      setGate(db, { state: 'standby', migrationId });
      db.pragma('journal_mode = WAL');
    } finally {
      db.close();
    }
    // A rollback may have dropped this migration's files meanwhile (a restore still running on a
    // worker that lost its heartbeat): then nothing is put in place.
    if ((await this.marker(database))?.migrationId !== migrationId) {
      await rm(partial, { force: true });
      throw new TargetExistsError(`target database ${database} is no longer claimed by migration ${migrationId}; the restore was abandoned`);
    }
    await rename(partial, file);
    onProgress?.(1);
  }

  async dropRestored(database: string, migrationId: string): Promise<boolean> {
    const file = this.fileOf(database);
    const marker = await this.marker(database);
    if (marker?.migrationId !== migrationId) return false;
    // Fenced for good before the files go, so no switch attempt can open it meanwhile; a database
    // that is open (the tenant's primary) is never dropped.
    if (existsSync(file) && !(await this.setWriteGate(database, { state: 'fenced', migrationId, token: 'dropped' }, { states: ['standby', 'fenced', 'none'] })))
      throw new TargetInUseError(`target database ${database} takes writes (its write gate is open): it is the tenant's primary and is not dropped; run \`airlift reconcile\` to see why`);
    const partials = (await readdir(this.directory).catch(() => [] as string[])).filter((f) => f.startsWith(`${database}.db.partial`)).map((f) => join(this.directory, f));
    for (const f of [file, `${file}-wal`, `${file}-shm`, ...partials]) await rm(f, { force: true });
    await rm(file + MARKER_SUFFIX, { force: true });
    return true;
  }

  async listTables(database: string): Promise<TableInfo[]> {
    const db = this.openReadOnly(database);
    try {
      const tables = db
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'airlift_%' ORDER BY name")
        .all() as { name: string; sql: string }[];
      return tables.map(({ name }) => {
        const cols = db.prepare(`SELECT name, pk FROM pragma_table_info(?) ORDER BY cid`).all(name) as { name: string; pk: bigint }[];
        const key = cols.filter((c) => c.pk > 0n).sort((a, b) => Number(a.pk - b.pk)).map((c) => c.name);
        return key.length
          ? { name, columns: cols.map((c) => c.name), key, keyKind: 'primary-key' as const }
          : { name, columns: cols.map((c) => c.name), key: ['rowid'], keyKind: 'rowid' as const };
      });
    } finally {
      db.close();
    }
  }

  private select(table: TableInfo, range: KeyRange | null): { sql: string; params: KeyValue[] } {
    const keyList = table.key.map((k) => (table.keyKind === 'rowid' ? '_rowid_' : q(k))).join(', ');
    const tuple = `(${keyList})`;
    const marks = `(${table.key.map(() => '?').join(', ')})`;
    const where: string[] = [];
    const params: KeyValue[] = [];
    if (range?.lower) {
      where.push(`${tuple} > ${marks}`);
      params.push(...range.lower);
    }
    if (range?.upper) {
      where.push(`${tuple} <= ${marks}`);
      params.push(...range.upper);
    }
    const cols = table.columns.map(q).join(', ');
    const sql = `SELECT ${keyList}, ${cols} FROM ${q(table.name)}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${keyList}`;
    return { sql, params };
  }

  private *rows(db: Database.Database, table: TableInfo, range: KeyRange | null): Generator<{ key: KeyValue[]; encoded: string }> {
    const n = table.key.length;
    for (const row of this.rawRows(db, table, range)) yield { key: row.slice(0, n), encoded: encodeRow(row, n) };
  }

  private rawRows(db: Database.Database, table: TableInfo, range: KeyRange | null): Iterable<KeyValue[]> {
    const { sql, params } = this.select(table, range);
    return db.prepare(sql).raw(true).iterate(...params) as Iterable<KeyValue[]>;
  }

  async chunkDigests(database: string, table: TableInfo, chunkRows: number, within: KeyRange = { lower: null, upper: null }): Promise<ChunkDigest[]> {
    const db = this.openReadOnly(database);
    try {
      const chunks: ChunkDigest[] = [];
      const n = table.key.length;
      let hash = new BatchedHash();
      let rows = 0;
      let lower: KeyValue[] | null = within.lower;
      let last: KeyValue[] | null = null;
      for (const row of this.rawRows(db, table, within)) {
        if (rows === chunkRows) {
          const upper = last!.slice(0, n);
          chunks.push({ lower, upper, rows, digest: hash.digest() });
          lower = upper;
          hash = new BatchedHash();
          rows = 0;
        }
        hash.add(encodeRow(row, n));
        rows++;
        last = row;
      }
      chunks.push({ lower, upper: within.upper, rows, digest: hash.digest() });
      return chunks;
    } finally {
      db.close();
    }
  }

  async rangeDigest(database: string, table: TableInfo, range: KeyRange): Promise<{ rows: number; digest: string }> {
    const db = this.openReadOnly(database);
    try {
      const n = table.key.length;
      const hash = new BatchedHash();
      let rows = 0;
      for (const row of this.rawRows(db, table, range)) {
        hash.add(encodeRow(row, n));
        rows++;
      }
      return { rows, digest: hash.digest() };
    } finally {
      db.close();
    }
  }

  async rowDigests(database: string, table: TableInfo, range: KeyRange): Promise<RowDigest[]> {
    const db = this.openReadOnly(database);
    try {
      return [...this.rows(db, table, range)].map((r) => ({
        key: renderKey(table.key, r.key),
        digest: createHash('sha256').update(r.encoded).digest('hex'),
      }));
    } finally {
      db.close();
    }
  }

  private openWritable(database: string): Database.Database {
    const file = this.fileOf(database);
    if (!existsSync(file)) throw new DatabaseMissingError(`database ${database} not found: ${file} does not exist`);
    const db = new Database(file, { fileMustExist: true });
    db.pragma('busy_timeout = 10000');
    return db;
  }

  async ensureOutbox(database: string): Promise<void> {
    const db = this.openWritable(database);
    try {
      db.exec(OUTBOX_SCHEMA);
    } finally {
      db.close();
    }
  }

  async outboxHead(database: string): Promise<number> {
    const db = this.openWritable(database);
    try {
      db.exec(OUTBOX_SCHEMA);
      return (db.prepare('SELECT coalesce(max(seq), 0) AS head FROM airlift_outbox').get() as { head: number }).head;
    } finally {
      db.close();
    }
  }

  async readOutbox(database: string, afterSeq: number, limit: number): Promise<OutboxEntry[]> {
    const db = this.openReadOnly(database);
    db.defaultSafeIntegers(false);
    try {
      const rows = db.prepare('SELECT seq, event_id, row FROM airlift_outbox WHERE seq > ? ORDER BY seq LIMIT ?').all(afterSeq, limit) as { seq: number; event_id: string; row: string }[];
      return rows.map((r) => ({ seq: r.seq, eventId: r.event_id, row: JSON.parse(r.row) as Record<string, unknown> }));
    } finally {
      db.close();
    }
  }

  async applyOutbox(database: string, stream: string, entries: OutboxEntry[]): Promise<number> {
    if (!entries.length) return 0;
    const db = this.openWritable(database);
    try {
      db.exec(OUTBOX_SCHEMA);
      const columns = (db.prepare('SELECT name FROM pragma_table_info(?)').all(this.trackingTable) as { name: string }[]).map((c) => c.name);
      // Only the event already being there is skipped. Any other conflict (the same seq holding a
      // different event) fails loudly: dropping one of two events would lose it silently.
      const insert = db.prepare(`INSERT INTO ${q(this.trackingTable)} (${columns.map(q).join(', ')}) VALUES (${columns.map(() => '?').join(', ')}) ON CONFLICT (event_id) DO NOTHING`);
      const advance = db.prepare(
        'INSERT INTO airlift_cursors (stream, cursor) VALUES (?, ?) ON CONFLICT (stream) DO UPDATE SET cursor = max(cursor, excluded.cursor)',
      );
      let applied = 0;
      db.transaction(() => {
        for (const entry of entries) {
          try {
            applied += insert.run(...columns.map((c) => (entry.row[c] ?? null) as KeyValue)).changes;
          } catch (err) {
            if ((err as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT'))
              throw new ReplicationConflictError(`${database}.${this.trackingTable}: event ${entry.eventId} (outbox seq ${entry.seq}) conflicts with a different row already there (${(err as Error).message}); replication stopped so that neither is lost`);
            throw err;
          }
        }
        advance.run(stream, entries[entries.length - 1].seq);
      }).immediate();
      return applied;
    } finally {
      db.close();
    }
  }

  async appliedCursor(database: string, stream: string): Promise<number> {
    const db = this.openWritable(database);
    try {
      db.exec(OUTBOX_SCHEMA);
      const row = db.prepare('SELECT cursor FROM airlift_cursors WHERE stream = ?').get(stream) as { cursor: number } | undefined;
      return row?.cursor ?? 0;
    } finally {
      db.close();
    }
  }

  /** Reads only: a database never migrated (no gate table) is left untouched and reads as open. */
  async writeGate(database: string): Promise<WriteGate | null> {
    const db = this.openReadOnly(database);
    db.defaultSafeIntegers(false);
    try {
      const exists = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'airlift_gate'").get();
      return exists ? readGate(db) : null;
    } finally {
      db.close();
    }
  }

  async setWriteGate(database: string, gate: WriteGate, expect?: GateExpectation): Promise<boolean> {
    const db = this.openWritable(database);
    try {
      db.exec(OUTBOX_SCHEMA);
      // An immediate transaction waits for every write transaction under way: once it commits, no
      // writer that read the old gate can still commit.
      return db.transaction(() => {
        if (!gateMatches(readGate(db), expect)) return false;
        setGate(db, gate);
        return true;
      }).immediate();
    } finally {
      db.close();
    }
  }

  async trackingHead(database: string, table: TableInfo): Promise<KeyValue[] | null> {
    const db = this.openReadOnly(database);
    try {
      const keys = table.key.map((k) => (table.keyKind === 'rowid' ? '_rowid_' : q(k)));
      const row = db.prepare(`SELECT ${keys.join(', ')} FROM ${q(table.name)} ORDER BY ${keys.map((k) => `${k} DESC`).join(', ')} LIMIT 1`).raw(true).get() as KeyValue[] | undefined;
      return row ?? null;
    } finally {
      db.close();
    }
  }

  openEventWriter(database: string): EventWriter {
    const db = this.openWritable(database);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(OUTBOX_SCHEMA);
    const table = q(this.trackingTable);
    const insert = db.prepare(
      // ON CONFLICT, not OR IGNORE: OR IGNORE would also swallow a NOT NULL or CHECK failure, and an
      // event acknowledged but not stored is an event lost.
      `INSERT INTO ${table} (event_id, ad_id, kind, occurred_at, user_agent, payload) VALUES (@event_id, @ad_id, @kind, @occurred_at, @user_agent, @payload) ON CONFLICT (event_id) DO NOTHING RETURNING *`,
    );
    const journal = db.prepare('INSERT INTO airlift_outbox (event_id, row) VALUES (?, ?)');
    const write = db.transaction((events: TrackingEvent[], outbox: boolean) => {
      // The gate is read inside the write transaction (BEGIN IMMEDIATE holds the write lock), so a
      // fence committed before it is always seen, whatever this node believes the route to be.
      const gate = readGate(db);
      if (gate && gate.state !== 'open')
        throw new FencedWriteError(`tenant database ${database} is ${gate.state} (migration ${gate.migrationId ?? 'unknown'}); reload the route and retry`);
      let fresh = 0;
      for (const event of events) {
        const row = insert.get(event) as Record<string, unknown> | undefined;
        if (!row) continue;
        fresh++;
        if (outbox) journal.run(event.event_id, JSON.stringify(row));
      }
      return fresh;
    });
    return { write: (events, outbox) => write.immediate(events, outbox), close: () => db.close() };
  }

  async close(): Promise<void> {}
}

/**
 * The online backup API restarts whenever another connection writes between its steps, so under live
 * ingestion it is run as one step: one read transaction, consistent. One step blocks its thread for
 * the whole copy, so it runs on a worker thread and the activity keeps heartbeating meanwhile.
 */
/** `PRAGMA integrity_check` on a worker thread; the lines that are not `ok`. */
function integrityProblemsInThread(file: string): Promise<string[]> {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const Database = require(workerData.driver);
    const db = new Database(workerData.file, { readonly: true, fileMustExist: true });
    try {
      parentPort.postMessage(db.pragma('integrity_check').map((r) => r.integrity_check).filter((r) => r !== 'ok'));
    } finally {
      db.close();
    }`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: { driver: require.resolve('better-sqlite3'), file } });
    worker.once('message', (problems: string[]) => resolve(problems));
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`integrity check thread exited with code ${code}`))));
  });
}

function backupInThread(source: string, dest: string): Promise<void> {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const Database = require(workerData.driver);
    const db = new Database(workerData.source, { readonly: true, fileMustExist: true });
    db.backup(workerData.dest, { progress: () => 1 << 30 })
      .then(() => { db.close(); parentPort.postMessage('done'); })
      .catch((err) => { db.close(); throw err; });`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: { driver: require.resolve('better-sqlite3'), source, dest } });
    worker.once('message', () => resolve());
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`snapshot thread exited with code ${code}`))));
  });
}

/** airlift's own tables in a tenant database; never verified, never part of the tenant's schema. */
const OUTBOX_SCHEMA = `
CREATE TABLE IF NOT EXISTS airlift_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, row TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS airlift_cursors (stream TEXT PRIMARY KEY, cursor INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS airlift_gate (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  state TEXT NOT NULL CHECK (state IN ('open', 'fenced', 'standby')),
  migration_id TEXT,
  token TEXT,
  updated_at TEXT NOT NULL);
`;

function readGate(db: Database.Database): WriteGate | null {
  const row = db.prepare('SELECT state, migration_id, token FROM airlift_gate WHERE id = 1').get() as { state: WriteGate['state']; migration_id: string | null; token: string | null } | undefined;
  return row ? { state: row.state, migrationId: row.migration_id, token: row.token } : null;
}

function gateMatches(current: WriteGate | null, expect: GateExpectation | undefined): boolean {
  if (expect?.states && !expect.states.includes(current?.state ?? 'none')) return false;
  return expect?.token === undefined || current?.token === expect.token;
}

function setGate(db: Database.Database, gate: WriteGate): void {
  db.prepare('INSERT INTO airlift_gate (id, state, migration_id, token, updated_at) VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state, migration_id = excluded.migration_id, token = excluded.token, updated_at = excluded.updated_at')
    .run(gate.state, gate.migrationId, gate.token ?? null, new Date().toISOString());
}

/** A row's non-key values (from column `from` on), each encoded by `encodeValue`, end to end. */
function encodeRow(row: KeyValue[], from: number): string {
  let encoded = '';
  for (let c = from; c < row.length; c++) encoded += encodeValue(row[c]);
  return encoded;
}

/**
 * The sha256 of rows each followed by a newline, fed to the hash in batches of about 64 KiB: the same
 * digest as one update per row, at a fraction of the calls.
 */
class BatchedHash {
  private readonly hash = createHash('sha256');
  private pending = '';

  add(encodedRow: string): void {
    this.pending += encodedRow + '\n';
    if (this.pending.length >= 65536) {
      this.hash.update(this.pending);
      this.pending = '';
    }
  }

  digest(): string {
    return this.hash.update(this.pending).digest('hex');
  }
}
