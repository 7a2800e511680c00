// One tenant's migration, one durable workflow. The body reads as the runbook in DESIGN.md.
import * as wf from '@temporalio/workflow';
import {
  approveCutoverUpdate,
  completeSignal,
  completeUpdate,
  rollbackUpdate,
  outcomeSearchAttribute,
  pauseSignal,
  pauseUpdate,
  phaseSearchAttribute,
  reasonOf,
  resumeSignal,
  resumeUpdate,
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
  LOG_BACKUP_SECONDS,
  LRS_CUTOVER_PAUSE_BUDGET_MS,
} from './contract';
import { activityPresets } from './presets';
import { releaseWaveSlot } from './wave-slot';
import { PauseBudgetExceededError, VerificationMismatchError } from '../protocol/errors';

export async function migrateTenant(input: TenantInput): Promise<TenantResult> {
  const { tenantId, migrationId, policy } = input;
  const run = new TenantRun(input);
  const { short, check, transfer, replication, cutover, lrsCutover, undo, cleanup, final } = activityPresets(policy);
  const compensations = new Compensations();

  wf.setHandler(statusQuery, () => run.status);
  wf.setHandler(pauseSignal, () => void run.pause('signal'));
  wf.setHandler(resumeSignal, () => void run.resume('signal'));
  wf.setHandler(pauseUpdate, () => run.pause('update'), { validator: () => run.validatePause() });
  wf.setHandler(resumeUpdate, () => run.resume('update'), { validator: () => run.validateResume() });
  wf.setHandler(rollbackSignal, (reason) => void run.rollback(reasonFromSignal(reason), 'signal'));
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
      // Runs started before preflight answered are change-log runs (the answer is undefined on replay).
      const checked = await run.phase('preflight', () => short.preflight(tenantId, migrationId));
      const logShipping = checked?.catchUp === 'log-shipping';
      run.status.catchUp = checked?.catchUp;
      if (checked?.warnings.length) run.status.warnings = checked.warnings;

      // Each undo is registered before its step, and the steps that change routing run to their end
      // even when a rollback arrives meanwhile: an undo never races the step it undoes.
      compensations.add('stop journaling', () => undo.stopJournaling(tenantId, migrationId, run.nextStep()), { unsafeAfterFailure: true });
      const journalFrom = await run.atomicPhase('journaling', () => short.startJournaling(tenantId, migrationId, run.nextStep()));
      run.status.journalFrom = journalFrom;

      // The tenant keeps writing from here on: every change is captured and replicated, and writes
      // stop only inside the cut-over's fence.
      compensations.add('discard artifact', () => cleanup.discardArtifact(tenantId, migrationId), { bestEffort: true });
      const artifact = await run.phase('snapshotting', () => transfer.snapshotSource(tenantId, migrationId, policy));
      run.status.bytesTotal = artifact.sizeBytes;
      run.status.artifactSha256 = artifact.sha256;

      const copy = await run.phase('copying', () => transfer.copyArtifact(tenantId, migrationId, artifact, policy));
      run.copied(copy.bytes);

      compensations.add('drop target', () => undo.dropTarget(tenantId, migrationId), { unsafeAfterFailure: true });
      // With log shipping the target stays restoring after the full backup, for the log backups to come.
      await run.phase('restoring', () => transfer.restoreTarget(tenantId, migrationId, copy.blobName, policy, ...(logShipping ? [true] : [])));

      const catchUp = logShipping
        ? () => run.background(() => replication.shipLogs(tenantId, migrationId, policy.logBackupSeconds ?? LOG_BACKUP_SECONDS))
        : () => run.background(() => replication.dualWrite(tenantId, migrationId, 'forward', journalFrom));
      let forward = catchUp();
      await run.phase('catching_up', async () => {
        for (;;) {
          if (logShipping) {
            const lag = await short.logShippingLag(tenantId, migrationId);
            run.status.logShipping = lag;
            run.describe();
            if (lag.filesBehind === 0 && lag.lastRestored === lag.lastShipped) return;
          } else {
            const { lag } = await short.replicationLag(tenantId, migrationId, 'forward', journalFrom);
            run.status.lag = lag;
            run.describe();
            if (lag <= policy.catchUpLagEvents) return;
          }
          await wf.sleep('1 second');
        }
      });

      // A database restoring under LRS cannot be read: with log shipping, every row changed since
      // journaling is compared inside the cut-over, once the restore is completed.
      const verified = logShipping
        ? { tables: [], verifiedFrom: journalFrom }
        : await run.phase('verifying', () => transfer.verifyTables(tenantId, migrationId, policy.verifyChunkRows, journalFrom));
      run.status.tables = verified.tables;
      assertIdentical(verified.tables);

      if (policy.cutover === 'manual') await run.phase('awaiting_cutover', () => wf.condition(() => run.approved));

      // A tenant still on its source makes this a no-op; one that flipped is drained back first.
      compensations.add('route tenant back to source', () => undo.switchPrimary(tenantId, migrationId, 'source', { chunkRows: policy.verifyChunkRows }), { routing: true });
      let verifiedFrom = verified.verifiedFrom;
      const switched = await run.phase('cutting_over', async () => {
        for (let attempt = 1; ; attempt++) {
          // Whatever changed while the tenant waited (for approval, between attempts) is compared
          // online first, with replication still running, so the fenced compare covers only what
          // changed since and the drain under the fence only what came in after (a target restoring
          // under LRS cannot be read: there every row changed since journaling is compared under the fence).
          const rebaselineOnline = !logShipping && wf.patched('rebaseline-while-replicating');
          if (rebaselineOnline) verifiedFrom = await transfer.rebaselineVerification(tenantId, migrationId, journalFrom, verifiedFrom);
          await forward.stop();
          // A rollback that came while replication stopped is taken now, before anything is fenced.
          run.takeRollbackIfRequested();
          if (!logShipping && !rebaselineOnline && wf.patched('rebaseline-before-cutover')) verifiedFrom = await transfer.rebaselineVerification(tenantId, migrationId, journalFrom, verifiedFrom);
          try {
            return await wf.CancellationScope.nonCancellable(() =>
              (logShipping ? lrsCutover : cutover).switchPrimary(tenantId, migrationId, 'target', {
                fromSeq: journalFrom,
                // Under log shipping the fence also holds the tail-log backup, its restore and the completion.
                budgetMs: logShipping ? (policy.lrsCutoverPauseBudgetMs ?? LRS_CUTOVER_PAUSE_BUDGET_MS) : policy.cutoverPauseBudgetMs,
                verifyChangesAfter: verifiedFrom,
                chunkRows: policy.verifyChunkRows,
                ...(logShipping ? { catchUp: 'log-shipping' as const } : {}),
              }),
            );
          } catch (err) {
            // Before waiting or giving up: a worker that died holding the fence left the source
            // fenced; the attempt is ended now (called off, or finished forward if it had flipped).
            if (wf.patched('end-switch-attempt')) {
              const ended = await wf.CancellationScope.nonCancellable(() => undo.endSwitchAttempt(tenantId, migrationId, 'target', { chunkRows: policy.verifyChunkRows }));
              if (ended.outcome === 'switched') {
                (run.status.cutoverAttempts ??= []).push({ at: new Date().toISOString(), error: `${reasonOf(err)}; the flip had been made, so the cut-over was finished, not called off` });
                if (ended.unconfirmed) run.status.cutoverUnconfirmed = ended.unconfirmed;
                return ended.result;
              }
            }
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
      if (switched.unreachable) run.status.cutoverUnconfirmed = `gateway node(s) did not answer (the write gate held for them; they reload their routes when refused or restarted): ${switched.unreachable.join('; ')}`;
      if (switched.steps) run.status.cutoverSteps = switched.steps;

      run.background(() => replication.dualWrite(tenantId, migrationId, 'reverse', switched.reverseFrom));
      run.routeBackRefusal = () => check.routeBackRefusal(tenantId, migrationId);
      await releaseWaveSlot(tenantId);
      const deferred = switched.deferredCompare && wf.patched('compare-after-flip') ? switched.deferredCompare : undefined;
      await run.phase('rollback_window', async () => {
        // With log shipping the rows changed since journaling are compared here, not under the fence.
        if (deferred) await transfer.compareAfterFlip(tenantId, migrationId, deferred, switched.reverseFrom);
        await run.rollbackWindow(policy.rollbackWindowSeconds);
      });
      run.passPointOfNoReturn();
    });
  } catch (err) {
    // Cancelled from the Temporal UI (or `temporal workflow cancel`): a rollback like any other.
    if (wf.CancellationScope.current().consideredCancelled && run.status.rollbackReason === undefined) run.status.rollbackReason = 'workflow cancelled (Temporal UI or `temporal workflow cancel`)';
    const rollbackRequested = run.status.rollbackReason !== undefined;
    // A rollback wins over whatever its cancellation caused (a step that timed out on a dead worker).
    const failure = run.backgroundFailure ?? (rollbackRequested ? undefined : err);
    if (failure) run.status.lastError = reasonOf(failure);
    // Preflight changes nothing: a tenant it turns away stays wherever it is (its source, or a target it was moved to before).
    const changedNothing = run.status.phase === 'preflight';
    run.enter('rolling_back');
    const undone = await wf.CancellationScope.nonCancellable(async () => {
      await run.stopBackground();
      return compensations.runAll(run.status);
    });
    run.end(failure || !undone ? 'failed' : 'rolled_back');
    await run.handlersFinished();
    if (failure || !undone)
      throw wf.ApplicationFailure.nonRetryable(`${tenantId}: ${run.status.lastError}; ${changedNothing ? 'nothing was changed' : undone ? 'the tenant stays on its source' : 'see the failed undo steps'}`, 'MigrationFailed');
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
  await run.handlersFinished();
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
    const now = new Date().toISOString();
    this.status = {
      tenantId: input.tenantId, migrationId: input.migrationId, waveId: input.waveId, phase: 'preflight',
      startedAt: now, phaseSince: now, paused: false, writeMode: 'read_write',
      bytesTotal: 0, bytesDone: 0, tables: [], phaseMs: {},
    };
    this.describe();
  }

  copied(bytes: number): void {
    this.status.bytesDone = bytes;
    const ms = Date.now() - Date.parse(this.status.phaseSince);
    if (ms > 0) this.status.copyBytesPerSecond = Math.round((bytes * 1000) / ms);
  }

  /**
   * The workflow's current details in the Temporal UI (user metadata), in words: the phase and since
   * when, whether writes are open, a pause, what the operator can do next. Times are
   * absolute (UTC): the text is read later than it is written.
   */
  describe(): void {
    const s = this.status;
    const at = (iso: string) => iso.slice(11, 19) + ' UTC';
    const lines = [`**tenant ${s.tenantId}: ${s.phase.replace(/_/g, ' ')}** since ${at(s.phaseSince)}${s.waveId ? ` (wave ${s.waveId})` : ''}`];
    // What the operator can do comes first: the UI's box cuts off what does not fit.
    if (s.phase === 'awaiting_cutover') lines.push(`waiting for approval: \`airlift approve ${s.tenantId}\``);
    if (s.phase === 'rollback_window')
      lines.push(`on its target; ${s.rollbackWindowEndsAt ? `window closes at ${at(s.rollbackWindowEndsAt)}` : 'window open'}: \`airlift complete ${s.tenantId}\` or \`airlift rollback ${s.tenantId} --reason …\``);
    if (s.heldBefore) lines.push(`held before ${s.heldBefore} by ${s.pausedBy === 'policy' ? "the policy's pauseBefore" : 'an operator'}: \`airlift resume ${s.tenantId}\``);
    else if (s.paused) lines.push(`pause requested: holds before its next phase once the ${s.phase} step ends`);
    const rollbackNow = rollbackEffect(s.phase);
    if (!s.outcome && rollbackNow && s.rollbackReason === undefined) lines.push(`a rollback now: ${rollbackNow}`);
    // Writes are never frozen for a phase any more: they wait only inside the cut-over's fence.
    if (!s.outcome) lines.push(s.phase === 'cutting_over' ? 'writes open, but held inside the fence while the switch runs' : 'writes open');
    if (s.bytesTotal) lines.push(`snapshot ${(s.bytesTotal / 1048576).toFixed(1)} MiB${s.copyBytesPerSecond ? `, copied at ${(s.copyBytesPerSecond / 1048576).toFixed(1)} MiB/s` : ''}`);
    if (s.phase === 'catching_up' && s.lag !== undefined) lines.push(`dual-write ${s.lag} events behind`);
    if (s.phase === 'catching_up' && s.logShipping) lines.push(`log shipping: ${s.logShipping.lastShipped} shipped, ${s.logShipping.lastRestored ?? 'nothing'} restored, ${s.logShipping.filesBehind} file(s) to restore`);
    if (s.cutoverSteps) lines.push(`under the fence: tail-log backup ${s.cutoverSteps.tailBackupMs} ms, its restore ${s.cutoverSteps.restoreMs} ms, completion ${s.cutoverSteps.completeMs} ms`);
    if (s.warnings?.length) lines.push(`preflight warnings: ${s.warnings.join('; ')}`);
    if (s.tables.length) lines.push(`${s.tables.length} tables verified, ${s.tables.reduce((n, t) => n + t.mismatchedChunks, 0)} differing chunks`);
    if (s.cutoverPauseMs !== undefined) lines.push(`cut-over pause ${s.cutoverPauseMs} ms, ${s.heldEvents ?? 0} events held`);
    if (s.cutoverUnconfirmed) lines.push(`switched, but a gateway node did not confirm the flip (it reloads its route when refused): ${s.cutoverUnconfirmed}`);
    if (s.rollbackReason !== undefined) lines.push(`rollback: ${s.rollbackReason}`);
    else if (s.rollbackRefused && s.phase === 'rollback_window') lines.push(s.rollbackRefused);
    if (s.lastError) lines.push(`error: ${s.lastError}`);
    if (s.outcome) lines.push(s.outcome === 'completed' ? 'migrated: served from its target' : s.outcome === 'rolled_back' ? 'rolled back: served from its source' : 'failed');
    wf.setCurrentDetails(lines.join('\n\n'));
  }

  /** Waits for running update handlers; a cancelled workflow (rolled back) must still get here. */
  async handlersFinished(): Promise<void> {
    await wf.CancellationScope.nonCancellable(() => wf.condition(wf.allHandlersFinished));
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
      this.status.pausedBy = 'policy';
    }
    if (this.status.paused) {
      this.status.heldBefore = name;
      this.describe();
      await wf.condition(() => !this.status.paused);
      this.status.heldBefore = undefined;
    }
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
    this.status.phaseSince = new Date(now).toISOString();
    wf.upsertSearchAttributes([{ key: phaseSearchAttribute, value: phase }]);
    this.describe();
  }

  end(outcome: EndState): void {
    this.outcome = outcome;
    this.status.outcome = outcome;
    this.status.endedAt = new Date().toISOString();
    this.status.paused = false;
    wf.upsertSearchAttributes([{ key: outcomeSearchAttribute, value: outcome }]);
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

  /** Holds until the window ends by timer, or by `complete`. */
  async rollbackWindow(seconds: number): Promise<void> {
    if (seconds <= 0) return;
    this.status.rollbackWindowEndsAt = new Date(Date.now() + seconds * 1000).toISOString();
    this.describe();
    try {
      await wf.condition(() => this.completionRequested, seconds * 1000, { summary: `rollback window of ${this.status.tenantId}: closes by itself, or on complete` });
    } finally {
      this.status.rollbackWindowEndsAt = undefined;
    }
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
    if (this.status.rollbackReason !== undefined) throw new Error(`complete refused: tenant ${this.status.tenantId} is rolling back (${this.status.rollbackReason})`);
  }

  requestCompletion(): string {
    if (this.status.phase !== 'rollback_window' || this.status.rollbackReason !== undefined) {
      wf.log.warn('complete ignored: the tenant is not in its rollback window, or is rolling back', { phase: this.status.phase });
      return 'ignored';
    }
    this.completionRequested = true;
    return `rollback window of ${this.status.tenantId} ended; finalizing`;
  }

  /** Why a pause cannot be taken now, or undefined when it can. */
  private pauseRefusal(): string | undefined {
    const { phase, tenantId } = this.status;
    if (this.outcome || phase === 'rolling_back') return `pause refused: tenant ${tenantId} has ${phase === 'rolling_back' ? 'a rollback under way' : `already ended (${phase.replace(/_/g, ' ')})`}; nothing to pause`;
    if (this.status.paused) return `pause refused: tenant ${tenantId} is already paused${this.status.heldBefore ? ` and held before ${this.status.heldBefore}` : `; it holds before its next phase once the ${phase} step ends`}`;
    if (phase === 'cutting_over' || phase === 'rollback_window' || phase === 'finalizing')
      return `pause refused: tenant ${tenantId} is in ${phase}, past the last phase a pause can hold before; use \`airlift rollback\` or \`airlift complete\``;
    return undefined;
  }

  validatePause(): void {
    const refusal = this.pauseRefusal();
    if (refusal) throw new Error(refusal);
  }

  pause(via: 'signal' | 'update'): string {
    const refusal = this.pauseRefusal();
    if (refusal) {
      wf.log.warn('pause ignored', { via, refusal });
      return refusal;
    }
    this.status.paused = true;
    this.status.pausedBy = 'operator';
    this.describe();
    const { phase, tenantId } = this.status;
    return phase === 'awaiting_cutover'
      ? `tenant ${tenantId} paused: approved or not, it holds before cutting_over until \`airlift resume ${tenantId}\``
      : `tenant ${tenantId} will hold before its next phase; the ${phase} step runs on until it ends`;
  }

  private resumeRefusal(): string | undefined {
    const { tenantId, phase } = this.status;
    if (this.outcome) return `resume refused: tenant ${tenantId} has already ended (${phase.replace(/_/g, ' ')})`;
    if (!this.status.paused) return `resume refused: tenant ${tenantId} is not paused (phase ${phase})`;
    return undefined;
  }

  validateResume(): void {
    const refusal = this.resumeRefusal();
    if (refusal) throw new Error(refusal);
  }

  resume(via: 'signal' | 'update'): string {
    const refusal = this.resumeRefusal();
    if (refusal) {
      wf.log.warn('resume ignored', { via, refusal });
      return refusal;
    }
    const held = this.status.heldBefore;
    this.status.paused = false;
    this.status.pausedBy = undefined;
    this.describe();
    return held ? `tenant ${this.status.tenantId} resumed: entering ${held}` : `tenant ${this.status.tenantId} resumed: its pause was lifted before it was reached (phase ${this.status.phase})`;
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
    // Completion already answered "finalizing" to an operator: a rollback in the same instant must not contradict it.
    if (this.completionRequested)
      return `rollback refused: tenant ${tenantId} is finalizing: completion of its rollback window was already requested, past the point of no return; migrate it back as a new migration instead`;
    if (this.outcome || phase === 'rolling_back' || this.status.rollbackReason !== undefined)
      return `rollback refused: tenant ${tenantId} is already ${phase === 'rolled_back' ? 'rolled back' : phase === 'failed' ? 'failed and back on its source' : 'rolling back'}`;
    return undefined;
  }

  validateRollback(): void {
    const refusal = this.rollbackRefusal();
    if (refusal) throw new Error(refusal);
  }

  /**
   * In the rollback window the route back is checked online first (`routeBackRefusal`): one the
   * switch would refuse for the schema is refused now, with its reason, and the window goes on with
   * reverse replication running, instead of the rollback failing under the fence.
   */
  routeBackRefusal?: () => Promise<string | null>;

  async rollback(reason: string, via: 'signal' | 'update'): Promise<string> {
    let refusal = this.rollbackRefusal();
    // A check that cannot be made (the target unreachable) refuses nothing: the fenced switch checks the schema again.
    if (!refusal && this.status.phase === 'rollback_window' && this.routeBackRefusal && wf.patched('route-back-checked-online'))
      refusal = (await this.routeBackRefusal().catch(() => null)) ?? this.rollbackRefusal();
    if (refusal) {
      // A signal cannot be refused to its sender: the refusal goes to the log and to `status`.
      this.status.rollbackRefused = refusal;
      this.describe();
      wf.log.warn('rollback ignored', { via, phase: this.status.phase, reason, refusal });
      if (via === 'update') throw wf.ApplicationFailure.nonRetryable(refusal, 'RollbackRefused');
      return refusal;
    }
    this.status.rollbackReason = reason || 'operator request';
    this.status.paused = false;
    this.scope.cancel();
    this.describe();
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

/** What a rollback asked for now would do, in the words of the runbook (shown in the Temporal UI). */
function rollbackEffect(phase: TenantPhase): string | undefined {
  switch (phase) {
    case 'preflight':
      return 'nothing was changed yet; the migration just stops';
    case 'cutting_over':
      return 'taken once the switch has finished or been called off, then as below for its outcome';
    case 'rollback_window':
      return "writes held for a moment while the target's changes are drained to the source, then the tenant is routed back; nothing is lost";
    case 'finalizing':
    case 'completed':
      return 'refused: past the point of no return';
    case 'rolling_back':
    case 'rolled_back':
    case 'failed':
      return undefined;
    default:
      return 'replication stops, capture comes off the source, and the target database and blobs of this migration are dropped; the tenant stays on its source';
  }
}

/** The Temporal UI sends a signal's input as JSON: a string, `{ "reason": … }`, or nothing at all. */
function reasonFromSignal(input: unknown): string {
  if (typeof input === 'string') return input.trim() || 'operator request (signal)';
  const reason = (input as { reason?: unknown } | null | undefined)?.reason;
  if (typeof reason === 'string' && reason.trim()) return reason.trim();
  return input === undefined || input === null ? 'operator request (signal)' : JSON.stringify(input);
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
