// Activity-option presets, in one place. The failure types that are never retried come from
// protocol/errors.ts, where each error class says whether a retry can help. Long steps are bounded
// by time and by their heartbeats (progress), never by a count of attempts: a worker that dies
// under a long copy costs one heartbeat timeout, not one of a few tries.
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { AirliftActivities } from '../activities';
import type { MigrationPolicy } from './contract';
import { nonRetryableErrorTypes } from '../protocol/errors';

export function activityPresets(policy: MigrationPolicy) {
  return {
    /** Quick checks and mode changes: a gateway node that restarts is waited for, within minutes. */
    short: proxyActivities<AirliftActivities>({
      startToCloseTimeout: '2 minutes',
      heartbeatTimeout: '15 seconds',
      scheduleToCloseTimeout: '10 minutes',
      retry: { initialInterval: '500 milliseconds', maximumInterval: '10 seconds', nonRetryableErrorTypes },
    }),
    /** Snapshot, copy, restore, verify: long, heartbeating, resumable from their checkpoints. */
    transfer: proxyActivities<AirliftActivities>({
      startToCloseTimeout: `${policy.activityTimeoutMinutes} minutes`,
      scheduleToCloseTimeout: `${policy.activityTimeoutMinutes} minutes`,
      heartbeatTimeout: '20 seconds',
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: { initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes },
    }),
    /** The dual-write: runs for the whole catch-up or rollback window; a dead worker is noticed fast. */
    replication: proxyActivities<AirliftActivities>({
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
    cutover: proxyActivities<AirliftActivities>({
      startToCloseTimeout: '2 minutes',
      heartbeatTimeout: '10 seconds',
      retry: { initialInterval: '200 milliseconds', maximumInterval: '2 seconds', maximumAttempts: 3, nonRetryableErrorTypes },
    }),
    /** Compensations: retried hard, since they put a tenant back where it was. */
    undo: proxyActivities<AirliftActivities>({
      startToCloseTimeout: '5 minutes',
      heartbeatTimeout: '15 seconds',
      scheduleToCloseTimeout: '1 hour',
      retry: { initialInterval: '1 second', maximumInterval: '30 seconds' },
    }),
    /** Clean-ups whose failure leaves nothing unsafe (blobs, local files): a few tries, then noted. */
    cleanup: proxyActivities<AirliftActivities>({
      startToCloseTimeout: '5 minutes',
      heartbeatTimeout: '15 seconds',
      retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
    }),
    /** Past the point of no return: every step retries until it is done, and nothing is undone. */
    final: proxyActivities<AirliftActivities>({
      startToCloseTimeout: '5 minutes',
      heartbeatTimeout: '15 seconds',
      retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
    }),
  };
}
