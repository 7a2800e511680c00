// The demo's simulated tenant application: it routes by the catalog like the real one would. Reads go
// to the primary always; a write (a campaign note) only while the write mode is read_write. The mode
// check and the write happen under the catalog's write lock, so a freeze, which needs that lock,
// is in force only after every write begun before it has finished.
import Database from 'better-sqlite3';
import type { LoadedFleet } from '../config/fleet';
import { sqliteDirectory } from '../config/fleet';

export interface AppReport {
  reads: number;
  writes: number;
  /** Writes the application held back because the tenant was frozen. */
  writesPaused: number;
}

export class TenantApp {
  private readonly catalog: Database.Database;
  private timer?: NodeJS.Timeout;
  private readonly report: AppReport = { reads: 0, writes: 0, writesPaused: 0 };
  private tick = 0;

  constructor(
    private readonly fleet: LoadedFleet,
    private readonly everyMs = 100,
  ) {
    this.catalog = new Database(fleet.catalog.path);
    this.catalog.pragma('busy_timeout = 5000');
  }

  private fileOf(tenantId: string, side: 'source' | 'target'): string {
    const t = this.fleet.tenants.find((x) => x.id === tenantId)!;
    return `${sqliteDirectory(side === 'source' ? this.fleet.sources[t.source] : this.fleet.targets[t.target])}/${t.database}.db`;
  }

  private step(): void {
    const tenant = this.fleet.tenants[this.tick++ % this.fleet.tenants.length];
    this.catalog
      .transaction(() => {
        const route = this.catalog.prepare('SELECT primary_side, write_mode FROM tenants WHERE tenant_id = ?').get(tenant.id) as
          | { primary_side: 'source' | 'target'; write_mode: string }
          | undefined;
        const db = new Database(this.fileOf(tenant.id, route?.primary_side ?? 'source'));
        try {
          db.pragma('busy_timeout = 5000');
          db.prepare('SELECT count(*) FROM campaigns').get();
          this.report.reads++;
          if ((route?.write_mode ?? 'read_write') !== 'read_write') {
            this.report.writesPaused++;
            return;
          }
          db.prepare('UPDATE campaigns SET notes = ? WHERE id = 1').run(`edited by the app at ${new Date().toISOString()}`);
          this.report.writes++;
        } finally {
          db.close();
        }
      })
      .immediate();
  }

  start(): void {
    this.timer = setInterval(() => this.step(), this.everyMs);
  }

  /** Stops the application; safe to call more than once. */
  stop(): AppReport {
    clearInterval(this.timer);
    if (this.catalog.open) this.catalog.close();
    return { ...this.report };
  }
}
