// Holding a phase's step open: an activity inbound interceptor that, for a chosen tenant, stops the
// first activity it runs in a chosen phase until the harness releases it. State lives in files, so a
// worker killed and started again does not hold the same tenant twice, and the harness can watch.
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import type { Engine, EngineFactory, EndpointConfig, GateExpectation, WriteGate } from '../engines';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface HoldRule {
  tenantId: string;
  /** The workflow's phase (its `status` query) when the activity starts. */
  phase: string;
  /** Hold before the real step runs (its effect lands late) or after it (its effect is done, unreported). */
  at: 'before' | 'after';
}

/**
 * A switch to stall for one tenant: on the worker that runs it, right before the switch makes its
 * fence on `side` (the old primary) hold for good, the last step before the flip. The worker says
 * so in a file with its pid and waits; the harness freezes it (SIGSTOP), thaws it, and lets it go on.
 */
export interface StallRule {
  tenantId: string;
  database: string;
  side: 'source' | 'target';
}

export interface HoldPlan {
  dir: string;
  rules: HoldRule[];
  stalls?: StallRule[];
  /** Longest hold when nobody releases it, so a lost harness never hangs a worker. */
  maxHoldMs: number;
}

export const HOLD_PLAN_ENV = 'AIRLIFT_CHAOS_HOLDS';

/** Open-ended activities beside the phases: never the step a phase is held on. */
const BACKGROUND_ACTIVITIES = new Set(['dualWrite']);

export const holdFiles = (dir: string, tenantId: string) => ({
  claim: join(dir, `${tenantId}.claim`),
  held: join(dir, `${tenantId}.held`),
  release: join(dir, `${tenantId}.release`),
  /** Written when the held step has ended on its worker (done or failed): a zombie step has finished. */
  done: join(dir, `${tenantId}.done`),
  stallClaim: join(dir, `${tenantId}.stall-claim`),
  stalled: join(dir, `${tenantId}.stalled`),
  stallRelease: join(dir, `${tenantId}.stall-release`),
});

export interface HeldStep {
  activity: string;
  attempt: number;
  at: 'before' | 'after';
  /** The worker process running it. */
  pid: number;
}

/** What the harness reads: the step being held, or undefined while none is. */
export function heldStep(dir: string, tenantId: string): HeldStep | undefined {
  const file = holdFiles(dir, tenantId).held;
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as HeldStep) : undefined;
}

export function releaseHold(dir: string, tenantId: string): void {
  writeFileSync(holdFiles(dir, tenantId).release, '');
}

/** Whether the held step has ended on its worker. */
export function heldStepEnded(dir: string, tenantId: string): boolean {
  return existsSync(holdFiles(dir, tenantId).done);
}

/** The pid of the worker stalled in a tenant's switch, or undefined while none is. */
export function stalledWorker(dir: string, tenantId: string): number | undefined {
  const file = holdFiles(dir, tenantId).stalled;
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { pid: number }).pid : undefined;
}

export function releaseStall(dir: string, tenantId: string): void {
  writeFileSync(holdFiles(dir, tenantId).stallRelease, '');
}

/**
 * Engines that stall a tenant's switch as its `StallRule` says: the first write-gate change that
 * makes the old primary's fence hold without a lease (`unexpired`, protocol/switch.ts) waits there,
 * once per tenant across every worker, until the harness releases it.
 */
export function stallingEngines(plan: HoldPlan, sideOf: (endpoint: EndpointConfig) => 'source' | 'target', create: EngineFactory): EngineFactory {
  return (endpoint, env) => {
    const engine = create(endpoint, env);
    const side = sideOf(endpoint);
    const rules = (plan.stalls ?? []).filter((r) => r.side === side);
    if (!rules.length) return engine;
    return Object.assign(Object.create(engine) as Engine, {
      setWriteGate: async (database: string, gate: WriteGate, expect?: GateExpectation) => {
        const rule = rules.find((r) => r.database === database);
        if (rule && expect?.unexpired === true) await stall(plan, rule.tenantId);
        return engine.setWriteGate(database, gate, expect);
      },
    });
  };
}

async function stall(plan: HoldPlan, tenantId: string): Promise<void> {
  const files = holdFiles(plan.dir, tenantId);
  try {
    writeFileSync(files.stallClaim, String(process.pid), { flag: 'wx' });
  } catch {
    return; // stalled once already
  }
  writeFileSync(files.stalled, JSON.stringify({ pid: process.pid }));
  const until = Date.now() + plan.maxHoldMs;
  while (!existsSync(files.stallRelease) && Date.now() < until) await sleep(20);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]).finally(() => clearTimeout(timer));
}

export function holdInterceptor(plan: HoldPlan, client: Client): ActivityInterceptorsFactory {
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        const info = ctx.info;
        const workflowId = info.workflowExecution?.workflowId;
        const rule = plan.rules.find((r) => workflowId === `airlift-tenant-${r.tenantId}`);
        if (!rule || BACKGROUND_ACTIVITIES.has(info.activityType)) return next(input);
        const files = holdFiles(plan.dir, rule.tenantId);
        if (existsSync(files.claim)) return next(input);
        // On a loaded machine the query can take long: ask again (heartbeating meanwhile) rather than
        // let the step run unheld, which would lose the case.
        let status: { phase: string } | undefined;
        for (const deadline = Date.now() + 60_000; !status && Date.now() < deadline; ) {
          status = await withTimeout(client.workflow.getHandle(workflowId!).query<{ phase: string }>('status').catch(() => undefined), 5000);
          if (!status && info.heartbeatTimeoutMs) ctx.heartbeat(info.heartbeatDetails);
          if (!status) await sleep(200);
        }
        if (status?.phase !== rule.phase) return next(input);
        try {
          writeFileSync(files.claim, info.activityType, { flag: 'wx' });
        } catch {
          return next(input); // another activity of this tenant claimed the hold first
        }

        // Heartbeats go on while held (for steps that have a heartbeat timeout), repeating the step's
        // own last checkpoint so a retry resumes exactly where the real step left it.
        let lastDetails: unknown = info.heartbeatDetails;
        const realHeartbeat = ctx.heartbeat;
        (ctx as { heartbeat: (d?: unknown) => void }).heartbeat = (details?: unknown) => {
          lastDetails = details;
          realHeartbeat(details);
        };
        const hold = async () => {
          writeFileSync(files.held, JSON.stringify({ activity: info.activityType, attempt: info.attempt, at: rule.at, pid: process.pid } satisfies HeldStep));
          const until = Date.now() + plan.maxHoldMs;
          let beat = 0;
          while (!existsSync(files.release) && Date.now() < until) {
            await sleep(100);
            if (info.heartbeatTimeoutMs && ++beat % 10 === 0) realHeartbeat(lastDetails);
          }
        };
        const ended = () => writeFileSync(files.done, '');
        if (rule.at === 'before') {
          await hold();
          return next(input).finally(ended);
        }
        const result = await next(input);
        await hold();
        ended();
        return result;
      },
    },
  });
}
