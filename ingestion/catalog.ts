// The routing catalog: tenant -> primary side, write mode, epoch. The application and the ingestion
// gateway read it; cut-over and rollback are flips here. Embedded default: one SQLite file.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Side = 'source' | 'target';
export type WriteMode = 'read_write' | 'read_only';

export interface CatalogEntry {
  tenantId: string;
  primary: Side;
  writeMode: WriteMode;
  /** Tracking writes also go to the primary's outbox (the dual-write journal). */
  outbox: boolean;
  epoch: number;
  updatedAt: string;
}

/**
 * Who asks for a mode change: one run of a migration workflow (`<migrationId>:<runId>`) and its step
 * number, which only grows in a run. Runs of one migration (a workflow reset makes a new run) are
 * ordered by their generation (`runGeneration`): a step of an earlier run is older than every step
 * of a later one, so an attempt left running from before a reset cannot undo what the new run did.
 */
export interface ModeOrder {
  owner: string;
  step: number;
}

/** `<migrationId>:<runId>` apart (a migration id never holds a colon; a run id might not be given). */
function splitOwner(owner: string): { migrationId: string; runId: string } {
  const colon = owner.indexOf(':');
  return colon < 0 ? { migrationId: owner, runId: '' } : { migrationId: owner.slice(0, colon), runId: owner.slice(colon + 1) };
}

export class Catalog {
  private readonly db: Database.Database;

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`CREATE TABLE IF NOT EXISTS tenants (
      tenant_id TEXT PRIMARY KEY,
      primary_side TEXT NOT NULL CHECK (primary_side IN ('source', 'target')),
      write_mode TEXT NOT NULL CHECK (write_mode IN ('read_write', 'read_only')),
      epoch INTEGER NOT NULL,
      updated_at TEXT NOT NULL,
      outbox INTEGER NOT NULL DEFAULT 0)`);
    // Which migration step changed the mode last, so a step's stale attempt cannot undo a later one.
    const columns = (this.db.prepare('SELECT name FROM pragma_table_info(?)').all('tenants') as { name: string }[]).map((c) => c.name);
    if (!columns.includes('mode_owner')) this.db.exec('ALTER TABLE tenants ADD COLUMN mode_owner TEXT');
    if (!columns.includes('mode_step')) this.db.exec('ALTER TABLE tenants ADD COLUMN mode_step INTEGER NOT NULL DEFAULT 0');
    if (!columns.includes('mode_generation')) this.db.exec('ALTER TABLE tenants ADD COLUMN mode_generation INTEGER NOT NULL DEFAULT 0');
    // The runs of each migration in the order they were first seen (preflight registers each run).
    this.db.exec(`CREATE TABLE IF NOT EXISTS run_generations (
      migration_id TEXT NOT NULL, run_id TEXT NOT NULL, generation INTEGER NOT NULL, PRIMARY KEY (migration_id, run_id))`);
    this.db.exec(`CREATE TABLE IF NOT EXISTS watermarks (
      tenant_id TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (tenant_id, name))`);
    // When each cut-over attempt first raised its fence: its retries count the pause budget from there.
    this.db.exec(`CREATE TABLE IF NOT EXISTS fence_times (
      tenant_id TEXT NOT NULL, attempt TEXT NOT NULL, fenced_at INTEGER NOT NULL, PRIMARY KEY (tenant_id, attempt))`);
    // A repair (reconcile) holding a tenant: no migration step begins while its lease is live.
    this.db.exec(`CREATE TABLE IF NOT EXISTS repair_holds (
      tenant_id TEXT PRIMARY KEY, holder TEXT NOT NULL, until_ms INTEGER NOT NULL)`);
  }

  /**
   * Takes a tenant for a repair, for `leaseMs`: the epoch moves on in the same transaction, so a
   * switch attempt still running (its workflow terminated, its activity not) is refused at its flip,
   * and migration steps that begin meanwhile are refused (`repairHolder`). Returns the entry as it
   * stands once taken, or undefined when another repair holds the tenant.
   */
  takeForRepair(tenantId: string, holder: string, leaseMs: number): CatalogEntry | undefined {
    return this.db.transaction(() => {
      this.ensure(tenantId);
      const other = this.repairHolder(tenantId);
      if (other && other.holder !== holder) return undefined;
      this.db.prepare('INSERT INTO repair_holds VALUES (?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms').run(tenantId, holder, Date.now() + leaseMs);
      return this.bumpEpoch(tenantId);
    }).immediate();
  }

  /** Gives a repair's hold back (only the holder's own). */
  releaseRepair(tenantId: string, holder: string): void {
    this.db.prepare('DELETE FROM repair_holds WHERE tenant_id = ? AND holder = ?').run(tenantId, holder);
  }

  /** The repair that holds the tenant now, if its lease is live. */
  repairHolder(tenantId: string): { holder: string; untilMs: number } | undefined {
    const row = this.db.prepare('SELECT holder, until_ms FROM repair_holds WHERE tenant_id = ? AND until_ms > ?').get(tenantId, Date.now()) as { holder: string; until_ms: number } | undefined;
    return row && { holder: row.holder, untilMs: row.until_ms };
  }

  get(tenantId: string): CatalogEntry | undefined {
    const row = this.db
      .prepare('SELECT tenant_id, primary_side, write_mode, outbox, epoch, updated_at FROM tenants WHERE tenant_id = ?')
      .get(tenantId) as { tenant_id: string; primary_side: Side; write_mode: WriteMode; outbox: number; epoch: number; updated_at: string } | undefined;
    return row && { tenantId: row.tenant_id, primary: row.primary_side, writeMode: row.write_mode, outbox: row.outbox === 1, epoch: row.epoch, updatedAt: row.updated_at };
  }

  /** A tenant not yet known lives on its source. */
  ensure(tenantId: string): CatalogEntry {
    this.db
      .prepare("INSERT OR IGNORE INTO tenants (tenant_id, primary_side, write_mode, epoch, updated_at) VALUES (?, 'source', 'read_write', 1, ?)")
      .run(tenantId, new Date().toISOString());
    return this.get(tenantId)!;
  }

  /**
   * Flips the primary and sets whether it journals to its outbox, in one change. Idempotent: asking
   * for what is already in force changes nothing and keeps the epoch.
   */
  setPrimary(tenantId: string, primary: Side, outbox: boolean): CatalogEntry {
    this.ensure(tenantId);
    this.db
      .prepare('UPDATE tenants SET primary_side = ?, outbox = ?, epoch = epoch + 1, updated_at = ? WHERE tenant_id = ? AND (primary_side <> ? OR outbox <> ?)')
      .run(primary, outbox ? 1 : 0, new Date().toISOString(), tenantId, primary, outbox ? 1 : 0);
    return this.get(tenantId)!;
  }

  /**
   * The flip of a switch: only if the epoch is still the one the switch read when it began (or the
   * flip is already in force). A stale switch attempt, whose epoch was moved on by a call-off or a
   * later attempt, flips nothing and gets undefined.
   */
  flipPrimary(tenantId: string, primary: Side, outbox: boolean, expectEpoch: number): CatalogEntry | undefined {
    this.ensure(tenantId);
    const changed = this.db
      .prepare('UPDATE tenants SET primary_side = ?, outbox = ?, epoch = epoch + 1, updated_at = ? WHERE tenant_id = ? AND epoch = ?')
      .run(primary, outbox ? 1 : 0, new Date().toISOString(), tenantId, expectEpoch).changes;
    return changed ? this.get(tenantId) : undefined;
  }

  /**
   * Moves the epoch on (only while `primary` is `whilePrimary`, when given), so that any switch
   * attempt begun before now can no longer flip; returns the new entry, or undefined if not moved.
   */
  bumpEpoch(tenantId: string, whilePrimary?: Side): CatalogEntry | undefined {
    this.ensure(tenantId);
    const changed = this.db
      .prepare('UPDATE tenants SET epoch = epoch + 1, updated_at = ? WHERE tenant_id = ? AND (? IS NULL OR primary_side = ?)')
      .run(new Date().toISOString(), tenantId, whilePrimary ?? null, whilePrimary ?? null).changes;
    return changed ? this.get(tenantId) : undefined;
  }

  /**
   * Changes the write mode and/or the outbox flag; the epoch moves only when something changed.
   * With `order` (a workflow run's step number), the change is made only if no later step of the
   * same run has changed the mode already, and undefined is returned otherwise: an attempt of an
   * earlier step that was left running on a worker which lost its heartbeat cannot, when it wakes,
   * freeze a tenant again after the rollback thawed it. Without `order` (reconcile, the admin API),
   * the change is made and the order forgotten.
   */
  setMode(tenantId: string, change: { writeMode?: WriteMode; outbox?: boolean }, order?: ModeOrder): CatalogEntry | undefined {
    return this.db.transaction(() => {
      const now = this.ensure(tenantId);
      const last = this.db.prepare('SELECT mode_owner, mode_step, mode_generation FROM tenants WHERE tenant_id = ?').get(tenantId) as { mode_owner: string | null; mode_step: number; mode_generation: number };
      const run = order && splitOwner(order.owner);
      const generation = run ? this.runGeneration(run.migrationId, run.runId) : 0;
      // Older: a step of the same migration from an earlier run, or an earlier step of the same run.
      if (order && run && last.mode_owner && splitOwner(last.mode_owner).migrationId === run.migrationId && (last.mode_generation > generation || (last.mode_generation === generation && last.mode_step > order.step)))
        return undefined;
      const writeMode = change.writeMode ?? now.writeMode;
      const outbox = change.outbox ?? now.outbox;
      this.db
        .prepare('UPDATE tenants SET write_mode = ?, outbox = ?, epoch = epoch + 1, updated_at = ? WHERE tenant_id = ? AND (write_mode <> ? OR outbox <> ?)')
        .run(writeMode, outbox ? 1 : 0, new Date().toISOString(), tenantId, writeMode, outbox ? 1 : 0);
      this.db.prepare('UPDATE tenants SET mode_owner = ?, mode_step = ?, mode_generation = ? WHERE tenant_id = ?').run(order?.owner ?? null, order?.step ?? 0, generation, tenantId);
      return this.get(tenantId)!;
    }).immediate();
  }

  /**
   * The generation of one run of a migration: the first run seen is 1, each run first seen later one
   * more. Preflight registers each run as it begins, so a run made by a reset is later than the run
   * it replaced, whenever that one's stale attempts come back.
   */
  runGeneration(migrationId: string, runId: string): number {
    this.db
      .prepare('INSERT OR IGNORE INTO run_generations SELECT ?, ?, coalesce(max(generation), 0) + 1 FROM run_generations WHERE migration_id = ?')
      .run(migrationId, runId, migrationId);
    return (this.db.prepare('SELECT generation FROM run_generations WHERE migration_id = ? AND run_id = ?').get(migrationId, runId) as { generation: number }).generation;
  }

  /** Records `seq` under `name` the first time; afterwards returns what was recorded first. */
  rememberWatermark(tenantId: string, name: string, seq: number): number {
    this.db.prepare('INSERT OR IGNORE INTO watermarks VALUES (?, ?, ?)').run(tenantId, name, seq);
    return (this.db.prepare('SELECT seq FROM watermarks WHERE tenant_id = ? AND name = ?').get(tenantId, name) as { seq: number }).seq;
  }

  /** Records `now` (ms) as the first fence of `attempt`, the first time; returns the first one recorded. */
  firstFencedAt(tenantId: string, attempt: string, now: number): number {
    this.db.prepare('INSERT OR IGNORE INTO fence_times VALUES (?, ?, ?)').run(tenantId, attempt, now);
    return (this.db.prepare('SELECT fenced_at FROM fence_times WHERE tenant_id = ? AND attempt = ?').get(tenantId, attempt) as { fenced_at: number }).fenced_at;
  }

  watermark(tenantId: string, name: string): number | undefined {
    return (this.db.prepare('SELECT seq FROM watermarks WHERE tenant_id = ? AND name = ?').get(tenantId, name) as { seq: number } | undefined)?.seq;
  }

  list(): CatalogEntry[] {
    return (this.db.prepare('SELECT tenant_id FROM tenants ORDER BY tenant_id').all() as { tenant_id: string }[]).map((r) => this.get(r.tenant_id)!);
  }

  close(): void {
    this.db.close();
  }
}
