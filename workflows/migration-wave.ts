// A wave: tenant migrations started as children under one concurrency limit. Children are abandoned,
// not cancelled, if the wave stops: a tenant mid-cut-over finishes or rolls back on its own terms.
import * as wf from '@temporalio/workflow';
import {
  abortSignal,
  migrationIdOf,
  reasonOf,
  pauseSignal,
  pauseUpdate,
  resumeSignal,
  resumeUpdate,
  rollbackWindowOpenedSignal,
  tenantSearchAttribute,
  tenantWorkflowId,
  waveSearchAttribute,
  waveStatusQuery,
  type WaveInput,
  type WaveStatus,
  type WaveTenantRow,
} from './contract';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { migrateTenant } from './migrate-tenant';

export async function migrationWave(input: WaveInput): Promise<WaveStatus> {
  const finished = new Map((input.finished ?? []).map((row) => [row.tenantId, row]));
  // Waves from before a tenant in its rollback window freed its slot replay as they ran.
  const windowFreesSlot = wf.patched('rollback-window-frees-wave-slot');
  const status: WaveStatus = {
    waveId: input.waveId,
    ...(input.rerun ? { rerun: input.rerun } : {}),
    ...(windowFreesSlot ? { concurrency: input.policy.concurrency } : {}),
    // A pause outlives the run it was given in: the next run starts held until `resume`.
    paused: input.paused ?? false,
    aborted: false,
    runs: input.run ?? 1,
    tenants: input.tenants.map((tenantId) => finished.get(tenantId) ?? { tenantId, state: 'pending' }),
  };
  /** Tenants that hold a slot: running and not yet in their rollback window. */
  const slotsInUse = () => status.tenants.filter((r) => r.state === 'running' && !r.inWindow).length;
  wf.setHandler(waveStatusQuery, () => status);
  wf.setHandler(pauseSignal, () => void (status.paused = true));
  wf.setHandler(resumeSignal, () => void (status.paused = false));
  wf.setHandler(pauseUpdate, () => {
    status.paused = true;
    return `wave ${input.waveId} paused: no new tenant starts; running tenants go on`;
  }, {
    validator: () => {
      if (status.aborted) throw new Error(`pause refused: wave ${input.waveId} was aborted; no tenant starts any more`);
      if (status.paused) throw new Error(`pause refused: wave ${input.waveId} is already paused`);
    },
  });
  wf.setHandler(resumeUpdate, () => {
    status.paused = false;
    const pending = status.tenants.filter((r) => r.state === 'pending').length;
    const busy = slotsInUse();
    const free = Math.max(0, input.policy.concurrency - busy);
    return `wave ${input.waveId} resumed: ${pending} pending tenant(s); ${Math.min(free, pending)} start now, the rest as slots free (concurrency ${input.policy.concurrency}, ${busy} in use${windowFreesSlot ? '; a tenant in its rollback window holds none' : ''})`;
  }, {
    validator: () => {
      if (!status.paused) throw new Error(`resume refused: wave ${input.waveId} is not paused`);
    },
  });
  wf.setHandler(abortSignal, () => void (status.aborted = true));
  wf.setHandler(rollbackWindowOpenedSignal, (tenantId) => {
    const row = status.tenants.find((r) => r.tenantId === tenantId && r.state === 'running');
    if (row && windowFreesSlot) row.inWindow = true;
  });
  wf.upsertSearchAttributes([{ key: waveSearchAttribute, value: input.waveId }]);

  let running = 0;
  let startedThisRun = 0;
  for (const row of status.tenants.filter((r) => r.state === 'pending')) {
    // The run's quota is checked before waiting, so a pause given now is carried into the next run.
    if (startedThisRun >= input.policy.tenantsPerRun) break;
    await wf.condition(() => status.aborted || (!status.paused && (windowFreesSlot ? slotsInUse() : running) < input.policy.concurrency));
    if (status.aborted) break;
    startedThisRun++;
    running++;
    row.state = 'running';
    void runChild(input, row).finally(() => running--);
  }
  if (status.aborted) wf.log.info('wave aborted: no new tenants start; running ones continue on their own', { waveId: input.waveId });
  // Also after an abort: the wave ends only when its running tenants have, so `airlift status <wave>`
  // keeps showing their progress and the wave's result gives each one's real outcome. Calling them
  // "abandoned" would hide tenants that are still cutting over or rolling back behind a closed wave.
  await wf.condition(() => running === 0);
  await wf.condition(wf.allHandlersFinished);
  if (!status.aborted && status.tenants.some((r) => r.state === 'pending')) {
    // History stays small for thousands of tenants: carry only the finished rows into a fresh run.
    await wf.continueAsNew<typeof migrationWave>({
      ...input,
      run: status.runs + 1,
      paused: status.paused,
      finished: status.tenants.filter((r) => r.state !== 'pending'),
    });
  }
  return status;
}

async function runChild(input: WaveInput, row: WaveTenantRow): Promise<void> {
  try {
    const child = await wf.startChild(migrateTenant, {
      workflowId: tenantWorkflowId(row.tenantId),
      staticSummary: `tenant ${row.tenantId}, wave ${input.waveId}${input.rerun ? ` (rerun ${input.rerun})` : ''}`,
      args: [{ tenantId: row.tenantId, migrationId: migrationIdOf(wf.uuid4()), waveId: input.waveId, policy: { ...input.policy, cutover: input.cutoverOf?.[row.tenantId] ?? input.policy.cutover } }],
      parentClosePolicy: wf.ParentClosePolicy.ABANDON,
      cancellationType: wf.ChildWorkflowCancellationType.ABANDON,
      typedSearchAttributes: [
        { key: tenantSearchAttribute, value: row.tenantId },
        { key: waveSearchAttribute, value: input.waveId },
      ],
    });
    row.runId = child.firstExecutionRunId;
    row.state = (await child.result()).outcome;
    delete row.inWindow;
  } catch (err) {
    // A tenant another wave (or a start by hand) is migrating is that wave's, not a failure of this one.
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      row.state = 'skipped';
      row.error = `skipped: ${row.tenantId} is being migrated by another run of ${tenantWorkflowId(row.tenantId)} (see \`airlift status --tenant ${row.tenantId}\`); a tenant migrates in one workflow at a time`;
      return;
    }
    row.state = 'failed';
    row.error = reasonOf(err);
  }
}
