// One tenant's migration, one durable workflow. The body reads as the runbook in DESIGN.md.
import * as wf from '@temporalio/workflow';
import {
  approveCutoverUpdate,
  completeSignal,
  completeUpdate,
  rollbackUpdate,
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
import { PauseBudgetExceededError, VerificationMismatchError } from '../protocol/errors';

export async function migrateTenant(input: TenantInput): Promise<TenantResult> {
  const { tenantId, migrationId, policy } = input;
  const run = new TenantRun(input);
  const { short, transfer, replication, cutover, undo, cleanup, final } = activityPresets(policy);
  const compensations = new Compensations();

  wf.setHandler(statusQuery, () => run.status);
  wf.setHandler(pauseSignal, () => run.pause());
  wf.setHandler(resumeSignal, () => run.resume());
  wf.setHandler(rollbackSignal, (reason) => void run.rollback(reason, 'signal'));
  wf.setHandler(rollbackUpdate, (reason) => run.rollback(reason, 'update'), { validator: (_reason: string) => run.validateRollback() });
  wf.setHandler(completeSignal, () => void run.requestCompletion());
  wf.setHandler(completeUpdate, () => run.requestCompletion(), { validator: () => run.validateCompletion() });
  wf.setHandler(approveCutoverUpdate, () => run.approve(), { validator: () => run.validateApproval() });
  wf.upsertSearchAttributes([
    { key: tenantSearchAttribute, value: tenantId },
    ...(input.waveId ? [{ key: waveSearchAttribute, value: input.waveId }] : []),
  ]);

  try {
    await run.scope.run(async () => {
      await run.phase('preflight', () => short.preflight(tenantId, migrationId));

      // Each undo is registered before its step, and the steps that change routing run to their end
      // even when a rollback arrives meanwhile: an undo never races the step it undoes.
      compensations.add('stop journaling', () => undo.stopJournaling(tenantId, migrationId, run.nextStep()), { unsafeAfterFailure: true });
      const journalFrom = await run.atomicPhase('journaling', () => short.startJournaling(tenantId, migrationId, run.nextStep()));
      run.status.journalFrom = journalFrom;

      // The tenant keeps writing from here on: every change is captured and replicated, and writes
      // stop only inside the cut-over's fence.
      compensations.add('discard artifact', () => cleanup.discardArtifact(tenantId, migrationId), { bestEffort: true });
      const artifact = await run.phase('snapshotting', () => transfer.snapshotSource(tenantId, migrationId));
      run.status.bytesTotal = artifact.sizeBytes;
      run.status.artifactSha256 = artifact.sha256;

      const copy = await run.phase('copying', () => transfer.copyArtifact(tenantId, migrationId, artifact, policy));
      run.status.bytesDone = copy.bytes;

      compensations.add('drop target', () => undo.dropTarget(tenantId, migrationId), { unsafeAfterFailure: true });
      await run.phase('restoring', () => transfer.restoreTarget(tenantId, migrationId, copy.blobName, policy));

      const catchUp = () => run.background(() => replication.dualWrite(tenantId, migrationId, 'forward', journalFrom));
      let forward = catchUp();
      await run.phase('catching_up', async () => {
        for (;;) {
          const { lag } = await short.replicationLag(tenantId, migrationId, 'forward', journalFrom);
          run.status.lag = lag;
          if (lag <= policy.catchUpLagEvents) return;
          await wf.sleep('1 second');
        }
      });

      const verified = await run.phase('verifying', () => transfer.verifyTables(tenantId, migrationId, policy.verifyChunkRows, journalFrom));
      run.status.tables = verified.tables;
      assertIdentical(verified.tables);

      if (policy.cutover === 'manual') await run.phase('awaiting_cutover', () => wf.condition(() => run.approved));

      // A tenant still on its source makes this a no-op; one that flipped is drained back first.
      compensations.add('route tenant back to source', () => undo.switchPrimary(tenantId, migrationId, 'source', { chunkRows: policy.verifyChunkRows }), { routing: true });
      const switched = await run.phase('cutting_over', async () => {
        for (let attempt = 1; ; attempt++) {
          await forward.stop();
          // A rollback that came while replication stopped is taken now, before anything is fenced.
          run.takeRollbackIfRequested();
          try {
            return await wf.CancellationScope.nonCancellable(() =>
              cutover.switchPrimary(tenantId, migrationId, 'target', {
                fromSeq: journalFrom,
                budgetMs: policy.cutoverPauseBudgetMs,
                verifyChangesAfter: verified.verifiedFrom,
                chunkRows: policy.verifyChunkRows,
              }),
            );
          } catch (err) {
            // Called off (a gateway node away, over the pause budget): the tenant is still on its
            // source, unharmed. Keep catching up and try again after a while, a bounded number of times.
            if (hasCause(err, PauseBudgetExceededError)) run.status.cutoverAborted = reasonOf(err);
            (run.status.cutoverAttempts ??= []).push({ at: new Date().toISOString(), error: reasonOf(err) });
            if (hasCause(err, VerificationMismatchError) || attempt >= policy.cutoverAttempts) throw err;
            wf.log.warn('cut-over called off; trying again after a while', { attempt, error: reasonOf(err) });
            forward = catchUp();
            await wf.sleep(policy.cutoverRetrySeconds * 1000);
          }
        }
      });
      run.status.cutoverPauseMs = switched.pauseMs;
      run.status.heldEvents = switched.held;

      run.background(() => replication.dualWrite(tenantId, migrationId, 'reverse', switched.reverseFrom));
      await run.phase('rollback_window', () => run.rollbackWindow(policy.rollbackWindowSeconds));
      run.passPointOfNoReturn();
    });
  } catch (err) {
    const rollbackRequested = run.status.rollbackReason !== undefined;
    // A rollback wins over whatever its cancellation caused (a step that timed out on a dead worker).
    const failure = run.backgroundFailure ?? (rollbackRequested ? undefined : err);
    if (failure) run.status.lastError = reasonOf(failure);
    run.enter('rolling_back');
    const undone = await wf.CancellationScope.nonCancellable(async () => {
      await run.stopBackground();
      return compensations.runAll(run.status);
    });
    run.end(failure || !undone ? 'failed' : 'rolled_back');
    await wf.condition(wf.allHandlersFinished);
    if (failure || !undone)
      throw wf.ApplicationFailure.nonRetryable(`${tenantId}: ${run.status.lastError}; ${undone ? 'the tenant stays on its source' : 'see the failed undo steps'}`, 'MigrationFailed');
    return { tenantId, outcome: run.outcome!, status: run.status };
  }

  // The point of no return: the target is the primary for good. Each step retries until done and
  // nothing is compensated; a rollback is refused with the reason.
  await wf.CancellationScope.nonCancellable(async () => {
    await run.stopBackground();
    await final.stopJournaling(tenantId, migrationId, run.nextStep());
    await final.cleanWorkDirectory(tenantId, migrationId);
  });
  run.end('completed');
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
  private steps = 0;

  constructor(input: TenantInput) {
    this.breakpoints = new Set(input.policy.pauseBefore);
    this.status = {
      tenantId: input.tenantId, migrationId: input.migrationId, phase: 'preflight', paused: false,
      bytesTotal: 0, bytesDone: 0, tables: [], phaseMs: {},
    };
  }

  /**
   * The next step number of this run, for changes of the tenant's mode: they are applied in step
   * order, so an attempt that wakes up late cannot undo a later step. Deterministic (replayed); a
   * workflow reset is a new run with an order of its own.
   */
  nextStep(): { owner: string; step: number } {
    return { owner: `${this.status.migrationId}:${wf.workflowInfo().runId}`, step: ++this.steps };
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

  /**
   * A phase whose step changes routing: once started it runs to its end even if a rollback arrives,
   * and the rollback is taken right after it, so its undo never races it.
   */
  async atomicPhase<T>(name: Phase, step: () => Promise<T>): Promise<T> {
    const result = await this.phase(name, () => wf.CancellationScope.nonCancellable(step));
    this.takeRollbackIfRequested();
    return result;
  }

  /** A rollback that arrived while a step could not be interrupted is taken here. */
  takeRollbackIfRequested(): void {
    if (this.scope.consideredCancelled) throw new wf.CancelledFailure('rollback requested');
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
    let stopped = false;
    const done = scope.run(activity).then(
      () => undefined,
      (err) => {
        // Once asked to stop, however it ends is a stop: a dual-write whose worker died reports a
        // heartbeat timeout instead of its cancellation, and that must not fail the migration.
        if (wf.isCancellation(err) || stopped) return;
        this.backgroundFailure = err;
        this.scope.cancel();
      },
    );
    const stop = async () => {
      if (stopped) return done;
      stopped = true;
      scope.cancel();
      await done;
    };
    this.backgrounds.push(stop);
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

  validateCompletion(): void {
    if (this.status.phase !== 'rollback_window')
      throw new Error(`complete refused: tenant ${this.status.tenantId} is in phase ${this.status.phase}; the rollback window can be ended only while it is open`);
  }

  requestCompletion(): string {
    if (this.status.phase !== 'rollback_window') {
      wf.log.warn('complete ignored: the tenant is not in its rollback window', { phase: this.status.phase });
      return 'ignored';
    }
    this.completionRequested = true;
    return `rollback window of ${this.status.tenantId} ended; finalizing`;
  }

  pause(): void {
    this.status.paused = true;
  }

  resume(): void {
    this.status.paused = false;
  }

  /** From here the target is the primary for good; set in the same step as the window's end. */
  passPointOfNoReturn(): void {
    this.takeRollbackIfRequested();
    this.enter('finalizing');
  }

  /** Why a rollback cannot be taken now, or undefined when it can. */
  private rollbackRefusal(): string | undefined {
    const { phase, tenantId } = this.status;
    if (phase === 'finalizing' || phase === 'completed')
      return `rollback refused: tenant ${tenantId} is ${phase === 'completed' ? 'completed' : 'finalizing'}, past the point of no return (the rollback window has ended and writes are thawed on the target); migrate it back as a new migration instead`;
    if (this.outcome || phase === 'rolling_back' || this.status.rollbackReason !== undefined)
      return `rollback refused: tenant ${tenantId} is already ${phase === 'rolled_back' ? 'rolled back' : phase === 'failed' ? 'failed and back on its source' : 'rolling back'}`;
    return undefined;
  }

  validateRollback(): void {
    const refusal = this.rollbackRefusal();
    if (refusal) throw new Error(refusal);
  }

  rollback(reason: string, via: 'signal' | 'update'): string {
    const refusal = this.rollbackRefusal();
    if (refusal) {
      // A signal cannot be refused to its sender: the refusal goes to the log and to `status`.
      this.status.rollbackRefused = refusal;
      wf.log.warn('rollback ignored', { via, phase: this.status.phase, reason, refusal });
      return refusal;
    }
    this.status.rollbackReason = reason || 'operator request';
    this.status.paused = false;
    this.scope.cancel();
    return `rollback of ${this.status.tenantId} started from phase ${this.status.phase}`;
  }
}

/**
 * Undo steps, run newest first; one that fails is recorded and the rest still run, except those that
 * are unsafe once the route back to the source has failed: the tenant may then still be served from
 * its target, so the target (which may hold events not yet drained back) is not dropped, and writes
 * are not thawed nor journaling stopped; the tenant stays frozen and journaled for `airlift
 * reconcile`. A failed drop of a target the tenant never used does not hold back the thaw.
 */
class Compensations {
  private readonly steps: { name: string; undo: () => Promise<unknown>; unsafeAfterFailure: boolean; bestEffort: boolean; routing: boolean }[] = [];

  /**
   * `routing`: the undo that puts the tenant back on its source; its failure makes the
   * `unsafeAfterFailure` ones unsafe. `bestEffort`: a clean-up whose failure leaves nothing unsafe
   * (blobs, local files); it is noted and does not fail the rollback.
   */
  add(name: string, undo: () => Promise<unknown>, options: { unsafeAfterFailure?: boolean; bestEffort?: boolean; routing?: boolean } = {}): void {
    this.steps.unshift({ name, undo, unsafeAfterFailure: options.unsafeAfterFailure ?? false, bestEffort: options.bestEffort ?? false, routing: options.routing ?? false });
  }

  /** Runs every undo; returns whether all of them succeeded. */
  async runAll(status: TenantStatus): Promise<boolean> {
    let failed = false;
    let routingFailed = false;
    const note = (text: string) => (status.lastError = `${status.lastError ? `${status.lastError}; ` : ''}${text}`);
    for (const step of this.steps) {
      if (routingFailed && step.unsafeAfterFailure) {
        wf.log.error('skipping an undo that is unsafe while the tenant may still be on its target', { step: step.name });
        note(`undo "${step.name}" skipped: the route back to the source failed`);
        continue;
      }
      try {
        await step.undo();
      } catch (err) {
        if (!step.bestEffort) failed = true;
        if (step.routing) routingFailed = true;
        wf.log.error('compensation failed; continuing with the rest', { step: step.name, error: reasonOf(err) });
        note(`undo "${step.name}" failed: ${reasonOf(err)}`);
      }
    }
    return !failed;
  }
}

/** Whether an application error of this class (by its failure type) is anywhere in the failure's cause chain. */
function hasCause(err: unknown, errorClass: { type: string }): boolean {
  for (let e = err as { type?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) if (e.type === errorClass.type) return true;
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
