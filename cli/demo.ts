// `airlift demo`: the whole chain on one machine with no cloud. Real Temporal dev server, real
// Azurite, real SQLite tenant databases (or PostgreSQL ones on two private clusters, --engine
// postgres); one wave, watched live, summarised at the end.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadFleet } from '../config/fleet';
import { createAirliftWorker } from '../workers/worker';
import { DEMO_SIDES, type DemoSides } from './demo-sides';
import { fleetEngines } from '../engines';
import { startEmbeddedStack } from './stack';
import { formatBytes, renderTable } from './observe';
import { OperatorError, startWave, summarize, watchWave, type WaveSummary } from './waves';
import { randomBytes } from 'node:crypto';
import { freePort } from '../azure/azurite';
import { createGateway, listenGateway } from '../ingestion/gateway';
import { Catalog } from '../ingestion/catalog';
import { rollbackSignal, tenantWorkflowId } from '../workflows/contract';
import { countLostIn, LoadGenerator } from './load';
import { TenantApp, type AppReport } from './tenant-app';
import { serveWarRoom } from './war-room';
import { screenshotWarRoom } from './browser';

export interface DemoOptions {
  /** What the tenants live on (cli/demo-sides.ts): sqlite (default) or postgres. */
  engine?: string;
  tenants: number;
  rows: number;
  concurrency: number;
  json: boolean;
  keep: boolean;
  /** Tracking events per second sent through the gateway for the whole wave. */
  load?: number;
  /** A tenant to roll back once it is in its rollback window (after cut-over). */
  rollback?: string;
  /** Save a PNG of the war-room page here at the end. */
  screenshot?: string;
}

export interface DemoSummary extends WaveSummary {
  eventsAccepted: number;
  eventsLost: number;
  /** Application writes acknowledged, on every table, through the whole migration. */
  appWrites: number;
  /** Acknowledged application writes the tenant's final primary does not hold. */
  appWritesLost: number;
  /** Per tenant the longest time one application write waited; median and 99th percentile over tenants. */
  appWritePauseMsP50: number | null;
  appWritePauseMsP99: number | null;
  app: AppReport;
}

export const DEMO_STORAGE_ENV = 'AIRLIFT_DEMO_STORAGE_CONNECTION_STRING';
export const DEMO_ADMIN_TOKEN_ENV = 'AIRLIFT_DEMO_ADMIN_TOKEN';

/** Writes N tenant databases and the fleet file that describes them; returns the fleet file. */
export async function writeDemoFleet(
  dir: string, sides: DemoSides, endpoints: { source: Record<string, unknown>; target: Record<string, unknown> },
  tenants: number, rows: number, concurrency: number, gatewayUrl: string, rollbackWindowSeconds: number,
): Promise<string> {
  const tenantList = Array.from({ length: tenants }, (_, i) => ({
    id: `tenant-${i + 1}`, database: `tenant_${i + 1}`, source: 'onprem', target: 'cloud',
  }));
  for (const [i, t] of tenantList.entries()) await sides.createTenant(dir, t.database, rows, i + 1);
  const fleet = {
    sources: { onprem: endpoints.source },
    targets: { cloud: endpoints.target },
    storage: { container: 'airlift-artifacts', connectionStringEnv: DEMO_STORAGE_ENV },
    catalog: { path: './catalog.db' },
    workDirectory: './work',
    ingestion: { gateways: [gatewayUrl], adminTokenEnv: DEMO_ADMIN_TOKEN_ENV },
    // The copy is capped as in business hours (`maxUploadMiBps`), so it lasts long enough (a few
    // seconds) to see the application keep writing through it.
    policy: { concurrency, verifyChunkRows: 1000, blockSizeMiB: 1, uploadConcurrency: 4, maxUploadMiBps: 2, rollbackWindowSeconds },
    tenants: tenantList,
  };
  const file = join(dir, 'fleet.yaml');
  writeFileSync(file, stringify(fleet));
  return file;
}

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const out = process.stdout;
  const say = (line: string) => out.write(`${line}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'airlift-demo-'));
  const demoTenant = /^tenant-(\d+)$/.exec(options.rollback ?? '');
  if (options.rollback && !(demoTenant && Number(demoTenant[1]) >= 1 && Number(demoTenant[1]) <= options.tenants))
    throw new OperatorError(`--rollback: "${options.rollback}" is not a demo tenant; use tenant-1 … tenant-${options.tenants}`);
  const sides = DEMO_SIDES[options.engine ?? 'sqlite'];
  if (!sides) throw new OperatorError(`--engine: "${options.engine}" is not one the demo runs on; use ${Object.keys(DEMO_SIDES).join(' or ')}`);
  say(`airlift demo: ${options.tenants} tenants, ${options.rows} tracking events each${options.load ? `, live load ${options.load} events/s` : ''}, in ${dir}`);
  const stack = await startEmbeddedStack({ ui: true, log: say });
  const stops: (() => Promise<void>)[] = [];
  try {
    const gatewayPort = await freePort();
    const endpoints = await sides.start(dir, say);
    stops.push(endpoints.stop);
    const fleetFile = await writeDemoFleet(dir, sides, endpoints, options.tenants, options.rows, options.concurrency, `http://127.0.0.1:${gatewayPort}`, options.rollback ? 4 : 1);
    process.env[DEMO_STORAGE_ENV] = stack.azurite.connectionString;
    // Set it beforehand to use the war room's controls; it is never printed.
    process.env[DEMO_ADMIN_TOKEN_ENV] ||= randomBytes(24).toString('hex');
    const fleet = loadFleet(fleetFile);
    const gateway = await listenGateway(createGateway({ fleet, adminToken: process.env[DEMO_ADMIN_TOKEN_ENV]! }), gatewayPort);
    stops.unshift(gateway.stop);
    say(`tracking gateway: ${gateway.url}/t/<tenant>/events, ${gateway.url}/metrics`);
    const warRoom = await serveWarRoom(stack.temporal.client, { fleet, temporalUiUrl: stack.uiUrl, namespace: stack.namespace, intervalMs: 500 });
    stops.unshift(async () => {
      await warRoom.stop();
    });
    say(`Temporal dev server at ${stack.address}; Web UI: ${stack.uiUrl} (search: AirliftWave="demo"); war room: ${warRoom.url}`);
    say(`  the war room's controls take the admin token in $${DEMO_ADMIN_TOKEN_ENV}: set it before the demo to use them`);

    const { worker, close } = await createAirliftWorker({ connection: stack.temporal.nativeConnection, namespace: stack.namespace, fleet });
    const running = worker.run();
    stops.unshift(async () => {
      worker.shutdown();
      await running;
      close();
    });

    const load = options.load ? new LoadGenerator({ gatewayUrl: gateway.url, tenants: fleet.tenants.map((t) => t.id), eventsPerSecond: options.load }) : undefined;
    load?.start();
    // A simulated tenant application routes by the catalog and writes to several tables throughout.
    const phases = new Map<string, string>();
    const app = new TenantApp(fleet, 50, (tenantId) => phases.get(tenantId) ?? 'pending');
    app.start();
    stops.unshift(async () => void (await app.stop().catch(() => undefined)));
    const waveId = 'demo';
    const started = Date.now();
    await startWave(stack.temporal.client, waveId, fleet.tenants.map((t) => t.id), fleet.policy);
    say(`wave ${waveId} started: concurrency ${fleet.policy.concurrency}`);
    let rollbackSent = false;
    const { tenants } = await watchWave(stack.temporal.client, waveId, out, 250, async (views) => {
      for (const v of views) phases.set(v.tenantId, v.phase);
      const target = views.find((v) => v.tenantId === options.rollback);
      if (!rollbackSent && target?.phase === 'rollback_window') {
        rollbackSent = true;
        await stack.temporal.client.workflow.getHandle(tenantWorkflowId(target.tenantId)).signal(rollbackSignal, 'demo --rollback');
        say(`rollback of ${target.tenantId} requested during its rollback window`);
      }
    });
    if (options.screenshot) {
      await warRoom.warRoom.refresh();
      await screenshotWarRoom(warRoom.url, options.screenshot, tenants.length);
      say(`war room screenshot: ${options.screenshot}`);
    }
    const loadReport = await load?.stop();
    const appReport = await app.stop();
    const appLost = await app.lost();
    await app.close();
    const summary: DemoSummary = {
      ...summarize(tenants, (Date.now() - started) / 1000), eventsAccepted: 0, eventsLost: 0,
      appWrites: appReport.writes, appWritesLost: appLost.reduce((n, t) => n + t.missing.length, 0),
      appWritePauseMsP50: appReport.writePauseMsP50, appWritePauseMsP99: appReport.writePauseMsP99, app: appReport,
    };
    if (load) {
      const catalog = new Catalog(fleet.catalog.path);
      const engines = fleetEngines(fleet, process.env, { managedInstance: () => { throw new Error('the demo restores nothing itself'); } });
      try {
        for (const t of fleet.tenants) {
          const acked = load.acked.get(t.id)!;
          const engine = catalog.get(t.id)?.primary === 'target' ? engines.engine('targets', t.target) : engines.engine('sources', t.source);
          const session = await engine.openSession!(t.database);
          summary.eventsAccepted += acked.size;
          summary.eventsLost += (await countLostIn(session, acked).finally(() => session.close())).lost;
        }
      } finally {
        catalog.close();
        await engines.close();
      }
    }
    say('');
    say(renderTable(
      ['TENANTS', 'MIGRATED', 'FAILED', 'ROLLED BACK', 'TABLES VERIFIED', 'MISMATCHES', 'COPIED', 'PAUSE P50/P99', 'EVENTS', 'LOST', 'SECONDS'],
      [[summary.tenants, summary.migrated, summary.failed, summary.rolledBack, summary.tablesVerified, summary.mismatches, formatBytes(summary.bytesCopied),
        `${summary.cutoverPauseMsP50 ?? '-'}/${summary.cutoverPauseMsP99 ?? '-'} ms`, load ? summary.eventsAccepted : '-', load ? summary.eventsLost : '-', summary.seconds].map(String)],
    ));
    if (loadReport) say(`load: ${loadReport.sent} events sent (${loadReport.duplicatesSent} on purpose twice), ${loadReport.retries} batches retried`);
    const byPhase = Object.entries(appReport.writesByPhase).map(([phase, n]) => `${phase} ${n}`).join(', ');
    say(`application: ${appReport.writes} writes on 4 tables (${byPhase}), ${summary.appWritesLost} lost; longest wait per tenant P50/P99 ${summary.appWritePauseMsP50 ?? '-'}/${summary.appWritePauseMsP99 ?? '-'} ms`);
    for (const l of appLost) say(`lost application writes: ${l.tenant}: ${l.missing.slice(0, 5).join('; ')}${l.missing.length > 5 ? ' …' : ''}`);
    for (const f of summary.failures) say(`failed: ${f.tenant}: ${f.error}`);
    if (options.keep) say(`kept: ${dir} (fleet.yaml, source/, cloud/, catalog.db)`);
    if (options.json) say(JSON.stringify(summary));
    return summary;
  } finally {
    for (const stop of stops) await stop();
    await stack.close();
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
  }
}
