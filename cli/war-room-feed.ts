// What the war-room page shows, read the way the CLI reads it: waves from their `waveStatus` query
// (or result, once ended), each tenant from its `status` query and the heartbeat of its running
// activity (observeTenant), write modes from the routing catalog, and the gateways' own counters.
// Derived figures (time in phase, frozen since, throughput, ETA) are computed here, preferring the
// workflow's own when its status carries them.
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import type { LoadedFleet } from '../config/fleet';
import { Catalog } from '../ingestion/catalog';
import {
  PHASES,
  outcomeSearchAttribute,
  statusQuery,
  tenantWorkflowId,
  waveSearchAttribute,
  waveStatusQuery,
  type TenantResult,
  type TenantStatus,
  type WaveStatus,
} from '../workflows/contract';
import { cutShort, cutShortNote, observeTenant, whyPending, type TenantView } from './observe';
import { runsByWorkflow } from './wave-choice';
import type { TenantCommand } from './operator';
import { redactSecrets } from '../azure/blob-store';

export interface TenantRow {
  tenantId: string;
  /** The fleet file's display name, when it gives one (free text: the page shows it as text). */
  name?: string;
  waveId?: string;
  state: TenantView['state'] | 'not_started';
  phase: string;
  paused: boolean;
  writeMode?: 'read_write' | 'read_only';
  frozenSince?: string;
  startedAt?: string;
  phaseSince?: string;
  elapsedMs?: number;
  bytesDone: number;
  bytesTotal: number;
  percent?: number;
  tablesVerified: number;
  mismatches: number;
  /** What the progress bar shows: a fraction when one is known, and its words. */
  progress: { fraction: number | null; label: string };
  throughputBytesPerSecond?: number;
  etaSeconds?: number;
  lag?: number;
  cutoverPauseMs?: number;
  /** When the cut-over's pause happened (the end of cutting_over). */
  cutoverAt?: string;
  heldEvents?: number;
  lastError?: string;
  rollbackReason?: string;
  rollbackRefused?: string;
  cutoverAttempts?: { at: string; error: string }[];
  tables?: { table: string; rows: number; mismatchedChunks: number; differences: string[] }[];
  /** Phases in the order they ran, with their time; the current one counts up to now. */
  timeline: { phase: string; ms: number; current?: boolean }[];
  workflowId?: string;
  runId?: string;
  /** Which side serves the tenant now: the routing catalog's word when the fleet has one. */
  servedFrom?: 'source' | 'target';
  /** While in the rollback window: when it closes by itself, the point of no return. */
  rollbackWindowEndsAt?: string;
  /** The workflow stands still before this phase, held by an operator or by the policy's pauseBefore. */
  heldBefore?: string;
  pausedBy?: 'operator' | 'policy';
  /** What preflight found that does not stop the migration (a table without a primary key: no VACUUM). */
  warnings?: string[];
  /** Why a pending tenant waits. */
  waiting?: string;
  /** Each command the page offers: null when the workflow would take it now, else why not. */
  controls: Record<TenantCommand, string | null>;
  /** The tenant's runs, newest first (a rerun never hides what happened before). */
  runs: { runId: string; waveId?: string; state: string; startedAt: string; closedAt?: string }[];
  /** A later run that changed nothing (turned away at preflight) and is not the one shown. */
  laterRun?: string;
}

export interface WaveRow {
  waveId: string;
  running: boolean;
  paused: boolean;
  aborted: boolean;
  runs: number;
  tenants: string[];
  /** Why its pending tenants wait (paused, aborted, slots in use). */
  waiting?: string;
}

export interface FeedSnapshot {
  waves: WaveRow[];
  tenants: TenantRow[];
  /** Tracking events accepted per second by all gateways together, since the last look. */
  eventsPerSecond?: number;
}

/** Where the war room reads from: Temporal in real use, a synthetic feed in the load test. */
export interface FeedSource {
  collect(): Promise<FeedSnapshot>;
  close?(): void;
}

/** Fields a later contract may add to TenantStatus; used when present. */
type RicherStatus = TenantStatus & { writeMode?: 'read_write' | 'read_only'; frozenSince?: string; phaseSince?: string; throughputBytesPerSecond?: number; etaSeconds?: number };

const PHASE_ORDER: readonly string[] = PHASES;

/** Runs `fn` over `items`, at most `limit` at once. */
async function inPool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  }));
  return out;
}

function sumCounter(text: string, name: string): number {
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name} `)) total += Number(line.slice(name.length + 1)) || 0;
  return total;
}

export interface TemporalFeedOptions {
  client: Client;
  fleet?: LoadedFleet;
  now?: () => number;
}

/** The war room's view of a Temporal namespace (and, with a fleet, of its catalog and gateways). */
export class TemporalFeed implements FeedSource {
  private readonly client: Client;
  private readonly fleet?: LoadedFleet;
  private readonly catalog?: Catalog;
  private readonly now: () => number;
  /** Ended runs never change: their status is read once. */
  private readonly ended = new Map<string, TenantStatus | undefined>();
  private readonly endedWaves = new Map<string, WaveStatus | undefined>();
  /** The last bytes seen per tenant run, for throughput. */
  private readonly transfer = new Map<string, { at: number; bytes: number; rate?: number }>();
  /** Per gateway, its last counter read, so a gateway that did not answer is left out, never counted as 0. */
  private readonly lastAccepted = new Map<string, { at: number; total: number }>();

  constructor(options: TemporalFeedOptions) {
    this.client = options.client;
    this.fleet = options.fleet;
    this.now = options.now ?? Date.now;
    this.catalog = options.fleet ? new Catalog(options.fleet.catalog.path) : undefined;
  }

  close(): void {
    this.catalog?.close();
  }

  async collect(): Promise<FeedSnapshot> {
    const [waveRuns, tenantRuns, eventsPerSecond] = await Promise.all([
      runsByWorkflow(this.client, 'WorkflowType = "migrationWave"'),
      runsByWorkflow(this.client, 'WorkflowType = "migrateTenant"'),
      this.gatewayRate(),
    ]);
    const waves = (await inPool([...waveRuns.values()].map((runs) => runs[0]), 8, (info) => this.wave(info))).filter((w): w is WaveRow => Boolean(w));
    waves.sort((a, b) => a.waveId.localeCompare(b.waveId));
    const waveOf = new Map<string, WaveRow>();
    for (const w of waves) for (const t of w.tenants) waveOf.set(t, w);
    const names = new Map((this.fleet?.tenants ?? []).map((t) => [t.id, t.name]));
    const ids = [...new Set([...names.keys(), ...waves.flatMap((w) => w.tenants)])];
    const tenants = await inPool(ids, 16, async (tenantId) => {
      const runs = tenantRuns.get(tenantWorkflowId(tenantId)) ?? [];
      const row = runs.length ? await this.tenant(tenantId, runs) : notStarted(tenantId);
      row.name = names.get(tenantId);
      const wave = waveOf.get(tenantId);
      row.waveId ||= wave?.waveId;
      if (row.state === 'not_started' && wave) Object.assign(row, { state: 'pending', phase: 'pending', waiting: wave.waiting, progress: { fraction: 0, label: 'waiting for its turn' } });
      row.servedFrom = this.catalog?.get(tenantId)?.primary ?? servedFromOf(row);
      return row;
    });
    return { waves, tenants, eventsPerSecond };
  }

  private async wave(info: WorkflowExecutionInfo): Promise<WaveRow | undefined> {
    const handle = this.client.workflow.getHandle(info.workflowId, info.runId);
    let status: WaveStatus | undefined;
    if (info.status.name === 'RUNNING') status = await handle.query(waveStatusQuery).catch(() => undefined);
    else {
      const key = info.runId;
      if (!this.endedWaves.has(key)) this.endedWaves.set(key, await handle.result().catch(() => handle.query(waveStatusQuery).catch(() => undefined)));
      status = this.endedWaves.get(key);
    }
    const waveId = info.typedSearchAttributes.get(waveSearchAttribute) ?? status?.waveId;
    if (!waveId) return undefined;
    return {
      waveId,
      running: info.status.name === 'RUNNING',
      paused: status?.paused ?? false,
      aborted: status?.aborted ?? false,
      runs: status?.runs ?? 1,
      tenants: status?.tenants.map((t) => t.tenantId) ?? [],
      waiting: status && info.status.name === 'RUNNING' ? whyPending(status) : undefined,
    };
  }

  private async tenant(tenantId: string, runs: WorkflowExecutionInfo[]): Promise<TenantRow> {
    let row = await this.runRow(tenantId, runs[0]);
    // A later run that changed nothing (turned away at preflight) does not hide where an earlier one left the tenant.
    const earlier = runs[1];
    if (row.state === 'failed' && changedNothing(row) && earlier) {
      const before = await this.runRow(tenantId, earlier);
      if (before.state === 'completed' || before.state === 'rolled_back') {
        before.laterRun = `a later run (${row.waveId ? `wave ${row.waveId}` : 'no wave'}, ${row.startedAt}) was turned away at preflight and changed nothing: ${row.lastError ?? 'no reason recorded'}`;
        row = before;
      }
    }
    row.runs = runs.slice(0, 10).map((info) => ({
      runId: info.runId,
      waveId: info.typedSearchAttributes.get(waveSearchAttribute) || undefined,
      state: info.status.name === 'RUNNING' ? 'running' : (info.typedSearchAttributes.get(outcomeSearchAttribute) ?? info.status.name.toLowerCase()),
      startedAt: info.startTime.toISOString(),
      closedAt: info.closeTime?.toISOString(),
    }));
    return row;
  }

  private async runRow(tenantId: string, info: WorkflowExecutionInfo): Promise<TenantRow> {
    const running = info.status.name === 'RUNNING';
    let view: TenantView;
    if (running) view = await observeTenant(this.client, tenantId);
    else {
      if (!this.ended.has(info.runId)) {
        const handle = this.client.workflow.getHandle(info.workflowId, info.runId);
        const status = await handle.result().then((r: TenantResult) => r.status, () => handle.query(statusQuery).catch(() => undefined));
        this.ended.set(info.runId, status);
      }
      view = viewOfEnded(tenantId, this.ended.get(info.runId), info, this.fleet?.file);
    }
    const row = this.row(view, info);
    row.waveId = info.typedSearchAttributes.get(waveSearchAttribute) || view.status?.waveId;
    return row;
  }

  private row(view: TenantView, info: WorkflowExecutionInfo): TenantRow {
    const now = this.now();
    const status = view.status as RicherStatus | undefined;
    const started = info.startTime.getTime();
    const end = info.closeTime?.getTime() ?? now;
    const timeline = timelineOf(status, started, end, view.state === 'running');
    const phaseStart = (phase: string) => {
      let at = started;
      for (const step of timeline) {
        if (step.phase === phase) return at;
        at += step.ms;
      }
      return undefined;
    };
    const current = timeline.find((t) => t.current);
    const writeMode = status?.writeMode ?? (view.state === 'running' ? this.catalog?.get(view.tenantId)?.writeMode : undefined);
    // Only a run from before the freeze went (a `freezing` phase no longer exists) can report read_only.
    const frozenAt = writeMode === 'read_only' && status?.frozenSince ? Date.parse(status.frozenSince) : undefined;
    const cutoverStart = phaseStart('cutting_over');
    const cutover = timeline.find((t) => t.phase === 'cutting_over');
    const rate = this.throughput(view, info.runId, now);
    const remaining = view.bytesTotal - view.bytesDone;
    return {
      tenantId: view.tenantId,
      state: view.state,
      phase: view.phase,
      paused: view.paused,
      writeMode,
      frozenSince: frozenAt !== undefined ? new Date(frozenAt).toISOString() : undefined,
      startedAt: info.startTime.toISOString(),
      phaseSince: status?.phaseSince ?? (current ? new Date(end - current.ms).toISOString() : undefined),
      elapsedMs: end - started,
      bytesDone: view.bytesDone,
      bytesTotal: view.bytesTotal,
      percent: view.percent,
      tablesVerified: view.tablesVerified,
      mismatches: view.mismatches,
      progress: progressOf(view),
      throughputBytesPerSecond: status?.throughputBytesPerSecond ?? rate,
      etaSeconds: status?.etaSeconds ?? (rate && remaining > 0 && view.state === 'running' ? Math.round(remaining / rate) : undefined),
      lag: view.lag,
      cutoverPauseMs: status?.cutoverPauseMs,
      cutoverAt: status?.cutoverPauseMs !== undefined && cutoverStart !== undefined && cutover && !cutover.current ? new Date(cutoverStart + cutover.ms).toISOString() : undefined,
      heldEvents: status?.heldEvents,
      lastError: view.error !== undefined ? redactSecrets(view.error) : undefined,
      rollbackReason: status?.rollbackReason,
      rollbackRefused: status?.rollbackRefused,
      cutoverAttempts: status?.cutoverAttempts,
      tables: status?.tables.map((t) => ({ table: t.table, rows: t.rows, mismatchedChunks: t.mismatchedChunks, differences: t.differences.map((d) => `${d.key} ${d.kind.replace(/_/g, ' ')}`) })),
      timeline,
      workflowId: info.workflowId,
      runId: info.runId,
      rollbackWindowEndsAt: view.state === 'running' && status?.phase === 'rollback_window' && status.rollbackReason === undefined ? status.rollbackWindowEndsAt : undefined,
      heldBefore: view.heldBefore,
      pausedBy: view.status?.pausedBy,
      warnings: status?.warnings,
      controls: controlsOf(view),
      runs: [],
    };
  }

  /** Bytes per second while a transfer moves, smoothed over the last looks. */
  private throughput(view: TenantView, runId: string, now: number): number | undefined {
    if (view.state !== 'running' || !view.bytesTotal) return undefined;
    const last = this.transfer.get(runId);
    let rate = last?.rate;
    if (last && now > last.at && view.bytesDone >= last.bytes) {
      const sample = ((view.bytesDone - last.bytes) * 1000) / (now - last.at);
      rate = rate === undefined ? sample : 0.5 * rate + 0.5 * sample;
    }
    this.transfer.set(runId, { at: now, bytes: view.bytesDone, rate });
    return rate === undefined ? undefined : Math.round(rate);
  }

  /**
   * Accepted events per second across the fleet's gateways, from their /metrics counters. A gateway
   * whose read fails (timed out, down) is left out of this sample and the next, never counted as 0:
   * otherwise the sample after it would show everything it accepted meanwhile as one burst.
   */
  private async gatewayRate(): Promise<number | undefined> {
    const urls = this.fleet?.ingestion?.gateways ?? [];
    if (!urls.length) return undefined;
    const reads = await Promise.all(urls.map((url) =>
      fetch(`${url.replace(/\/$/, '')}/metrics`, { signal: AbortSignal.timeout(1000) }).then((r) => (r.ok ? r.text() : undefined)).catch(() => undefined)));
    const at = this.now();
    let rate: number | undefined;
    urls.forEach((url, i) => {
      const text = reads[i];
      const last = this.lastAccepted.get(url);
      if (text === undefined) return void this.lastAccepted.delete(url);
      const total = sumCounter(text, 'airlift_events_accepted_total');
      this.lastAccepted.set(url, { at, total });
      if (!last || at <= last.at || total < last.total) return;
      rate = (rate ?? 0) + ((total - last.total) * 1000) / (at - last.at);
    });
    return rate === undefined ? undefined : Math.round(rate);
  }
}

/** Which side serves a tenant, from its run, when there is no catalog to ask. */
function servedFromOf(row: TenantRow): 'source' | 'target' | undefined {
  if (row.state === 'completed' || row.phase === 'rollback_window' || row.phase === 'finalizing') return 'target';
  if (row.state === 'rolled_back' || row.state === 'not_started' || row.state === 'pending') return 'source';
  if (row.state === 'running') return PHASE_ORDER.indexOf(row.phase) < PHASE_ORDER.indexOf('cutting_over') ? 'source' : undefined;
  return undefined;
}

/** A failed run that ended in preflight: it changed nothing. */
function changedNothing(row: TenantRow): boolean {
  return row.timeline.every((t) => t.phase === 'preflight' || t.phase === 'rolling_back' || t.phase === 'failed');
}

const ENDED = 'its run has ended';

/**
 * Whether the workflow would take each command now, in the words of its validators (workflows/
 * migrate-tenant.ts): the page enables a button only when this is null, and shows the reason otherwise.
 */
export function controlsOf(view: Pick<TenantView, 'phase' | 'paused' | 'status'> & { state: TenantRow['state'] }): Record<TenantCommand, string | null> {
  if (view.state !== 'running') {
    const why = view.state === 'pending' ? 'not started yet: its wave starts it when a slot frees' : view.state === 'not_started' ? 'in no wave' : ENDED;
    return { pause: why, resume: why, approve: why, complete: why, rollback: why };
  }
  const phase = view.phase;
  const rollingBack = phase === 'rolling_back' || view.status?.rollbackReason !== undefined;
  const noHoldLeft = phase === 'cutting_over' || phase === 'rollback_window' || phase === 'finalizing';
  return {
    pause: rollingBack ? 'a rollback is under way' : view.paused ? 'already paused' : noHoldLeft ? `in ${phase.replace(/_/g, ' ')}: no phase left to hold before; roll back or complete instead` : null,
    resume: view.paused ? null : 'not paused',
    approve: phase === 'awaiting_cutover' ? null : `in ${phase.replace(/_/g, ' ')}: approval is taken only while awaiting cut-over`,
    complete: phase === 'rollback_window' && !rollingBack ? null : `in ${phase.replace(/_/g, ' ')}: the window can be completed only while it is open`,
    rollback: rollingBack ? 'a rollback is under way' : phase === 'finalizing' ? 'finalizing: past the point of no return' : null,
  };
}

function notStarted(tenantId: string): TenantRow {
  return {
    tenantId, state: 'not_started', phase: 'not started', paused: false, bytesDone: 0, bytesTotal: 0,
    tablesVerified: 0, mismatches: 0, progress: { fraction: 0, label: 'in no wave yet' }, timeline: [],
    controls: controlsOf({ state: 'not_started', phase: 'not started', paused: false }), runs: [],
  };
}

function viewOfEnded(tenantId: string, status: TenantStatus | undefined, info: WorkflowExecutionInfo, fleetFile?: string): TenantView {
  const phase = status?.phase ?? 'failed';
  // Terminated (Temporal UI or API) or timed out: the run stopped where it was, and nothing undid it.
  const stopped = !status?.outcome && cutShort(info.status.name);
  const state = stopped ? 'terminated' : phase === 'completed' ? 'completed' : phase === 'rolled_back' ? 'rolled_back' : 'failed';
  return {
    tenantId,
    state,
    phase: stopped ? 'terminated' : phase,
    bytesDone: status?.bytesDone ?? 0,
    bytesTotal: status?.bytesTotal ?? 0,
    tablesVerified: status?.tables.length ?? 0,
    mismatches: status?.tables.reduce((n, t) => n + t.mismatchedChunks, 0) ?? 0,
    paused: false,
    error: stopped
      ? cutShortNote(info.status.name, status?.phase, fleetFile)
      : (status?.lastError ?? (status ? undefined : `workflow ${info.status.name.toLowerCase()}; its status could not be read`)),
    status,
  };
}

export function timelineOf(status: TenantStatus | undefined, started: number, end: number, running: boolean): TenantRow['timeline'] {
  if (!status) return [];
  const steps: TenantRow['timeline'] = Object.entries(status.phaseMs).map(([phase, ms]) => ({ phase, ms: ms ?? 0 }));
  const spent = steps.reduce((n, s) => n + s.ms, 0);
  if (running || !(status.phase in status.phaseMs)) steps.push({ phase: status.phase, ms: Math.max(0, end - started - spent), current: running || undefined });
  return steps;
}

/** The progress bar: bytes while copying, the restore's percent, tables while verifying, else the phase's place in the runbook. */
export function progressOf(view: Pick<TenantView, 'state' | 'phase' | 'bytesDone' | 'bytesTotal' | 'percent' | 'tablesVerified' | 'mismatches'>): TenantRow['progress'] {
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  if (view.state === 'completed') return { fraction: 1, label: `${view.tablesVerified} tables verified${view.mismatches ? `, ${view.mismatches} mismatched` : ''}` };
  if (view.state === 'rolled_back') return { fraction: null, label: 'back on its source' };
  if (view.state === 'failed') return { fraction: null, label: 'failed' };
  if ((view.phase === 'copying' || view.phase === 'snapshotting') && view.bytesTotal)
    return { fraction: Math.min(1, view.bytesDone / view.bytesTotal), label: `${view.phase === 'copying' ? 'copied' : 'snapshot'} ${mib(view.bytesDone)} of ${mib(view.bytesTotal)}` };
  if (view.phase === 'restoring' && view.percent !== undefined) return { fraction: view.percent / 100, label: `restore ${view.percent}%` };
  if (view.phase === 'verifying' || view.tablesVerified) return { fraction: (PHASE_ORDER.indexOf(view.phase) + 1) / PHASE_ORDER.length, label: `${view.tablesVerified} tables verified` };
  const at = PHASE_ORDER.indexOf(view.phase);
  return { fraction: at < 0 ? 0 : at / (PHASE_ORDER.length - 1), label: view.phase.replace(/_/g, ' ') };
}
