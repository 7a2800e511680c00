// The SQLite engine, the embedded default: one `<database>.db` file per tenant in a folder.
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import { digestArtifact, renderKey, sha256File } from './checksum';
import { chunkDigestsInThread } from './sqlite-digest-thread';
import { BatchedHash, digestFrom, encodeRow, rawRows } from './sqlite-digest';
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
  type Change,
  type RowImage,
  type TrackingMapping,
  type TrackingEvent,
  type KeyValue,
  type Progress,
  type RowDigest,
  type TableInfo,
  streamMigration,
  gateMatches,
  type SqlSession,
} from './engine';
import { checkDatabaseName, quoteDoubled as q } from './identifiers';
import { PreflightError, ReplicationConflictError } from '../protocol/errors';
import { CAPTURE_SCHEMA, captureTriggers, triggerNameIn, keyColumns, holdTriggers, installCapture, LAPSED, NOW_MS, releaseTriggers, removeCapture, uniqueIndexes } from './sqlite-capture';

/** Sidecar that records which migration created a target database; only that one may drop it. */
const MARKER_SUFFIX = '.airlift.json';

interface Marker {
  migrationId: string;
  createdAt: string;
}

export class SqliteEngine implements Engine {
  readonly kind = 'sqlite';
  readonly restoresFrom = 'file' as const;

  constructor(private readonly directory: string) {}

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

  async snapshot(database: string, destFile: string, onProgress?: Progress, blockSizeOf?: (sizeBytes: number) => number): Promise<Artifact> {
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
    return digestArtifact(destFile, size, destFile, blockSizeOf);
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
      // The snapshot carries the source's gate, capture and change log; a target takes no write until
      // a switch opens it, holds the tenant's triggers meanwhile, and starts its own log empty.
      ensureGateSchema(db);
      db.transaction(() => {
        setGate(db, { state: 'standby', migrationId });
        holdTriggers(db);
        db.exec('DELETE FROM airlift_changes');
      })();
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
    if (existsSync(file) && !(await this.setWriteGate(database, { state: 'fenced', migrationId, token: 'dropped' }, { states: ['standby', 'fenced', 'none'], migrationId })))
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
        const uniqueKeys = [...(key.length ? [key] : []), ...uniqueIndexes(db, name)];
        return key.length
          ? { name, columns: cols.map((c) => c.name), key, keyKind: 'primary-key' as const, uniqueKeys }
          : { name, columns: cols.map((c) => c.name), key: ['rowid'], keyKind: 'rowid' as const, uniqueKeys };
      });
    } finally {
      db.close();
    }
  }

  private *rows(db: Database.Database, table: TableInfo, range: KeyRange | null): Generator<{ key: KeyValue[]; encoded: string }> {
    const n = table.key.length;
    for (const row of rawRows(db, table, range)) yield { key: row.slice(0, n), encoded: encodeRow(row, digestFrom(table)) };
  }

  /**
   * What would go wrong once capture is on: a primary key column holding NULL (SQLite's legacy quirk:
   * those rows cannot be told apart by key) is a problem; a table keyed by rowid is a warning (a
   * VACUUM renumbers it under the migration, and the cut-over then refuses).
   */
  async captureReadiness(database: string): Promise<{ problems: string[]; warnings: string[] }> {
    const tables = await this.listTables(database);
    const db = this.openReadOnly(database);
    try {
      const byRowid = tables.filter((t) => t.keyKind === 'rowid').map((t) => q(t.name));
      const warnings = byRowid.length
        ? [`do not VACUUM ${database} while it migrates; tables without a primary key are keyed by rowid: ${byRowid.join(', ')} (a VACUUM may renumber them, and the cut-over then refuses)`]
        : [];
      return { problems: nullKeyProblems(db, tables), warnings };
    } finally {
      db.close();
    }
  }

  /**
   * A rowid-keyed table's highest rowid and the digest of its last `ROWID_TAIL_ROWS` rowids with
   * their rows: read under the cut-over's fence to notice a renumbering (VACUUM shifts every row
   * above the first gap, so the tail's rowids move). Cost: one b-tree seek and a short range read,
   * whatever the table's size; nothing under the fence walks the table.
   */
  async rowidSummary(database: string, table: TableInfo): Promise<string> {
    const db = this.openReadOnly(database);
    try {
      const max = db.prepare(`SELECT max(_rowid_) FROM ${q(table.name)}`).pluck().get() as bigint | null;
      if (max === null) return 'empty';
      const hash = new BatchedHash();
      for (const row of rawRows(db, table, { lower: [max - ROWID_TAIL_ROWS], upper: null })) hash.add(encodeRow(row, digestFrom(table)));
      return `highest rowid ${max}, last ${ROWID_TAIL_ROWS} rowids digest ${hash.digest().slice(0, 16)}`;
    } finally {
      db.close();
    }
  }

  /** On a thread of the digest pool (engines/sqlite-digest-thread.ts), so both sides of a verification run at once. */
  async chunkDigests(database: string, table: TableInfo, chunkRows: number, within: KeyRange = { lower: null, upper: null }): Promise<ChunkDigest[]> {
    const file = this.fileOf(database);
    if (!existsSync(file)) throw new DatabaseMissingError(`database ${database} not found: ${file} does not exist`);
    return chunkDigestsInThread(file, table, chunkRows, within);
  }

  async rangeDigest(database: string, table: TableInfo, range: KeyRange): Promise<{ rows: number; digest: string }> {
    const db = this.openReadOnly(database);
    try {
      const from = digestFrom(table);
      const hash = new BatchedHash();
      let rows = 0;
      for (const row of rawRows(db, table, range)) {
        hash.add(encodeRow(row, from));
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
    // better-sqlite3 turns foreign keys on; airlift's own writes (applied row images above all) must
    // not cascade: a REPLACE of a parent row would delete its children on the target, unlogged. The
    // source enforced the constraints when the tenant wrote.
    db.pragma('foreign_keys = OFF');
    return db;
  }

  async startCapture(database: string): Promise<number> {
    const tables = await this.listTables(database);
    const db = this.openWritable(database);
    try {
      // One immediate transaction: it waits for every write under way, and every write after it is captured.
      return db.transaction(() => {
        ensureGateSchema(db);
        installCapture(db, tables);
        // Again here, where no write can slip in: a NULL key written since preflight would merge rows
        // in the change log. The transaction is rolled back: nothing is installed.
        const problems = nullKeyProblems(db, tables);
        if (problems.length) throw new PreflightError(`${database}: ${problems.join('; ')}`);
        return changeHead(db);
      }).immediate();
    } finally {
      db.close();
    }
  }

  async stopCapture(database: string, options: { keepFence: boolean }): Promise<void> {
    const tables = await this.listTables(database);
    const db = this.openWritable(database);
    try {
      db.transaction(() => {
        // The fence triggers kept read the gate's lease column: a gate made before it existed gets it.
        if (options.keepFence && hasTable(db, 'airlift_gate')) ensureGateSchema(db);
        removeCapture(db, tables, options.keepFence);
        if (!options.keepFence) db.exec('DROP TABLE IF EXISTS airlift_cursors; DROP TABLE IF EXISTS airlift_gate;');
      }).immediate();
    } finally {
      db.close();
    }
  }

  async captureGaps(database: string): Promise<string[]> {
    const tables = await this.listTables(database);
    const db = this.openReadOnly(database);
    try {
      const triggers = new Set(db.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'").pluck().all() as string[]);
      // The triggers for each unique index too: one added since capture went on lacks them.
      return tables.filter((t) => !captureTriggers(t, uniqueIndexes(db, t.name)).every((sql) => triggers.has(triggerNameIn(sql)))).map((t) => t.name);
    } finally {
      db.close();
    }
  }

  async keyCounters(database: string): Promise<Record<string, number>> {
    const db = this.openReadOnly(database);
    db.defaultSafeIntegers(false);
    try {
      if (!hasTable(db, 'sqlite_sequence')) return {};
      const rows = db.prepare("SELECT name, seq FROM sqlite_sequence WHERE name NOT LIKE 'airlift\\_%' ESCAPE '\\'").all() as { name: string; seq: number }[];
      return Object.fromEntries(rows.map((r) => [r.name, r.seq]));
    } finally {
      db.close();
    }
  }

  async raiseKeyCounters(database: string, counters: Record<string, number>): Promise<void> {
    const db = this.openWritable(database);
    try {
      db.transaction(() => {
        // sqlite_sequence exists once any AUTOINCREMENT table does; a name it lacks gets its row.
        if (!hasTable(db, 'sqlite_sequence')) return;
        const raise = db.prepare('UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?');
        const add = db.prepare('INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)');
        for (const [table, value] of Object.entries(counters)) {
          if (!hasTable(db, table)) continue;
          if (raise.run(value, table).changes === 0) add.run(table, value, table);
        }
      }).immediate();
    } finally {
      db.close();
    }
  }

  async changeHead(database: string): Promise<number> {
    const db = this.openReadOnly(database);
    db.defaultSafeIntegers(false);
    try {
      return hasTable(db, 'airlift_changes') ? changeHead(db) : 0;
    } finally {
      db.close();
    }
  }

  async readChanges(database: string, afterSeq: number, limit: number): Promise<Change[]> {
    const db = this.openReadOnly(database);
    try {
      const rows = db.prepare(`SELECT seq, tbl, ${keyColumns()} FROM airlift_changes WHERE seq > ? ORDER BY seq LIMIT ?`).raw(true).all(afterSeq, limit) as KeyValue[][];
      const widths = new Map<string, number>();
      const width = (table: string) => {
        let n = widths.get(table);
        if (n === undefined) widths.set(table, (n = keyWidth(db, table)));
        return n;
      };
      return rows.map(([seq, tbl, ...key]) => ({ seq: Number(seq), table: String(tbl), key: key.slice(0, width(String(tbl))) }));
    } finally {
      db.close();
    }
  }

  async readRows(database: string, table: TableInfo, keys: KeyValue[][]): Promise<(KeyValue[] | null)[]> {
    const db = this.openReadOnly(database);
    try {
      const read = db.prepare(`SELECT ${table.columns.map(q).join(', ')} FROM ${q(table.name)} WHERE ${keyMatch(table)}`).raw(true);
      return db.transaction(() => keys.map((key) => (read.get(...key) as KeyValue[] | undefined) ?? null))();
    } finally {
      db.close();
    }
  }

  async applyChanges(database: string, stream: string, upTo: number, images: RowImage[]): Promise<number> {
    const db = this.openWritable(database);
    try {
      if (!hasTable(db, 'airlift_cursors'))
        throw new ReplicationConflictError(`${database}: changes cannot be applied: the database holds no airlift cursor (capture was removed or it was never restored by airlift)`);
      const cursorOf = db.prepare('SELECT cursor FROM airlift_cursors WHERE stream = ?').pluck();
      const advance = db.prepare('INSERT INTO airlift_cursors (stream, cursor) VALUES (?, ?) ON CONFLICT (stream) DO UPDATE SET cursor = max(cursor, excluded.cursor)');
      const statements = new Map<string, { upsert: Database.Statement; remove: Database.Statement }>();
      const forTable = (table: TableInfo) => {
        let s = statements.get(table.name);
        if (!s) {
          const rowid = table.keyKind === 'rowid' ? ['_rowid_'] : [];
          const cols = [...rowid, ...table.columns.map(q)];
          statements.set(table.name, (s = {
            // REPLACE: a unique value the row takes may still sit on a row whose own change comes
            // later in the log; that row is put back when its change is applied.
            upsert: db.prepare(`INSERT OR REPLACE INTO ${q(table.name)} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`),
            remove: db.prepare(`DELETE FROM ${q(table.name)} WHERE ${keyMatch(table)}`),
          }));
        }
        return s;
      };
      return db.transaction(() => {
        // Only into a side that does not take writes: an applier that outlived its switch (a zombie on
        // a worker that lost its heartbeat) must never write old rows over a primary's new ones.
        const gate = readGate(db);
        if (!gate || gate.state === 'open')
          throw new ReplicationConflictError(`${database}: changes are not applied to a database that takes writes (its write gate is ${gate?.state ?? 'absent'}); this replication stream has ended`);
        // Nor into a side another migration holds: an applier of a rolled-back migration that wakes
        // late must not write its rows into the next migration's standby target.
        if (gate.migrationId !== streamMigration(stream))
          throw new ReplicationConflictError(`${database}: changes of migration ${streamMigration(stream)} are not applied here: its write gate belongs to migration ${gate.migrationId ?? 'unknown'}; this replication stream has ended`);
        if (Number(cursorOf.get(stream) ?? 0) >= upTo) return 0;
        db.prepare('INSERT INTO airlift_applying (id) VALUES (1)').run();
        let written = 0;
        for (const image of images) {
          const s = forTable(image.table);
          written += image.row ? s.upsert.run(...(image.table.keyKind === 'rowid' ? [...image.key, ...image.row] : image.row)).changes : s.remove.run(...image.key).changes;
        }
        db.prepare('DELETE FROM airlift_applying').run();
        advance.run(stream, upTo);
        return written;
      }).immediate();
    } finally {
      db.close();
    }
  }

  async appliedCursor(database: string, stream: string): Promise<number> {
    const db = this.openReadOnly(database);
    db.defaultSafeIntegers(false);
    try {
      if (!hasTable(db, 'airlift_cursors')) return 0;
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
      return hasTable(db, 'airlift_gate') ? readGate(db) : null;
    } finally {
      db.close();
    }
  }

  async setWriteGate(database: string, gate: WriteGate, expect?: GateExpectation): Promise<boolean> {
    const db = this.openWritable(database);
    try {
      // An immediate transaction waits for every write transaction under way: once it commits, no
      // writer that read the old gate can still commit.
      // A refused compare-and-set rolls back whole: no airlift table is left where there was none.
      const refused = new Error('gate expectation not met');
      try {
        return db.transaction(() => {
          ensureGateSchema(db);
          if (!gateMatches(readGate(db), expect)) throw refused;
          setGate(db, gate);
          // A fence with a lease is the draining primary's: writers may come back when it lapses, so
          // the tenant's own triggers stay in place there; a side that is not open for good holds them.
          if (gate.state === 'open' || gate.leaseMs !== undefined) releaseTriggers(db);
          else holdTriggers(db);
          return true;
        }).immediate();
      } catch (err) {
        if (err === refused) return false;
        throw err;
      }
    } finally {
      db.close();
    }
  }

  openEventWriter(database: string, mapping: TrackingMapping): EventWriter {
    const db = this.openWritable(database);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    const fields = (Object.keys(mapping.columns) as (keyof TrackingEvent)[]).filter((f) => mapping.columns[f] !== null);
    const idColumn = mapping.columns.event_id;
    if (!idColumn) throw new Error('tracking mapping: columns.event_id is required (the column that makes an event unique)');
    const insert = db.prepare(
      // ON CONFLICT, not OR IGNORE: OR IGNORE would also swallow a NOT NULL or CHECK failure, and an
      // event acknowledged but not stored is an event lost.
      `INSERT INTO ${q(mapping.table)} (${fields.map((f) => q(mapping.columns[f]!)).join(', ')}) VALUES (${fields.map((f) => `@${f}`).join(', ')}) ON CONFLICT (${q(idColumn)}) DO NOTHING`,
    );
    const gateOf = () => {
      try {
        return readGate(db);
      } catch (err) {
        // No gate table (never migrated, or capture removed since): the database is open.
        if (/no such table/.test((err as Error).message)) return null;
        throw err;
      }
    };
    const write = db.transaction((events: TrackingEvent[]) => {
      // The gate is read inside the write transaction (BEGIN IMMEDIATE holds the write lock), so a
      // fence committed before it is always seen, whatever this node believes the route to be.
      const gate = gateOf();
      if (gate && gate.state !== 'open' && !gate.lapsed)
        throw new FencedWriteError(`tenant database ${database} is ${gate.state} (migration ${gate.migrationId ?? 'unknown'}); reload the route and retry`);
      let fresh = 0;
      for (const event of events) fresh += insert.run(Object.fromEntries(fields.map((f) => [f, event[f]]))).changes;
      return fresh;
    });
    return { write: async (events) => write.immediate(events), close: async () => void db.close() };
  }

  async openSession(database: string): Promise<SqlSession> {
    // fileMustExist: a dropped target must never be recreated empty by a late write.
    const db = new Database(this.fileOf(database), { fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    return {
      query: async <T>(sql: string, params: unknown[] = []) => {
        const statement = db.prepare(sql);
        if (statement.reader) return statement.all(...params) as T[];
        statement.run(...params);
        return [];
      },
      transaction: async (work) => {
        db.exec('BEGIN IMMEDIATE');
        try {
          const result = await work();
          db.exec('COMMIT');
          return result;
        } catch (err) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw err;
        }
      },
      close: async () => void db.close(),
    };
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

/** The write gate and the appliers' cursors; never verified, never part of the tenant's schema. */
const GATE_SCHEMA = `
CREATE TABLE IF NOT EXISTS airlift_cursors (stream TEXT PRIMARY KEY, cursor INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS airlift_gate (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  state TEXT NOT NULL CHECK (state IN ('open', 'fenced', 'standby')),
  migration_id TEXT,
  token TEXT,
  updated_at TEXT NOT NULL,
  expires_at INTEGER);
${CAPTURE_SCHEMA}`;

/** Gates made before fences had leases lack the column; it is added where the gate is set. */
function ensureGateSchema(db: Database.Database): void {
  db.exec(GATE_SCHEMA);
  const columns = (db.prepare('SELECT name FROM pragma_table_info(?)').all('airlift_gate') as { name: string }[]).map((c) => c.name);
  if (!columns.includes('expires_at')) db.exec('ALTER TABLE airlift_gate ADD COLUMN expires_at INTEGER');
}

function hasTable(db: Database.Database, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

function changeHead(db: Database.Database): number {
  return Number(db.prepare('SELECT coalesce(max(seq), 0) FROM airlift_changes').pluck().get());
}

/** How many key columns a table's change entries hold: its primary key's, or 1 (the rowid). */
function keyWidth(db: Database.Database, table: string): number {
  const pk = (db.prepare('SELECT count(*) FROM pragma_table_info(?) WHERE pk > 0').pluck().get(table) as bigint | number);
  return Math.max(1, Number(pk));
}

/** A NULL-safe match on the key (SQLite lets a non-integer primary key hold NULL). */
function keyMatch(table: TableInfo): string {
  return (table.keyKind === 'rowid' ? ['_rowid_'] : table.key.map(q)).map((k) => `${k} IS ?`).join(' AND ');
}

function readGate(db: Database.Database): WriteGate | null {
  const hasLease = (db.prepare('SELECT count(*) FROM pragma_table_info(?) WHERE name = ?').pluck().get('airlift_gate', 'expires_at') as number | bigint) > 0;
  const row = db.prepare(`SELECT state, migration_id, token, ${hasLease ? LAPSED : '0'} AS lapsed FROM airlift_gate WHERE id = 1`).get() as
    | { state: WriteGate['state']; migration_id: string | null; token: string | null; lapsed: number | bigint }
    | undefined;
  return row ? { state: row.state, migrationId: row.migration_id, token: row.token, ...(Number(row.lapsed) ? { lapsed: true } : {}) } : null;
}

function setGate(db: Database.Database, gate: WriteGate): void {
  db.prepare(
    `INSERT INTO airlift_gate (id, state, migration_id, token, updated_at, expires_at) VALUES (1, ?, ?, ?, ?, CASE WHEN ? IS NULL THEN NULL ELSE ${NOW_MS} + ? END)
     ON CONFLICT (id) DO UPDATE SET state = excluded.state, migration_id = excluded.migration_id, token = excluded.token, updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
  ).run(gate.state, gate.migrationId, gate.token ?? null, new Date().toISOString(), gate.leaseMs ?? null, gate.leaseMs ?? null);
}

/** Primary key columns holding NULL (SQLite allows it outside INTEGER PRIMARY KEY): rows capture cannot tell apart. */
function nullKeyProblems(db: Database.Database, tables: TableInfo[]): string[] {
  const problems: string[] = [];
  for (const table of tables.filter((t) => t.keyKind === 'primary-key'))
    for (const column of table.key) {
      const rows = Number(db.prepare(`SELECT count(*) FROM ${q(table.name)} WHERE ${q(column)} IS NULL`).pluck().get());
      if (rows)
        problems.push(`table ${q(table.name)} has ${rows} row(s) with NULL in its primary key column ${q(column)}, which change capture cannot tell apart; give those rows a key (and declare the column NOT NULL so no new ones come)`);
    }
  return problems;
}

/** How many of the highest rowids `rowidSummary` digests with their rows (under the fence: well under a millisecond). */
const ROWID_TAIL_ROWS = 64n;
