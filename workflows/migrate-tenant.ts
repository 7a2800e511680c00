// One tenant's migration, one durable workflow. The body reads as the runbook in DESIGN.md.
import * as wf from '@temporalio/workflow';
import {
  approveCutoverUpdate,
  completeSignal,
  pauseSignal,
  phaseSearchAttribute,
  reasonOf,
  resumeSignal,
  rollbackSignal,
  statusQuery,
  tenantSearchAttribute,
  waveSearchAttribute,
  type EndState,
  type Phase,
  type TableVerification,
  type TenantInput,
  type TenantPhase,
  type TenantResult,
  type TenantStatus,
} from './contract';
import { activityPresets } from './presets';

export async function migrateTenant(input: TenantInput): Promise<TenantResult> {
  const { tenantId, policy } = input;
  const migrationId = wf.workflowInfo().runId.slice(0, 8);
  const run = new TenantRun(input, migrationId);
  const { short, transfer, replication, cutover, undo } = activityPresets(policy);
  const compensations = new Compensations();

  wf.setHandler(statusQuery, () => run.status);
  wf.setHandler(pauseSignal, () => run.pause());
  wf.setHandler(resumeSignal, () => run.resume());
  wf.setHandler(rollbackSignal, (reason) => run.requestRollback(reason));
  wf.setHandler(completeSignal, () => run.requestCompletion());
  wf.setHandler(approveCutoverUpdate, () => run.approve(), { validator: () => run.validateApproval() });
  wf.upsertSearchAttributes([
    { key: tenantSearchAttribute, value: tenantId },
    ...(input.waveId ? [{ key: waveSearchAttribute, value: input.waveId }] : []),
  ]);

  try {
    await run.scope.run(async () => {
      await run.phase('preflight', () => short.preflight(tenantId, migrationId));

      const journalFrom = await run.phase('journaling', () => short.startJournaling(tenantId, migrationId));
      run.status.journalFrom = journalFrom;
      compensations.add('stop journaling', () => undo.stopJournaling(tenantId));

      await run.phase('freezing', () => short.setWriteMode(tenantId, 'read_only'));
      compensations.add('thaw writes', () => undo.setWriteMode(tenantId, 'read_write'));

      // Registered before the step: a copy cancelled half way leaves staged blocks to discard.
      compensations.add('discard artifact', () => undo.discardArtifact(tenantId, migrationId));
      const artifact = await run.phase('snapshotting', () => transfer.snapshotSource(tenantId, migrationId));
      run.status.bytesTotal = artifact.sizeBytes;
      run.status.artifactSha256 = artifact.sha256;

      const copy = await run.phase('copying', () => transfer.copyArtifact(tenantId, migrationId, artifact, policy));
      run.status.bytesDone = copy.bytes;

      // Likewise: a restore cut short may leave a partial target, which only this migration may drop.
      compensations.add('drop target', () => undo.dropTarget(tenantId, migrationId), { destructive: true });
      await run.phase('restoring', () => transfer.restoreTarget(tenantId, migrationId, copy.blobName, policy));

      const forward = run.background(() => replication.dualWrite(tenantId, migrationId, 'forward', journalFrom));
      await run.phase('catching_up', async () => {
        for (;;) {
          const { lag } = await short.replicationLag(tenantId, migrationId, 'forward', journalFrom);
          run.status.lag = lag;
          if (lag <= policy.catchUpLagEvents) return;
          await wf.sleep('1 second');
        }
      });

      const verified = await run.phase('verifying', () => transfer.verifyTables(tenantId, migrationId, policy.verifyChunkRows));
      run.status.tables = verified.tables;
      assertIdentical(verified.tables);

      if (policy.cutover === 'manual') await run.phase('awaiting_cutover', () => wf.condition(() => run.approved));

      await forward.stop();
      // Registered before the step: a switch that flipped and then failed must still be undone. A
      // tenant still on its source makes this a no-op.
      compensations.add('route tenant back to source', () => undo.switchPrimary(tenantId, migrationId, 'source', { chunkRows: policy.verifyChunkRows }));
      const switched = await run.phase('cutting_over', () =>
        cutover.switchPrimary(tenantId, migrationId, 'target', {
          fromSeq: journalFrom,
          budgetMs: policy.cutoverPauseBudgetMs,
          verifyTrackingAfter: verified.trackingUpTo,
          chunkRows: policy.verifyChunkRows,
        }),
      );
      run.status.cutoverPauseMs = switched.pauseMs;
      run.status.heldEvents = switched.held;

      const reverse = run.background(() => replication.dualWrite(tenantId, migrationId, 'reverse', switched.reverseFrom));
      await run.phase('rollback_window', () => run.rollbackWindow(policy.rollbackWindowSeconds));
      await reverse.stop();

      // Only tracking events flow back during the window, so other writes stay paused until here:
      // a rollback in the window can then lose nothing.
      await short.setWriteMode(tenantId, 'read_write');
      await short.stopJournaling(tenantId);
      await short.cleanWorkDirectory(tenantId, migrationId);
    });
    run.end('completed');
  } catch (err) {
    const failure = run.backgroundFailure ?? (wf.isCancellation(err) && run.status.rollbackReason !== undefined ? undefined : err);
    if (failure) run.status.lastError = reasonOf(failure);
    if (failure && hasCause(failure, 'PauseBudgetExceededError')) run.status.cutoverAborted = reasonOf(failure);
    run.enter('rolling_back');
    await wf.CancellationScope.nonCancellable(async () => {
      await run.stopBackground();
      await compensations.runAll(run.status);
    });
    run.end(failure ? 'failed' : 'rolled_back');
    if (failure) {
      await wf.condition(wf.allHandlersFinished);
      throw wf.ApplicationFailure.nonRetryable(`${tenantId}: ${run.status.lastError}; the tenant stays on its source`, 'MigrationFailed');
    }
  }
  await wf.condition(wf.allHandlersFinished);
  return { tenantId, outcome: run.outcome!, status: run.status };
}

/** The workflow's state; every handler is one call into it. */
class TenantRun {
  readonly status: TenantStatus;
  readonly scope = new wf.CancellationScope();
  outcome?: EndState;
  approved = false;
  completionRequested = false;
  /** A background activity (the dual-write) that failed for good: the migration fails with it. */
  backgroundFailure?: unknown;
  private readonly breakpoints: Set<Phase>;
  private readonly backgrounds: (() => Promise<void>)[] = [];
  private phaseStartedAt = Date.now();

  constructor(input: TenantInput, migrationId: string) {
    this.breakpoints = new Set(input.policy.pauseBefore);
    this.status = {
      tenantId: input.tenantId, migrationId, phase: 'preflight', paused: false,
      bytesTotal: 0, bytesDone: 0, tables: [], phaseMs: {},
    };
  }

  /** Waits out a pause, enters the phase, runs its step. */
  async phase<T>(name: Phase, step: () => Promise<T>): Promise<T> {
    if (this.breakpoints.delete(name)) {
      wf.log.info('holding before phase as the policy asks', { phase: name });
      this.status.paused = true;
    }
    await wf.condition(() => !this.status.paused);
    this.enter(name);
    return step();
  }

  enter(phase: TenantPhase): void {
    const now = Date.now();
    if (this.status.phase !== phase) this.status.phaseMs[this.status.phase] = (this.status.phaseMs[this.status.phase] ?? 0) + now - this.phaseStartedAt;
    this.phaseStartedAt = now;
    this.status.phase = phase;
    wf.upsertSearchAttributes([{ key: phaseSearchAttribute, value: phase }]);
  }

  end(outcome: EndState): void {
    this.outcome = outcome;
    this.enter(outcome);
  }

  /** Runs an open-ended activity beside the phases; `stop` cancels it and waits until it has ended. */
  background(activity: () => Promise<unknown>): { stop: () => Promise<void> } {
    const scope = new wf.CancellationScope();
    const stop = async () => {
      scope.cancel();
      await done;
    };
    this.backgrounds.push(stop);
    const done = scope.run(activity).then(
      () => undefined,
      (err) => {
        if (wf.isCancellation(err)) return;
        this.backgroundFailure = err;
        this.scope.cancel();
      },
    );
    return { stop };
  }

  /** Before compensating: no dual-write may still be writing. */
  async stopBackground(): Promise<void> {
    await Promise.all(this.backgrounds.map((stop) => stop()));
  }

  /** Holds until the window ends by timer, or by a `complete` signal. */
  async rollbackWindow(seconds: number): Promise<void> {
    if (seconds > 0) await wf.condition(() => this.completionRequested, seconds * 1000);
  }

  validateApproval(): void {
    if (this.status.phase !== 'awaiting_cutover')
      throw new Error(`approveCutover refused: tenant ${this.status.tenantId} is in phase ${this.status.phase}; approval is taken only in awaiting_cutover`);
  }

  approve(): string {
    this.approved = true;
    return `cut-over of ${this.status.tenantId} approved`;
  }

  requestCompletion(): void {
    if (this.status.phase !== 'rollback_window') {
      wf.log.warn('complete ignored: the tenant is not in its rollback window', { phase: this.status.phase });
      return;
    }
    this.completionRequested = true;
  }

  pause(): void {
    this.status.paused = true;
  }

  resume(): void {
    this.status.paused = false;
  }

  requestRollback(reason: string): void {
    if (this.outcome || this.status.rollbackReason !== undefined || this.status.phase === 'rolling_back') {
      wf.log.warn('rollback ignored: the migration has already ended or is already rolling back', { phase: this.status.phase, reason });
      return;
    }
    this.status.rollbackReason = reason || 'operator request';
    this.status.paused = false;
    this.scope.cancel();
  }
}

/**
 * Undo steps, run newest first; one that fails is recorded and the rest still run, except the
 * destructive ones: once an undo has failed, nothing that could lose data (dropping the target,
 * which may hold events not yet drained back) is attempted.
 */
class Compensations {
  private readonly steps: { name: string; undo: () => Promise<unknown>; destructive: boolean }[] = [];

  add(name: string, undo: () => Promise<unknown>, options: { destructive?: boolean } = {}): void {
    this.steps.unshift({ name, undo, destructive: options.destructive ?? false });
  }

  async runAll(status: TenantStatus): Promise<void> {
    let failed = false;
    for (const step of this.steps) {
      if (failed && step.destructive) {
        wf.log.error('skipping a destructive undo after an earlier undo failed', { step: step.name });
        status.lastError = `${status.lastError ? `${status.lastError}; ` : ''}undo "${step.name}" skipped after an earlier undo failed`;
        continue;
      }
      try {
        await step.undo();
      } catch (err) {
        failed = true;
        wf.log.error('compensation failed; continuing with the rest', { step: step.name, error: reasonOf(err) });
        status.lastError = `${status.lastError ? `${status.lastError}; ` : ''}undo "${step.name}" failed: ${reasonOf(err)}`;
      }
    }
  }
}

/** Whether an application error of this type is anywhere in the failure's cause chain. */
function hasCause(err: unknown, type: string): boolean {
  for (let e = err as { type?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) if (e.type === type) return true;
  return false;
}

function assertIdentical(tables: TableVerification[]): void {
  const differing = tables.filter((t) => t.mismatchedChunks > 0);
  if (!differing.length) return;
  const named = differing
    .map((t) => `${t.table}: ${t.differences.slice(0, 5).map((d) => `${d.key} ${d.kind.replace(/_/g, ' ')}`).join(', ')}${t.differences.length > 5 ? ', …' : ''}`)
    .join('; ');
  throw wf.ApplicationFailure.nonRetryable(`verification found differences: ${named}`, 'VerificationMismatch');
}
