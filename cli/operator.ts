// The operator's commands to a running tenant or wave, as the war-room page sends them: each one
// answers with the workflow's own words, and a refusal (an update's validator, a workflow that has
// ended or never started) becomes an OperatorError carrying the reason. One place, so a command that
// turns from a signal into an update changes here only.
import type { Client } from '@temporalio/client';
import { abortSignal, approveCutoverUpdate, completeUpdate, pauseUpdate, resumeUpdate, rollbackUpdate } from '../workflows/contract';
import { OperatorError } from './waves';
import { POINT_OF_NO_RETURN, runningTenant, runningWave, sendUpdate } from './steer';

/** The commands the page sends to a tenant; the CLI's own (`steer.ts`) say the same when refused. */
export const TENANT_COMMANDS = ['pause', 'resume', 'approve', 'rollback', 'complete'] as const;
export type TenantCommand = (typeof TENANT_COMMANDS)[number];

export async function commandTenant(client: Client, tenantId: string, command: TenantCommand, reason?: string): Promise<string> {
  const handle = await runningTenant(client, tenantId, command);
  switch (command) {
    case 'approve':
      return sendUpdate(() => handle.executeUpdate(approveCutoverUpdate));
    case 'complete':
      return `${await sendUpdate(() => handle.executeUpdate(completeUpdate))}: ${POINT_OF_NO_RETURN}`;
    case 'rollback': {
      if (!reason?.trim()) throw new OperatorError('rollback: give a reason; it is recorded in the workflow and shown in status');
      const answer = await sendUpdate(() => handle.executeUpdate(rollbackUpdate, { args: [reason] }));
      return `${answer}: ${reason}`;
    }
    case 'pause':
      return sendUpdate(() => handle.executeUpdate(pauseUpdate));
    case 'resume':
      return sendUpdate(() => handle.executeUpdate(resumeUpdate));
  }
}

export async function abortWave(client: Client, waveId: string): Promise<string> {
  const handle = await runningWave(client, waveId, 'abort');
  await handle.signal(abortSignal);
  return `wave ${waveId}: no new tenants will start; running ones finish or roll back on their own`;
}
