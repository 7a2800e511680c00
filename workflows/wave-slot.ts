// A tenant in its rollback window holds no concurrency slot of its wave (DESIGN.md, the wave
// workflow): its workflow tells the wave that started it when the window opens.
import * as wf from '@temporalio/workflow';
import { rollbackWindowOpenedSignal } from './contract';

/** Tells the parent wave, if any, that this tenant's rollback window is open. Never fails the tenant. */
export async function releaseWaveSlot(tenantId: string): Promise<void> {
  const parent = wf.workflowInfo().parent;
  // A run started before this existed sends nothing when it replays.
  if (!parent || !wf.patched('rollback-window-frees-wave-slot')) return;
  try {
    await wf.getExternalWorkflowHandle(parent.workflowId).signal(rollbackWindowOpenedSignal, tenantId);
  } catch (err) {
    wf.log.warn('could not tell the wave that the rollback window opened; its slot stays held until the tenant ends', { tenantId, error: String(err) });
  }
}
