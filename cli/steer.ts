// Operator commands sent to a tenant's or a wave's workflow (approve, pause, resume, complete,
// rollback, abort). Each is an update whose validator may refuse it: the refusal, or the truth about
// a workflow that is not there or has ended, comes back as the operator's one-line error.
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import {
  outcomeSearchAttribute,
  phaseSearchAttribute,
  reasonOf,
  tenantWorkflowId,
  waveStatusQuery,
  waveWorkflowId,
  type EndState,
} from '../workflows/contract';
import { OperatorError } from './waves';

/** What `complete` does that cannot be undone; said by the CLI and the war-room page alike. */
export const POINT_OF_NO_RETURN = 'past the point of no return: the tenant stays on its target, its source is no longer kept current, and a rollback is refused from now on';

export type TenantCommand = 'approve' | 'pause' | 'resume' | 'complete' | 'rollback' | 'status';

/** What a command cannot do to a tenant whose run has ended, in words that say where the tenant is. */
function endedTenant(tenantId: string, command: TenantCommand, outcome: string | undefined, closedAs: string): string {
  const where =
    outcome === 'rolled_back' ? `was rolled back and is served from its source`
    : outcome === 'completed' ? `completed its migration and is served from its target (past the point of no return)`
    : outcome === 'failed' ? `failed and stays where its undo left it (see \`airlift status --tenant ${tenantId}\`)`
    : `has no running migration (its last run is ${closedAs})`;
  const next =
    command === 'rollback' && outcome === 'completed' ? '; nothing undoes a completed migration: its source database is left intact (never dropped) but no longer kept current, and airlift has no way back from the target'
    : command === 'rollback' && outcome === 'rolled_back' ? '; nothing to roll back'
    : `; start a new wave to migrate it${outcome === 'completed' ? ' again' : ''}`;
  return `${command} refused: tenant ${tenantId} ${where}${next}`;
}

/**
 * Where a tenant without a workflow is: pending in a running wave that has not started it yet, or
 * unknown to every running wave (then the id is probably wrong).
 */
export async function whereIsTenant(client: Client, tenantId: string): Promise<string> {
  const waves: string[] = [];
  try {
    for await (const w of client.workflow.list({ query: `WorkflowType = 'migrationWave' AND ExecutionStatus = 'Running'` })) {
      const status = await client.workflow.getHandle(w.workflowId).query(waveStatusQuery).catch(() => undefined);
      if (status?.tenants.some((r) => r.tenantId === tenantId && r.state === 'pending')) waves.push(status.waveId);
      if (waves.length >= 3) break;
    }
  } catch {
    // Visibility unavailable: say only what is certain.
  }
  if (waves.length) return `tenant ${tenantId} is pending in wave ${waves.join(', ')}: its migration has not started yet (the wave starts it when a concurrency slot frees up)`;
  return `tenant ${tenantId} has no migration workflow (${tenantWorkflowId(tenantId)}) and no running wave lists it; check the id with \`airlift status WAVE\``;
}

/** The tenant's workflow if it is running; otherwise an OperatorError that says where the tenant is. */
export async function runningTenant(client: Client, tenantId: string, command: TenantCommand): Promise<WorkflowHandle> {
  const handle = client.workflow.getHandle(tenantWorkflowId(tenantId));
  const description = await handle.describe().catch(async (err) => {
    if (err instanceof WorkflowNotFoundError) throw new OperatorError(`${command} refused: ${await whereIsTenant(client, tenantId)}`);
    throw err;
  });
  if (description.status.name !== 'RUNNING') {
    const outcome = description.typedSearchAttributes.get(outcomeSearchAttribute) ?? endStateFromPhase(description.typedSearchAttributes.get(phaseSearchAttribute));
    throw new OperatorError(endedTenant(tenantId, command, outcome, description.status.name.toLowerCase()));
  }
  return handle;
}

/** Runs from before `AirliftOutcome` existed still carry their last phase. */
function endStateFromPhase(phase: string | undefined): EndState | undefined {
  return phase === 'completed' || phase === 'rolled_back' || phase === 'failed' ? phase : undefined;
}

/** Sends an update; a validator's refusal becomes the operator's one-line error. */
export async function sendUpdate<T>(send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new OperatorError(reasonOf(err));
    throw err;
  }
}

/** The wave's workflow if it is running; otherwise an OperatorError that says so. */
export async function runningWave(client: Client, waveId: string, command: string): Promise<WorkflowHandle> {
  const handle = client.workflow.getHandle(waveWorkflowId(waveId));
  const description = await handle.describe().catch((err) => {
    if (err instanceof WorkflowNotFoundError) throw new OperatorError(`${command} refused: no wave ${waveId} (${waveWorkflowId(waveId)}); check the wave id`);
    throw err;
  });
  if (description.status.name !== 'RUNNING') throw new OperatorError(`${command} refused: wave ${waveId} has already ended (${description.status.name.toLowerCase()}); its tenants are shown by \`airlift status ${waveId}\``);
  return handle;
}
