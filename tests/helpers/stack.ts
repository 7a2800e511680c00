// The real services a test needs: the Temporal dev server (an existing binary, never a download)
// and an in-memory Azurite, plus temporary tenant databases and a fleet that points at them.
import Database from 'better-sqlite3';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, type LogEntry, type LogLevel, type RuntimeOptions } from '@temporalio/worker';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAzurite, type AzuriteHandle } from '../../azure/azurite';
import { parseFleet, type LoadedFleet } from '../../config/fleet';
import { createTenantDatabase } from '../../cli/demo-data';
import { createAirliftWorker } from '../../workers/worker';
import { SEARCH_ATTRIBUTES } from '../../workflows/contract';

let runtimeInstalled = false;

/**
 * Quiet by default: failures the tests provoke on purpose (an activity or workflow that fails, a
 * cut-over called off) print one line each, without stack or metadata, and so does anything
 * unexpected. AIRLIFT_TEST_VERBOSE=1 (or a level: DEBUG, INFO) gives the SDK's full output back.
 */
const VERBOSE = process.env.AIRLIFT_TEST_VERBOSE;

function oneLine({ level, message, meta }: LogEntry): string {
  const where = [meta?.activityType ?? meta?.workflowType, meta?.workflowId].filter(Boolean).join(' ');
  // Duck-typed: a workflow's error comes from the workflow sandbox, another realm than `Error` here.
  const e = meta?.error as { name?: string; message?: string } | string | undefined;
  const error = typeof e === 'object' && e?.message !== undefined ? (e.name && e.name !== 'Error' ? `${e.name}: ${e.message}` : e.message) : e;
  const line = `[${level}] ${message}${where ? ` (${where})` : ''}${error && !message.includes(String(error)) ? `: ${error}` : ''}`;
  return line.split('\n')[0];
}

function testRuntimeOptions(): RuntimeOptions {
  if (VERBOSE) return { logger: new DefaultLogger(/^(TRACE|DEBUG|INFO|WARN|ERROR)$/.test(VERBOSE) ? (VERBOSE as LogLevel) : 'WARN') };
  // The SDK's native side (connection retries, workflow task failures) already logs one line each, on its own.
  return { logger: new DefaultLogger('WARN', (entry) => void process.stderr.write(`${oneLine(entry)}\n`)) };
}

export interface TestStack {
  env: TestWorkflowEnvironment;
  azurite: AzuriteHandle;
  close(): Promise<void>;
}

export async function startTestStack(): Promise<TestStack> {
  if (!runtimeInstalled) {
    Runtime.install(testRuntimeOptions());
    runtimeInstalled = true;
  }
  const path = process.env.TEMPORAL_CLI_PATH;
  if (!path) throw new Error('TEMPORAL_CLI_PATH is not set: tests/helpers/global-setup.ts sets it');
  const [env, azurite] = await Promise.all([
    TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path }, ip: '127.0.0.1', searchAttributes: SEARCH_ATTRIBUTES, log: { format: 'pretty', level: 'error' }, extraArgs: VERBOSE ? [] : ['--output', 'none'] },
    }),
    startAzurite(),
  ]);
  return { env, azurite, close: async () => void (await Promise.allSettled([env.teardown(), azurite.stop()])) };
}

/** One stack for a test file: started before its tests, stopped after. */
export function useTestStack(): () => TestStack {
  let stack: TestStack | undefined;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(async () => {
    await stack?.close();
  });
  return () => stack!;
}

/** Polls `probe` until it gives a value (errors count as not yet). */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface TestFleetOptions {
  tenants: number;
  rows?: number;
  policy?: Record<string, unknown>;
  storageEnv?: string;
  /** Live ingestion through a gateway at this URL (its admin token in AIRLIFT_TEST_ADMIN_TOKEN). */
  gatewayUrl?: string;
  /** More source endpoints, e.g. a SQL Server with a passwordEnv, that no tenant uses. */
  extraSources?: Record<string, unknown>;
  /** The tenants' target endpoint instead of a SQLite folder (a Managed Instance on the emulator, say). */
  target?: Record<string, unknown>;
  /** More keys of the storage section (restoreAccess). */
  storage?: Record<string, unknown>;
}

export const TEST_ADMIN_TOKEN_ENV = 'AIRLIFT_TEST_ADMIN_TOKEN';
export const TEST_ADMIN_TOKEN = 'test-admin-token-for-the-gateway';
export const TEST_DB_PASSWORD_ENV = 'AIRLIFT_TEST_DB_PASSWORD';
export const TEST_DB_PASSWORD = 'Db-Passw0rd-That-Must-Never-Leak';

/** Tenant databases in a fresh folder and the fleet that names them. */
export function makeFleet(options: TestFleetOptions): { dir: string; fleet: LoadedFleet; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'airlift-test-'));
  const tenants = Array.from({ length: options.tenants }, (_, i) => ({ id: `t${i + 1}-${process.hrtime.bigint().toString(36)}`, database: `tenant_${i + 1}`, source: 'onprem', target: 'cloud' }));
  tenants.forEach((t, i) => createTenantDatabase(join(dir, 'source'), t.database, options.rows ?? 500, i + 1));
  const doc = {
    sources: { onprem: { engine: 'sqlite', directory: './source' }, ...options.extraSources },
    targets: { cloud: options.target ?? { engine: 'sqlite', directory: './cloud' } },
    storage: { container: 'airlift-test', connectionStringEnv: options.storageEnv ?? 'AIRLIFT_TEST_STORAGE', ...options.storage },
    ...(options.gatewayUrl ? { ingestion: { gateways: [options.gatewayUrl], adminTokenEnv: TEST_ADMIN_TOKEN_ENV } } : {}),
    tenants,
    policy: { verifyChunkRows: 100, blockSizeMiB: 0.0625, rollbackWindowSeconds: 0, ...options.policy },
  };
  // Written out too, for a worker started as its own process.
  writeFileSync(join(dir, 'fleet.yaml'), stringify(doc));
  const fleet = parseFleet(doc, join(dir, 'fleet.yaml'));
  return { dir, fleet, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function startWorker(stack: TestStack, fleet: LoadedFleet, taskQueue: string): Promise<{ stop: () => Promise<void> }> {
  const bundle = process.env.AIRLIFT_TEST_WORKFLOW_BUNDLE!;
  const { worker, close } = await createAirliftWorker({
    connection: stack.env.nativeConnection,
    namespace: stack.env.namespace ?? 'default',
    fleet,
    taskQueue,
    workflowBundle: { code: readFileSync(bundle, 'utf8') },
    env: workerEnv(stack, fleet),
  });
  const running = worker.run();
  return {
    stop: async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      close();
    },
  };
}

/** The environment a worker needs: the storage connection string and the gateway admin token. */
export function workerEnv(stack: TestStack, fleet: LoadedFleet): NodeJS.ProcessEnv {
  return { ...process.env, [fleet.storage.connectionStringEnv!]: stack.azurite.connectionString, [TEST_ADMIN_TOKEN_ENV]: TEST_ADMIN_TOKEN, [TEST_DB_PASSWORD_ENV]: TEST_DB_PASSWORD };
}

/** Rows in one table of a tenant database file, read straight from the file. */
export function countRows(file: string, table: 'tracking_events' | 'airlift_changes'): number {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}
