// A tracking load generator, like many browsers: batches of events to the gateway at a steady rate,
// some batches sent twice on purpose (a retrying browser), refused ones retried. It remembers every
// event id the gateway acknowledged, so loss can be counted afterwards in the tenant's primary.
import Database from 'better-sqlite3';
import type { SqlSession } from '../engines';
import { join } from 'node:path';
import { Agent, request } from 'node:http';

export interface LoadOptions {
  gatewayUrl: string;
  /** Several gateway nodes: batches (and their retries) go round-robin, as behind a load balancer. */
  gatewayUrls?: string[];
  tenants: string[];
  eventsPerSecond: number;
  batchSize?: number;
  /** Share of batches sent a second time after their acknowledgement. */
  duplicateRatio?: number;
  maxInFlight?: number;
}

export interface LoadReport {
  acknowledged: number;
  sent: number;
  duplicatesSent: number;
  retries: number;
}

export class LoadGenerator {
  readonly acked = new Map<string, Set<string>>();
  private readonly pending: { tenant: string; body: string; ids: string[]; resend: boolean }[] = [];
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private timer?: NodeJS.Timeout;
  private inFlight = 0;
  private sends = 0;
  private produced = 0;
  private started = 0;
  private readonly report: LoadReport = { acknowledged: 0, sent: 0, duplicatesSent: 0, retries: 0 };

  constructor(private readonly options: LoadOptions) {
    for (const t of options.tenants) this.acked.set(t, new Set());
  }

  start(): void {
    this.started = Date.now();
    this.timer = setInterval(() => this.tick(), 20);
  }

  private tick(): void {
    const { eventsPerSecond, tenants } = this.options;
    const batchSize = this.options.batchSize ?? 5;
    const due = Math.floor(((Date.now() - this.started) / 1000) * eventsPerSecond);
    while (this.produced + batchSize <= due) {
      const tenant = tenants[Math.floor(this.produced / batchSize) % tenants.length];
      const ids = Array.from({ length: batchSize }, (_, i) => `load-${tenant}-${this.produced + i}`);
      this.produced += batchSize;
      const body = JSON.stringify(ids.map((event_id, i) => ({ event_id, kind: i % 3 ? 'view' : 'click', ad_id: 1 + (i % 7), payload: { page: '/landing' } })));
      this.pending.push({ tenant, body, ids, resend: false });
    }
    this.pump();
  }

  /** Sends queued batches while fewer than `maxInFlight` requests are under way. */
  private pump(): void {
    while (this.pending.length && this.inFlight < (this.options.maxInFlight ?? 32)) this.send(this.pending.shift()!);
  }

  private send(batch: { tenant: string; body: string; ids: string[]; resend: boolean }): void {
    this.inFlight++;
    this.report.sent += batch.ids.length;
    if (batch.resend) this.report.duplicatesSent += batch.ids.length;
    const nodes = this.options.gatewayUrls?.length ? this.options.gatewayUrls : [this.options.gatewayUrl];
    const url = new URL(`/t/${encodeURIComponent(batch.tenant)}/events`, nodes[this.sends++ % nodes.length]);
    const req = request(url, { method: 'POST', agent: this.agent, headers: { 'content-type': 'text/plain' } }, (res) => {
      res.resume();
      res.on('end', () => {
        this.inFlight--;
        if (res.statusCode === 200) {
          const acked = this.acked.get(batch.tenant)!;
          for (const id of batch.ids) acked.add(id);
          this.report.acknowledged += batch.ids.length;
          if (!batch.resend && Math.random() < (this.options.duplicateRatio ?? 0.05)) this.pending.push({ ...batch, resend: true });
        } else {
          this.retry(batch);
        }
      });
    });
    req.on('error', () => {
      this.inFlight--;
      this.retry(batch);
    });
    req.end(batch.body);
  }

  private retry(batch: { tenant: string; body: string; ids: string[]; resend: boolean }): void {
    this.report.retries++;
    setTimeout(() => this.pending.push(batch), 100);
  }

  /** Stops producing, then waits until every batch produced so far is acknowledged. */
  async stop(timeoutMs = 30000): Promise<LoadReport> {
    clearInterval(this.timer);
    const until = Date.now() + timeoutMs;
    while ((this.pending.length || this.inFlight) && Date.now() < until) {
      this.pump();
      await new Promise((r) => setTimeout(r, 20));
    }
    this.agent.destroy();
    return { ...this.report };
  }
}

/**
 * Acknowledged ids missing from the tenant's database, plus ids stored more than once: the events
 * lost. `file` is the tenant's database on its final primary.
 */
export function countLost(file: string, acked: Set<string>, table = 'tracking_events'): { lost: number; missing: number; duplicated: number } {
  const db = new Database(file, { readonly: true });
  try {
    return tallyLost(db.prepare(`SELECT event_id FROM "${table.replace(/"/g, '""')}" WHERE event_id LIKE 'load-%'`).pluck().iterate() as Iterable<string>, acked);
  } finally {
    db.close();
  }
}

/** The same count through an application session of any engine. */
export async function countLostIn(session: SqlSession, acked: Set<string>): Promise<{ lost: number; missing: number; duplicated: number }> {
  return tallyLost((await session.query<{ event_id: string }>("SELECT event_id FROM tracking_events WHERE event_id LIKE 'load-%'")).map((r) => r.event_id), acked);
}

/** Acknowledged events not stored, and events stored more than once. */
function tallyLost(stored: Iterable<string>, acked: Set<string>): { lost: number; missing: number; duplicated: number } {
  const counts = new Map<string, number>();
  for (const id of stored) counts.set(id, (counts.get(id) ?? 0) + 1);
  let missing = 0;
  for (const id of acked) if (!counts.has(id)) missing++;
  const duplicated = [...counts.values()].filter((n) => n > 1).length;
  return { lost: missing + duplicated, missing, duplicated };
}

export const tenantDatabaseFile = (directory: string, database: string): string => join(directory, `${database}.db`);
