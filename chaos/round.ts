// One round of the fault matrix: a fresh stack (Temporal dev server on a database file, Azurite, two
// gateway nodes behind admin proxies, a worker process), one tenant per phase under live tracking
// load through both nodes, every tenant held inside its phase, one fault, then the checker's verdict.
import { Client, Connection, WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startAzurite, type AzuriteHandle } from '../azure/azurite';
import { createTenantDatabase } from '../cli/demo-data';
import { LoadGenerator } from '../cli/load';
import { TenantApp } from '../cli/tenant-app';
import { parseFleet } from '../config/fleet';
import {
  approveCutoverUpdate,
  completeUpdate,
  migrationIdOf,
  reasonOf,
  rollbackUpdate,
  tenantWorkflowId,
  type MigrationPolicy,
  type TenantResult,
  type TenantStatus,
} from '../workflows/contract';
import { startAdminProxy, type AdminProxy, type HeldCall } from './admin-proxy';
import { check, schemaDigest, type HarnessRow, type Outcome, type Verdict } from './checker';
import { deploySchemaChange } from './deploy';
import { heldStep, heldStepEnded, HOLD_PLAN_ENV, releaseHold, releaseStall, stalledWorker, type HoldPlan, type StallRule } from './holds';
import { expectedOutcome, holdAt, phaseHold, type CaseSpec, type Fault } from './matrix';
import { reconcile, resetToFirstWorkflowTask } from './operator';
import { httpOk, REPO, restartablePort, sleep, startProcess, TemporalServer, until, type Proc } from './processes';
import { DevStack } from './dev-stack';

export interface RoundOptions {
  cases: CaseSpec[];
  /** A folder for this round's files (databases, fleet, logs). */
  dir: string;
  /** The bundled workflows (one bundle for the whole run). */
  bundle: string;
  temporalCli: string;
  eventsPerSecond: number;
  trackingRows: number;
  /** How long every workflow has to end once the fault has been injected. */
  boundMs: number;
  /** Rows of the big tenant's tracking table (the `big-tenant` round). */
  bigTenantRows?: number;
  log: (line: string) => void;
}

export interface CaseResult extends CaseSpec {
  tenantId: string;
  verdict: Verdict;
  /** The longest a write of the tenant's application waited (the cut-over pause as it saw it), ms. */
  pauseMs?: number;
  /** What happened to this tenant, in order: for the report of a failed case. */
  notes: string[];
}

const ADMIN_TOKEN_ENV = 'AIRLIFT_CHAOS_ADMIN_TOKEN';
const STORAGE_ENV = 'AIRLIFT_CHAOS_STORAGE';
const TASK_QUEUE = 'airlift-chaos';
const ADMIN_TOKEN = `chaos-${randomUUID()}`;
const TRACKING_TABLE = 'tracking_events';

interface TenantCase extends CaseSpec {
  tenantId: string;
  database: string;
  /** The source's schema before the migration (`schemaDigest`, whole and the tenant's own). */
  schema: { whole: string; tenantOnly: string };
  /** The source's schema once the `schema-change` deploy ran on it, and the rows the deploy wrote. */
  schemaChanged?: { whole: string; tenantOnly: string };
  harnessRows?: HarnessRow[];
  notes: string[];
  handle?: WorkflowHandle;
  /** Set when the harness could not do its part (start, reach the phase); the case then fails. */
  harness: { invariant: string; detail: string }[];
  flip?: Promise<HeldCall>;
  flipHeld?: HeldCall;
  ended?: { outcome: Outcome | 'running'; detail?: string };
}

const short = (p: string) => p.replace(/_/g, '-');

/** How long a tenant may take from its breakpoint into its window (a loaded machine answers queries slowly). */
const HELD_WITHIN_MS = 300_000;
/** `gateway-down`: how long node B stays down, past a cut-over's budget (2 s), its 5 attempts and their 2 s apart. */
const GATEWAY_DOWN_MS = 30_000;
/** `stall`: how long the worker stays frozen, past the cut-over's heartbeat timeout (10 s) and the route back's (15 s). */
const STALL_MS = 25_000;
/** `big-tenant`: the tracking load beside the application, which writes one write after another as fast as it goes. */
const BIG_TENANT_EVENTS_PER_SECOND = 300;

/** A gateway node: `airlift ingest` as its own process, on a fixed port so it can come back there. */
class GatewayNode {
  proc?: Proc;
  constructor(
    readonly name: string,
    readonly port: number,
    private readonly fleetFile: string,
    private readonly logFile: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc = startProcess(this.name, process.execPath, [join(REPO, 'bin/airlift.js'), 'ingest', '-f', this.fleetFile, '--port', String(this.port)], {
      env: { ...process.env, [ADMIN_TOKEN_ENV]: ADMIN_TOKEN },
      logFile: this.logFile,
    });
    await until(`gateway ${this.name} on port ${this.port}`, () => httpOk(`${this.url}/healthz`), 60_000, this.proc);
  }
}

export async function runRound(options: RoundOptions): Promise<CaseResult[]> {
  const { dir, log } = options;
  const fault = options.cases[0].fault;
  mkdirSync(dir, { recursive: true });
  const holdDir = join(dir, 'holds');
  mkdirSync(holdDir, { recursive: true });

  // Tenants: one per phase, each with its own database and a digest of its schema.
  const big = fault === 'big-tenant';
  const tenants: TenantCase[] = options.cases.map((c, i) => {
    const tenantId = `${short(c.fault)}-${short(c.phase)}`;
    const database = `tenant_${i + 1}`;
    const file = createTenantDatabase(join(dir, 'source'), database, big ? (options.bigTenantRows ?? 1_000_000) : options.trackingRows, i + 1);
    const t: TenantCase = { ...c, tenantId, database, schema: { whole: schemaDigest(file), tenantOnly: schemaDigest(file, true) }, notes: [], harness: [] };
    if (fault === 'schema-change') {
      // The source as the deploy would leave it, on a copy: a tenant that stays there must look like this.
      const copy = join(dir, `deployed-${database}.db`);
      copyFileSync(file, copy);
      deploySchemaChange(copy, tenantId);
      t.schemaChanged = { whole: schemaDigest(copy), tenantOnly: schemaDigest(copy, true) };
    }
    return t;
  });
  const holdOf = (t: TenantCase) => phaseHold(t.phase, fault);

  const [temporalPort, portA, portB] = [await restartablePort(), await restartablePort(), await restartablePort()];
  const proxies: AdminProxy[] = [await startAdminProxy(portA), await startAdminProxy(portB)];
  const fleetFile = join(dir, 'fleet.yaml');
  const fleetDoc = {
    sources: { onprem: { engine: 'sqlite', directory: './source' } },
    targets: { cloud: { engine: 'sqlite', directory: './cloud' } },
    storage: { container: 'airlift-chaos', connectionStringEnv: STORAGE_ENV },
    catalog: { path: './catalog.db' },
    workDirectory: './work',
    ingestion: { gateways: proxies.map((p) => p.url), adminTokenEnv: ADMIN_TOKEN_ENV },
    tenants: tenants.map((t) => ({ id: t.tenantId, database: t.database, source: 'onprem', target: 'cloud' })),
    policy: big ? { verifyChunkRows: 5000, blockSizeMiB: 4, rollbackWindowSeconds: 0, cutoverRetrySeconds: 2 } : { verifyChunkRows: 500, blockSizeMiB: 0.0625, rollbackWindowSeconds: 0, cutoverRetrySeconds: 2 },
  };
  writeFileSync(fleetFile, stringify(fleetDoc));
  const fleetPolicy = parseFleet(fleetDoc, fleetFile).policy;

  const holdPlan: HoldPlan = {
    dir: holdDir,
    rules: tenants.filter((t) => holdOf(t).kind === 'step').map((t) => ({ tenantId: t.tenantId, phase: t.phase, at: holdAt(fault) })),
    // The forward switch fences the source; the route back of a rollback in the window fences the target.
    stalls: fault === 'stall' ? tenants.map((t): StallRule => ({ tenantId: t.tenantId, database: t.database, side: t.phase === 'rollback_window' ? 'target' : 'source' })) : [],
    maxHoldMs: 240_000,
  };

  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const gateways = [new GatewayNode('gateway-A', portA, fleetFile, join(logs, 'gateway-A.log')), new GatewayNode('gateway-B', portB, fleetFile, join(logs, 'gateway-B.log'))];
  let temporal: TemporalServer | undefined;
  let dev: DevStack | undefined;
  let azurite: AzuriteHandle | undefined;
  let worker: Proc | undefined;
  /** A second worker (the `stall` round): it takes the retries while the first one is frozen. */
  let worker2: Proc | undefined;
  let phasePoll: NodeJS.Timeout | undefined;
  const lastPhase = new Map<string, string>();
  let appStarted = 0;
  let storage = '';
  let load: LoadGenerator | undefined;
  let app: TenantApp | undefined;
  let polls = new Set<Promise<unknown>>();
  let connection: Connection | undefined;
  let address: string;

  const startWorker = async (name = 'worker') => {
    const proc = startProcess(name, process.execPath, ['-r', 'tsx/cjs', join(REPO, 'chaos/worker.ts'), fleetFile, TASK_QUEUE, options.bundle], {
      env: { ...process.env, TEMPORAL_ADDRESS: address, [STORAGE_ENV]: storage, [ADMIN_TOKEN_ENV]: ADMIN_TOKEN, [HOLD_PLAN_ENV]: JSON.stringify(holdPlan) },
      logFile: join(logs, `${name}.log`),
    });
    await until('the worker to poll', () => proc.output().includes('polling'), 120_000, proc);
    return proc;
  };

  try {
    // The stack.
    if (fault === 'stack-kill') {
      dev = new DevStack(dir, fleetFile, join(logs, 'airlift-dev.log'), { [ADMIN_TOKEN_ENV]: ADMIN_TOKEN });
      await dev.start();
      address = dev.address;
      storage = dev.storageConnectionString;
    } else {
      temporal = new TemporalServer(options.temporalCli, temporalPort, join(dir, 'temporal.db'), join(logs, 'temporal.log'));
      [, azurite] = await Promise.all([temporal.start(), startAzurite()]);
      address = temporal.address;
      storage = azurite.connectionString;
    }
    await Promise.all(gateways.map((g) => g.start()));
    worker = await startWorker();
    if (fault === 'stall') worker2 = await startWorker('worker-2');
    connection = await Connection.connect({ address });
    const client = new Client({ connection });
    log(`  stack up: Temporal ${address}, gateways ${gateways.map((g) => g.url).join(' ')}, proxies ${proxies.map((p) => p.url).join(' ')}`);

    // Live tracking load through both nodes, for the whole round.
    load = new LoadGenerator({ gatewayUrl: gateways[0].url, gatewayUrls: gateways.map((g) => g.url), tenants: tenants.map((t) => t.tenantId), eventsPerSecond: big ? Math.min(options.eventsPerSecond, BIG_TENANT_EVENTS_PER_SECOND) : options.eventsPerSecond, batchSize: 10 });
    load.start();
    // The tenant's application writes to four of its tables the whole round, by the catalog's route.
    // The big tenant's application writes as fast as one connection at a time goes (300+ writes/s);
    // the phase each write lands in is polled from the workflow, to count the writes in its cut-over.
    app = new TenantApp(parseFleet(fleetDoc, fleetFile), big ? 0 : 100, (id) => lastPhase.get(id) ?? 'before start');
    app.start();
    appStarted = Date.now();

    // Every tenant starts, and waits at the breakpoint before its phase.
    for (const t of tenants) {
      const hold = holdOf(t);
      const policy: MigrationPolicy = {
        ...fleetPolicy,
        pauseBefore: [hold.breakpoint],
        cutover: t.phase === 'awaiting_cutover' ? 'manual' : 'auto',
        rollbackWindowSeconds: t.phase === 'rollback_window' ? 1800 : 0,
      };
      const migrationId = migrationIdOf(randomUUID());
      try {
        t.handle = await client.workflow.start('migrateTenant', { workflowId: tenantWorkflowId(t.tenantId), taskQueue: TASK_QUEUE, args: [{ tenantId: t.tenantId, migrationId, policy }] });
        t.notes.push(`started, migration ${migrationId}, breakpoint before ${hold.breakpoint}`);
      } catch (err) {
        t.harness.push({ invariant: 'reached', detail: `could not start the workflow: ${reasonOf(err)}` });
      }
    }
    const live = () => tenants.filter((t) => t.handle && !t.harness.length);
    if (big)
      phasePoll = setInterval(() => {
        if (polls.size) return;
        for (const t of live()) {
          const poll = queryStatus(t.handle!).then((s) => s && lastPhase.set(t.tenantId, s.phase));
          polls.add(poll);
          void poll.finally(() => polls.delete(poll));
        }
      }, 250);

    await Promise.all(
      live().map(async (t) => {
        const reached = await waitStatus(t.handle!, (s) => s.paused, 300_000);
        if (reached !== 'yes') t.harness.push({ invariant: 'reached', detail: `never paused before ${holdOf(t).breakpoint}: ${reached}` });
      }),
    );
    log(`  ${live().length}/${tenants.length} tenants at their breakpoints; ${load.acked.size ? countAcked(load) : 0} events acknowledged so far`);

    // Arm the flips, resume everyone, and wait until every tenant is inside its window.
    for (const t of live()) if (holdOf(t).kind === 'flip') t.flip = proxies[1].holdNext((method, path) => method === 'POST' && path === `/admin/tenants/${encodeURIComponent(t.tenantId)}/primary`);
    await Promise.all(live().map((t) => t.handle!.signal('resume')));
    await Promise.all(live().map((t) => waitHeld(t, holdDir)));
    const inWindow = live();
    log(`  ${inWindow.length}/${tenants.length} tenants held in their phase; injecting ${fault}`);

    // The fault, and the release of every hold at the moment the fault calls for.
    const releaseAll = () => {
      for (const t of inWindow) {
        const kind = holdOf(t).kind;
        if (kind === 'step') releaseHold(holdDir, t.tenantId);
        if (kind === 'flip') t.flipHeld?.release();
      }
    };
    const reconcileEnv = { [STORAGE_ENV]: storage, [ADMIN_TOKEN_ENV]: ADMIN_TOKEN };
    const faultAt = Date.now();
    switch (fault as Fault) {
      case 'rollback': {
        await Promise.all(inWindow.map((t) => sendRollback(t)));
        await sleep(1500);
        releaseAll();
        break;
      }
      case 'worker-kill': {
        await worker.kill('SIGKILL');
        worker.child.stdout?.destroy();
        for (const t of inWindow) t.notes.push('worker killed (SIGKILL) inside the window');
        await sleep(1000);
        worker = await startWorker();
        releaseAll();
        break;
      }
      case 'gateway-kill': {
        await gateways[1].proc!.kill('SIGKILL');
        for (const t of inWindow) t.notes.push('gateway node B killed (SIGKILL) inside the window');
        releaseAll();
        await sleep(3000);
        await gateways[1].start();
        for (const t of inWindow) t.notes.push(`gateway node B back after ${Date.now() - faultAt} ms`);
        break;
      }
      case 'gateway-admin-fail': {
        proxies[1].failAdminUntil(Date.now() + 5000);
        for (const t of inWindow) t.notes.push("node B's admin calls fail for 5 s from inside the window");
        releaseAll();
        await sleep(5000);
        break;
      }
      case 'temporal-restart': {
        await temporal!.kill();
        for (const t of inWindow) t.notes.push('Temporal dev server killed (SIGKILL) inside the window');
        releaseAll();
        await sleep(3000);
        await temporal!.start();
        for (const t of inWindow) t.notes.push(`Temporal dev server back after ${Date.now() - faultAt} ms`);
        break;
      }
      case 'stack-kill': {
        // The whole embedded stack dies at once: airlift dev (Temporal, Azurite and its worker) and
        // the worker that runs these tenants; the gateway nodes are other machines and stay.
        await Promise.all([dev!.kill(), worker.kill('SIGKILL')]);
        for (const t of inWindow) t.notes.push('airlift dev and the worker killed (SIGKILL) inside the window');
        await sleep(1000);
        await dev!.start();
        if (dev!.address !== address || dev!.storageConnectionString !== storage) {
          for (const t of inWindow) t.notes.push(`airlift dev came back elsewhere (${dev!.address}); the worker follows`);
          address = dev!.address;
          storage = dev!.storageConnectionString;
        }
        worker = await startWorker();
        releaseAll();
        for (const t of inWindow) t.notes.push(`stack back after ${Date.now() - faultAt} ms`);
        break;
      }
      case 'terminate-reconcile': {
        // Terminate stops the workflow, not its activities: a held step is still there when reconcile
        // repairs from the catalog, the databases and the gateways, and wakes once it is done (a zombie).
        for (const t of inWindow)
          await t.handle!.terminate('chaos: an operator terminates the workflow').then(
            () => t.notes.push('workflow terminated through the Temporal API'),
            (err) => t.harness.push({ invariant: 'harness', detail: `could not terminate the workflow: ${reasonOf(err)}` }),
          );
        const repaired = await reconcile(fleetFile, address, reconcileEnv, true);
        for (const t of inWindow) t.notes.push(`reconcile --apply (exit ${repaired.code}): ${repaired.byTenant.get(t.tenantId) ?? repaired.error ?? 'not listed'}`);
        // Whatever the terminated run's step still does lands now; then reconcile is asked what it would still do.
        releaseAll();
        await waitStepsEnded(inWindow, 120_000);
        await sleep(3000);
        const after = await reconcile(fleetFile, address, reconcileEnv, false);
        for (const t of inWindow) t.notes.push(`reconcile afterwards (exit ${after.code}): ${after.byTenant.get(t.tenantId) ?? after.error ?? 'not listed'}`);
        break;
      }
      case 'gateway-down': {
        await gateways[1].proc!.kill('SIGKILL');
        for (const t of inWindow) t.notes.push(`gateway node B killed (SIGKILL) inside the window, kept down ${GATEWAY_DOWN_MS / 1000} s`);
        releaseAll();
        await sleep(GATEWAY_DOWN_MS);
        await gateways[1].start();
        for (const t of inWindow) t.notes.push(`gateway node B back after ${Date.now() - faultAt} ms`);
        break;
      }
      case 'schema-change': {
        // The deploy lands on the side the tenant is served from: the source until the cut-over, the target in the window.
        for (const t of inWindow) {
          const side = t.phase === 'rollback_window' ? 'cloud' : 'source';
          try {
            t.harnessRows = deploySchemaChange(join(dir, side, `${t.database}.db`), t.tenantId);
            t.notes.push(`deploy on the ${side === 'cloud' ? 'target' : 'source'}: table release_notes (${t.harnessRows.length - 1} rows) and column campaigns.promo added`);
          } catch (err) {
            t.harness.push({ invariant: 'harness', detail: `the deploy failed: ${reasonOf(err)}` });
          }
          if (t.phase === 'rollback_window') await sendRollback(t);
        }
        releaseAll();
        break;
      }
      case 'workflow-reset': {
        for (const t of inWindow) {
          try {
            const said = await resetToFirstWorkflowTask(options.temporalCli, address, tenantWorkflowId(t.tenantId), 'chaos: an operator resets the workflow');
            t.handle = client.workflow.getHandle(tenantWorkflowId(t.tenantId));
            t.notes.push(`reset to the first workflow task (${said}); the old run's step stays held`);
          } catch (err) {
            t.harness.push({ invariant: 'harness', detail: reasonOf(err) });
          }
        }
        // The new run stops at the same breakpoint again (the policy came with the input): let it go
        // on to its end; only then does the old run's step wake (a zombie of a run that is gone).
        await Promise.all(
          inWindow.map(async (t) => {
            const paused = await waitStatus(t.handle!, (st) => st.paused && st.heldBefore !== undefined, 180_000);
            if (paused === 'yes') await t.handle!.signal('resume');
            t.notes.push(paused === 'yes' ? 'the reset run paused at its breakpoint again; resumed' : `the reset run did not pause at its breakpoint: ${paused}`);
            t.ended = await waitEnd(t.handle!, faultAt + options.boundMs);
            t.notes.push(`the reset run ended ${t.ended.outcome}${t.ended.detail ? `: ${t.ended.detail}` : ''}; the old run's step wakes now`);
          }),
        );
        releaseAll();
        await waitStepsEnded(inWindow, 120_000);
        await sleep(2000);
        break;
      }
      case 'stall': {
        // One tenant at a time, so the other worker is free to take the retries.
        for (const t of inWindow) {
          if (t.phase === 'rollback_window') await sendRollback(t);
          const pid = await waitFor(() => stalledWorker(holdDir, t.tenantId), 180_000);
          if (!pid) {
            t.harness.push({ invariant: 'reached', detail: "the switch never reached its last fence step on a worker (no stall)" });
            continue;
          }
          const stalledAt = Date.now();
          process.kill(-pid, 'SIGSTOP');
          t.notes.push(`worker ${pid} frozen (SIGSTOP) in the switch right before its fence holds for good`);
          await sleep(STALL_MS);
          process.kill(-pid, 'SIGCONT');
          releaseStall(holdDir, t.tenantId);
          t.notes.push(`worker ${pid} thawed (SIGCONT) after ${Date.now() - stalledAt} ms; its attempt goes on`);
        }
        break;
      }
      case 'big-tenant':
        break;
    }
    // Tenants waiting on the operator get their word once the fault is over.
    if (fault !== 'rollback' && fault !== 'terminate-reconcile') {
      await reconnect(client);
      for (const t of inWindow) {
        const kind = holdOf(t).kind;
        if (kind === 'approval') t.notes.push(`approve: ${await operatorUpdate(() => t.handle!.executeUpdate(approveCutoverUpdate))}`);
        if (kind === 'window') t.notes.push(`complete: ${await operatorCommand(t.handle!, () => t.handle!.executeUpdate(completeUpdate), 'complete', [])}`);
      }
    }

    // Every workflow ends within the bound.
    const deadline = faultAt + options.boundMs;
    await Promise.all(
      tenants
        .filter((t) => t.handle)
        .map(async (t) => {
          t.ended = await waitEnd(t.handle!, deadline);
          t.notes.push(t.ended.outcome === 'running' ? 'still running at the bound' : `ended ${t.ended.outcome} after ${Math.round((Date.now() - faultAt) / 1000)} s${t.ended.detail ? `: ${t.ended.detail}` : ''}`);
        }),
    );
    const running = tenants.filter((t) => t.ended?.outcome === 'running').length;
    log(`  workflows ended (${running} still running after the bound of ${options.boundMs / 1000} s); stopping the load`);
  } catch (err) {
    for (const t of tenants) t.harness.push({ invariant: 'harness', detail: `the round broke off: ${reasonOf(err)}` });
    log(`  round broke off: ${(err as Error).stack ?? err}`);
  }

  const report = await load?.stop(60_000);
  if (report) log(`  load: ${report.acknowledged} acknowledged, ${report.retries} retries`);
  clearInterval(phasePoll);
  await Promise.all(polls);
  polls = new Set();
  const appReport = await app?.stop();
  if (appReport) log(`  application: ${appReport.writes} writes acknowledged, longest wait ${Math.max(0, ...Object.values(appReport.writePauseMsByTenant))} ms`);
  if (big && appReport)
    for (const t of tenants) {
      const final = await t.handle?.result().then((r) => (r as TenantResult).status, () => undefined);
      const inCutover = appReport.writesByPhase['cutting_over'] ?? 0;
      const cutoverMs = final?.phaseMs['cutting_over'] ?? 0;
      const words = `big tenant (${options.bigTenantRows ?? 1_000_000} tracking rows): the application wrote ${appReport.writes} times (${Math.round((appReport.writes * 1000) / Math.max(1, Date.now() - appStarted))}/s over the round), ${inCutover} of them in cutting_over (${cutoverMs} ms: ${cutoverMs ? Math.round((inCutover * 1000) / cutoverMs) : 0}/s); switch pause ${final?.cutoverPauseMs ?? '?'} ms, ${final?.cutoverAttempts?.length ?? 0} attempt(s) called off; the application's longest write wait ${appReport.writePauseMsByTenant[t.tenantId] ?? 0} ms`;
      t.notes.push(words);
      log(`  ${words}`);
    }

  // Judge every tenant, with both gateway nodes up (a dead one would fail the fence check).
  const results: CaseResult[] = [];
  for (const g of gateways) if (!g.proc || g.proc.child.exitCode !== null || g.proc.child.signalCode !== null) await g.start().catch(() => undefined);
  for (const t of tenants) {
    const verdict = await check({
      files: { tenantId: t.tenantId, sourceFile: join(dir, 'source', `${t.database}.db`), targetFile: join(dir, 'cloud', `${t.database}.db`), trackingTable: TRACKING_TABLE },
      catalogFile: join(dir, 'catalog.db'),
      gateways: gateways.map((g) => g.url),
      adminToken: ADMIN_TOKEN,
      acked: load?.acked.get(t.tenantId) ?? new Set(),
      eventPrefix: `load-${t.tenantId}-`,
      sourceSchemaBefore: t.schema,
      sourceSchemaChanged: t.schemaChanged,
      harnessRows: t.harnessRows,
      app: { lostOn: async (side) => (await app?.lostOf(t.tenantId, side)) ?? [], writes: app?.expectedCount(t.tenantId) ?? 0, stuck: appReport?.stuck[t.tenantId] },
      expected: expectedOutcome(t.phase, t.fault),
      ended: t.ended?.outcome ?? 'running',
      detail: t.ended?.detail,
    }).catch((err): Verdict => ({ ok: false, broken: [{ invariant: 'checker', detail: reasonOf(err) }], eventsAccepted: 0, eventsLost: 0, eventsDuplicated: 0, stranded: false }));
    verdict.broken.unshift(...t.harness);
    verdict.ok = verdict.broken.length === 0;
    results.push({ phase: t.phase, fault: t.fault, tenantId: t.tenantId, verdict, notes: t.notes, pauseMs: appReport?.writePauseMsByTenant[t.tenantId] });
  }

  // Tear down everything this round started.
  await connection?.close().catch(() => undefined);
  await worker?.kill('SIGTERM');
  await worker2?.kill('SIGTERM');
  await Promise.all(gateways.map((g) => g.proc?.kill('SIGTERM')));
  await Promise.all(proxies.map((p) => p.close()));
  await temporal?.stop();
  await dev?.stop();
  await azurite?.stop();
  writeFileSync(join(dir, 'proxy-B.log'), proxies[1].log.join('\n'));
  return results;

  async function sendRollback(t: TenantCase): Promise<void> {
    const reason = `chaos: rollback during ${t.phase}`;
    const answer = await operatorCommand(t.handle!, () => t.handle!.executeUpdate(rollbackUpdate, { args: [reason] }), 'rollback', [reason]);
    t.notes.push(`rollback: ${answer}`);
    if (answer.startsWith('refused') && t.phase !== 'finalizing') t.notes.push('(a refusal before the point of no return)');
  }

  async function waitHeld(t: TenantCase, holdDir: string): Promise<void> {
    const kind = holdOf(t).kind;
    const deadline = Date.now() + HELD_WITHIN_MS;
    for (;;) {
      if (kind === 'step') {
        const step = heldStep(holdDir, t.tenantId);
        if (step) {
          t.notes.push(`held in ${t.phase} ${step.at} ${step.activity} (attempt ${step.attempt})`);
          return;
        }
      }
      if (kind === 'none') {
        t.notes.push(`goes on from its breakpoint before ${t.phase}, nothing held`);
        return;
      }
      if (kind === 'stall' && stalledWorker(holdDir, t.tenantId)) {
        t.notes.push('held in cutting_over: its switch stalled on a worker right before its fence holds for good');
        return;
      }
      if (kind === 'flip' && t.flip) {
        const held = await Promise.race([t.flip, sleep(100).then(() => undefined)]);
        if (held) {
          t.flipHeld = held;
          t.notes.push("held in cutting_over: node A flipped, node B's flip held at its proxy");
          return;
        }
      }
      const status = await queryStatus(t.handle!);
      if (status && (kind === 'approval' || kind === 'window') && status.phase === t.phase) {
        t.notes.push(`held in ${t.phase}`);
        return;
      }
      const end = await endState(t.handle!);
      if (end) {
        t.harness.push({ invariant: 'reached', detail: `ended ${end.outcome} before its step in ${t.phase} could be held${end.detail ? `: ${end.detail}` : ''}` });
        return;
      }
      if (Date.now() > deadline) {
        t.harness.push({ invariant: 'reached', detail: `never held in ${t.phase} within ${HELD_WITHIN_MS / 1000} s (last phase ${status?.phase ?? 'unknown'})` });
        return;
      }
      await sleep(kind === 'step' || kind === 'stall' ? 50 : 300);
    }
  }

  /** Until every held step of these tenants has ended on its worker (a zombie's last effect has landed). */
  async function waitStepsEnded(cases: TenantCase[], timeoutMs: number): Promise<void> {
    const held = cases.filter((t) => holdOf(t).kind === 'step' && heldStep(holdDir, t.tenantId));
    const ended = await waitFor(() => held.every((t) => heldStepEnded(holdDir, t.tenantId)) || undefined, timeoutMs);
    for (const t of held) t.notes.push(heldStepEnded(holdDir, t.tenantId) ? "the old run's held step has ended on its worker" : `the old run's held step had not ended after ${timeoutMs / 1000} s`);
    if (!ended) log(`  held steps still running after ${timeoutMs / 1000} s`);
  }
}

/** Polls `probe` until it gives a value, or undefined at the timeout. */
async function waitFor<T>(probe: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) return undefined;
    await sleep(50);
  }
}

function countAcked(load: LoadGenerator): number {
  let n = 0;
  for (const s of load.acked.values()) n += s.size;
  return n;
}

async function queryStatus(handle: WorkflowHandle): Promise<TenantStatus | undefined> {
  return handle.query<TenantStatus>('status').catch(() => undefined);
}

async function waitStatus(handle: WorkflowHandle, ok: (s: TenantStatus) => boolean, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last: TenantStatus | undefined;
  for (;;) {
    last = (await queryStatus(handle)) ?? last;
    if (last && ok(last)) return 'yes';
    const end = await endState(handle);
    if (end) return `ended ${end.outcome}${end.detail ? `: ${end.detail}` : ''}`;
    if (Date.now() > deadline) return `timed out in phase ${last?.phase ?? 'unknown'}`;
    await sleep(500);
  }
}

/** How the workflow ended, or undefined while it runs (or cannot be asked). */
async function endState(handle: WorkflowHandle): Promise<{ outcome: Outcome; detail?: string } | undefined> {
  const d = await handle.describe().catch(() => undefined);
  if (!d || d.status.name === 'RUNNING' || d.status.name === 'CONTINUED_AS_NEW') return undefined;
  if (d.status.name === 'COMPLETED') {
    const result = (await handle.result()) as TenantResult;
    return { outcome: result.outcome, detail: result.status.rollbackReason ?? result.status.lastError };
  }
  if (d.status.name === 'FAILED') {
    const detail = await handle.result().then(
      () => undefined,
      (err) => (err instanceof WorkflowFailedError ? reasonOf(err.cause ?? err) : reasonOf(err)),
    );
    return { outcome: 'failed', detail };
  }
  if (d.status.name === 'TERMINATED') return { outcome: 'terminated', detail: 'workflow terminated' };
  return { outcome: 'failed', detail: `workflow ${d.status.name.toLowerCase()}` };
}

async function waitEnd(handle: WorkflowHandle, deadline: number): Promise<{ outcome: Outcome | 'running'; detail?: string }> {
  for (;;) {
    const end = await endState(handle).catch(() => undefined);
    if (end) return end;
    if (Date.now() > deadline) return { outcome: 'running' };
    await sleep(1000);
  }
}

/** An operator command: the answer, or the refusal as the operator would read it. */
async function operatorUpdate(send: () => Promise<string>): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return `accepted (${await send()})`;
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) return `refused (${reasonOf(err)})`;
      if (Date.now() > deadline) return `not delivered (${reasonOf(err)})`;
      await sleep(1000);
    }
  }
}

/** The update, or the signal of the same name for a workflow that has no such update handler. */
async function operatorCommand(handle: WorkflowHandle, update: () => Promise<string>, signal: string, args: unknown[]): Promise<string> {
  const answer = await operatorUpdate(update);
  if (!answer.startsWith('refused') || !/handler|unknown update|not found/i.test(answer)) return answer;
  return handle.signal(signal, ...args).then(
    () => `signalled (this workflow has no ${signal} update)`,
    (err) => `signal not delivered (${reasonOf(err)})`,
  );
}

async function reconnect(client: Client): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      await client.workflowService.getSystemInfo({});
      return;
    } catch {
      await sleep(500);
    }
  }
}
