// What the operator sees: each tenant's phase from its status query, live transfer progress from the
// heartbeat of its running activity, and the wave's table. Used by `status`, `demo` and `dev`.
import { defaultPayloadConverter } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import {
  statusQuery,
  tenantWorkflowId,
  waveSearchAttribute,
  waveStatusQuery,
  waveWorkflowId,
  type TenantStatus,
  type WaveStatus,
  type WaveTenantRow,
  type WriteMode,
} from '../workflows/contract';

/**
 * One tenant as the operator sees it: the workflow's `status` query (TenantStatus) merged with the
 * heartbeat of its running activity, plus what is derived from both at the moment of looking.
 * Read by `airlift status`, `wave start --watch`, `demo` and the war-room page.
 */
export interface TenantView {
  tenantId: string;
  /** `terminated`: its workflow was terminated (or timed out) before it ended: nothing finished or undid it. */
  state: WaveTenantRow['state'] | 'unknown' | 'terminated';
  phase: string;
  bytesDone: number;
  bytesTotal: number;
  /** Of the running transfer step: bytes copied, or the restore's own percent. */
  percent?: number;
  tablesVerified: number;
  mismatches: number;
  /** A pause is in force (the workflow holds before its next phase); see `heldBefore`. */
  paused: boolean;
  /** The workflow stands still before this phase until `resume`; absent while a paused step still runs. */
  heldBefore?: string;
  /** The tenant's writes: `read_only` (frozen) since `frozenSince`; absent once the run has ended or before it started. */
  writeMode?: WriteMode;
  frozenSince?: string;
  /** Since the run started (until it ended), and since the current phase was entered. */
  elapsedMs?: number;
  phaseElapsedMs?: number;
  /** Of the running copy (live, from its heartbeat) or of the finished copy. */
  bytesPerSecond?: number;
  /** Seconds left of the running copy or restore, from its rate so far. */
  etaSeconds?: number;
  /** Events the dual-write is behind. */
  lag?: number;
  /** Why a pending tenant has not started: the wave is paused, aborted, or every slot is in use. */
  waiting?: string;
  error?: string;
  status?: TenantStatus;
}

interface Heartbeat {
  bytesDone?: number;
  bytesTotal?: number;
  fraction?: number;
  /** From the dual-write. */
  lag?: number;
  cursor?: number;
}

/** The latest heartbeat details of every running activity, merged (a transfer and the dual-write may run together). */
function heartbeatOf(raw: { pendingActivities?: { heartbeatDetails?: { payloads?: unknown[] | null } | null }[] | null }): Heartbeat | undefined {
  let merged: Heartbeat | undefined;
  for (const activity of raw.pendingActivities ?? []) {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    const details = defaultPayloadConverter.fromPayload(payload as never) as Heartbeat;
    if (details && typeof details === 'object' && !Array.isArray(details)) merged = { ...merged, ...details };
  }
  return merged;
}

/**
 * One tenant's view. With a wave's row, the run that wave started (its recorded run id), never a
 * later run of the same tenant from another wave.
 */
export async function observeTenant(client: Client, tenantId: string, row?: WaveTenantRow, waveId?: string, now = Date.now()): Promise<TenantView> {
  const view: TenantView = {
    tenantId, state: row?.state ?? 'unknown', phase: row?.state === 'pending' || row?.state === 'skipped' ? row.state : 'unknown',
    bytesDone: 0, bytesTotal: 0, tablesVerified: 0, mismatches: 0, paused: false, error: row?.error,
  };
  // A skipped tenant's workflow is another wave's run: nothing of it belongs to this wave's row.
  if (row?.state === 'pending' || row?.state === 'skipped') return view;
  const handle = client.workflow.getHandle(tenantWorkflowId(tenantId), row?.runId);
  try {
    const description = await handle.describe();
    const ranIn = description.typedSearchAttributes.get(waveSearchAttribute);
    if (waveId && !row?.runId && ranIn !== waveId) {
      // A row from before runs were recorded, and the tenant's latest run is another wave's.
      view.phase = view.state;
      view.error = view.error ?? `its latest run belongs to ${ranIn ? `wave ${ranIn}` : 'no wave'}; see \`airlift status --tenant ${tenantId}\``;
      return view;
    }
    const status = await handle.query(statusQuery);
    const running = description.status.name === 'RUNNING';
    const beat = running ? heartbeatOf(description.raw) : undefined;
    Object.assign(view, {
      status,
      phase: status.phase,
      paused: status.paused,
      heldBefore: status.heldBefore,
      writeMode: running ? status.writeMode : undefined,
      frozenSince: running && status.writeMode === 'read_only' ? status.frozenSince : undefined,
      bytesTotal: beat?.bytesTotal ?? status.bytesTotal,
      bytesDone: beat?.bytesDone ?? status.bytesDone,
      percent: beat?.fraction !== undefined ? Math.round(beat.fraction * 100) : beat?.bytesTotal ? Math.round((100 * (beat.bytesDone ?? 0)) / beat.bytesTotal) : undefined,
      tablesVerified: status.tables.length,
      lag: beat?.lag ?? status.lag,
      mismatches: status.tables.reduce((n, t) => n + t.mismatchedChunks, 0),
      error: view.error ?? status.lastError,
      ...pace(status, beat, running, description.closeTime?.getTime() ?? now),
    });
    if (view.state === 'unknown') view.state = running ? 'running' : status.outcome ?? (status.phase === 'completed' ? 'completed' : status.phase === 'rolled_back' ? 'rolled_back' : 'failed');
    if (!running && !status.outcome && cutShort(description.status.name))
      Object.assign(view, { state: 'terminated', phase: 'terminated', error: cutShortNote(description.status.name, status.phase) });
  } catch (err) {
    view.error = view.error ?? `no status: ${(err as Error).message.split('\n')[0]}`;
  }
  return view;
}

/** Terminated (Temporal UI or API) or timed out: the run stopped where it was, and nothing undid it. */
export function cutShort(closedAs: string): boolean {
  return closedAs === 'TERMINATED' || closedAs === 'TIMED_OUT';
}

export function cutShortNote(closedAs: string, phase: string | undefined, fleetFile?: string): string {
  return `workflow ${closedAs.toLowerCase().replace('_', ' ')}${phase ? ` in ${phase.replace(/_/g, ' ')}` : ''}: nothing finished or undid it; run \`airlift reconcile -f ${fleetFile ?? '<fleet file>'}\` to see and repair where it was left`;
}

/** Elapsed times, and the rate and time left of the running copy or restore. */
function pace(status: TenantStatus, beat: Heartbeat | undefined, running: boolean, now: number): Pick<TenantView, 'elapsedMs' | 'phaseElapsedMs' | 'bytesPerSecond' | 'etaSeconds'> {
  // Statuses of runs from before these fields existed lack them.
  if (!status.startedAt) return {};
  // A terminated run has no endedAt: it ended when Temporal closed it (`now` is its close time then).
  const end = running ? now : status.endedAt ? Date.parse(status.endedAt) : now;
  const inPhaseMs = Math.max(0, end - Date.parse(status.phaseSince));
  const result: ReturnType<typeof pace> = { elapsedMs: Math.max(0, end - Date.parse(status.startedAt)), phaseElapsedMs: inPhaseMs, bytesPerSecond: status.copyBytesPerSecond };
  if (!running || inPhaseMs < 1000) return result;
  if (status.phase === 'copying' && beat?.bytesDone && beat.bytesTotal) {
    result.bytesPerSecond = Math.round((beat.bytesDone * 1000) / inPhaseMs);
    result.etaSeconds = Math.round((beat.bytesTotal - beat.bytesDone) / Math.max(1, result.bytesPerSecond));
  } else if (status.phase === 'restoring' && beat?.fraction) {
    result.etaSeconds = Math.round(((inPhaseMs / 1000) * (1 - beat.fraction)) / beat.fraction);
  }
  return result;
}

export async function observeWave(client: Client, waveId: string): Promise<{ wave: WaveStatus; tenants: TenantView[] }> {
  const wave = await client.workflow.getHandle(waveWorkflowId(waveId)).query(waveStatusQuery);
  const now = Date.now();
  const tenants = await Promise.all(wave.tenants.map((row) => observeTenant(client, row.tenantId, row, waveId, now)));
  const waiting = whyPending(wave);
  for (const t of tenants) if (t.state === 'pending') t.waiting = waiting;
  return { wave, tenants };
}

/** Why the wave's pending tenants wait, in the words of the command that lets them go. */
export function whyPending(wave: WaveStatus): string {
  if (wave.aborted) return `wave ${wave.waveId} was aborted: it starts no more tenants`;
  if (wave.paused) return `wave ${wave.waveId} is paused: \`airlift resume --wave ${wave.waveId}\` lets its pending tenants start`;
  const inUse = wave.tenants.filter((r) => r.state === 'running' && !r.inWindow).length;
  return `waiting for a concurrency slot: ${inUse} of ${wave.concurrency ?? inUse} in use${wave.concurrency !== undefined ? ' (a tenant in its rollback window holds none)' : ''}`;
}

/** "closes in 42m10s (then no rollback)" while the tenant's rollback window is open; '' otherwise. */
export function windowCountdown(status: Pick<TenantStatus, 'phase' | 'rollbackWindowEndsAt' | 'rollbackReason'> | undefined, now = Date.now()): string {
  if (status?.phase !== 'rollback_window' || status.rollbackReason !== undefined) return '';
  if (!status.rollbackWindowEndsAt) return 'window open until `airlift complete` (the point of no return)';
  return `window closes in ${formatDuration(Math.max(0, Date.parse(status.rollbackWindowEndsAt) - now))}: the point of no return`;
}

/** Words for a phase in counts and notes: what the war room calls it. */
const PHASE_WORDS: Record<string, string> = { awaiting_cutover: 'awaiting approval', rolled_back: 'rolled back', catching_up: 'catching up', cutting_over: 'cutting over', rollback_window: 'in rollback window', rolling_back: 'rolling back' };

/** "3 awaiting approval, 2 copying, 1 rolled back; 4 with writes frozen, 1 held" for a wave's header. */
export function phaseCounts(tenants: TenantView[]): string {
  const counts = new Map<string, number>();
  for (const t of tenants) {
    const key = t.heldBefore ? `held before ${t.heldBefore}` : (PHASE_WORDS[t.phase] ?? t.phase.replace(/_/g, ' '));
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const frozen = tenants.filter((t) => t.writeMode === 'read_only').length;
  return `${[...counts].map(([k, n]) => `${n} ${k}`).join(', ')}${frozen ? `; ${frozen} with writes frozen` : ''}`;
}

/** 45s, 12m03s, 2h05m. */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** What the PHASE column says: a hold and a pause that is not yet a hold are told apart. */
export function phaseText(t: TenantView): string {
  if (t.heldBefore) return `held before ${t.heldBefore}`;
  return t.paused ? `${t.phase} (pause requested)` : t.phase;
}

/** The whole note of a tenant: its error, a rollback's reason, why it waits, or when its rollback window closes. */
export function noteOf(t: TenantView, now = Date.now()): string {
  return t.error ?? (t.status?.rollbackReason !== undefined ? `rollback: ${t.status.rollbackReason}` : (t.waiting ?? (t.state === 'running' ? windowCountdown(t.status, now) : '')));
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/**
 * The tenant table. WRITES says whether the tenant's writes are frozen and for how long; CUTOVER
 * PAUSE is the measured pause of the switch (not an operator's pause, which shows in PHASE).
 * NOTE is cut at 100 characters here; `status --tenant` prints it whole.
 */
export function renderTenants(tenants: TenantView[], now = Date.now()): string {
  return renderTable(
    ['TENANT', 'STATE', 'PHASE', 'WRITES', 'ELAPSED', 'PROGRESS', 'BYTES', 'RATE', 'ETA', 'TABLES', 'MISMATCH', 'LAG', 'CUTOVER PAUSE', 'HELD EVENTS', 'NOTE'],
    tenants.map((t) => {
      const note = noteOf(t, now);
      return [
        t.tenantId,
        t.state,
        phaseText(t),
        t.writeMode === 'read_only' ? `frozen ${t.frozenSince ? formatDuration(now - Date.parse(t.frozenSince)) : ''}`.trim() : t.writeMode === 'read_write' ? 'open' : '',
        t.elapsedMs !== undefined ? formatDuration(t.elapsedMs) : '',
        t.percent !== undefined && t.state === 'running' ? `${t.percent}%` : '',
        t.bytesTotal ? `${formatBytes(t.bytesDone)}/${formatBytes(t.bytesTotal)}` : '',
        t.bytesPerSecond ? `${formatBytes(t.bytesPerSecond)}/s` : '',
        t.etaSeconds !== undefined ? formatDuration(t.etaSeconds * 1000) : '',
        String(t.tablesVerified),
        String(t.mismatches),
        t.lag !== undefined && t.state === 'running' ? String(t.lag) : '',
        t.status?.cutoverPauseMs !== undefined ? `${t.status.cutoverPauseMs} ms` : '',
        t.status?.heldEvents !== undefined ? String(t.status.heldEvents) : '',
        note.length > 100 ? `${note.slice(0, 99)}…` : note,
      ];
    }),
  );
}
