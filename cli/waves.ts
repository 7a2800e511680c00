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
import { observeWave, phaseText, renderTable, renderTenants, type TenantView } from './observe';
import { runsByWorkflow } from './wave-choice';

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

export async function startWave(client: Client, waveId: string, tenants: string[], policy: MigrationPolicy, taskQueue = TASK_QUEUE, rerun?: number, cutoverOf?: Record<string, MigrationPolicy['cutover']>): Promise<void> {
  const differing = Object.fromEntries(Object.entries(cutoverOf ?? {}).filter(([id, c]) => tenants.includes(id) && c !== policy.cutover));
  try {
    await client.workflow.start<typeof migrationWave>('migrationWave', {
      workflowId: waveWorkflowId(waveId),
      taskQueue,
      args: [{ waveId, tenants, policy, ...(rerun ? { rerun } : {}), ...(Object.keys(differing).length ? { cutoverOf: differing } : {}) }],
      typedSearchAttributes: [{ key: waveSearchAttribute, value: waveId }],
      staticSummary: `wave ${waveId}${rerun ? ` (rerun ${rerun})` : ''}: ${tenants.length} tenants`,
      staticDetails: `tenants: ${tenants.join(', ')}\n\nconcurrency ${policy.concurrency}, cut-over ${policy.cutover}${Object.keys(differing).length ? ` (${Object.entries(differing).map(([id, c]) => `${id}: ${c}`).join(', ')})` : ''}`,
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

/** One line of `airlift waves`. */
export interface WaveLine {
  waveId: string;
  state: string;
  startedAt: string;
  closedAt?: string;
  tenants: number;
  counts: string;
}

/** Every wave the namespace knows, newest first, with its tenants counted by state. */
export async function listWaves(client: Client): Promise<WaveLine[]> {
  const runs = await runsByWorkflow(client, "WorkflowType = 'migrationWave'");
  const lines = await Promise.all([...runs.values()].map(async (list) => {
    // The chain of a wave that continued as new: its newest run answers for it, its first says when it began.
    const newest = list[0];
    const handle = client.workflow.getHandle(newest.workflowId, newest.runId);
    const status: WaveStatus | undefined = newest.status.name === 'COMPLETED'
      ? await handle.result().catch(() => undefined)
      : await handle.query(waveStatusQuery).catch(() => undefined);
    const counts = new Map<string, number>();
    for (const r of status?.tenants ?? []) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
    return {
      waveId: status?.waveId ?? newest.workflowId.replace(/^airlift-wave-/, ''),
      state: newest.status.name === 'RUNNING' ? (status?.paused ? 'running (paused)' : status?.aborted ? 'running (aborted)' : 'running') : newest.status.name.toLowerCase().replace('_', ' '),
      startedAt: list[list.length - 1].startTime.toISOString(),
      closedAt: newest.closeTime?.toISOString(),
      tenants: status?.tenants.length ?? 0,
      counts: status ? [...counts].map(([k, n]) => `${n} ${k.replace(/_/g, ' ')}`).join(', ') : 'its status cannot be read',
    };
  }));
  return lines.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
}

export function renderWaves(lines: WaveLine[]): string {
  if (!lines.length) return 'no waves yet: start one with `airlift wave start -f FLEET`';
  return renderTable(['WAVE', 'STATE', 'STARTED', 'ENDED', 'TENANTS', 'BY STATE'], lines.map((w) => [w.waveId, w.state, w.startedAt, w.closedAt ?? '', String(w.tenants), w.counts]));
}
