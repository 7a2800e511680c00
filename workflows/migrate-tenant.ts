// One tenant's migration, one durable workflow. The body reads as the runbook in DESIGN.md.
import * as wf from '@temporalio/workflow';
import {
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
  const { tenantId } = input;
  const migrationId = wf.workflowInfo().runId.slice(0, 8);
  const run = new TenantRun(input, migrationId);
  const { short, transfer, undo } = activityPresets(input.policy);
  const compensations = new Compensations();

  wf.setHandler(statusQuery, () => run.status);
  wf.setHandler(pauseSignal, () => run.pause());
  wf.setHandler(resumeSignal, () => run.resume());
  wf.setHandler(rollbackSignal, (reason) => run.requestRollback(reason));
  wf.upsertSearchAttributes([
    { key: tenantSearchAttribute, value: tenantId },
    ...(input.waveId ? [{ key: waveSearchAttribute, value: input.waveId }] : []),
  ]);

  try {
    await run.scope.run(async () => {
      await run.phase('preflight', () => short.preflight(tenantId, migrationId));

      // Registered before the step: a copy cancelled half way leaves staged blocks to discard.
      compensations.add('discard artifact', () => undo.discardArtifact(tenantId, migrationId));
      const artifact = await run.phase('snapshotting', () => transfer.snapshotSource(tenantId, migrationId));
      run.status.bytesTotal = artifact.sizeBytes;
      run.status.artifactSha256 = artifact.sha256;

      const copy = await run.phase('copying', () => transfer.copyArtifact(tenantId, migrationId, artifact, input.policy));
      run.status.bytesDone = copy.bytes;

      // Likewise: a restore cut short may leave a partial target, which only this migration may drop.
      compensations.add('drop target', () => undo.dropTarget(tenantId, migrationId));
      await run.phase('restoring', () => transfer.restoreTarget(tenantId, migrationId, copy.blobName, input.policy));

      run.status.tables = await run.phase('verifying', () => transfer.verifyTables(tenantId, migrationId, input.policy.verifyChunkRows));
      assertIdentical(run.status.tables);

      compensations.add('route tenant back to source', () => undo.flipPrimary(tenantId, 'source'));
      await run.phase('cutting_over', () => short.flipPrimary(tenantId, 'target'));

      await short.cleanWorkDirectory(tenantId, migrationId);
    });
    run.end('completed');
  } catch (err) {
    const rolledBack = run.status.rollbackReason !== undefined && wf.isCancellation(err);
    if (!rolledBack) run.status.lastError = reasonOf(err);
    run.enter('rolling_back');
    await wf.CancellationScope.nonCancellable(() => compensations.runAll(run.status));
    run.end(rolledBack ? 'rolled_back' : 'failed');
    if (!rolledBack) {
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
  private readonly breakpoints: Set<Phase>;
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

/** Undo steps, run newest first; one that fails is recorded and the rest still run. */
class Compensations {
  private readonly steps: { name: string; undo: () => Promise<unknown> }[] = [];

  add(name: string, undo: () => Promise<unknown>): void {
    this.steps.unshift({ name, undo });
  }

  async runAll(status: TenantStatus): Promise<void> {
    for (const step of this.steps) {
      try {
        await step.undo();
      } catch (err) {
        wf.log.error('compensation failed; continuing with the rest', { step: step.name, error: reasonOf(err) });
        status.lastError = `${status.lastError ? `${status.lastError}; ` : ''}undo "${step.name}" failed: ${reasonOf(err)}`;
      }
    }
  }
}

function assertIdentical(tables: TableVerification[]): void {
  const differing = tables.filter((t) => t.mismatchedChunks > 0);
  if (!differing.length) return;
  const named = differing
    .map((t) => `${t.table}: ${t.differences.slice(0, 5).map((d) => `${d.key} ${d.kind.replace(/_/g, ' ')}`).join(', ')}${t.differences.length > 5 ? ', …' : ''}`)
    .join('; ');
  throw wf.ApplicationFailure.nonRetryable(`verification found differences: ${named}`, 'VerificationMismatch');
}
