// The operator's commands to a running tenant or wave, as the war-room page sends them: each one
// answers with the workflow's own words, and a refusal (an update's validator, a workflow that has
// ended or never started) becomes an OperatorError carrying the reason. One place, so a command that
// turns from a signal into an update changes here only.
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import {
  abortSignal,
  approveCutoverUpdate,
  completeUpdate,
  pauseUpdate,
  phaseSearchAttribute,
  reasonOf,
  resumeUpdate,
  rollbackUpdate,
  tenantWorkflowId,
  waveWorkflowId,
} from '../workflows/contract';
import { OperatorError } from './waves';

export const TENANT_COMMANDS = ['pause', 'resume', 'approve', 'rollback', 'complete'] as const;
export type TenantCommand = (typeof TENANT_COMMANDS)[number];

/** The running workflow's handle, or the operator's one-line reason why there is none. */
async function runningHandle(client: Client, workflowId: string, what: string): Promise<WorkflowHandle> {
  const handle = client.workflow.getHandle(workflowId);
  try {
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING') {
      const phase = d.typedSearchAttributes.get(phaseSearchAttribute);
      throw new OperatorError(`${what} has already ended (${phase ? phase.replace(/_/g, ' ') : d.status.name.toLowerCase()}); nothing to do`);
    }
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new OperatorError(`${what} has no migration workflow (${workflowId}); start it in a wave first`);
    throw err;
  }
  return handle;
}

/** An update whose validator may refuse: the refusal is the workflow's own reason. */
async function update(send: () => Promise<string>): Promise<string> {
  try {
    return await send();
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new OperatorError(reasonOf(err));
    throw err;
  }
}

export async function commandTenant(client: Client, tenantId: string, command: TenantCommand, reason?: string): Promise<string> {
  const handle = await runningHandle(client, tenantWorkflowId(tenantId), `tenant ${tenantId}`);
  switch (command) {
    case 'approve':
      return update(() => handle.executeUpdate(approveCutoverUpdate));
    case 'complete':
      return update(() => handle.executeUpdate(completeUpdate));
    case 'rollback': {
      if (!reason?.trim()) throw new OperatorError('rollback: give a reason; it is recorded in the workflow and shown in status');
      const answer = await update(() => handle.executeUpdate(rollbackUpdate, { args: [reason] }));
      return `${answer}: ${reason}`;
    }
    case 'pause':
      return update(() => handle.executeUpdate(pauseUpdate));
    case 'resume':
      return update(() => handle.executeUpdate(resumeUpdate));
  }
}

export async function abortWave(client: Client, waveId: string): Promise<string> {
  const handle = await runningHandle(client, waveWorkflowId(waveId), `wave ${waveId}`);
  await handle.signal(abortSignal);
  return `wave ${waveId}: no new tenants will start; running ones finish or roll back on their own`;
}
