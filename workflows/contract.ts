// The one contract shared by workflows, workers and the CLI: task queue, ids, phases, search
// attributes, and every signal, query and update. Nothing here may import Node built-ins.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const TASK_QUEUE = 'airlift';

export const tenantWorkflowId = (tenantId: string): string => `airlift-tenant-${tenantId}`;
export const waveWorkflowId = (waveId: string): string => `airlift-wave-${waveId}`;

/** Phases in the order of DESIGN.md; the ones a run skips are simply never entered. */
export const PHASES = [
  'preflight',
  'journaling',
  'snapshotting',
  'copying',
  'restoring',
  'catching_up',
  'verifying',
  'awaiting_cutover',
  'cutting_over',
  'rollback_window',
  'finalizing',
  'completed',
] as const;
export type Phase = (typeof PHASES)[number];
/** Where a run ends when it does not complete. */
export type EndState = 'completed' | 'rolled_back' | 'failed';
export type TenantPhase = Phase | 'rolling_back' | 'rolled_back' | 'failed';

export const tenantSearchAttribute = defineSearchAttributeKey('AirliftTenant', SearchAttributeType.KEYWORD);
export const phaseSearchAttribute = defineSearchAttributeKey('AirliftPhase', SearchAttributeType.KEYWORD);
export const waveSearchAttribute = defineSearchAttributeKey('AirliftWave', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = [tenantSearchAttribute, phaseSearchAttribute, waveSearchAttribute];

/** The migration policy; carried in workflow input, so it holds no secret. */
export interface MigrationPolicy {
  concurrency: number;
  verifyChunkRows: number;
  blockSizeMiB: number;
  uploadConcurrency: number;
  maxUploadMiBps?: number;
  cutover: 'auto' | 'manual';
  /** Hold the workflow before these phases until `resume` (an operator's breakpoint). */
  pauseBefore: Phase[];
  activityTimeoutMinutes: number;
  cutoverPauseBudgetMs: number;
  /** A cut-over called off (a gateway node unreachable, the pause budget exceeded) is tried again this many times in all. */
  cutoverAttempts: number;
  /** Wait between cut-over attempts; the forward replication keeps catching up meanwhile. */
  cutoverRetrySeconds: number;
  catchUpLagEvents: number;
  rollbackWindowSeconds: number;
  /** Wave only: start a fresh run after this many tenants so the history stays small. */
  tenantsPerRun: number;
}

export interface TenantInput {
  tenantId: string;
  /**
   * Unique per run, made by the starter and carried here, so a workflow reset keeps it: it names the
   * blobs, the work folder, the target's ownership marker and the replication cursors of this run.
   */
  migrationId: string;
  waveId?: string;
  policy: MigrationPolicy;
}

export interface TableVerification {
  table: string;
  rows: number;
  chunks: number;
  mismatchedChunks: number;
  /** Keys that differ, rendered for people, at most a few dozen per table. */
  differences: { key: string; kind: 'changed' | 'missing_on_target' | 'extra_on_target' }[];
}

export interface TenantStatus {
  tenantId: string;
  migrationId: string;
  phase: TenantPhase;
  paused: boolean;
  bytesTotal: number;
  bytesDone: number;
  artifactSha256?: string;
  tables: TableVerification[];
  /** Milliseconds spent in each phase that has ended, in order. */
  phaseMs: Partial<Record<TenantPhase, number>>;
  lastError?: string;
  rollbackReason?: string;
  /** Live ingestion: the outbox watermark when journaling began, and the cut-over pause. */
  journalFrom?: number;
  /** Events the forward dual-write was behind at its last look (catching up). */
  lag?: number;
  cutoverPauseMs?: number;
  heldEvents?: number;
  /** Set when a cut-over was tried and called off, and why; the tenant stayed on source. */
  cutoverAborted?: string;
  /** Every cut-over that was called off before the one that went through (or the last one). */
  cutoverAttempts?: { at: string; error: string }[];
  /** Why a rollback was refused last (past the point of no return), for `status`. */
  rollbackRefused?: string;
}

export interface TenantResult {
  tenantId: string;
  outcome: EndState;
  status: TenantStatus;
}

export interface WaveInput {
  waveId: string;
  tenants: string[];
  policy: MigrationPolicy;
  /** Carried across continue-as-new; absent on the first run. */
  finished?: WaveTenantRow[];
  run?: number;
  /** Carried across continue-as-new: a wave paused when its run ends starts the next run paused. */
  paused?: boolean;
}

export interface WaveTenantRow {
  tenantId: string;
  state: 'pending' | 'running' | EndState;
  error?: string;
}

export interface WaveStatus {
  waveId: string;
  paused: boolean;
  aborted: boolean;
  runs: number;
  tenants: WaveTenantRow[];
}

// Tenant workflow messages.
export const statusQuery = defineQuery<TenantStatus>('status');
/** For the Temporal UI, which sends signals; refused silently (logged) past the point of no return. */
export const rollbackSignal = defineSignal<[string]>('rollback');
/** For the CLI: refused with the reason the operator sees (from `finalizing` on, or when already ended). */
export const rollbackUpdate = defineUpdate<string, [string]>('rollback');
export const pauseSignal = defineSignal('pause');
export const completeSignal = defineSignal('complete');
/** Ends the rollback window now; refused outside it. */
export const completeUpdate = defineUpdate<string, []>('complete');
export const approveCutoverUpdate = defineUpdate<string, []>('approveCutover');
export const resumeSignal = defineSignal('resume');

// Wave workflow messages.
export const waveStatusQuery = defineQuery<WaveStatus>('waveStatus');
export const abortSignal = defineSignal('abort');

/** A migration id from a random UUID (crypto.randomUUID in the CLI, wf.uuid4 in a workflow): 16 hex characters. */
export function migrationIdOf(uuid: string): string {
  return uuid.replace(/-/g, '').slice(0, 16);
}

/** Used for ids and names that travel into workflows: letters, digits, `_` and `-`. */
export const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/** The innermost message: an activity or child failure wraps the error that says what happened. */
export function reasonOf(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e && typeof e === 'object' && e.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}
