// Gateway write throughput and latency, side by side in one run: change capture off, on, during
// repeated real cut-overs (fence, drain the change log to the other side, flip, release), and with the
// load spread over two gateway nodes on one tenant.
import { Agent, request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import type { BenchResult } from './measure';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFleet } from '../config/fleet';
import { createTenantDatabase } from '../cli/demo-data';
import { SqliteEngine } from '../engines/sqlite';
import { applyRange } from '../protocol/replicator';
import { createGateway, listenGateway } from '../ingestion/gateway';
import { percentile } from '../cli/waves';

const SECONDS = 4;
const CONCURRENCY = 16;

/** Posts one event; resolves with its latency in ms, or with the status of a refusal. */
function post(agent: Agent, url: URL, body: string): Promise<{ ms: number; status: number }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - started) / 1e6, status: res.statusCode ?? 0 }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** CONCURRENCY lanes posting events for `seconds`, spread evenly over `urls`; refusals are counted, not timed. */
async function drive(urls: URL | URL[], seconds: number): Promise<{ events: number; latencies: number[]; refused: number }> {
  const targets = Array.isArray(urls) ? urls : [urls];
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const latencies: number[] = [];
  let refused = 0;
  const until = Date.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, lane) => {
      const url = targets[lane % targets.length];
      while (Date.now() < until) {
        const { ms, status } = await post(agent, url, JSON.stringify({ kind: 'view', ad_id: 1, event_id: `b-${lane}-${n++}` }));
        if (status === 200) latencies.push(ms);
        else refused++;
      }
    }),
  );
  agent.destroy();
  return { events: latencies.length, latencies, refused };
}

const ADMIN_TOKEN_ENV = 'AIRLIFT_BENCH_ADMIN_TOKEN';
const ADMIN_TOKEN = 'bench-admin-token-0000';

export async function benchIngest(): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'airlift-bench-ingest-'));
  try {
    createTenantDatabase(join(dir, 'source'), 'bench', 1000);
    const doc = {
      sources: { s: { engine: 'sqlite', directory: './source' } },
      targets: { t: { engine: 'sqlite', directory: './target' } },
      storage: { container: 'unused', connectionStringEnv: 'UNUSED' },
      ingestion: { gateways: ['http://127.0.0.1:1'], adminTokenEnv: ADMIN_TOKEN_ENV },
      tenants: [{ id: 'bench', database: 'bench', source: 's', target: 't' }],
    };
    writeFileSync(join(dir, 'fleet.yaml'), stringify(doc));
    const fleet = parseFleet(doc, join(dir, 'fleet.yaml'));
    const source = new SqliteEngine(join(dir, 'source'));
    const target = new SqliteEngine(join(dir, 'target'));
    const gateway = createGateway({ fleet, adminToken: ADMIN_TOKEN });
    const served = await listenGateway(gateway);
    const url = new URL('/t/bench/events', served.url);
    const rows: Record<string, unknown>[] = [];
    const row = (mode: string, r: { events: number; latencies: number[]; refused: number }, extra: Record<string, unknown> = {}) =>
      rows.push({
        mode,
        eventsPerSecond: Math.round(r.events / SECONDS),
        p50Ms: r.latencies.length ? +percentile(r.latencies, 50)!.toFixed(2) : '',
        p99Ms: r.latencies.length ? +percentile(r.latencies, 99)!.toFixed(2) : '',
        maxMs: r.latencies.length ? +Math.max(...r.latencies).toFixed(1) : '',
        refused: r.refused,
        ...extra,
      });

    await drive(url, 1); // warm-up, not reported
    row('capture off', await drive(url, SECONDS));
    await source.startCapture('bench');
    await source.setWriteGate('bench', { state: 'open', migrationId: 'bench' });
    gateway.router.setMode('bench', { outbox: true });
    row('capture on', await drive(url, SECONDS));
    await target.restore('bench', await source.snapshot('bench', join(dir, 'work', 'bench.sqlite')), 'bench');

    // Two gateway nodes, each with its own router, catalog connection and database connections,
    // writing to the tenant's primary (capture on): the same load, half the lanes on each node.
    const nodes = [await listenGateway(createGateway({ fleet, adminToken: ADMIN_TOKEN })), await listenGateway(createGateway({ fleet, adminToken: ADMIN_TOKEN }))];
    try {
      const urls = nodes.map((n) => new URL('/t/bench/events', n.url));
      await drive(urls, 1); // warm-up, not reported
      row('2 nodes, capture on', await drive(urls, SECONDS));
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }

    // Cut-overs back and forth while the load runs; each one drains what the other side lacks.
    const pauses: number[] = [];
    // As the dual-write would have, bring the target up to date before the first cut-over.
    const stream = (from: typeof source, to: typeof source, origin: 'source' | 'target') => ({ database: 'bench', from, to, origin, name: `bench:${origin}` });
    const caughtUp = await applyRange(stream(source, target, 'source'), 0, await source.changeHead('bench'));
    const cursors = { source: caughtUp.cursor, target: await target.changeHead('bench') };
    let running = true;
    const cycles = (async () => {
      let on: 'source' | 'target' = 'source';
      while (running) {
        await new Promise((r) => setTimeout(r, 400));
        const [from, to] = on === 'source' ? [source, target] : [target, source];
        await gateway.router.fence('bench');
        await from.setWriteGate('bench', { state: 'fenced', migrationId: 'bench' });
        const head = await from.changeHead('bench');
        cursors[on] = (await applyRange(stream(from, to, on), cursors[on], head)).cursor;
        const next: 'source' | 'target' = on === 'source' ? 'target' : 'source';
        cursors[next] = Math.max(cursors[next], await to.changeHead('bench'));
        await to.setWriteGate('bench', { state: 'open', migrationId: 'bench' });
        gateway.router.setPrimary('bench', next, true);
        pauses.push(gateway.router.unfence('bench').pauseMs);
        on = next;
      }
    })();
    const during = await drive(url, SECONDS);
    running = false;
    await cycles;
    row('during cut-overs', during, { cutovers: pauses.length, pauseP50Ms: percentile(pauses, 50), pauseP99Ms: percentile(pauses, 99) });
    await served.stop();
    return { rows, ratios: {} };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
