// The Engine interface: what a database engine must implement for airlift to move its tenants.
// A new engine (PostgreSQL, say) implements this interface and passes tests/engines/contract.test.ts;
// nothing above engines/ changes. Engines know nothing of Temporal.

/** A key value as the engine's driver returns it (bigint for integers, Buffer for blobs). */
export type KeyValue = null | bigint | number | string | Buffer;

export interface TableInfo {
  name: string;
  columns: string[];
  /** Columns that order and identify rows. */
  key: string[];
  /** `rowid`: the table has no primary key and rows are identified by the engine's row id. */
  keyKind: 'primary-key' | 'rowid';
  /** The column lists of the table's unique indexes (its primary key's too), when the engine reports them. */
  uniqueKeys?: string[][];
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
}

/** An artifact in blob storage, for engines that restore straight from a URL. */
export interface BlobArtifact {
  url: string;
  containerUrl: string;
  blobName: string;
  sizeBytes: number;
  sha256: string;
  /** A read+list SAS for the container, made when asked and never stored or logged. */
  sas(): Promise<string>;
}

export type Progress = (fraction: number) => void;

export interface Engine {
  /** `sqlite`, `mssql`, … as written in the fleet file. */
  readonly kind: string;

  /** Whether the tenant's database exists, and its size when known. */
  probe(database: string): Promise<{ exists: boolean; sizeBytes?: number; restoredBy?: string }>;

  /** A transactionally consistent copy of the live database in `destFile`, safe while writes continue. */
  snapshot(database: string, destFile: string, onProgress?: Progress): Promise<Artifact>;

  /** `file`: restore wants the artifact downloaded first; `blob`: it reads the blob itself. */
  readonly restoresFrom: 'file' | 'blob';

  /**
   * Creates `database` from an artifact after checking its sha256 and integrity, and marks it as made
   * by `migrationId`. Ownership is recorded before anything is created, so a crash half way leaves
   * a database this migration may still drop. The restored database's write gate is `standby`.
   * Refuses to overwrite a database that another migration (or nobody) made.
   */
  restore(database: string, artifact: Artifact | BlobArtifact, migrationId: string, onProgress?: Progress): Promise<void>;

  /** Drops `database` only if `migrationId` created it; returns whether anything was dropped. */
  dropRestored(database: string, migrationId: string): Promise<boolean>;

  listTables(database: string): Promise<TableInfo[]>;

  /**
   * Key-ordered chunks of about `chunkRows` rows covering `within` (default: the whole table); the
   * first and last chunks reach to its bounds, so rows only the other side has are caught too.
   */
  chunkDigests(database: string, table: TableInfo, chunkRows: number, within?: KeyRange): Promise<ChunkDigest[]>;

  /** The digest of the rows in one range, computed exactly as `chunkDigests` does. */
  rangeDigest(database: string, table: TableInfo, range: KeyRange): Promise<{ rows: number; digest: string }>;

  /** One digest per row in the range, to name the rows that differ. */
  rowDigests(database: string, table: TableInfo, range: KeyRange): Promise<RowDigest[]>;

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

  /** Highest change seq, 0 when the log is empty or not installed. */
  changeHead(database: string): Promise<number>;

  /** Changes after `afterSeq`, oldest first (seq order is commit order). */
  readChanges(database: string, afterSeq: number, limit: number): Promise<Change[]>;

  /** The current rows for `keys` (values in `table.columns` order), null where the row is gone. */
  readRows(database: string, table: TableInfo, keys: KeyValue[][]): Promise<(KeyValue[] | null)[]>;

  /**
   * Writes row images read from the other side (an upsert by key, or a delete for a null row), and
   * advances the cursor of `stream` to `upTo` in the same transaction; a batch whose `upTo` the cursor
   * has passed is skipped whole, so a stale applier never writes older rows over newer ones. Bypasses
   * the write gate and is not captured itself. Returns how many images were written.
   * `stream` is `<migrationId>:<origin>`, so a later migration of the same tenant starts its own.
   */
  applyChanges(database: string, stream: string, upTo: number, images: RowImage[]): Promise<number>;

  /** The cursor `applyChanges` keeps for `stream`; 0 before the first apply. */
  appliedCursor(database: string, stream: string): Promise<number>;

  /**
   * The write gate kept in the tenant database: every write (through the capture triggers, and the
   * tracking writer itself) checks it in its own transaction and commits only while it is `open`
   * (no gate yet: open). Raised (`fenced`) by a switch before it drains, so no writer on any node, stale or restarted, commits past it.
   */
  writeGate(database: string): Promise<WriteGate | null>;

  /**
   * Sets the gate, only if it is now in one of `expect.states` (`none`: no gate row yet) and, with
   * `expect.token`, was set by that token; returns whether it was set. Once this returns true, no
   * write transaction that began under the old gate commits. The compare-and-set is what keeps a
   * stale switch attempt (a zombie on a worker that lost its heartbeat) from reopening a side.
   * A side that is not open holds the tenant's own triggers (kept aside in airlift's table, in the
   * same transaction): changes applied to it must not fire them a second time. Opening gives them back.
   */
  setWriteGate(database: string, gate: WriteGate, expect?: GateExpectation): Promise<boolean>;

  /** The tracking write path for the ingestion gateway, into the tenant's tracking table. */
  openEventWriter(database: string, mapping: TrackingMapping): EventWriter;

  close(): Promise<void>;
}

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
}

export interface GateExpectation {
  states?: (GateState | 'none')[];
  token?: string;
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
   * capture, when installed, records them like any other write. Returns how many were new.
   */
  write(events: TrackingEvent[]): number;
  /** Throws FencedWriteError, writing nothing, when the database's write gate is not open. */
  close(): void;
}

export { TargetExistsError, TargetInUseError, ArtifactChecksumError, IntegrityCheckError, DatabaseMissingError, ConnectionError, FencedWriteError } from '../protocol/errors';
