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
/**
 * How a tenant's run ended, set once it has: `completed`, `rolled_back` or `failed` (an EndState). The Temporal UI
 * shows a rolled-back run as a green `Completed` like a migrated one; filter on this instead
 * (`AirliftOutcome = "rolled_back"`). Absent while the run goes on.
 */
export const outcomeSearchAttribute = defineSearchAttributeKey('AirliftOutcome', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = [tenantSearchAttribute, phaseSearchAttribute, waveSearchAttribute, outcomeSearchAttribute];

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
  /** The pause budget of a cut-over that ships the tail-log backup to a Managed Instance (absent in older inputs: the default). */
  lrsCutoverPauseBudgetMs?: number;
  /** How often a log backup is shipped to a Managed Instance in continuous mode (absent in older inputs: the default). */
  logBackupSeconds?: number;
  rollbackWindowSeconds: number;
  /** Wave only: start a fresh run after this many tenants so the history stays small. */
  tenantsPerRun: number;
}

/** How the target catches up until the cut-over (the workflow's side of protocol/switch.ts's CatchUpMode). */
export type CatchUpMode = 'change-log' | 'log-shipping';

/** Defaults of policy fields that older workflow inputs lack. */
export const LRS_CUTOVER_PAUSE_BUDGET_MS = 300_000;
export const LOG_BACKUP_SECONDS = 60;

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

/** A tenant's writes as its applications see them: `read_only` while frozen. */
export type WriteMode = 'read_write' | 'read_only';

/**
 * What the `status` query answers; read by `airlift status`, the war-room page and tests. Times are
 * ISO 8601 strings of workflow time (the time the workflow task ran), durations are milliseconds.
 * Live transfer progress (bytes copied so far, restore percent, dual-write lag) comes from the
 * running activity's heartbeat, not from here: see `cli/observe.ts`, which merges both.
 */
export interface TenantStatus {
  tenantId: string;
  migrationId: string;
  waveId?: string;
  phase: TenantPhase;
  /** When this run started, when the current phase was entered, and when the run ended. */
  startedAt: string;
  phaseSince: string;
  endedAt?: string;
  /**
   * An operator's (or the policy's) pause is in force: the workflow holds before its next phase.
   * The step of the current phase runs on to its end meanwhile (a copy keeps copying); `heldBefore`
   * says when the hold has actually been reached.
   */
  paused: boolean;
  /** Set while the workflow stands still, waiting for `resume` before entering this phase. */
  heldBefore?: Phase;
  /** Who paused it: an operator (`pause` update or signal) or the policy's `pauseBefore`. */
  pausedBy?: 'operator' | 'policy';
  /** The tenant's write mode as this run last set it, and since when writes are frozen (`read_only`). */
  writeMode: WriteMode;
  frozenSince?: string;
  /** While in `rollback_window`: when the window closes by itself (absent if it stays open until `complete`). */
  rollbackWindowEndsAt?: string;
  bytesTotal: number;
  bytesDone: number;
  /** Bytes per second of the whole copy, once it has ended (the live figure comes from the heartbeat). */
  copyBytesPerSecond?: number;
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
  /**
   * How the target catches up: `change-log` (the dual-write) or `log-shipping` (log backups restored
   * by a Managed Instance under LRS in continuous mode). Absent in runs started before it existed.
   */
  catchUp?: CatchUpMode;
  /** Log shipping: the last log backup shipped and the last one the target restored, and how many it has still to restore. */
  logShipping?: { lastShipped: string; lastRestored?: string; filesBehind: number };
  /** Log shipping: the steps of the last cut-over under its fence, in milliseconds. */
  cutoverSteps?: { tailBackupMs: number; restoreMs: number; completeMs: number };
  /** What preflight found that does not stop the migration but may (a customer's log backup job). */
  warnings?: string[];
  /** Set when the cut-over flipped but a gateway node did not confirm it (that node reloads its route when refused). */
  cutoverUnconfirmed?: string;
  /** Why a rollback was refused last (past the point of no return), for `status`. */
  rollbackRefused?: string;
  /** How the run ended, once it has (also in the `AirliftOutcome` search attribute). */
  outcome?: EndState;
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
  /** A second (third…) start of a wave id that already ran, with `wave start --rerun`. */
  rerun?: number;
  /** Tenants whose cut-over differs from `policy.cutover` (the fleet file's `tenants[].cutover`). */
  cutoverOf?: Record<string, MigrationPolicy['cutover']>;
  /** Carried across continue-as-new; absent on the first run. */
  finished?: WaveTenantRow[];
  run?: number;
  /** Carried across continue-as-new: a wave paused when its run ends starts the next run paused. */
  paused?: boolean;
}

export interface WaveTenantRow {
  tenantId: string;
  /** `skipped`: not started by this wave, because another workflow was migrating the tenant already (`error` says so). */
  state: 'pending' | 'running' | 'skipped' | EndState;
  error?: string;
  /** The run of the tenant's workflow this wave started, so a later run (another wave) is not shown as this wave's. */
  runId?: string;
  /** Set once the tenant's rollback window opened: it no longer holds one of the wave's concurrency slots. */
  inWindow?: boolean;
}

export interface WaveStatus {
  waveId: string;
  rerun?: number;
  /** The wave's concurrency limit (absent in waves started before it was reported). */
  concurrency?: number;
  paused: boolean;
  aborted: boolean;
  runs: number;
  tenants: WaveTenantRow[];
}

// Tenant workflow messages.
export const statusQuery = defineQuery<TenantStatus>('status');
/** For the Temporal UI, which sends signals; refused silently (logged) past the point of no return. */
/**
 * The Temporal UI sends a signal's input as JSON: type the reason in quotes (`"customer escalation"`)
 * or as `{"reason": "…"}`; an empty input records "operator request (signal)".
 */
export const rollbackSignal = defineSignal<[unknown?]>('rollback');
/** For the CLI: refused with the reason the operator sees (from `finalizing` on, or when already ended). */
export const rollbackUpdate = defineUpdate<string, [string]>('rollback');
/** Signals kept for the Temporal UI and older callers; a refusal of one is only logged and kept in `status`. */
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const completeSignal = defineSignal('complete');
/**
 * For the CLI and the war-room page: each answers in words, or is refused by its validator with the
 * reason (a tenant that already ended, a pause already in force, nothing left to pause before).
 * The wave workflow answers `pause` and `resume` too.
 */
export const pauseUpdate = defineUpdate<string, []>('pause');
export const resumeUpdate = defineUpdate<string, []>('resume');
/** Ends the rollback window now; refused outside it. */
export const completeUpdate = defineUpdate<string, []>('complete');
export const approveCutoverUpdate = defineUpdate<string, []>('approveCutover');

// Wave workflow messages.
export const waveStatusQuery = defineQuery<WaveStatus>('waveStatus');
export const abortSignal = defineSignal('abort');
/** Sent by a tenant's workflow to the wave that started it when its rollback window opens: its concurrency slot is free. */
export const rollbackWindowOpenedSignal = defineSignal<[string]>('rollbackWindowOpened');

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
