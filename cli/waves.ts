// Starting a wave and watching it to the end, shared by `wave start --watch` and `demo`.
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import {
  TASK_QUEUE,
  waveSearchAttribute,
  waveStatusQuery,
  waveWorkflowId,
  type MigrationPolicy,
  type WaveStatus,
} from '../workflows/contract';
import type { migrationWave } from '../workflows';
import { observeWave, phaseText, renderTenants, type TenantView } from './observe';

export class OperatorError extends Error {
  override name = 'OperatorError';
}

/** What an earlier, ended run of a wave id left: a sentence, its rows (when they can be read), its rerun count. */
export interface PreviousWave {
  summary: string;
  /** Its rows as it ended; absent when neither its result nor its query can be read. */
  status?: WaveStatus;
  /** 1 for a wave that ran once. */
  rerun: number;
}

/**
 * The last run of a wave id, when it has ended; undefined when the id never ran. A running wave is
 * refused here too: a wave id runs once at a time.
 */
export async function previousWave(client: Client, waveId: string): Promise<PreviousWave | undefined> {
  const handle = client.workflow.getHandle(waveWorkflowId(waveId));
  const description = await handle.describe().catch((err) => {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  });
  if (!description) return undefined;
  if (description.status.name === 'RUNNING' || description.status.name === 'CONTINUED_AS_NEW')
    throw new OperatorError(`wave ${waveId} is already running (workflow ${waveWorkflowId(waveId)}); watch it with \`airlift status ${waveId}\` or choose another --wave id`);
  // Its result, or (terminated, failed) what its status query still answers.
  const status: WaveStatus | undefined = description.status.name === 'COMPLETED' ? await handle.result() : await handle.query(waveStatusQuery).catch(() => undefined);
  const ended = description.closeTime?.toISOString() ?? 'earlier';
  if (!status) return { summary: `${description.status.name.toLowerCase()} at ${ended}`, rerun: 1 };
  const count = (state: string) => status.tenants.filter((r) => r.state === state).length;
  const others = status.tenants.length - count('completed') - count('rolled_back') - count('failed');
  return {
    summary: `ended ${ended}: ${count('completed')} migrated, ${count('rolled_back')} rolled back, ${count('failed')} failed${others ? `, ${others} not finished` : ''} of ${status.tenants.length}`,
    status,
    rerun: status.rerun ?? 1,
  };
}

export async function startWave(client: Client, waveId: string, tenants: string[], policy: MigrationPolicy, taskQueue = TASK_QUEUE, rerun?: number): Promise<void> {
  try {
    await client.workflow.start<typeof migrationWave>('migrationWave', {
      workflowId: waveWorkflowId(waveId),
      taskQueue,
      args: [{ waveId, tenants, policy, ...(rerun ? { rerun } : {}) }],
      typedSearchAttributes: [{ key: waveSearchAttribute, value: waveId }],
      staticSummary: `wave ${waveId}${rerun ? ` (rerun ${rerun})` : ''}: ${tenants.length} tenants`,
      staticDetails: `tenants: ${tenants.join(', ')}\n\nconcurrency ${policy.concurrency}, cut-over ${policy.cutover}`,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError)
      throw new OperatorError(`wave ${waveId} is already running (workflow ${waveWorkflowId(waveId)}); watch it with \`airlift status ${waveId}\` or choose another --wave id`);
    throw err;
  }
}

export interface WaveSummary {
  tenants: number;
  cutoverPauseMsP50: number | null;
  cutoverPauseMsP99: number | null;
  migrated: number;
  failed: number;
  rolledBack: number;
  tablesVerified: number;
  mismatches: number;
  bytesCopied: number;
  seconds: number;
  failures: { tenant: string; error: string }[];
}

/** Nearest-rank percentile; null when there is nothing to rank. */
export function percentile(values: number[], p: number): number | null {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function summarize(tenants: TenantView[], seconds: number): WaveSummary {
  const completed = tenants.filter((t) => t.state === 'completed');
  const pauses = tenants.map((t) => t.status?.cutoverPauseMs).filter((p): p is number => p !== undefined);
  return {
    tenants: tenants.length,
    cutoverPauseMsP50: percentile(pauses, 50),
    cutoverPauseMsP99: percentile(pauses, 99),
    migrated: completed.length,
    failed: tenants.filter((t) => t.state === 'failed').length,
    rolledBack: tenants.filter((t) => t.state === 'rolled_back').length,
    tablesVerified: tenants.reduce((n, t) => n + t.tablesVerified, 0),
    mismatches: tenants.reduce((n, t) => n + t.mismatches, 0),
    bytesCopied: completed.reduce((n, t) => n + t.bytesDone, 0),
    seconds: Math.round(seconds * 10) / 10,
    failures: tenants.filter((t) => t.state === 'failed').map((t) => ({ tenant: t.tenantId, error: t.error ?? 'unknown' })),
  };
}

/**
 * Polls the wave until it ends, drawing the tenant table: redrawn in place on a terminal, one line
 * per change otherwise (CI logs, pipes).
 */
export async function watchWave(
  client: Client,
  waveId: string,
  out: NodeJS.WriteStream,
  intervalMs = 500,
  onView?: (tenants: TenantView[]) => Promise<void>,
): Promise<{ wave: WaveStatus; tenants: TenantView[] }> {
  const handle = client.workflow.getHandle(waveWorkflowId(waveId));
  const started = Date.now();
  const lastSeen = new Map<string, string>();
  let drawnLines = 0;
  let done = false;
  const finished = handle.result().finally(() => void (done = true));
  finished.catch(() => undefined);
  for (;;) {
    const closed = done;
    const view = await observeWave(client, waveId).catch(() => undefined);
    if (view) {
      await onView?.(view.tenants);
      if (out.isTTY) {
        const table = renderTenants(view.tenants);
        if (drawnLines) out.write(`\x1b[${drawnLines}A\x1b[J`);
        out.write(`${table}\n`);
        drawnLines = table.split('\n').length;
      } else {
        for (const t of view.tenants) {
          const line = `${t.tenantId}: ${phaseText(t)}${t.error && t.state === 'failed' ? ` — ${t.error}` : ''}`;
          if (lastSeen.get(t.tenantId) !== line) {
            lastSeen.set(t.tenantId, line);
            out.write(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
          }
        }
      }
      if (closed && view.tenants.every((t) => t.state !== 'running' && t.state !== 'pending')) return view;
      if (closed && view.wave.aborted) return view;
    }
    if (closed && !view) {
      await finished;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
