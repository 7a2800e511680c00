// The per-tenant router of one gateway node: which side is primary, whether the outbox is on, and
// the fence that holds a tenant's new events while a cut-over drains and flips.
import { trackingOf, type LoadedFleet, type Tenant } from '../config/fleet';
import type { EventWriter, FleetEngines, TrackingEvent } from '../engines';
import type { Catalog, CatalogEntry, Side, WriteMode } from './catalog';
import type { GatewayMetrics } from './metrics';
import { FencedWriteError } from '../protocol/errors';

export class UnknownTenantError extends Error {
  override name = 'UnknownTenantError';
}
export class HeldTooLongError extends Error {
  override name = 'HeldTooLongError';
}
/** An admin change that arrived after a later one (409): it is not applied. */
export class StaleRouteChangeError extends Error {
  override name = 'StaleRouteChangeError';
}

interface TenantState {
  tenant: Tenant;
  route: CatalogEntry;
  fencedAt?: number;
  heldSinceFence: number;
  inflight: number;
  /** Resolved when the fence lifts; created when it is raised. */
  release?: { promise: Promise<void>; resolve: () => void };
  /** Lifts the fence by itself if no switch lifts it (its worker died, it cannot reach this node). */
  lease?: NodeJS.Timeout;
  drained: (() => void)[];
  writers: Partial<Record<Side, EventWriter>>;
}

export interface WriteResult {
  fresh: number;
  duplicates: number;
  heldMs: number;
}

export interface TenantView {
  tenantId: string;
  primary: Side;
  writeMode: WriteMode;
  outbox: boolean;
  epoch: number;
  fenced: boolean;
}

/** Longer than any cut-over's fenced work (a Managed Instance's tail-log restore and completion included). */
export const DEFAULT_FENCE_LEASE_MS = 30 * 60_000;

export class TenantRouter {
  private readonly tenants = new Map<string, TenantState>();

  constructor(
    private readonly fleet: LoadedFleet,
    private readonly catalog: Catalog,
    private readonly metrics: GatewayMetrics,
    /** The engines of the fleet's endpoints, built once by whoever wires this node. */
    private readonly engines: FleetEngines,
    /** How long a fenced tenant's events may wait before the client is told to retry. */
    private readonly holdTimeoutMs = 10_000,
    /**
     * How long a fence holds without being raised again or lifted: a fence whose switch died (a
     * killed worker, a zombie attempt, an unfence that never reached this node) lifts by itself, so
     * no node answers 503 for a tenant forever. Safe to lift early: the write gate in the database is
     * what refuses writes to a side that is not open; the fence only spares them the refusal.
     */
    private readonly fenceLeaseMs = DEFAULT_FENCE_LEASE_MS,
  ) {}

  private state(tenantId: string): TenantState {
    let s = this.tenants.get(tenantId);
    if (!s) {
      const tenant = this.fleet.tenants.find((t) => t.id === tenantId);
      if (!tenant) throw new UnknownTenantError(`unknown tenant "${tenantId}"`);
      s = { tenant, route: this.catalog.ensure(tenantId), heldSinceFence: 0, inflight: 0, drained: [], writers: {} };
      this.tenants.set(tenantId, s);
    }
    return s;
  }

  view(tenantId: string): TenantView {
    const s = this.state(tenantId);
    return { tenantId, primary: s.route.primary, writeMode: s.route.writeMode, outbox: s.route.outbox, epoch: s.route.epoch, fenced: s.fencedAt !== undefined };
  }

  private writer(s: TenantState, side: Side): EventWriter {
    const existing = s.writers[side];
    if (existing) return existing;
    const engine = side === 'source' ? this.engines.engine('sources', s.tenant.source) : this.engines.engine('targets', s.tenant.target);
    const created = engine.openEventWriter(s.tenant.database, trackingOf(this.fleet, s.tenant));
    s.writers[side] = created;
    return created;
  }

  /**
   * Writes to the tenant's primary, waiting (bounded) while the tenant is fenced. The database has
   * the last word: a side whose write gate is not open refuses the write inside its transaction
   * (a node restarted during a cut-over, a route cached before a flip); the node then reloads the
   * route from the catalog and tries again until the hold timeout.
   */
  async write(tenantId: string, events: TrackingEvent[]): Promise<WriteResult> {
    const s = this.state(tenantId);
    const started = Date.now();
    let held = false;
    const hold = () => {
      if (held) return;
      held = true;
      this.metrics.held += events.length;
      s.heldSinceFence += events.length;
    };
    for (;;) {
      while (s.release) {
        hold();
        const waited = Date.now() - started;
        if (waited >= this.holdTimeoutMs) throw new HeldTooLongError(`tenant ${tenantId} is being cut over; retry shortly`);
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([s.release.promise, new Promise((r) => (timer = setTimeout(r, this.holdTimeoutMs - waited)))]);
        clearTimeout(timer);
      }
      s.inflight++;
      try {
        const fresh = await this.writer(s, s.route.primary).write(events);
        this.metrics.accepted += fresh;
        this.metrics.duplicates += events.length - fresh;
        return { fresh, duplicates: events.length - fresh, heldMs: Date.now() - started };
      } catch (err) {
        if (!(err instanceof FencedWriteError)) throw err;
        hold();
        this.metrics.gateRefusals++;
      } finally {
        s.inflight--;
        if (s.inflight === 0) s.drained.splice(0).forEach((f) => f());
      }
      if (Date.now() - started >= this.holdTimeoutMs) throw new HeldTooLongError(`tenant ${tenantId} is being cut over; retry shortly`);
      await new Promise((r) => setTimeout(r, 20));
      // A plain read: a held write must never take the shared catalog's write lock from a switch.
      const route = this.catalog.get(tenantId);
      if (route) this.useRoute(s, route);
    }
  }

  /** Routes by `route` from now on; a writer to a side that is no longer primary is closed. */
  private useRoute(s: TenantState, route: CatalogEntry): void {
    s.route = route;
    const other: Side = route.primary === 'source' ? 'target' : 'source';
    void s.writers[other]?.close();
    delete s.writers[other];
  }

  /** Raises the fence; answers once every write begun before it has finished. */
  async fence(tenantId: string, leaseMs = this.fenceLeaseMs): Promise<{ fencedAt: number; epoch: number }> {
    const s = this.state(tenantId);
    if (!s.release) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      s.release = { promise, resolve };
      s.fencedAt = Date.now();
      s.heldSinceFence = 0;
    }
    // Each fence call (a retry re-raises it) starts the lease again.
    clearTimeout(s.lease);
    s.lease = setTimeout(() => {
      try {
        this.unfence(tenantId);
      } catch {
        // The node is shutting down (its catalog closed): nothing is held any more.
      }
    }, leaseMs).unref();
    if (s.inflight > 0) await new Promise<void>((r) => s.drained.push(r));
    return { fencedAt: s.fencedAt!, epoch: s.route.epoch };
  }

  /** Lifts the fence; held events proceed to whichever side is primary now. */
  unfence(tenantId: string): { pauseMs: number; held: number } {
    const s = this.state(tenantId);
    const pauseMs = s.fencedAt !== undefined ? Date.now() - s.fencedAt : 0;
    const held = s.heldSinceFence;
    const release = s.release;
    clearTimeout(s.lease);
    s.lease = undefined;
    s.release = undefined;
    s.fencedAt = undefined;
    release?.resolve();
    return { pauseMs, held };
  }

  /**
   * Changes the write mode and/or the outbox flag. With `epoch` (a worker that wrote the catalog
   * itself), this node only reloads the route, and refuses a change the catalog has moved past.
   */
  setMode(tenantId: string, change: { writeMode?: WriteMode; outbox?: boolean }, epoch?: number): TenantView {
    const s = this.state(tenantId);
    const asked = (r: CatalogEntry) => (change.writeMode === undefined || r.writeMode === change.writeMode) && (change.outbox === undefined || r.outbox === change.outbox);
    this.useRoute(s, epoch === undefined ? this.catalog.setMode(tenantId, change)! : this.reloadAt(s, epoch, asked));
    return this.view(tenantId);
  }

  /** Flips the primary; the side that stops being primary gets no more writes from this node. */
  setPrimary(tenantId: string, side: Side, outbox: boolean, epoch?: number): TenantView {
    const s = this.state(tenantId);
    this.useRoute(s, epoch === undefined ? this.catalog.setPrimary(tenantId, side, outbox) : this.reloadAt(s, epoch, (r) => r.primary === side));
    return this.view(tenantId);
  }

  /** The catalog's route, if it is still the one a change made at `epoch` asked for. */
  private reloadAt(s: TenantState, epoch: number, matches: (route: CatalogEntry) => boolean): CatalogEntry {
    const route = this.catalog.ensure(s.tenant.id);
    if (route.epoch > epoch || !matches(route))
      throw new StaleRouteChangeError(`tenant ${s.tenant.id}: this change was made at catalog epoch ${epoch}, but the catalog is at ${route.epoch} (primary ${route.primary}, ${route.writeMode}); a later change has replaced it`);
    return route;
  }

  close(): void {
    for (const s of this.tenants.values()) {
      s.release?.resolve();
      for (const w of Object.values(s.writers)) void w?.close();
    }
    this.tenants.clear();
  }
}
