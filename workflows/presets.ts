// Activity-option presets, in one place. The failure types that are never retried come from
// protocol/errors.ts, where each error class says whether a retry can help. Long steps are bounded
// by time and by their heartbeats (progress), never by a count of attempts: a worker that dies
// under a long copy costs one heartbeat timeout, not one of a few tries.
import { ActivityCancellationType, proxyActivities, type ActivityInterfaceFor, type ActivityOptions } from '@temporalio/workflow';
import type { AirliftActivities } from '../activities';
import { LRS_CUTOVER_PAUSE_BUDGET_MS, type MigrationPolicy } from './contract';
import { nonRetryableErrorTypes } from '../protocol/errors';

/**
 * What each activity does, in the words of the runbook: the summary the Temporal UI shows for it in
 * the history, so the history reads as phases and not as function names.
 */
const SUMMARIES: { [K in keyof AirliftActivities]: (...args: Parameters<AirliftActivities[K]>) => string } = {
  preflight: () => 'preflight: source, target, catalog and container checked',
  startJournaling: () => 'journaling: change capture installed on every table',
  stopJournaling: () => 'change capture off',
  snapshotSource: () => 'snapshotting: consistent full snapshot of the source',
  copyArtifact: () => 'copying: snapshot uploaded to blob storage',
  restoreTarget: () => 'restoring: snapshot restored on the target',
  dualWrite: (_tenant, _migration, direction) => (direction === 'forward' ? 'dual-write source to target (until the cut-over)' : 'dual-write target back to source (rollback window)'),
  replicationLag: () => 'catching up: how far the dual-write is behind',
  shipLogs: () => 'log shipping: a log backup taken and shipped to the Managed Instance, again and again (catching up)',
  logShippingLag: () => "catching up: how far the Managed Instance's restore is behind the log backups shipped",
  compareAfterFlip: () => 'rollback window: rows changed before the cut-over compared with the target (log shipping: not under the fence)',
  rebaselineVerification: () => 'cutting over: rows changed since verification compared online first',
  verifyTables: () => 'verifying: chunk digests of every table compared',
  switchPrimary: (_tenant, _migration, to) => (to === 'target' ? 'cutting over: fence, drain, compare changed rows, flip to target' : 'rollback: route the tenant back to its source'),
  endSwitchAttempt: () => 'cutting over: the attempt ended (called off, or finished if it flipped)',
  routeBackRefusal: () => 'rollback: is the schema still one a route back can carry (checked online)',
  dropTarget: () => "rollback: drop this migration's target database",
  discardArtifact: () => "rollback: delete this migration's blobs",
  cleanWorkDirectory: () => 'finalizing: work folder cleaned',
};

/** Activities of one preset, each scheduled with its summary. */
function withSummaries(options: ActivityOptions): ActivityInterfaceFor<AirliftActivities> {
  const proxy = proxyActivities<AirliftActivities>(options);
  return new Proxy(proxy, {
    get: (target, name: keyof AirliftActivities) => {
      const summary = SUMMARIES[name] as ((...args: unknown[]) => string) | undefined;
      const activity = target[name];
      return summary ? (...args: unknown[]) => activity.executeWithOptions({ ...options, summary: summary(...args) }, args as never) : activity;
    },
  });
}

function cutoverOptions(startToCloseTimeout: ActivityOptions['startToCloseTimeout']): ActivityOptions {
  return {
    startToCloseTimeout,
    heartbeatTimeout: '10 seconds',
    retry: { initialInterval: '200 milliseconds', maximumInterval: '2 seconds', maximumAttempts: 3, nonRetryableErrorTypes },
  };
}

export function activityPresets(policy: MigrationPolicy) {
  return {
    /** Quick checks and mode changes: a gateway node that restarts is waited for, within minutes. */
    short: withSummaries({
      startToCloseTimeout: '2 minutes',
      heartbeatTimeout: '15 seconds',
      scheduleToCloseTimeout: '10 minutes',
      retry: { initialInterval: '500 milliseconds', maximumInterval: '10 seconds', nonRetryableErrorTypes },
    }),
    /** A check an operator waits on (a rollback's route back, read online): seconds, or no answer. */
    check: withSummaries({
      startToCloseTimeout: '20 seconds',
      scheduleToCloseTimeout: '30 seconds',
      retry: { initialInterval: '500 milliseconds', maximumInterval: '2 seconds', maximumAttempts: 3, nonRetryableErrorTypes },
    }),
    /** Snapshot, copy, restore, verify: long, heartbeating, resumable from their checkpoints. */
    transfer: withSummaries({
      startToCloseTimeout: `${policy.activityTimeoutMinutes} minutes`,
      scheduleToCloseTimeout: `${policy.activityTimeoutMinutes} minutes`,
      heartbeatTimeout: '20 seconds',
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: { initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes },
    }),
    /** The dual-write: runs for the whole catch-up or rollback window; a dead worker is noticed fast. */
    replication: withSummaries({
      startToCloseTimeout: '30 days',
      heartbeatTimeout: '10 seconds',
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: { initialInterval: '1 second', maximumInterval: '10 seconds', nonRetryableErrorTypes },
    }),
    /**
     * The fenced switch: quick, heartbeating (a dead worker is noticed in seconds), retried a few
     * times at once; the workflow calls it from a non-cancellable scope and tries a called-off
     * cut-over again later.
     */
    cutover: withSummaries(cutoverOptions('2 minutes')),
    /**
     * The same for a Managed Instance under log shipping: the fence also holds the tail-log backup,
     * its restore and the completion, so an attempt must outlive its pause budget; otherwise Temporal
     * starts the next attempt while this one, still running, completes the restore under it.
     */
    lrsCutover: withSummaries(cutoverOptions((policy.lrsCutoverPauseBudgetMs ?? LRS_CUTOVER_PAUSE_BUDGET_MS) + 10 * 60_000)),
    /**
     * Compensations: retried hard, since they put a tenant back where it was; a refusal (the schema
     * changed, held by another migration) is final at once, with its reason, never retried for an hour.
     */
    undo: withSummaries({
      startToCloseTimeout: '5 minutes',
      heartbeatTimeout: '15 seconds',
      scheduleToCloseTimeout: '1 hour',
      retry: { initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes },
    }),
    /** Clean-ups whose failure leaves nothing unsafe (blobs, local files): a few tries, then noted. */
    cleanup: withSummaries({
      startToCloseTimeout: '5 minutes',
      heartbeatTimeout: '15 seconds',
      retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5, nonRetryableErrorTypes },
    }),
    /** Past the point of no return: every step retries until it is done, and nothing is undone; a refusal is final. */
    final: withSummaries({
      startToCloseTimeout: '5 minutes',
      heartbeatTimeout: '15 seconds',
      retry: { initialInterval: '1 second', maximumInterval: '1 minute', nonRetryableErrorTypes },
    }),
  };
}
