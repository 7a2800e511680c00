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
  /**
   * `rowid`: the table has no primary key and rows are identified by the engine's row id.
   * `unique-index`: no primary key; an unfiltered unique index identifies the rows.
   * `all-columns`: neither; rows are ordered by every orderable column and told apart by their hash.
   */
  keyKind: 'primary-key' | 'unique-index' | 'all-columns' | 'rowid';
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

  /** The append-only table that tracking ingestion writes and the dual-write replicates. */
  readonly trackingTable: string;

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
  chunkDigests(database: string, table: TableInfo, chunkRows: number, within?: KeyRange, format?: DigestFormat): Promise<ChunkDigest[]>;

  /** The digest of the rows in one range, computed exactly as `chunkDigests` does. */
  rangeDigest(database: string, table: TableInfo, range: KeyRange, format?: DigestFormat): Promise<{ rows: number; digest: string }>;

  /** One digest per row in the range, to name the rows that differ. */
  rowDigests(database: string, table: TableInfo, range: KeyRange, format?: DigestFormat): Promise<RowDigest[]>;

  /** The digest format this engine's server computes for `database` (optional: engines with one format omit it). */
  digestFormat?(database: string): Promise<DigestFormat>;

  /** Creates the outbox (the dual-write journal) and the applied-cursor table if missing. */
  ensureOutbox(database: string): Promise<void>;

  /** Highest outbox seq, 0 when empty. */
  outboxHead(database: string): Promise<number>;

  /** Outbox entries after `afterSeq`, oldest first. */
  readOutbox(database: string, afterSeq: number, limit: number): Promise<OutboxEntry[]>;

  /**
   * Applies entries read from another side's outbox (an entry whose event is already there is
   * skipped; a different event under the same key is a `ReplicationConflictError`), and advances the
   * cursor of `stream` in the same transaction: a crash never applies twice or skips.
   * `stream` is `<migrationId>:<origin>`, so a later migration of the same tenant starts its own.
   */
  applyOutbox(database: string, stream: string, entries: OutboxEntry[]): Promise<number>;

  /** The cursor `applyOutbox` keeps for `stream`; 0 before the first apply. */
  appliedCursor(database: string, stream: string): Promise<number>;

  /**
   * The write gate kept in the tenant database: every tracking write checks it in its own
   * transaction and commits only while it is `open` (no gate yet: open). Raised (`fenced`) by a
   * switch before it drains, so no writer on any node, stale or restarted, commits past it.
   */
  writeGate(database: string): Promise<WriteGate | null>;

  /**
   * Sets the gate, only if it is now in one of `expect.states` (`none`: no gate row yet) and, with
   * `expect.token`, was set by that token; returns whether it was set. Once this returns true, no
   * write transaction that began under the old gate commits. The compare-and-set is what keeps a
   * stale switch attempt (a zombie on a worker that lost its heartbeat) from reopening a side.
   */
  setWriteGate(database: string, gate: WriteGate, expect?: GateExpectation): Promise<boolean>;

  /** Highest key of the tracking table, to bound a comparison of a table that keeps growing. */
  trackingHead(database: string, table: TableInfo): Promise<KeyValue[] | null>;

  /** The tracking write path for the ingestion gateway. */
  openEventWriter(database: string): EventWriter;

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

/** One tracking event as the gateway stores it (the demo schema's `tracking_events` row). */
export interface TrackingEvent {
  event_id: string;
  ad_id: number | null;
  kind: string;
  occurred_at: string;
  user_agent: string | null;
  payload: string | null;
}

/** An outbox entry: the full tracking row as written on the primary, seq included. */
export interface OutboxEntry {
  seq: number;
  eventId: string;
  row: Record<string, unknown>;
}

export interface EventWriter {
  /**
   * Writes events (one already stored under its event_id is skipped) and, with `outbox`, their outbox rows in the same
   * transaction. Returns how many were new.
   */
  write(events: TrackingEvent[], outbox: boolean): number;
  /** Throws FencedWriteError, writing nothing, when the database's write gate is not open. */
  close(): void;
}

export { TargetExistsError, TargetInUseError, ArtifactChecksumError, IntegrityCheckError, DatabaseMissingError, ConnectionError, FencedWriteError } from '../protocol/errors';
