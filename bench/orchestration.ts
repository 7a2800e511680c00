// A wave of N tiny tenants migrated through Temporal (the wave and tenant workflows, a worker in its
// own process), beside a plain script that calls the same activities, over the same adapters, in
// the workflow's order, at the same concurrency, with no Temporal at all. The difference is what
// durable orchestration costs per tenant. Also: the longest history of any workflow of the wave (the
// wave's runs are bounded by continue-as-new) and the worker's peak RSS.
import { MockActivityEnvironment } from '@temporalio/testing';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { createActivities } from '../activities';
import { createAdapters } from '../workers/adapters';
import { createTenantDatabase } from '../cli/demo-data';
import { startEmbeddedStack, type EmbeddedStack } from '../cli/stack';
import { startWave } from '../cli/waves';
import { parseFleet, type LoadedFleet } from '../config/fleet';
import { forEachLimited } from '../azure/block-upload';
import { migrationIdOf, waveWorkflowId, type MigrationPolicy, type WaveStatus } from '../workflows/contract';
import { measured, ratio, round, type BenchResult } from './measure';

const STORAGE_ENV = 'AIRLIFT_BENCH_STORAGE';
const ROWS_PER_TENANT = 50;

function makeFleet(tenants: number, concurrency: number): { dir: string; fleet: LoadedFleet } {
  const dir = mkdtempSync(join(tmpdir(), 'airlift-bench-wave-'));
  const list = Array.from({ length: tenants }, (_, i) => ({ id: `t${i + 1}`, database: `tenant_${i + 1}`, source: 'onprem', target: 'cloud' }));
  list.forEach((t, i) => createTenantDatabase(join(dir, 'source'), t.database, ROWS_PER_TENANT, i + 1));
  const doc = {
    sources: { onprem: { engine: 'sqlite', directory: './source' } },
    targets: { cloud: { engine: 'sqlite', directory: './cloud' } },
    storage: { container: 'airlift-bench', connectionStringEnv: STORAGE_ENV },
    tenants: list,
    policy: { concurrency, rollbackWindowSeconds: 0 },
  };
  writeFileSync(join(dir, 'fleet.yaml'), stringify(doc));
  return { dir, fleet: parseFleet(doc, join(dir, 'fleet.yaml')) };
}

/** The workflow's runbook as a plain script: the same activity calls in the same order. */
async function migrateByScript(acts: ReturnType<typeof createActivities>, tenantId: string, policy: MigrationPolicy): Promise<void> {
  const migrationId = migrationIdOf(crypto.randomUUID());
  const call = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> => new MockActivityEnvironment().run(fn, ...args);
  const background = <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A) => {
    const env = new MockActivityEnvironment();
    const done = env.run(fn, ...args).catch(() => undefined);
    return async () => {
      env.cancel();
      await done;
    };
  };
  let step = 0;
  const order = () => ({ owner: migrationId, step: ++step });

  await call(acts.preflight, tenantId, migrationId);
  const journalFrom = await call(acts.startJournaling, tenantId, migrationId, order());
  const artifact = await call(acts.snapshotSource, tenantId, migrationId, policy);
  const copy = await call(acts.copyArtifact, tenantId, migrationId, artifact, policy);
  await call(acts.restoreTarget, tenantId, migrationId, copy.blobName, policy);
  const stopForward = background(acts.dualWrite, tenantId, migrationId, 'forward', journalFrom);
  while ((await call(acts.replicationLag, tenantId, migrationId, 'forward', journalFrom)).lag > policy.catchUpLagEvents) await new Promise((r) => setTimeout(r, 1000));
  const verified = await call(acts.verifyTables, tenantId, migrationId, policy.verifyChunkRows, journalFrom);
  if (verified.tables.some((t) => t.mismatchedChunks)) throw new Error(`${tenantId}: verification found differences`);
  await stopForward();
  const verifiedFrom = await call(acts.rebaselineVerification, tenantId, migrationId, journalFrom, verified.verifiedFrom);
  const switched = await call(acts.switchPrimary, tenantId, migrationId, 'target', {
    fromSeq: journalFrom,
    budgetMs: policy.cutoverPauseBudgetMs,
    verifyChangesAfter: verifiedFrom,
    chunkRows: policy.verifyChunkRows,
  });
  const stopReverse = background(acts.dualWrite, tenantId, migrationId, 'reverse', switched.reverseFrom);
  await new Promise((r) => setTimeout(r, policy.rollbackWindowSeconds * 1000));
  await stopReverse();
  await call(acts.stopJournaling, tenantId, migrationId, order());
  await call(acts.cleanWorkDirectory, tenantId, migrationId);
}

async function byScript(stack: EmbeddedStack, tenants: number, concurrency: number): Promise<{ seconds: number }> {
  const { dir, fleet } = makeFleet(tenants, concurrency);
  const adapters = createAdapters(fleet, { ...process.env, [STORAGE_ENV]: stack.azurite.connectionString });
  try {
    const acts = createActivities(adapters);
    const run = await measured(() => forEachLimited(fleet.tenants.length, concurrency, (i) => migrateByScript(acts, fleet.tenants[i].id, fleet.policy)));
    return { seconds: run.seconds };
  } finally {
    await adapters.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function startWorkerProcess(fleetFile: string, stack: EmbeddedStack): Promise<{ stop: () => Promise<number> }> {
  const child = spawn(process.execPath, ['-r', 'tsx/cjs', join(__dirname, 'orchestration-worker.ts'), fleetFile, stack.address, stack.namespace], {
    env: { ...process.env, [STORAGE_ENV]: stack.azurite.connectionString },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  let peak = Number.NaN;
  const ready = new Promise<void>((resolve, reject) => {
    lines.on('line', (line) => {
      if (line === 'ready') resolve();
      const m = /^peakRssMiB (\S+)/.exec(line);
      if (m) peak = Number(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`the bench worker exited with code ${code} before it was ready`)));
  });
  await ready;
  const exited = once(child, 'exit');
  let stopping: Promise<number> | undefined;
  return {
    stop: () =>
      (stopping ??= (async () => {
        child.kill('SIGTERM');
        await exited;
        return peak;
      })()),
  };
}

async function byTemporal(stack: EmbeddedStack, client: Client, tenants: number, concurrency: number) {
  const { dir, fleet } = makeFleet(tenants, concurrency);
  const worker = await startWorkerProcess(fleet.file, stack);
  try {
    const waveId = `bench-${tenants}-${Date.now().toString(36)}`;
    const run = await measured(async () => {
      await startWave(client, waveId, fleet.tenants.map((t) => t.id), fleet.policy);
      return client.workflow.getHandle(waveWorkflowId(waveId)).result() as Promise<WaveStatus>;
    });
    const notCompleted = run.value.tenants.filter((t) => t.state !== 'completed');
    if (notCompleted.length) throw new Error(`orchestration bench: ${notCompleted.length} tenants did not complete, e.g. ${notCompleted[0].tenantId}: ${notCompleted[0].error ?? notCompleted[0].state}`);
    let longestHistory = 0;
    let waveRuns = 0;
    for await (const info of client.workflow.list({ query: `AirliftWave = "${waveId}" OR WorkflowId = "${waveWorkflowId(waveId)}"` })) {
      longestHistory = Math.max(longestHistory, info.historyLength);
      if (info.workflowId === waveWorkflowId(waveId)) waveRuns++;
    }
    return { seconds: run.seconds, longestHistory, waveRuns, workerPeakRssMiB: await worker.stop() };
  } finally {
    await worker.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchOrchestration(sizes: number[], concurrency: number): Promise<BenchResult> {
  const stack = await startEmbeddedStack();
  const client = new Client({ connection: await Connection.connect({ address: stack.address }), namespace: stack.namespace });
  const rows: Record<string, unknown>[] = [];
  const ratios: Record<string, number> = {};
  try {
    for (const n of sizes) {
      const script = await byScript(stack, n, concurrency);
      const temporal = await byTemporal(stack, client, n, concurrency);
      rows.push({ tenants: n, concurrency, method: 'plain script, same activities', seconds: round(script.seconds), msPerTenant: Math.round((script.seconds * 1000 * concurrency) / n) });
      rows.push({
        tenants: n,
        concurrency,
        method: 'Temporal wave',
        seconds: round(temporal.seconds),
        msPerTenant: Math.round((temporal.seconds * 1000 * concurrency) / n),
        waveRuns: temporal.waveRuns,
        longestHistory: temporal.longestHistory,
        workerPeakRssMiB: round(temporal.workerPeakRssMiB),
      });
      rows.push({ tenants: n, concurrency, method: 'ratio Temporal / script', seconds: ratio(temporal.seconds, script.seconds) });
      ratios[`orchestrationVsScript${n}`] = ratio(temporal.seconds, script.seconds);
    }
  } finally {
    await client.connection.close();
    await stack.close();
  }
  return { rows, ratios };
}
