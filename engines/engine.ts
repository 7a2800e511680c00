// The engine contracts: small asynchronous roles (inventory, snapshot, restore per target kind, change
// capture with its write gate, change reader, change applier, digester, key counters, event writer)
// that a database engine implements for airlift to move its tenants. A new engine implements the
// roles it plays, passes tests/engines/contract.test.ts and is registered with one line in
// engines/registry.ts; nothing above engines/ changes. Engines know nothing of Temporal.

/** A key value as the engine's driver returns it (bigint for integers, Buffer for blobs). */
export type KeyValue = null | bigint | number | string | Buffer;

export interface TableInfo {
  name: string;
  columns: string[];
  /** Columns that order and identify rows. */
  key: string[];
  /**
   * `rowid`: the table has no primary key and rows are identified by the engine's row id.
   * `unique-index`: no primary key; an unfiltered unique index identifies the rows.
   * `all-columns`: neither; rows are ordered by every orderable column and told apart by their hash.
   */
  keyKind: 'primary-key' | 'unique-index' | 'all-columns' | 'rowid';
  /** The column lists of the table's unique indexes (its primary key's too), when the engine reports them. */
  uniqueKeys?: string[][];
}

/**
 * How an engine's server computes row digests. Two sides of a comparison must digest alike: they
 * use the lower `level` of the two when both are of one `family` (`agreedDigestFormat`).
 */
export interface DigestFormat {
  family: string;
  level: number;
}

/** The format both engines can compute, or undefined when they do not share one (each digests its own way). */
export function agreedDigestFormat(a: DigestFormat | undefined, b: DigestFormat | undefined): DigestFormat | undefined {
  if (!a || !b || a.family !== b.family) return undefined;
  return { family: a.family, level: Math.min(a.level, b.level) };
}

/** Rows with key in (lower, upper]; a null bound is open. */
export interface KeyRange {
  lower: KeyValue[] | null;
  upper: KeyValue[] | null;
}

export interface ChunkDigest extends KeyRange {
  rows: number;
  digest: string;
}

export interface RowDigest {
  /** The key rendered for a person, e.g. `id=42` or `campaign_id=7, day='2026-01-02'`. */
  key: string;
  digest: string;
}

export interface Artifact {
  file: string;
  sizeBytes: number;
  sha256: string;
  /** Where the snapshot recorded the MD5 of each upload block (engines/checksum.ts `BlockDigests`). */
  blockDigests?: string;
}

/** An artifact in blob storage, for targets that restore straight from a URL. */
export interface BlobArtifact {
  url: string;
  containerUrl: string;
  /** The artifact's own flat folder (`<container URL>/<tenant>.<migration>`), which LRS is started with. */
  folderUrl: string;
  blobName: string;
  /** The file name of the last backup in the folder (LRS `lastBackupName`). */
  lastBackupName: string;
  sizeBytes: number;
  sha256: string;
  /** The container's one read+list SAS, handed out by the worker's wiring; never stored or logged. */
  sas(): Promise<string>;
  /** The container's one credential choice for restores: the instance's managed identity, or that SAS. */
  access(): Promise<{ kind: 'managed-identity' } | { kind: 'sas'; token: string; expiresOn: Date }>;
}

/** One step of `airlift plan`: what runs, and the exact statements or requests (secrets redacted). */
export interface PlanStep {
  phase: string;
  action: string;
  detail: string[];
}

/** The artifact a planned restore will read, with placeholders for what only the run knows. */
export interface PlannedArtifact {
  url: string;
  containerUrl: string;
  folderUrl: string;
  blobName: string;
  lastBackupName: string;
  migrationId: string;
  /** The container's one credential choice for restoring servers. */
  restoreAccess: 'managed-identity' | 'sas';
  /** The restore timeout, which the SAS outlives. */
  restoreMinutes: number;
}

/** Progress as a fraction, with what the target reports beside it (files restored, status, …). */
export type Progress = (fraction: number, detail?: Record<string, unknown>) => void;

/**
 * What the restoring step needs of a target, one restorer per target kind: a restored file (SQLite),
 * RESTORE FROM URL (SQL Server), a Managed Instance through ARM (azure/managed-instance.ts).
 */
export interface RestoreTarget {
  /** `file`: restore wants the artifact downloaded first; `blob`: it reads the blob itself. */
  readonly restoresFrom: 'file' | 'blob';

  /** Whether the database exists there, and which migration restored it. */
  probe(database: string): Promise<{ exists: boolean; sizeBytes?: number; restoredBy?: string }>;

  /**
   * Creates `database` from an artifact after checking its sha256 and integrity, and marks it as made
   * by `migrationId`. Ownership is recorded before anything is created, so a crash half way leaves
   * a database this migration may still drop. The restored database's write gate is `standby`.
   * Refuses to overwrite a database that another migration (or nobody) made. A retry resumes.
   */
  restore(database: string, artifact: Artifact | BlobArtifact, migrationId: string, onProgress?: Progress, signal?: AbortSignal, options?: RestoreOptions): Promise<void>;

  /** Drops `database` only if `migrationId` created it; returns whether anything was dropped. */
  dropRestored(database: string, migrationId: string): Promise<boolean>;

  /** What would stop a restore of this size here (limits, storage), as sentences; none when ready. */
  prerequisites?(database: string, sizeBytes?: number): Promise<string[]>;

  /** The target, for a person (`SQL Server host:port`, `Azure SQL Managed Instance …`). */
  describe(): string;

  /** The restoring step as `airlift plan` prints it, from this same restorer. */
  planRestore(database: string, artifact: PlannedArtifact): PlanStep;

  /**
   * Present when this target can keep restoring log backups as they arrive in the artifact's folder
   * (a Managed Instance under LRS in continuous mode). `restore` with `keepRestoring` then returns
   * once the full backup is restored, leaving the database restoring for the log backups to come.
   */
  readonly continuous?: ContinuousRestore;
}

export interface RestoreOptions {
  /** Only for a target with `continuous`: return once the full backup is restored, the database still restoring. */
  keepRestoring?: boolean;
}

/** Where a restore that keeps restoring log backups stands (a Managed Instance's restoreDetails). */
export interface ContinuousRestoreState {
  status: string;
  /** The database is online: the restore was completed. */
  online: boolean;
  lastRestoredFileName?: string;
  filesDetected: number;
  filesQueued: number;
  filesRestoring: number;
  filesRestored: number;
  blockReason?: string;
}

/** A target that restores log backups as they come, completed once the last one is restored. */
export interface ContinuousRestore {
  state(database: string): Promise<ContinuousRestoreState>;
  /**
   * Waits until `lastBackupName` is restored with nothing queued, then completes the restore (the
   * database comes online and takes no more backups), and waits until it is online. Safe to repeat:
   * a database already online is left as it is.
   */
  complete(database: string, lastBackupName: string, onProgress?: Progress, signal?: AbortSignal): Promise<void>;
}

/** One backup as the source's backup history records it; LSNs are decimal text (numeric(25,0)). */
export interface BackupSet {
  firstLsn: string;
  lastLsn: string;
  /** The file it was written to, as the server wrote it. */
  device: string;
  finishedAt?: Date;
}

/**
 * A source that takes log backups into airlift's backup folder, for a target that keeps restoring
 * them (log shipping). The folder is the one the snapshot is written to.
 */
export interface LogBackupSource {
  /** Where the server writes `file` (its path as the server sees it). */
  serverPath(file: string): string;
  /** Where this worker reads `file`. */
  localPath(file: string): string;
  /** The backup written to `file` (a full backup or a log backup), if the server has taken it. */
  backupSetOf(database: string, file: string): Promise<BackupSet | undefined>;
  /** Takes a log backup of `database` into `file` (WITH CHECKSUM, not COPY_ONLY). */
  takeLogBackup(database: string, file: string): Promise<void>;
  /** Every log backup holding log records after `lsn`, whoever took it, in chain order. */
  logBackupsAfter(database: string, lsn: string): Promise<BackupSet[]>;
  /** What would break the shipped chain (recovery model, others' log backup jobs and backups), one line each. */
  logBackupPreflight(database: string): Promise<string[]>;
}

// The roles. A step takes only the roles it uses; an engine implements each role it can play, and
// `Engine` is their sum. Every member is asynchronous: the database may be a server on the network.

/** Where a database lives and whether it is there: what every role that names one can say. */
export interface Inventory {
  /** Whether the tenant's database exists, and its size when known. */
  probe(database: string): Promise<{ exists: boolean; sizeBytes?: number; restoredBy?: string }>;
  /** Where the database lives, for a person (`SQLite files in …`, `SQL Server host:port`). */
  describe(): string;
  listTables(database: string): Promise<TableInfo[]>;
  /**
   * What would go wrong once capture is on, found in the database itself: `problems` stop preflight
   * (SQLite: a primary key column holding NULL, whose rows the change log cannot tell apart),
   * `warnings` are shown (SQLite: tables keyed by rowid, which a VACUUM renumbers). Optional.
   */
  captureReadiness?(database: string): Promise<{ problems: string[]; warnings: string[] }>;
}

/** Snapshotting a live source into one artifact file. */
export interface Snapshotter {
  /** The artifact's file name: a SQLite copy, a SQL Server `.bak` named after the migration. */
  artifactName(database: string, migrationId: string): string;
  /** The snapshotting step as `airlift plan` prints it. */
  planSnapshot(database: string, migrationId: string): PlanStep;
  /**
   * A transactionally consistent copy of the live database in `destFile`, safe while writes continue,
   * with its sha256 and, given the upload's block size for its size, the MD5 of each block. Taken at
   * the point of the capture watermark or later: every change after it is in the change log.
   */
  snapshot(database: string, destFile: string, onProgress?: Progress, blockSizeOf?: (sizeBytes: number) => number): Promise<Artifact>;
}

/** What the snapshotting step needs of a source. */
export type SnapshotSource = Snapshotter & Pick<Inventory, 'probe' | 'describe'>;

/**
 * Change capture and the write gate it enforces. The gate is kept in the tenant database: every
 * write (through the capture triggers, and the tracking writer itself) checks it in its own
 * transaction and commits only while it is `open` (no gate yet: open).
 */
export interface ChangeCapture {
  /**
   * Installs change capture on every user table (idempotent): a change log, and triggers that record
   * the key of every inserted, updated or deleted row in the same transaction as the write, whoever
   * writes (airlift's gateway, the tenant's own services, the application). The same triggers refuse
   * every write while the database's write gate is not `open`. Returns the change log's head: the
   * journal watermark w0 (every write committed after it is in the log).
   */
  startCapture(database: string): Promise<number>;
  /**
   * Removes what `startCapture` installed and gives back the tenant's own triggers, leaving the
   * tenant's schema exactly as it was. With `keepFence` (a retired source), the triggers that refuse
   * writes while the gate is closed stay, so a stale writer cannot write where nobody reads.
   */
  stopCapture(database: string, options: { keepFence: boolean }): Promise<void>;
  /**
   * Tables whose writes would escape the change log: created, renamed or rebuilt since capture was
   * installed (their triggers are missing). The switch refuses to flip while there are any.
   */
  captureGaps(database: string): Promise<string[]>;
  writeGate(database: string): Promise<WriteGate | null>;
  /**
   * Sets the gate, only if it is now in one of `expect.states` (`none`: no gate row yet), with
   * `expect.token` was set by that token, and with `expect.migrationId` was set by that migration;
   * returns whether it was set. Once this returns true, no write transaction that began under the old
   * gate commits. The compare-and-set is what keeps a stale switch attempt (a zombie on a worker that
   * lost its heartbeat) from reopening a side. A side that is not open holds the tenant's own
   * triggers (kept aside in airlift's table, in the same transaction): changes applied to it must not
   * fire them a second time. Opening gives them back.
   */
  setWriteGate(database: string, gate: WriteGate, expect?: GateExpectation): Promise<boolean>;
}

/** Reading the change log and the rows it names. */
export interface ChangeReader {
  listTables(database: string): Promise<TableInfo[]>;
  /** Highest change seq a reader may pass, 0 when the log is empty or not installed. */
  changeHead(database: string): Promise<number>;
  /**
   * Changes after `afterSeq`, oldest first, never past a change a transaction still open may yet
   * commit below (on a server, commit order is not sequence order).
   */
  readChanges(database: string, afterSeq: number, limit: number): Promise<Change[]>;
  /** The current rows for `keys` (values in `table.columns` order), null where the row is gone. */
  readRows(database: string, table: TableInfo, keys: KeyValue[][]): Promise<(KeyValue[] | null)[]>;
}

/** Writing row images read from the other side, with the replication cursor in the same transaction. */
export interface ChangeApplier {
  /**
   * Writes row images read from the other side (an upsert by key, or a delete for a null row), and
   * advances the cursor of `stream` to `upTo` in the same transaction; a batch whose `upTo` the cursor
   * has passed is skipped whole, so a stale applier never writes older rows over newer ones. Bypasses
   * the write gate and is not captured itself, but writes only into a side that is not open and whose
   * gate was set by the stream's own migration (a zombie applier of a rolled-back migration never
   * writes into the next migration's standby target). Returns how many images were written.
   * `stream` is `<migrationId>:<origin>`, so a later migration of the same tenant starts its own.
   */
  applyChanges(database: string, stream: string, upTo: number, images: RowImage[]): Promise<number>;
  /** The cursor `applyChanges` keeps for `stream`; 0 before the first apply. */
  appliedCursor(database: string, stream: string): Promise<number>;
}

/** Chunk and row digests, computed in the database, the same way on both sides. */
export interface Digester {
  listTables(database: string): Promise<TableInfo[]>;
  /**
   * Key-ordered chunks of about `chunkRows` rows covering `within` (default: the whole table); the
   * first and last chunks reach to its bounds, so rows only the other side has are caught too.
   */
  chunkDigests(database: string, table: TableInfo, chunkRows: number, within?: KeyRange, format?: DigestFormat): Promise<ChunkDigest[]>;
  /** The digest of the rows in one range, computed exactly as `chunkDigests` does. */
  rangeDigest(database: string, table: TableInfo, range: KeyRange, format?: DigestFormat): Promise<{ rows: number; digest: string }>;
  /** One digest per row in the range, to name the rows that differ. */
  rowDigests(database: string, table: TableInfo, range: KeyRange, format?: DigestFormat): Promise<RowDigest[]>;
  /** The digest format this engine's server computes for `database` (optional: engines with one format omit it). */
  digestFormat?(database: string): Promise<DigestFormat>;
  /**
   * For a table with `keyKind: 'rowid'`: a cheap summary that two sides holding the same rows under the
   * same row ids share (SQLite: the highest rowid and a digest of the last rowids with their rows),
   * read without walking the table. The switch compares it
   * under its fence, since a renumbering (SQLite's VACUUM) changes no row the change log names.
   */
  rowidSummary?(database: string, table: TableInfo): Promise<string>;
}

/**
 * The counters that hand out new keys of the tenant's tables (SQLite: `sqlite_sequence`; PostgreSQL:
 * sequences and identity columns), by table. Replication copies rows, not counters: a row inserted and
 * deleted before it was copied never moves the other side's counter, which would then issue its id
 * again. The switch reads them under its fence and raises the new primary's. An engine whose counters
 * follow the rows it is given does not play this role.
 */
export interface KeyCounters {
  keyCounters(database: string): Promise<Record<string, number>>;
  /** Raises each counter to at least the value given (never lowers one); counters it lacks are skipped. */
  raiseKeyCounters(database: string, counters: Record<string, number>): Promise<void>;
}

/** The tracking write path for the ingestion gateway, into the tenant's tracking table. */
export interface EventWriters {
  openEventWriter(database: string, mapping: TrackingMapping): EventWriter;
}

/**
 * The tenant application's own connection to its database, as the demo's application and the
 * fault matrix use it: plain statements with `?` placeholders, through no airlift path at all.
 */
export interface SqlSession {
  /** Runs one statement; returns its rows (none for a write). */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs `work` in one transaction, which commits when it returns and rolls back when it throws. */
  transaction<T>(work: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface ApplicationSessions {
  /** A session on `database` as the tenant's application would open one. Fails when the database is not there. */
  openSession(database: string): Promise<SqlSession>;
}

/**
 * A database engine: every role above that it plays, what a new engine (PostgreSQL, say) implements
 * and proves with tests/engines/contract.test.ts, registered with one line in engines/registry.ts.
 */
export interface Engine extends Inventory, Snapshotter, RestoreTarget, ChangeCapture, ChangeReader, ChangeApplier, Digester, EventWriters, Partial<KeyCounters>, Partial<ApplicationSessions> {
  /** `sqlite`, `mssql`, … as written in the fleet file. */
  readonly kind: string;
  /** Present when this source can take log backups for a target that restores them as they come. */
  readonly logBackups?: LogBackupSource;
  close(): Promise<void>;
}

/** What change capture, replication and the fenced switch need of either side. */
export type ReplicaSide = ChangeCapture & ChangeReader & ChangeApplier & Digester & Partial<KeyCounters>;

/**
 * `open`: the side takes writes (the primary). `fenced`: a switch is draining it or it was demoted;
 * no writer may commit. `standby`: a restored target that is not primary yet.
 */
export type GateState = 'open' | 'fenced' | 'standby';

export interface WriteGate {
  state: GateState;
  /** The migration that set it, for `reconcile` and for people. */
  migrationId: string | null;
  /** The switch attempt that set it; only that attempt may undo its own fence. */
  token?: string | null;
  /**
   * A fence with a lease: it lapses this many milliseconds after it is set, by the database's own
   * clock, and writers then take the side as open (a switch that froze holding it cannot keep the
   * tenant's writes refused). Absent: the gate holds until it is set again. Engines without leases ignore it.
   */
  leaseMs?: number;
  /** Read back: the fence's lease has run out (writers take the side as open). */
  lapsed?: boolean;
}

export interface GateExpectation {
  states?: (GateState | 'none')[];
  token?: string;
  /**
   * The migration the gate must have been set by: a stale step of an earlier migration (rolled back,
   * its zombie still running) cannot close, open or take over a gate a later migration holds. A side
   * with no gate yet matches only when `states` lists `none`.
   */
  migrationId?: string;
  /** The gate must not be a fence whose lease has lapsed: whoever set it still holds it, and no writer has committed since. */
  unexpired?: boolean;
}

/** Whether a gate now in `current` meets a compare-and-set's expectation (`GateExpectation`). */
export function gateMatches(current: WriteGate | null, expect: GateExpectation | undefined): boolean {
  if (expect?.states && !expect.states.includes(current?.state ?? 'none')) return false;
  if (expect?.migrationId !== undefined && current && current.migrationId !== expect.migrationId) return false;
  if (expect?.unexpired && current?.lapsed) return false;
  return expect?.token === undefined || current?.token === expect.token;
}

/** The migration a replication stream (`<migrationId>:<origin>`) belongs to. */
export function streamMigration(stream: string): string {
  const colon = stream.lastIndexOf(':');
  return colon < 0 ? stream : stream.slice(0, colon);
}

/** One tracking event as the gateway receives it; `TrackingMapping` says where each field goes. */
export interface TrackingEvent {
  event_id: string;
  ad_id: number | null;
  kind: string;
  occurred_at: string;
  user_agent: string | null;
  payload: string | null;
}

/** Key columns a change-log entry holds; preflight refuses a table with a wider key. */
export const MAX_CAPTURED_KEY_COLUMNS = 8;

/** One change-log entry: which row of which table changed (its key at the time). */
export interface Change {
  seq: number;
  table: string;
  key: KeyValue[];
}

/** A row as it is now on one side, to be written on the other; `row` null: the row is gone. */
export interface RowImage {
  table: TableInfo;
  key: KeyValue[];
  row: KeyValue[] | null;
}

/**
 * Where the tenant's tracking table keeps each field of an event (the fleet file's `tracking`):
 * `columns.event_id` must be unique; a field mapped to null is not stored.
 */
export interface TrackingMapping {
  table: string;
  columns: Record<keyof TrackingEvent, string | null>;
}

export interface EventWriter {
  /**
   * Writes events (one already stored under its event_id is skipped) in one transaction; change
   * capture, when installed, records them like any other write. Returns how many were new. Throws
   * FencedWriteError, writing nothing, when the database's write gate is not open.
   */
  write(events: TrackingEvent[]): Promise<number>;
  close(): Promise<void>;
}

export { TargetExistsError, TargetInUseError, ArtifactChecksumError, IntegrityCheckError, DatabaseMissingError, ConnectionError, FencedWriteError } from '../protocol/errors';
