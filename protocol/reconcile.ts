// Reconcile: finds and repairs tenants that no migration workflow owns any more (its history was
// lost, or it was terminated by hand), from what the databases, the catalog, the gateways and the
// blobs say. Temporal-free: who owns a tenant is asked of the caller.
//
// The repair leaves each tenant on the side the catalog names as primary (writers only ever commit
// to the primary, so that side holds its newest writes), opens that side's write gate, fences the
// other side, thaws writes, turns journaling off, lifts every gateway fence, and drops the target
// only when the tenant is on its source and the target's marker names a migration no workflow runs.
// It never drops a source, and never a target the tenant is served from.
import type { ChangeCapture, Inventory, WriteGate } from '../engines/engine';
import { migrationOfBlob, tenantFolderPrefix } from '../azure/artifact-folder';
import type { Catalog, Side, WriteMode } from '../ingestion/catalog';
import { randomUUID } from 'node:crypto';
import type { RouteControl } from '../ingestion/routes';

/** Who runs a migration of a tenant now. `unknown` when Temporal cannot be asked. */
export type Ownership =
  | { kind: 'workflow'; workflowId: string; migrationId?: string }
  | { kind: 'none'; lastRun?: string }
  | { kind: 'unknown'; reason: string };

/** One side of a tenant: what reconcile reads and changes there. */
export type SideEngine = Pick<Inventory, 'probe'> & Pick<ChangeCapture, 'writeGate' | 'setWriteGate' | 'stopCapture'>;

export interface ReconcileTenant {
  tenantId: string;
  database: string;
  source: SideEngine;
  target: SideEngine;
  /** Drops the target only if `migrationId` made it; returns whether anything was dropped. */
  dropTarget(migrationId: string): Promise<boolean>;
}

export interface ReconcileAdapters {
  catalog: Pick<Catalog, 'get' | 'takeForRepair' | 'releaseRepair'>;
  /** Names this run of reconcile in the catalog's repair hold (for whoever it turns away). */
  holder?: string;
  /** Modes and fences: through the gateways when the fleet has them, else the catalog alone. */
  routes: Pick<RouteControl, 'setMode' | 'unfence' | 'setPrimary'>;
  /** Each gateway node's view of the tenant; absent when the fleet has no gateways. */
  gatewayViews?(tenantId: string): Promise<GatewayView[]>;
  /** Blobs whose name starts with `prefix`. */
  listBlobs?(prefix: string): AsyncIterable<{ name: string; size: number }>;
  ownerOf(tenantId: string): Promise<Ownership>;
  /** Migration ids some running workflow runs; undefined when Temporal cannot be asked. */
  liveMigrations: ReadonlySet<string> | undefined;
}

export interface GatewayView {
  gateway: string;
  fenced?: boolean;
  /** The side the node routes the tenant's writes to. */
  primary?: Side;
  /** The node did not answer. */
  error?: string;
}

export interface SideState {
  exists: boolean;
  /** null: no gate row, which writers take as open. */
  gate: WriteGate | null;
  /** The migration whose marker claims this database (targets). */
  restoredBy?: string;
  error?: string;
}

export interface BlobGroup {
  migrationId: string;
  blobs: number;
  bytes: number;
}

export type Repair =
  | { step: 'fence'; side: Side }
  | { step: 'open'; side: Side }
  | { step: 'route'; side: Side; gateways: string[] }
  | { step: 'thaw'; writeMode: WriteMode; outbox: boolean; primary: Side; migrationId?: string }
  | { step: 'unfence'; gateways: string[] }
  | { step: 'drop-target'; migrationId: string };

export interface TenantReport {
  tenantId: string;
  database: string;
  owner: Ownership;
  catalog: { primary: Side; writeMode: WriteMode; outbox: boolean; known: boolean };
  source: SideState;
  target: SideState;
  gateways?: GatewayView[];
  blobs?: BlobGroup[] | { error: string };
  /** What --apply does (or did) for this tenant. */
  repairs: Repair[];
  /** What reconcile cannot read or repair by itself: a person must look. */
  problems: string[];
  notes: string[];
  /** After --apply: the repairs done, and those that failed with why. */
  applied?: string[];
  failed?: string[];
}

export function describeRepair(r: Repair, database: string): string {
  switch (r.step) {
    case 'fence':
      return `fence the ${r.side} (its write gate to 'fenced': the tenant is not served from it)`;
    case 'open':
      return `open the ${r.side}'s write gate (it is the primary)`;
    case 'route':
      return `route the tenant to its ${r.side} on gateway ${r.gateways.join(', ')} (they still route to the other side)`;
    case 'thaw':
      return `catalog: write mode ${r.writeMode} -> read_write${r.outbox ? `, journaling off; change capture removed from the ${r.primary} (the other side keeps only its fence)` : ''}`;
    case 'unfence':
      return `lift the fence on gateway ${r.gateways.join(', ')}`;
    case 'drop-target':
      return `drop target database ${database} (restored by migration ${r.migrationId}, which no workflow runs)`;
  }
}

async function readSide(engine: SideEngine, database: string): Promise<SideState> {
  try {
    const probe = await engine.probe(database);
    const gate = probe.exists ? await engine.writeGate(database) : null;
    return { exists: probe.exists, gate, restoredBy: probe.restoredBy };
  } catch (err) {
    return { exists: false, gate: null, error: (err as Error).message };
  }
}

async function readBlobs(adapters: ReconcileAdapters, tenantId: string): Promise<BlobGroup[] | { error: string } | undefined> {
  if (!adapters.listBlobs) return undefined;
  const groups = new Map<string, BlobGroup>();
  try {
    for await (const blob of adapters.listBlobs(tenantFolderPrefix(tenantId))) {
      const migrationId = migrationOfBlob(tenantId, blob.name);
      const group = groups.get(migrationId) ?? { migrationId, blobs: 0, bytes: 0 };
      group.blobs++;
      group.bytes += blob.size;
      groups.set(migrationId, group);
    }
  } catch (err) {
    return { error: (err as Error).message.split('\n')[0] };
  }
  return [...groups.values()];
}

const gateState = (s: SideState): string => (!s.exists ? 'absent' : (s.gate?.state ?? 'open (no gate)'));

/** Reads one tenant and works out what a repair would do; changes nothing. */
export async function inspectTenant(adapters: ReconcileAdapters, tenant: ReconcileTenant, owner?: Ownership): Promise<TenantReport> {
  const { tenantId, database } = tenant;
  const entry = adapters.catalog.get(tenantId);
  const [ownerNow, source, target, gateways, blobs] = await Promise.all([
    owner ?? adapters.ownerOf(tenantId),
    readSide(tenant.source, database),
    readSide(tenant.target, database),
    adapters.gatewayViews?.(tenantId),
    readBlobs(adapters, tenantId),
  ]);
  const report: TenantReport = {
    tenantId,
    database,
    owner: ownerNow,
    catalog: { primary: entry?.primary ?? 'source', writeMode: entry?.writeMode ?? 'read_write', outbox: entry?.outbox ?? false, known: entry !== undefined },
    source,
    target,
    gateways,
    blobs,
    repairs: [],
    problems: [],
    notes: [],
  };
  for (const [side, state] of [['source', source], ['target', target]] as const) if (state.error) report.problems.push(`${side}: cannot be read: ${state.error}`);
  // A node that does not answer holds nothing reconcile needs: the write gates are the authority, and
  // the node loads its routes from the catalog when it serves again.
  for (const g of gateways ?? []) if (g.error) report.notes.push(`gateway ${g.gateway} did not answer (${g.error}): repaired without it; it loads its routes from the catalog when it serves again`);
  if (blobs && 'error' in blobs) report.notes.push(`blobs: cannot be listed: ${blobs.error}`);

  if (ownerNow.kind === 'workflow') {
    report.notes.push(`owned by running workflow ${ownerNow.workflowId}${ownerNow.migrationId ? ` (migration ${ownerNow.migrationId})` : ''}: left alone`);
    return report;
  }
  if (ownerNow.kind === 'unknown') report.notes.push(`ownership unknown (${ownerNow.reason}): what a repair would do is shown, but --apply is refused`);
  if (report.problems.length) return report;

  const primary = report.catalog.primary;
  const other: Side = primary === 'source' ? 'target' : 'source';
  const sides = { source, target };
  if (!sides[primary].exists) {
    report.problems.push(`the catalog serves the tenant from its ${primary}, but database ${database} is not there: restore it or move the tenant by hand`);
    return report;
  }
  if (sides[primary].gate && sides[primary].gate!.state !== 'open') report.repairs.push({ step: 'open', side: primary });

  // The target is ours to drop only when the tenant is not served from it and its marker names a
  // migration that no workflow runs any more.
  // (With ownership unknown it is shown as a candidate; --apply is refused then anyway.)
  const marker = target.restoredBy;
  const live = adapters.liveMigrations;
  const markerLive = marker !== undefined && live?.has(marker) === true;
  const droppable = primary === 'source' && marker !== undefined && (live ? !markerLive : ownerNow.kind === 'unknown');
  if (markerLive) report.notes.push(`target's marker names migration ${marker}, which a running workflow runs: left alone`);
  if (primary === 'source' && marker !== undefined && !live && ownerNow.kind === 'none')
    report.notes.push(`whether migration ${marker} is still running cannot be told (a running workflow's migration id could not be read): target left alone`);
  if (primary === 'source' && target.exists && marker === undefined)
    report.notes.push(`target database ${database} exists but no airlift migration made it: left alone (a new migration's preflight will refuse it)`);
  const otherOurs = other === 'source' || marker !== undefined;
  if (other === 'target' && target.gate?.state === 'open' && otherOurs)
    report.notes.push("the target's write gate is open although the tenant is on its source (a cut-over stopped between opening it and the flip; nothing was routed to it)");
  // A target about to be dropped is fenced first too: a drop never takes a side that may take writes.
  if (sides[other].exists && otherOurs && sides[other].gate?.state !== 'fenced') report.repairs.push({ step: 'fence', side: other });
  const misrouted = (gateways ?? []).filter((g) => g.primary !== undefined && g.primary !== primary).map((g) => g.gateway);
  if (misrouted.length) report.repairs.push({ step: 'route', side: primary, gateways: misrouted });

  if (report.catalog.writeMode !== 'read_write' || report.catalog.outbox)
    report.repairs.push({ step: 'thaw', writeMode: report.catalog.writeMode, outbox: report.catalog.outbox, primary, migrationId: source.gate?.migrationId ?? target.gate?.migrationId ?? marker ?? undefined });
  const fencedOn = (gateways ?? []).filter((g) => g.fenced).map((g) => g.gateway);
  if (fencedOn.length) report.repairs.push({ step: 'unfence', gateways: fencedOn });
  if (droppable) report.repairs.push({ step: 'drop-target', migrationId: marker! });

  if (primary === 'target' && report.repairs.length)
    report.notes.push('stays on its target, which holds its newest writes; the source is no longer kept current (as after a completed migration)');
  if (report.repairs.length && ownerNow.kind === 'none' && ownerNow.lastRun) report.notes.push(`last workflow: ${ownerNow.lastRun}`);
  return report;
}

/** How long reconcile holds a tenant it repairs; a reconcile that dies lets go by itself. */
export const REPAIR_LEASE_MS = 5 * 60_000;

/**
 * Carries out a report's repairs, in an order that never lets a writer reach the wrong side: the
 * side not served is fenced first, the primary opened, writes thawed, gateway fences lifted, and the
 * target dropped last, and only if every step before it succeeded. Ownership is asked again first:
 * a migration that started meanwhile is left alone. Then the tenant is taken in the catalog before
 * anything is changed: the epoch moves on, so a switch attempt still running (a workflow terminated
 * while its activity was not) is refused at its flip, and migration steps that begin meanwhile are
 * refused; the catalog is read again after, and again before the target is dropped.
 */
export async function repairTenant(adapters: ReconcileAdapters, tenant: ReconcileTenant, report: TenantReport): Promise<void> {
  report.applied = [];
  report.failed = [];
  if (!report.repairs.length) return;
  const owner = await adapters.ownerOf(tenant.tenantId);
  if (owner.kind !== 'none') {
    report.failed.push(owner.kind === 'workflow' ? `a migration started meanwhile (${owner.workflowId}): left alone` : `ownership unknown (${owner.reason}): left alone`);
    return;
  }
  const holder = adapters.holder ?? `reconcile ${randomUUID()}`;
  const taken = adapters.catalog.takeForRepair(tenant.tenantId, holder, REPAIR_LEASE_MS);
  if (!taken) {
    report.failed.push('another reconcile is repairing this tenant now: left alone');
    return;
  }
  try {
    if (taken.primary !== report.catalog.primary) {
      report.failed.push(`the catalog moved to the ${taken.primary} since it was read (a cut-over attempt was still running and flipped it); nothing changed: run reconcile again`);
      return;
    }
    const order: Repair['step'][] = ['fence', 'open', 'route', 'thaw', 'unfence', 'drop-target'];
    const steps = [...report.repairs].sort((a, b) => order.indexOf(a.step) - order.indexOf(b.step));
    for (const repair of steps) {
      const what = describeRepair(repair, tenant.database);
      if (repair.step === 'drop-target' && report.failed.length) {
        report.failed.push(`${what}: skipped, since an earlier step failed`);
        continue;
      }
      // Read again before anything is destroyed: the tenant must still be served from its source.
      const now = adapters.catalog.get(tenant.tenantId);
      if (repair.step === 'drop-target' && now?.primary !== 'source') {
        report.failed.push(`${what}: skipped, since the catalog names the ${now?.primary} now; run reconcile again`);
        continue;
      }
      try {
        await carryOut(adapters, tenant, repair);
        report.applied.push(what);
      } catch (err) {
        report.failed.push(`${what}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  } finally {
    adapters.catalog.releaseRepair(tenant.tenantId, holder);
  }
}

async function carryOut(adapters: ReconcileAdapters, tenant: ReconcileTenant, repair: Repair): Promise<void> {
  const engineOf = (side: Side) => (side === 'source' ? tenant.source : tenant.target);
  switch (repair.step) {
    case 'fence':
    case 'open': {
      // Compare-and-set against what is read now: a gate that moves meanwhile is left to whoever moved it.
      const engine = engineOf(repair.side);
      const current = await engine.writeGate(tenant.database);
      const state = repair.step === 'fence' ? 'fenced' : 'open';
      if (!(await engine.setWriteGate(tenant.database, { state, migrationId: current?.migrationId ?? null, token: null }, { states: [current?.state ?? 'none'] })))
        throw new Error(`the ${repair.side}'s write gate changed while reconcile set it; run reconcile again`);
      return;
    }
    case 'route':
      return void (await adapters.routes.setPrimary(tenant.tenantId, repair.side, false));
    case 'thaw':
      // Recorded as a later run of the migration it ends: a step of that migration left running on a
      // worker (journaling, say) that wakes afterwards is refused, having changed nothing.
      await adapters.routes.setMode(tenant.tenantId, { writeMode: 'read_write', outbox: false }, repair.migrationId ? { owner: `${repair.migrationId}:reconcile-${randomUUID()}`, step: 0 } : undefined);
      if (repair.outbox) {
        await engineOf(repair.primary).stopCapture(tenant.database, { keepFence: false });
        // A source the tenant left keeps its fence; a target it never moved to is fenced or dropped above.
        if (repair.primary === 'target') await tenant.source.stopCapture(tenant.database, { keepFence: true });
      }
      return;
    case 'unfence':
      return void (await adapters.routes.unfence(tenant.tenantId));
    case 'drop-target':
      if (!(await tenant.dropTarget(repair.migrationId))) throw new Error(`the target's marker no longer names migration ${repair.migrationId}; nothing dropped`);
      return;
  }
}

/** One line per fact, for a person: what was found, then what a repair does. */
export function renderReport(report: TenantReport): string[] {
  const lines = [`${report.tenantId} (database ${report.database})`];
  const c = report.catalog;
  lines.push(`  catalog: ${c.known ? `primary ${c.primary}, ${c.writeMode}, outbox ${c.outbox ? 'on' : 'off'}` : 'not listed (on its source)'}`);
  lines.push(`  write gates: source ${gateState(report.source)}, target ${gateState(report.target)}${report.target.restoredBy ? ` (marker: migration ${report.target.restoredBy})` : ''}`);
  if (report.gateways) lines.push(`  gateways: ${report.gateways.map((g) => `${g.gateway} ${g.error ? 'unreachable' : g.fenced ? 'fenced' : 'not fenced'}`).join(', ')}`);
  if (report.blobs && !('error' in report.blobs))
    lines.push(`  blobs: ${report.blobs.length ? report.blobs.map((b) => `${b.blobs} of migration ${b.migrationId} (${b.bytes} bytes)`).join(', ') : 'none'}`);
  for (const n of report.notes) lines.push(`  note: ${n}`);
  for (const p of report.problems) lines.push(`  PROBLEM: ${p}`);
  if (report.applied) {
    for (const a of report.applied) lines.push(`  done: ${a}`);
    for (const f of report.failed ?? []) lines.push(`  FAILED: ${f}`);
    for (const r of report.repairs) lines.push(`  still needed: ${describeRepair(r, report.database)}`);
  } else if (report.repairs.length) for (const r of report.repairs) lines.push(`  would: ${describeRepair(r, report.database)}`);
  else if (!report.problems.length) lines.push('  nothing to repair');
  return lines;
}

export const needsAttention = (r: TenantReport): boolean => r.repairs.length > 0 || r.problems.length > 0;
