// The wave's operator commands on the real stack: a pause that outlives continue-as-new, and an abort
// that leaves no tenant shown as running. Tenants are held at a breakpoint (policy.pauseBefore) to keep
// each window open for as long as the test needs it.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { startWave } from '../../cli/waves';
import {
  abortSignal,
  approveCutoverUpdate,
  completeUpdate,
  pauseSignal,
  pauseUpdate,
  resumeSignal,
  resumeUpdate,
  rollbackUpdate,
  statusQuery,
  TASK_QUEUE,
  tenantWorkflowId,
  waveStatusQuery,
  waveWorkflowId,
  type TenantResult,
  type WaveStatus,
} from '../../workflows/contract';
import { makeFleet, startWorker, useTestStack, waitFor, type TestStack } from '../helpers/stack';

const currentStack = useTestStack();
let stack: TestStack;
beforeEach(() => (stack = currentStack()));

/** Waits until the tenant's workflow is held at its breakpoint (so it is running, and stays so). */
async function heldAtBreakpoint(client: Client, tenantId: string) {
  const handle = client.workflow.getHandle(tenantWorkflowId(tenantId));
  await waitFor(`${tenantId} held before snapshotting`, async () => ((await handle.query(statusQuery)).paused ? true : undefined));
  return handle;
}

async function neverStarted(client: Client, tenantId: string): Promise<boolean> {
  const described = await client.workflow.getHandle(tenantWorkflowId(tenantId)).describe().catch((e: unknown) => e);
  return described instanceof WorkflowNotFoundError;
}

// With concurrency 1 the old wave never continued as new while paused; with 2 it did, and dropped the pause.
test.each([1, 2])('a wave paused during its run (concurrency %i) starts its next run paused and starts nobody until resumed', async (concurrency) => {
  const { fleet, cleanup } = makeFleet({ tenants: 2, rows: 100, policy: { concurrency, tenantsPerRun: 1, pauseBefore: ['snapshotting'] } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const [first, second] = fleet.tenants.map((t) => t.id);
  const waveId = `pause-${first}`;
  const wave = stack.env.client.workflow.getHandle(waveWorkflowId(waveId));
  try {
    await startWave(stack.env.client, waveId, [first, second], fleet.policy);
    const held = await heldAtBreakpoint(stack.env.client, first);
    await wave.signal(pauseSignal);
    await waitFor('the wave paused', async () => ((await wave.query(waveStatusQuery)).paused ? true : undefined));
    await held.signal(resumeSignal);

    // The handle follows the chain: this is the run after continue-as-new.
    const next = await waitFor('the wave continued as new', async () => {
      const s = await wave.query(waveStatusQuery);
      return s.runs > 1 ? s : undefined;
    });
    expect(next.paused).toBe(true);
    expect(next.tenants).toEqual([
      { tenantId: first, state: 'completed', runId: expect.any(String) },
      { tenantId: second, state: 'pending' },
    ]);
    expect(await neverStarted(stack.env.client, second)).toBe(true);

    await wave.signal(resumeSignal);
    await (await heldAtBreakpoint(stack.env.client, second)).signal(resumeSignal);
    const final = (await wave.result()) as WaveStatus;
    expect(final.paused).toBe(false);
    expect(final.runs).toBe(2);
    expect(final.tenants.map((t) => t.state)).toEqual(['completed', 'completed']);
  } finally {
    await worker.stop();
    cleanup();
  }
});

test('an aborted wave starts no more tenants and ends only when its running tenant has, with its real outcome', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 2, rows: 100, policy: { concurrency: 1, tenantsPerRun: 10, pauseBefore: ['snapshotting'] } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const [first, second] = fleet.tenants.map((t) => t.id);
  const waveId = `abort-${first}`;
  const wave = stack.env.client.workflow.getHandle(waveWorkflowId(waveId));
  try {
    await startWave(stack.env.client, waveId, [first, second], fleet.policy);
    const child = await heldAtBreakpoint(stack.env.client, first);
    await wave.signal(abortSignal);
    const aborted = await waitFor('the abort taken', async () => {
      const s = await wave.query(waveStatusQuery);
      return s.aborted ? s : undefined;
    });
    // The tenant is still held at its breakpoint, so it is still running, and the wave says so.
    expect(aborted.tenants.map((t) => t.state)).toEqual(['running', 'pending']);
    expect((await wave.describe()).status.name).toBe('RUNNING');

    await child.signal(resumeSignal);
    const tenantResult = (await child.result()) as TenantResult;
    const final = (await wave.result()) as WaveStatus;
    expect(tenantResult.outcome).toBe('completed');
    expect(final.aborted).toBe(true);
    expect(final.tenants).toEqual([
      { tenantId: first, state: 'completed', runId: expect.any(String) },
      { tenantId: second, state: 'pending' },
    ]);
    expect(await neverStarted(stack.env.client, second)).toBe(true);
  } finally {
    await worker.stop();
    cleanup();
  }
});

test('a tenant in its rollback window holds no concurrency slot: the next tenant starts while the window is open', async () => {
  // A window of ten minutes: with the slot held, the second tenant could not start within the test.
  const { fleet, cleanup } = makeFleet({ tenants: 2, rows: 100, policy: { concurrency: 1, rollbackWindowSeconds: 600 } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const [first, second] = fleet.tenants.map((t) => t.id);
  const waveId = `window-${first}`;
  const client = stack.env.client;
  const wave = client.workflow.getHandle(waveWorkflowId(waveId));
  const phaseOf = (tenantId: string) => client.workflow.getHandle(tenantWorkflowId(tenantId)).query(statusQuery).then((s) => s.phase);
  try {
    await startWave(client, waveId, [first, second], fleet.policy);
    await waitFor(`${first} in its rollback window`, async () => ((await phaseOf(first)) === 'rollback_window' ? true : undefined));
    await waitFor(`${second} in its rollback window too`, async () => ((await phaseOf(second)) === 'rollback_window' ? true : undefined));
    // The first is still in its window: both are, with a limit of one.
    expect(await phaseOf(first)).toBe('rollback_window');
    const status = await wave.query(waveStatusQuery);
    expect(status.concurrency).toBe(1);
    expect(status.tenants.map((r) => [r.state, r.inWindow])).toEqual([['running', true], ['running', true]]);
    for (const t of [first, second]) await client.workflow.getHandle(tenantWorkflowId(t)).executeUpdate(completeUpdate);
    const final = (await wave.result()) as WaveStatus;
    expect(final.tenants).toEqual([
      { tenantId: first, state: 'completed', runId: expect.any(String) },
      { tenantId: second, state: 'completed', runId: expect.any(String) },
    ]);
  } finally {
    await worker.stop();
    cleanup();
  }
});

test('resume says how many pending tenants start now and why the others wait', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 3, rows: 100, policy: { concurrency: 1, pauseBefore: ['snapshotting'] } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const [first, second, third] = fleet.tenants.map((t) => t.id);
  const waveId = `resume-${first}`;
  const client = stack.env.client;
  const wave = client.workflow.getHandle(waveWorkflowId(waveId));
  try {
    await startWave(client, waveId, [first, second, third], fleet.policy);
    const held = await heldAtBreakpoint(client, first);
    expect(await wave.executeUpdate(pauseUpdate)).toContain('paused');
    expect(await wave.executeUpdate(resumeUpdate)).toBe(`wave ${waveId} resumed: 2 pending tenant(s); 0 start now, the rest as slots free (concurrency 1, 1 in use; a tenant in its rollback window holds none)`);
    await wave.signal(abortSignal);
    await held.executeUpdate(rollbackUpdate, { args: ['test: end'] });
    await wave.result();
  } finally {
    await worker.stop();
    cleanup();
  }
});

test("a tenant's own cutover: manual (the fleet file's tenants[].cutover) waits for approval while the wave's others cut over", async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 2, rows: 100, policy: { concurrency: 2 } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const [auto, manual] = fleet.tenants.map((t) => t.id);
  const waveId = `cutover-${auto}`;
  const client = stack.env.client;
  const handleOf = (t: string) => client.workflow.getHandle(tenantWorkflowId(t));
  try {
    expect(fleet.policy.cutover).toBe('auto');
    await startWave(client, waveId, [auto, manual], fleet.policy, TASK_QUEUE, undefined, { [manual]: 'manual', [auto]: 'auto' });
    await waitFor(`${manual} awaiting approval`, async () => ((await handleOf(manual).query(statusQuery)).phase === 'awaiting_cutover' ? true : undefined));
    expect(((await handleOf(auto).result()) as TenantResult).outcome).toBe('completed');
    await waitFor(`${manual} still awaiting approval`, async () => ((await handleOf(manual).query(statusQuery)).phase === 'awaiting_cutover' ? true : undefined));
    await handleOf(manual).executeUpdate(approveCutoverUpdate);
    expect(((await handleOf(manual).result()) as TenantResult).outcome).toBe('completed');
    expect(((await client.workflow.getHandle(waveWorkflowId(waveId)).result()) as WaveStatus).tenants.map((r) => r.state)).toEqual(['completed', 'completed']);
  } finally {
    await worker.stop();
    cleanup();
  }
});
