// `airlift demo`: the whole chain on one machine with no cloud. Real Temporal dev server, real
// Azurite, real SQLite tenant databases; one wave, watched live, summarised at the end.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadFleet } from '../config/fleet';
import { createAirliftWorker } from '../workers/worker';
import { createTenantDatabase } from './demo-data';
import { startEmbeddedStack } from './stack';
import { formatBytes, renderTable } from './observe';
import { startWave, summarize, watchWave, type WaveSummary } from './waves';

export interface DemoOptions {
  tenants: number;
  rows: number;
  concurrency: number;
  json: boolean;
  keep: boolean;
}

export const DEMO_STORAGE_ENV = 'AIRLIFT_DEMO_STORAGE_CONNECTION_STRING';

/** Writes N tenant databases and the fleet file that describes them; returns the fleet file. */
export function writeDemoFleet(dir: string, tenants: number, rows: number, concurrency: number): string {
  const tenantList = Array.from({ length: tenants }, (_, i) => ({
    id: `tenant-${i + 1}`, database: `tenant_${i + 1}`, source: 'onprem', target: 'cloud',
  }));
  tenantList.forEach((t, i) => createTenantDatabase(join(dir, 'source'), t.database, rows, i + 1));
  const fleet = {
    sources: { onprem: { engine: 'sqlite', directory: './source' } },
    targets: { cloud: { engine: 'sqlite', directory: './cloud' } },
    storage: { container: 'airlift-artifacts', connectionStringEnv: DEMO_STORAGE_ENV },
    catalog: { path: './catalog.db' },
    workDirectory: './work',
    policy: { concurrency, verifyChunkRows: 1000, blockSizeMiB: 1, uploadConcurrency: 4 },
    tenants: tenantList,
  };
  const file = join(dir, 'fleet.yaml');
  writeFileSync(file, stringify(fleet));
  return file;
}

export async function runDemo(options: DemoOptions): Promise<WaveSummary> {
  const out = process.stdout;
  const say = (line: string) => out.write(`${line}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'airlift-demo-'));
  say(`airlift demo: ${options.tenants} tenants, ${options.rows} tracking events each, in ${dir}`);
  const stack = await startEmbeddedStack({ ui: true, log: say });
  say(`Temporal dev server at ${stack.address}; Web UI: ${stack.uiUrl} (search: AirliftWave="demo")`);
  let stopWorker: (() => Promise<void>) | undefined;
  try {
    const fleetFile = writeDemoFleet(dir, options.tenants, options.rows, options.concurrency);
    process.env[DEMO_STORAGE_ENV] = stack.azurite.connectionString;
    const fleet = loadFleet(fleetFile);
    const { worker, close } = await createAirliftWorker({ connection: stack.temporal.nativeConnection, namespace: stack.namespace, fleet });
    const running = worker.run();
    stopWorker = async () => {
      worker.shutdown();
      await running;
      close();
    };
    const waveId = 'demo';
    const started = Date.now();
    await startWave(stack.temporal.client, waveId, fleet.tenants.map((t) => t.id), fleet.policy);
    say(`wave ${waveId} started: concurrency ${fleet.policy.concurrency}`);
    const { tenants } = await watchWave(stack.temporal.client, waveId, out);
    const summary = summarize(tenants, (Date.now() - started) / 1000);
    say('');
    say(renderTable(
      ['TENANTS', 'MIGRATED', 'FAILED', 'ROLLED BACK', 'TABLES VERIFIED', 'MISMATCHES', 'COPIED', 'SECONDS'],
      [[summary.tenants, summary.migrated, summary.failed, summary.rolledBack, summary.tablesVerified, summary.mismatches, formatBytes(summary.bytesCopied), summary.seconds].map(String)],
    ));
    for (const f of summary.failures) say(`failed: ${f.tenant}: ${f.error}`);
    if (options.keep) say(`kept: ${dir} (fleet.yaml, source/, cloud/, catalog.db)`);
    if (options.json) say(JSON.stringify(summary));
    return summary;
  } finally {
    await stopWorker?.();
    await stack.close();
    if (!options.keep) rmSync(dir, { recursive: true, force: true });
  }
}
