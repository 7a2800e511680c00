// The demo's simulated tenant application, on any engine that opens application sessions (SQLite,
// PostgreSQL): it routes by the catalog like the real one would and
// writes to several tables of every tenant the whole time (campaign notes, new ads and their deletion,
// budget upserts, an audit log without a primary key). A write refused by the database's write gate
// (a cut-over's fence, a route that just moved) is retried after reloading the route; how long a
// write waited is its pause. Every acknowledged write is remembered, so `lost` can check the final
// primary holds each one.
import Database from 'better-sqlite3';
import type { LoadedFleet, Tenant } from '../config/fleet';
import { fleetEngines, type FleetEngines, type SqlSession } from '../engines';
import { percentile } from './waves';

export interface AppReport {
  reads: number;
  /** Application writes acknowledged (committed) in all. */
  writes: number;
  /** Acknowledged writes per phase of their tenant's migration at the time. */
  writesByPhase: Record<string, number>;
  /** Writes that had to wait (a fence, a closed gate, the catalog's read_only) before they committed. */
  writesDelayed: number;
  /** Per tenant, the longest time one write waited; then its median and 99th percentile over tenants. */
  writePauseMsByTenant: Record<string, number>;
  writePauseMsP50: number | null;
  writePauseMsP99: number | null;
  /** Tenants whose last write could not commit within 30 s of the stop (a tenant left fenced). */
  stuck: Record<string, string>;
}

/** What the application believes each tenant holds after its acknowledged writes. */
interface Expected {
  notes: Map<number, string>;
  ads: Set<number>;
  deletedAds: Set<number>;
  budgets: Map<string, number>;
  audit: Set<string>;
}

const RETRY_MS = 5;
/** How long a write under way at the stop may still wait for its tenant to take writes. */
const STOP_WAIT_MS = 30_000;

export class TenantApp {
  private readonly catalog: Database.Database;
  private running = false;
  private loops: Promise<void>[] = [];
  private n = 0;
  private readonly expected = new Map<string, Expected>();
  private readonly report: AppReport = { reads: 0, writes: 0, writesByPhase: {}, writesDelayed: 0, writePauseMsByTenant: {}, writePauseMsP50: null, writePauseMsP99: null, stuck: {} };

  private readonly engines: FleetEngines;
  /** One session per tenant and side, opened again after any failure. */
  private readonly sessions = new Map<string, SqlSession>();

  constructor(
    private readonly fleet: LoadedFleet,
    private readonly everyMs = 50,
    /** The tenant's phase as last seen, for `writesByPhase`. */
    private readonly phaseOf: (tenantId: string) => string = () => 'unknown',
  ) {
    this.catalog = new Database(fleet.catalog.path);
    this.catalog.pragma('busy_timeout = 5000');
    this.engines = fleetEngines(fleet, process.env, { managedInstance: () => { throw new Error('the application restores nothing'); } });
  }

  private async session(tenant: Tenant, side: 'source' | 'target'): Promise<SqlSession> {
    const key = `${tenant.id}:${side}`;
    let s = this.sessions.get(key);
    if (!s) {
      const engine = side === 'source' ? this.engines.engine('sources', tenant.source) : this.engines.engine('targets', tenant.target);
      if (!engine.openSession) throw new Error(`the demo application cannot write to ${engine.describe()}: its engine opens no application sessions`);
      this.sessions.set(key, (s = await engine.openSession(tenant.database)));
    }
    return s;
  }

  private async dropSession(tenant: Tenant, side: 'source' | 'target'): Promise<void> {
    const key = `${tenant.id}:${side}`;
    await this.sessions.get(key)?.close().catch(() => undefined);
    this.sessions.delete(key);
  }

  private route(tenantId: string): { side: 'source' | 'target'; frozen: boolean } {
    const row = this.catalog.prepare('SELECT primary_side, write_mode FROM tenants WHERE tenant_id = ?').get(tenantId) as { primary_side: 'source' | 'target'; write_mode: string } | undefined;
    return { side: row?.primary_side ?? 'source', frozen: (row?.write_mode ?? 'read_write') !== 'read_write' };
  }

  /** One write, chosen in turn among the tables; `record` runs only once it has committed. */
  private nextWrite(tenant: Tenant): { run: (db: SqlSession) => Promise<unknown>; record: (e: Expected) => void } {
    const n = ++this.n;
    const value = `app-${tenant.id}-${n}`;
    const e = this.expectedOf(tenant.id);
    switch (n % 5) {
      case 0: {
        const id = 1 + (n % 3);
        return { run: (db) => db.query('UPDATE campaigns SET notes = ? WHERE id = ?', [value, id]), record: (x) => x.notes.set(id, value) };
      }
      case 1: {
        const id = 1_000_000 + n;
        return {
          run: (db) => db.query('INSERT INTO ads (id, campaign_id, headline, creative, cpc) VALUES (?, 1, ?, ?, ?)', [id, value, Buffer.from(value), n / 100]),
          record: (x) => x.ads.add(id),
        };
      }
      case 2: {
        const id = [...e.ads][0];
        if (id === undefined) return { run: async () => undefined, record: () => undefined };
        return { run: (db) => db.query('DELETE FROM ads WHERE id = ?', [id]), record: (x) => (x.ads.delete(id), x.deletedAds.add(id)) };
      }
      case 3: {
        const day = `app-day-${n % 7}`;
        return {
          run: (db) => db.query('INSERT INTO budgets (campaign_id, day, spend_cents) VALUES (1, ?, ?) ON CONFLICT (campaign_id, day) DO UPDATE SET spend_cents = excluded.spend_cents', [day, n]),
          record: (x) => x.budgets.set(day, n),
        };
      }
      default:
        return { run: (db) => db.query("INSERT INTO audit_log (at, actor, action, detail) VALUES (?, 'app', 'app.write', ?)", [new Date().toISOString(), value]), record: (x) => x.audit.add(value) };
    }
  }

  private expectedOf(tenantId: string): Expected {
    let e = this.expected.get(tenantId);
    if (!e) this.expected.set(tenantId, (e = { notes: new Map(), ads: new Set(), deletedAds: new Set(), budgets: new Map(), audit: new Set() }));
    return e;
  }

  /** Writes until it commits, reloading the route after each refusal; returns how long it waited. */
  private async writeOnce(tenant: Tenant): Promise<number> {
    const write = this.nextWrite(tenant);
    const started = Date.now();
    for (;;) {
      const { side, frozen } = this.route(tenant.id);
      if (!frozen) {
        try {
          const db = await this.session(tenant, side);
          await db.transaction(async () => {
            await db.query('SELECT count(*) FROM campaigns');
            this.report.reads++;
            await write.run(db);
          });
          write.record(this.expectedOf(tenant.id));
          return Date.now() - started;
        } catch (err) {
          // A refusal by the write gate, a database not there (yet, or any more), a connection lost, a
          // deadlock the server broke: the route is read again and the write tried again.
          if (!/fenced|unable to open|no such table|SQLITE_CANTOPEN|does not exist|deadlock|ConnectionError|connect|terminat/i.test(`${(err as Error).name} ${(err as Error).message}`)) throw err;
        } finally {
          // A session lives for one write, as a request of the application would: a database dropped
          // and made again (a rollback, a retried restore) is never written through an old handle.
          await this.dropSession(tenant, side);
        }
      }
      if (!this.running && Date.now() - started > STOP_WAIT_MS) throw new Error(`a write waited ${Math.round((Date.now() - started) / 1000)} s and never committed (last route: ${side}${frozen ? ', read_only' : ''})`);
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }

  private async loop(tenant: Tenant): Promise<void> {
    while (this.running) {
      const phase = this.phaseOf(tenant.id);
      const waited = await this.writeOnce(tenant);
      this.report.writes++;
      this.report.writesByPhase[phase] = (this.report.writesByPhase[phase] ?? 0) + 1;
      if (waited > RETRY_MS) this.report.writesDelayed++;
      this.report.writePauseMsByTenant[tenant.id] = Math.max(this.report.writePauseMsByTenant[tenant.id] ?? 0, waited);
      await new Promise((r) => setTimeout(r, this.everyMs));
    }
  }

  start(): void {
    this.running = true;
    this.loops = this.fleet.tenants.map((t) => this.loop(t).catch((err: unknown) => void (this.report.stuck[t.id] = (err as Error).message)));
  }

  /** Stops the application once every write under way has committed; safe to call more than once. */
  async stop(): Promise<AppReport> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
    for (const key of [...this.sessions.keys()]) {
      await this.sessions.get(key)?.close().catch(() => undefined);
      this.sessions.delete(key);
    }
    const pauses = Object.values(this.report.writePauseMsByTenant);
    return { ...this.report, writePauseMsP50: percentile(pauses, 50), writePauseMsP99: percentile(pauses, 99) };
  }

  /** Acknowledged writes the tenant's final primary does not hold (after `stop`). */
  async lost(): Promise<{ tenant: string; missing: string[] }[]> {
    const out: { tenant: string; missing: string[] }[] = [];
    for (const tenant of this.fleet.tenants) {
      const missing = await this.lostOf(tenant.id);
      if (missing.length) out.push({ tenant: tenant.id, missing });
    }
    return out;
  }

  /** One tenant's acknowledged writes that its final primary (as the catalog names it) does not hold. */
  async lostOf(tenantId: string, side = this.route(tenantId).side): Promise<string[]> {
    const tenant = this.fleet.tenants.find((t) => t.id === tenantId)!;
    const e = this.expected.get(tenant.id);
    if (!e) return [];
    const db = await this.session(tenant, side);
    const one = async (sql: string, params: unknown[]) => Object.values((await db.query<Record<string, unknown>>(sql, params))[0] ?? {})[0];
    const missing: string[] = [];
    try {
      for (const [id, notes] of e.notes) if ((await one('SELECT notes FROM campaigns WHERE id = ?', [id])) !== notes) missing.push(`campaigns id=${id} notes=${notes}`);
      for (const id of e.ads) if ((await one('SELECT 1 AS found FROM ads WHERE id = ?', [id])) === undefined) missing.push(`ads id=${id}`);
      for (const id of e.deletedAds) if ((await one('SELECT 1 AS found FROM ads WHERE id = ?', [id])) !== undefined) missing.push(`ads id=${id} deleted`);
      for (const [day, spend] of e.budgets) if (Number(await one('SELECT spend_cents FROM budgets WHERE campaign_id = 1 AND day = ?', [day])) !== spend) missing.push(`budgets day=${day} spend=${spend}`);
      for (const detail of e.audit) if ((await one('SELECT 1 AS found FROM audit_log WHERE detail = ?', [detail])) === undefined) missing.push(`audit_log ${detail}`);
    } finally {
      await this.dropSession(tenant, side);
    }
    return missing;
  }

  async close(): Promise<void> {
    this.catalog.close();
    await this.engines.close();
  }

  /** How many writes the application had acknowledged for one tenant's tables, counted by what it expects. */
  expectedCount(tenantId: string): number {
    const e = this.expected.get(tenantId);
    return e ? e.notes.size + e.ads.size + e.deletedAds.size + e.budgets.size + e.audit.size : 0;
  }
}
