// Races between an operator's rollback and the step under way, on the real stack (Temporal dev
// server, Azurite, SQLite files). Each window is held open by slowing one real activity call with a
// worker interceptor; the outcome is read from the catalog and the databases, not from the workflow.
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import Database from 'better-sqlite3';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';
import type { Context } from '@temporalio/activity';
import { Catalog } from '../../ingestion/catalog';
import { SqliteEngine } from '../../engines/sqlite';
import { type LoadedFleet } from '../../config/fleet';
import { sqliteDirectory } from '../../engines/sqlite-kind';
import { createAirliftWorker } from '../../workers/worker';
import {
  migrationIdOf,
  rollbackSignal,
  rollbackUpdate,
  statusQuery,
  tenantWorkflowId,
  type MigrationPolicy,
  type TenantResult,
} from '../../workflows/contract';
import { makeFleet, useTestStack, waitFor, workerEnv, type TestStack } from '../helpers/stack';
import { schemaOf } from '../helpers/held-out-schema';

const sourceFile = (fleet: LoadedFleet) => join(sqliteDirectory(fleet.sources.onprem), `${fleet.tenants[0].database}.db`);

const currentStack = useTestStack();
let stack: TestStack;
beforeEach(() => (stack = currentStack()));

/** Slows the first call of one activity (optionally only when its arguments match) before it runs. */
function slowOnce(activity: string, ms: number, when: (args: unknown[]) => boolean = () => true, options: { heartbeat?: boolean } = {}) {
  let done = false;
  let woke = false;
  let entered!: () => void;
  const started = new Promise<void>((r) => (entered = r));
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const interceptor = (ctx: Context): { inbound: ActivityInboundCallsInterceptor } => ({
    inbound: {
      async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>) {
        if (!done && ctx.info.activityType === activity && when(input.args)) {
          done = true;
          entered();
          // Held `ms`, or until the test releases it (a window that must stay open however slow the machine).
          // With `heartbeat`, the held attempt stays alive (not timed out and retried) however long it is held.
          let timer: NodeJS.Timeout | undefined;
          const beat = options.heartbeat ? setInterval(() => ctx.heartbeat(), 1000) : undefined;
          await Promise.race([new Promise((r) => (timer = setTimeout(r, ms))), released]);
          clearTimeout(timer);
          clearInterval(beat);
          try {
            return await next(input);
          } finally {
            woke = true;
          }
        }
        return next(input);
      },
    },
  });
  return { interceptor, started, release, finished: () => woke };
}

async function runWith(fleet: LoadedFleet, slow: ReturnType<typeof slowOnce>, body: (handle: Awaited<ReturnType<typeof start>>) => Promise<void>) {
  const queue = `races-${randomUUID()}`;
  const { worker, close } = await createAirliftWorker({
    connection: stack.env.nativeConnection,
    namespace: stack.env.namespace ?? 'default',
    fleet,
    taskQueue: queue,
    workflowBundle: { code: readFileSync(process.env.AIRLIFT_TEST_WORKFLOW_BUNDLE!, 'utf8') },
    env: workerEnv(stack, fleet),
    interceptors: { activity: [slow.interceptor] },
  });
  const running = worker.run();
  try {
    await body(await start(fleet, queue));
  } finally {
    worker.shutdown();
    await running;
    close();
  }
}

const start = (fleet: LoadedFleet, taskQueue: string) =>
  stack.env.client.workflow.start('migrateTenant', {
    workflowId: tenantWorkflowId(fleet.tenants[0].id),
    taskQueue,
    args: [{ tenantId: fleet.tenants[0].id, migrationId: migrationIdOf(randomUUID()), policy: fleet.policy as MigrationPolicy }],
  });

/** What an operator would check afterwards, read straight from the catalog and the files. */
function state(fleet: LoadedFleet) {
  const catalog = new Catalog(fleet.catalog.path);
  try {
    const t = fleet.tenants[0];
    return { route: catalog.get(t.id), targetExists: existsSync(join(sqliteDirectory(fleet.targets.cloud), `${t.database}.db`)) };
  } finally {
    catalog.close();
  }
}

test('item 1: a rollback during cutting_over waits for the switch, then routes back; the catalog never points at a dropped target', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 300 });
  const slow = slowOnce('switchPrimary', 2500, (args) => args[2] === 'target');
  try {
    await runWith(fleet, slow, async (handle) => {
      await slow.started;
      await handle.signal(rollbackSignal, 'test: rollback during cut-over');
      const result = (await handle.result()) as TenantResult;
      expect(result.outcome).toBe('rolled_back');
      expect(result.status.rollbackReason).toBe('test: rollback during cut-over');
    });
    const after = state(fleet);
    expect(after.route).toMatchObject({ primary: 'source', writeMode: 'read_write', outbox: false });
    expect(after.targetExists).toBe(false);
    // Capture came off whole: no gate left, the source takes writes as before the migration.
    const gate = await new SqliteEngine(sqliteDirectory(fleet.sources.onprem)).writeGate(fleet.tenants[0].database);
    expect(gate).toBeNull();
  } finally {
    cleanup();
  }
});

test('item 2: past the rollback window a rollback is refused with the reason, and the tenant completes on its target', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 300, policy: { rollbackWindowSeconds: 1 } });
  // The first step past the window (capture coming off), held open until the refusals are checked.
  const slow = slowOnce('stopJournaling', 90_000, () => true, { heartbeat: true });
  try {
    await runWith(fleet, slow, async (handle) => {
      await slow.started;
      expect((await handle.query(statusQuery)).phase).toBe('finalizing');
      const refused = await handle.executeUpdate(rollbackUpdate, { args: ['test: too late'] }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
      expect((refused as WorkflowUpdateFailedError).cause?.message).toMatch(/rollback refused: .* past the point of no return/);
      // The operator's command says the same, on one line, with no stack trace.
      const cli = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        execFile(process.execPath, [join(__dirname, '../../bin/airlift.js'), 'rollback', fleet.tenants[0].id, '--reason', 'too late'],
          { env: { ...process.env, TEMPORAL_ADDRESS: stack.env.address, TEMPORAL_NAMESPACE: stack.env.namespace ?? 'default' } },
          (err, _stdout, stderr) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, stderr }));
      });
      expect(cli.code).not.toBe(0);
      expect(cli.stderr.trim().split('\n')).toEqual([expect.stringMatching(/rollback refused: .* past the point of no return/)]);
      await handle.signal(rollbackSignal, 'test: too late, from the UI');
      slow.release();
      const result = (await handle.result()) as TenantResult;
      expect(result.outcome).toBe('completed');
      expect(result.status.rollbackRefused).toMatch(/past the point of no return/);
    });
    const after = state(fleet);
    expect(after.route).toMatchObject({ primary: 'target', writeMode: 'read_write', outbox: false });
    expect(after.targetExists).toBe(true);
  } finally {
    cleanup();
  }
});

test('item 5: a rollback during journaling is taken after the step and undoes it: no tenant left journaling, the schema as it was', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 200 });
  const before = schemaOf(sourceFile(fleet));
  const slow = slowOnce('startJournaling', 2000);
  try {
    await runWith(fleet, slow, async (handle) => {
      await slow.started;
      expect(await handle.executeUpdate(rollbackUpdate, { args: ['test: early rollback'] })).toMatch(/rollback of .* started/);
      expect(((await handle.result()) as TenantResult).outcome).toBe('rolled_back');
    });
    expect(state(fleet).route).toMatchObject({ primary: 'source', writeMode: 'read_write', outbox: false });
    expect(schemaOf(sourceFile(fleet))).toEqual(before);
  } finally {
    cleanup();
  }
});

test('item 7: the migration id is unique per run, even for two runs of a tenant in the same minute, and survives a workflow reset', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 100, policy: { pauseBefore: ['snapshotting'] } });
  const slow = slowOnce('none', 0);
  try {
    await runWith(fleet, slow, async (first) => {
      const firstId = (await waitForPaused(first)).migrationId;
      await first.signal(rollbackSignal, 'test: make room for a second run');
      await first.result();
      const second = await start(fleet, first.workflowId === tenantWorkflowId(fleet.tenants[0].id) ? (await first.describe()).taskQueue : '');
      const secondId = (await waitForPaused(second)).migrationId;
      expect(secondId).not.toBe(firstId);

      // Reset the second run to its first workflow task: a new run id, the same migration.
      const afterReset = await resetToFirstTask(second, 'test: reset keeps the migration id');
      expect((await waitForPaused(afterReset)).migrationId).toBe(secondId);
      await afterReset.signal(rollbackSignal, 'test: done');
      await afterReset.result();
    });
  } finally {
    cleanup();
  }
});

/** Resets a workflow to its first workflow task (a new run of the same migration); the new run's handle. */
async function resetToFirstTask(handle: Awaited<ReturnType<typeof start>>, reason: string) {
  const history = await handle.fetchHistory();
  const firstTask = history.events!.find((e) => e.workflowTaskCompletedEventAttributes)!;
  const reset = await stack.env.client.workflowService.resetWorkflowExecution({
    namespace: stack.env.namespace ?? 'default',
    workflowExecution: { workflowId: handle.workflowId, runId: (await handle.describe()).runId },
    workflowTaskFinishEventId: firstTask.eventId,
    requestId: randomUUID(),
    reason,
  });
  return stack.env.client.workflow.getHandle(handle.workflowId, reset.runId!);
}

function waitForPaused(handle: { query: (q: typeof statusQuery) => Promise<import('../../workflows/contract').TenantStatus> }) {
  return waitFor('the tenant held at its breakpoint', async () => {
    const s = await handle.query(statusQuery);
    return s.paused ? s : undefined;
  });
}

test('a journaling attempt left running on a stalled worker wakes after the rollback removed capture, and leaves nothing behind', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 200 });
  const before = schemaOf(sourceFile(fleet));
  // The first attempt stalls 22 s before it runs: past the 15 s heartbeat timeout, so Temporal runs a
  // second attempt meanwhile, and the rollback takes capture off before the first one wakes.
  const slow = slowOnce('startJournaling', 22000);
  try {
    await runWith(fleet, slow, async (handle) => {
      await slow.started;
      expect(await handle.executeUpdate(rollbackUpdate, { args: ['test: rollback while journaling is stuck'] })).toMatch(/rollback of .* started/);
      expect(((await handle.result()) as TenantResult).outcome).toBe('rolled_back');
      expect(state(fleet).route).toMatchObject({ outbox: false });
      await waitFor('the stalled attempt to wake and try', async () => (slow.finished() ? true : undefined), 40_000);
    });
    expect(state(fleet).route).toMatchObject({ primary: 'source', writeMode: 'read_write', outbox: false });
    expect(schemaOf(sourceFile(fleet))).toEqual(before);
  } finally {
    cleanup();
  }
}, 90_000);

test('a table created on the target in the rollback window (an application deploy): the rollback is refused at once with the reason, reverse replication keeps running, and once the table is carried back the rollback goes through', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 300, policy: { rollbackWindowSeconds: 300 } });
  const targetFile = join(sqliteDirectory(fleet.targets.cloud), `${fleet.tenants[0].database}.db`);
  // Nothing is slowed here: the window itself is held open by its 300 s.
  const never = slowOnce('cleanWorkDirectory', 0, () => false);
  try {
    await runWith(fleet, never, async (handle) => {
      await waitFor('the rollback window', async () => ((await handle.query(statusQuery)).phase === 'rollback_window' ? true : undefined));
      const target = new Database(targetFile);
      try {
        target.exec('CREATE TABLE release_notes (id INTEGER PRIMARY KEY, body TEXT)');
        const started = Date.now();
        const refused = await handle.executeUpdate(rollbackUpdate, { args: ['test: roll back after a deploy'] }).catch((e: unknown) => e);
        // Refused at once (no retries for an hour), with the table named and what to do.
        expect(Date.now() - started).toBeLessThan(20_000);
        expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
        expect((refused as WorkflowUpdateFailedError).cause?.message).toMatch(/rollback refused: table\(s\) release_notes changed on the target since journaling.*carry the change to the source/);
        const status = await handle.query(statusQuery);
        expect(status.phase).toBe('rollback_window');
        expect(status.rollbackRefused).toMatch(/release_notes/);
        // Reverse replication still runs: a change on the target reaches the source.
        target.prepare("UPDATE ads SET headline = 'changed in the window' WHERE id = 1").run();
        await waitFor('the change to reach the source', async () => {
          const source = new Database(sourceFile(fleet), { readonly: true });
          try {
            return source.prepare('SELECT headline FROM ads WHERE id = 1').pluck().get() === 'changed in the window' ? true : undefined;
          } finally {
            source.close();
          }
        });
        // The operator's other choice: the deploy is undone (the table carried off), and the rollback goes through.
        target.exec('DROP TABLE release_notes');
      } finally {
        target.close();
      }
      expect(await handle.executeUpdate(rollbackUpdate, { args: ['test: roll back once the schema is settled'] })).toMatch(/rollback of .* started/);
      expect(((await handle.result()) as TenantResult).outcome).toBe('rolled_back');
    });
    expect(state(fleet).route).toMatchObject({ primary: 'source', outbox: false });
    const source = new Database(sourceFile(fleet), { readonly: true });
    try {
      expect(source.prepare('SELECT headline FROM ads WHERE id = 1').pluck().get()).toBe('changed in the window');
    } finally {
      source.close();
    }
  } finally {
    cleanup();
  }
});

test('a journaling attempt from before a workflow reset wakes after the reset run was rolled back: refused before it installs anything, and the tenant migrates again', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 200 });
  const before = schemaOf(sourceFile(fleet));
  // The first run's journaling attempt is held (heartbeating, so Temporal does not retry it) until the test lets it go.
  const slow = slowOnce('startJournaling', 120_000, () => true, { heartbeat: true });
  try {
    await runWith(fleet, slow, async (handle) => {
      await slow.started;
      // Reset to the first workflow task: a new run of the same migration, which journals and is rolled back.
      const afterReset = await resetToFirstTask(handle, 'test: reset while journaling is held');
      await waitFor('the reset run past journaling', async () => ((await afterReset.query(statusQuery)).journalFrom !== undefined ? true : undefined));
      expect(await afterReset.executeUpdate(rollbackUpdate, { args: ['test: roll back the reset run'] })).toMatch(/rollback of .* started/);
      expect(((await afterReset.result()) as TenantResult).outcome).toBe('rolled_back');
      // The first run's attempt wakes now.
      slow.release();
      await waitFor('the held attempt to wake and try', async () => (slow.finished() ? true : undefined), 30_000);
    });
    // Nothing of it is left: the schema as before, no gate, the outbox off.
    expect(schemaOf(sourceFile(fleet))).toEqual(before);
    expect(state(fleet).route).toMatchObject({ primary: 'source', outbox: false });
    // And the tenant migrates again (a new migration is not refused as "held by another migration").
    await runWith(fleet, slowOnce('none', 0), async (handle) => {
      expect(((await handle.result()) as TenantResult).outcome).toBe('completed');
    });
  } finally {
    cleanup();
  }
});

test('a rollback signal in the rollback window whose online check fails (the target unreachable) is taken anyway: the tenant is rolled back, the workflow never wedges', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 200, policy: { rollbackWindowSeconds: 300 } });
  const failing = slowOnce('none', 0);
  const interceptor = (ctx: Context): { inbound: ActivityInboundCallsInterceptor } => ({
    inbound: {
      async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>) {
        if (ctx.info.activityType === 'routeBackRefusal') throw new Error('target database unreachable');
        return next(input);
      },
    },
  });
  try {
    await runWith(fleet, { ...failing, interceptor }, async (handle) => {
      await waitFor('the rollback window', async () => ((await handle.query(statusQuery)).phase === 'rollback_window' ? true : undefined));
      await handle.signal(rollbackSignal, 'test: roll back while the check cannot be made');
      const result = (await handle.result()) as TenantResult;
      expect(result.outcome).toBe('rolled_back');
      const history = await handle.fetchHistory();
      expect(history.events!.filter((e) => e.workflowTaskFailedEventAttributes)).toEqual([]);
    });
    expect(state(fleet).route).toMatchObject({ primary: 'source', outbox: false });
  } finally {
    cleanup();
  }
});
