// The judge of the fault matrix. It shares no code with the path under test: it opens the SQLite
// files itself, asks each gateway node over plain HTTP, and knows airlift only by its documented
// shapes (the catalog's `tenants` table, the tenant's tracking table, the `airlift_gate` row).
// Nothing here imports engines/, ingestion/, activities/, protocol/ or workflows/.
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';

/** How a workflow ended; `terminated`: by an operator through the Temporal API (nothing of its own ran after). */
export type Outcome = 'completed' | 'rolled_back' | 'failed' | 'terminated';

/** An ending the fault allows, and the words its reason must carry when it is not a completion. */
export interface Expectation {
  outcome: Outcome;
  reason?: RegExp;
}

/** A row the harness itself wrote to the tenant's primary (a table its deploy added): it must be on the final primary. */
export interface HarnessRow {
  table: string;
  column: string;
  value: string;
}

export interface TenantFiles {
  tenantId: string;
  sourceFile: string;
  targetFile: string;
  trackingTable: string;
}

export interface Observation {
  files: TenantFiles;
  catalogFile: string;
  /** Each gateway node's own URL (not the proxy's). */
  gateways: string[];
  adminToken: string;
  /** Every event id a gateway acknowledged for this tenant. */
  acked: Set<string>;
  /** Only ids with this prefix are the load's own (the tenant's history has others). */
  eventPrefix: string;
  /** `schemaDigest` of the source before the migration, whole and without airlift's objects. */
  sourceSchemaBefore: { whole: string; tenantOnly: string };
  /** The source's schema after the harness's own change (a deploy during the migration): accepted too. */
  sourceSchemaChanged?: { whole: string; tenantOnly: string };
  /** Rows the harness wrote itself (in a table it added): each must be on the final primary. */
  harnessRows?: HarnessRow[];
  /** The application's acknowledged writes the given side does not hold, and a write that never committed. */
  app: { lostOn: (side: 'source' | 'target') => Promise<string[]>; writes: number; stuck?: string };
  /** The ending the fault calls for, or the endings it allows (each with the reason it must give). */
  expected: Outcome | Expectation[];
  /** How the workflow ended, or 'running' when it had not ended within the bound. */
  ended: Outcome | 'running';
  /** The workflow's own words when it did not complete (its failure, or a refused rollback). */
  detail?: string;
}

export interface Broken {
  invariant: string;
  detail: string;
}

export interface Verdict {
  ok: boolean;
  broken: Broken[];
  appWrites?: number;
  appWritesLost?: number;
  eventsAccepted: number;
  eventsLost: number;
  eventsDuplicated: number;
  stranded: boolean;
}

/** Invariants whose breach leaves a tenant that nothing will repair by itself. */
const STRANDING = new Set(['ended', 'catalog', 'fence', 'write mode', 'journaling', 'routes']);

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

function open(file: string): Database.Database {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  return db;
}

/**
 * A digest of the database's schema as SQLite keeps it (every table, index, trigger and view with its
 * SQL text); with `tenantOnly`, airlift's own objects are left out. The rows are not in it: the
 * application writes to the tenant's tables the whole time, and its writes are checked one by one.
 */
export function schemaDigest(file: string, tenantOnly = false): string {
  const db = open(file);
  try {
    const objects = db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").all() as { name: string }[];
    return createHash('sha256').update(JSON.stringify(objects.filter((o) => !tenantOnly || !o.name.startsWith('airlift_')))).digest('hex');
  } finally {
    db.close();
  }
}

function tableExists(db: Database.Database, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

function catalogRow(file: string, tenantId: string): { primary: string; writeMode: string; outbox: number } | undefined {
  if (!existsSync(file)) return undefined;
  const db = open(file);
  try {
    const row = db.prepare('SELECT primary_side AS "primary", write_mode AS writeMode, outbox FROM tenants WHERE tenant_id = ?').get(tenantId) as
      | { primary: string; writeMode: string; outbox: number }
      | undefined;
    return row;
  } finally {
    db.close();
  }
}

function gateState(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  const db = open(file);
  try {
    if (!tableExists(db, 'airlift_gate')) return undefined;
    return (db.prepare('SELECT state FROM airlift_gate').get() as { state: string } | undefined)?.state;
  } finally {
    db.close();
  }
}

function countEvents(file: string, table: string, prefix: string): Map<string, number> {
  const counts = new Map<string, number>();
  if (!existsSync(file)) return counts;
  const db = open(file);
  try {
    if (!tableExists(db, table)) return counts;
    const rows = db.prepare(`SELECT event_id AS id, count(*) AS n FROM ${quote(table)} WHERE substr(event_id, 1, ?) = ? GROUP BY event_id`).iterate(prefix.length, prefix) as Iterable<{ id: string; n: number }>;
    for (const r of rows) counts.set(r.id, r.n);
    return counts;
  } finally {
    db.close();
  }
}

/** The harness's rows that `file` does not hold (a table or column that is not there holds none). */
function missingRows(file: string, rows: HarnessRow[]): HarnessRow[] {
  if (!rows.length) return [];
  const db = open(file);
  try {
    return rows.filter((r) => {
      try {
        return db.prepare(`SELECT 1 FROM ${quote(r.table)} WHERE ${quote(r.column)} = ?`).get(r.value) === undefined;
      } catch {
        return true;
      }
    });
  } finally {
    db.close();
  }
}

interface NodeView {
  primary?: string;
  writeMode?: string;
  outbox?: boolean;
  fenced?: boolean;
}

async function nodeView(gateway: string, tenantId: string, token: string): Promise<NodeView | string> {
  try {
    const res = await fetch(`${gateway}/admin/tenants/${encodeURIComponent(tenantId)}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return `answered ${res.status}`;
    return (await res.json()) as NodeView;
  } catch (err) {
    return `unreachable (${(err as Error).message})`;
  }
}

export async function check(o: Observation): Promise<Verdict> {
  const broken: Broken[] = [];
  const fail = (invariant: string, detail: string) => broken.push({ invariant, detail });
  const { tenantId } = o.files;
  const catalog = catalogRow(o.catalogFile, tenantId);

  // The workflow ended within the bound, the way the fault allows (and for the reason it allows).
  const allowed: Expectation[] = typeof o.expected === 'string' ? [{ outcome: o.expected }] : o.expected;
  if (o.ended === 'running') fail('ended', 'the workflow had not ended within the bound');
  else if (!allowed.some((e) => e.outcome === o.ended && (!e.reason || e.reason.test(o.detail ?? ''))))
    fail('outcome', `ended ${o.ended}${o.detail ? ` (${o.detail})` : ''}, expected ${allowed.map((e) => `${e.outcome}${e.reason ? ` with a reason matching ${e.reason}` : ''}`).join(' or ')}`);

  // Where the tenant must live now: the target only if it completed. A workflow still running, or
  // terminated by an operator (then repaired by reconcile), is judged where the catalog says it lives.
  const byCatalog = o.ended === 'running' || o.ended === 'terminated';
  const side: 'source' | 'target' = o.ended === 'completed' ? 'target' : byCatalog ? (catalog?.primary === 'target' ? 'target' : 'source') : 'source';
  const primaryFile = side === 'target' ? o.files.targetFile : o.files.sourceFile;

  // Every acknowledged event on the final primary, exactly once.
  const counts = countEvents(primaryFile, o.files.trackingTable, o.eventPrefix);
  let lost = 0;
  let duplicated = 0;
  const lostIds: string[] = [];
  for (const id of o.acked) {
    const n = counts.get(id) ?? 0;
    if (n === 0) {
      lost++;
      if (lostIds.length < 3) lostIds.push(id);
    } else if (n > 1) duplicated++;
  }
  if (lost) {
    const elsewhere = side === 'target' ? o.files.sourceFile : o.files.targetFile;
    const other = countEvents(elsewhere, o.files.trackingTable, o.eventPrefix);
    const onOther = [...o.acked].filter((id) => !counts.has(id) && other.has(id)).length;
    fail('events', `${lost} of ${o.acked.size} acknowledged events missing on the ${side} (e.g. ${lostIds.join(', ')}); ${onOther} of them are on the ${side === 'target' ? 'source' : 'target'}`);
  }
  if (duplicated) fail('events', `${duplicated} acknowledged events stored more than once on the ${side}`);

  // The target exists if and only if the tenant lives there.
  const targetExists = existsSync(o.files.targetFile);
  if (side === 'target' && !targetExists) fail('target', `${o.ended}, but the target database is gone`);
  if (side === 'source' && o.ended !== 'running' && targetExists) fail('target', `${o.ended}${o.ended === 'terminated' ? ' and repaired' : ''}, the tenant lives on its source, but the target database is still there`);

  // The catalog's primary, write mode and journaling.
  if (!catalog) {
    if (o.ended === 'completed') fail('catalog', 'the catalog has no row for the tenant');
  } else {
    if (!byCatalog && catalog.primary !== side) fail('catalog', `catalog primary is ${catalog.primary}, but the tenant ${o.ended} (its data is on the ${side})`);
    if (catalog.writeMode !== 'read_write') fail('write mode', `catalog write mode is ${catalog.writeMode}`);
    if (catalog.outbox) fail('journaling', 'the catalog still has journaling (outbox) on');
  }

  // Every gateway node: no fence, and routing to the side the tenant lives on.
  for (const gateway of o.gateways) {
    const view = await nodeView(gateway, tenantId, o.adminToken);
    if (typeof view === 'string') {
      fail('fence', `gateway ${gateway} ${view}; cannot confirm the fence is lifted`);
      continue;
    }
    if (view.fenced !== false) fail('fence', `gateway ${gateway} still has the tenant fenced`);
    if (view.primary !== undefined && view.primary !== side) fail('routes', `gateway ${gateway} routes to the ${view.primary}, the tenant lives on the ${side}`);
    if (view.writeMode !== undefined && view.writeMode !== 'read_write') fail('write mode', `gateway ${gateway} has write mode ${view.writeMode}`);
  }
  const gate = gateState(primaryFile);
  if (gate !== undefined && gate !== 'open') fail('fence', `the ${side} database's airlift_gate is '${gate}', so writes to the primary are refused`);

  // Every acknowledged application write, on every table, is on the final primary.
  const appLost = existsSync(primaryFile) ? await o.app.lostOn(side) : [`the ${side} database is gone`];
  if (appLost.length) fail('app writes', `${appLost.length} acknowledged application writes missing on the ${side} (e.g. ${appLost.slice(0, 3).join('; ')})`);
  if (o.app.stuck) fail('app writes', `the application could not write: ${o.app.stuck}`);
  const harnessLost = existsSync(primaryFile) ? missingRows(primaryFile, o.harnessRows ?? []) : (o.harnessRows ?? []);
  if (harnessLost.length) fail('app writes', `${harnessLost.length} of the rows written by the harness's deploy are missing on the ${side} (e.g. ${harnessLost.slice(0, 3).map((r) => `${r.table}.${r.column}=${r.value}`).join('; ')})`);

  // The source's schema: exactly as it was when the tenant stays there (capture removed), and its
  // own objects unchanged when it is retired (it keeps only airlift's fence).
  if (existsSync(o.files.sourceFile)) {
    const schemas = [o.sourceSchemaBefore, ...(o.sourceSchemaChanged ? [o.sourceSchemaChanged] : [])];
    const [whole, tenantOnly] = [schemaDigest(o.files.sourceFile), schemaDigest(o.files.sourceFile, true)];
    if (side === 'source' && !schemas.some((s) => s.whole === whole)) fail('source', "the source's schema is not as it was before the migration (change capture or airlift's tables left behind)");
    if (!schemas.some((s) => s.tenantOnly === tenantOnly)) fail('source', "the source's own tables, indexes or triggers changed");
  } else fail('source', 'the source database is gone');

  return {
    ok: broken.length === 0,
    broken,
    eventsAccepted: o.acked.size,
    eventsLost: lost,
    eventsDuplicated: duplicated,
    appWrites: o.app.writes,
    appWritesLost: appLost.length,
    stranded: broken.some((b) => STRANDING.has(b.invariant)),
  };
}
