// Activity-option presets, in one place. Each error type listed is one whose retry would fail the same way.
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { AirliftActivities } from '../activities';
import type { MigrationPolicy } from './contract';

const NON_RETRYABLE = [
  'FleetConfigError',
  'StorageConfigError',
  'PreflightError',
  'TargetExistsError',
  'IntegrityCheckError',
  'SourceUnavailableError',
  'InvalidIdentifierError',
  'MissingSecretError',
  'ArtifactChecksumError',
  'PauseBudgetExceededError',
  'VerificationMismatchError',
];

export function activityPresets(policy: MigrationPolicy) {
  return {
    /** Quick checks and catalog flips. */
    short: proxyActivities<AirliftActivities>({
      startToCloseTimeout: '2 minutes',
      retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
    }),
    /** Snapshot, copy, restore, verify: long, heartbeating, resumable from their checkpoints. */
    transfer: proxyActivities<AirliftActivities>({
      startToCloseTimeout: `${policy.activityTimeoutMinutes} minutes`,
      heartbeatTimeout: '2 minutes',
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
    }),
    /** The dual-write: runs for the whole catch-up or rollback window; a dead worker is noticed fast. */
    replication: proxyActivities<AirliftActivities>({
      startToCloseTimeout: '30 days',
      heartbeatTimeout: '10 seconds',
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
      retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 1000, nonRetryableErrorTypes: NON_RETRYABLE },
    }),
    /** The fenced switch: quick, and never retried past its pause budget. */
    cutover: proxyActivities<AirliftActivities>({
      startToCloseTimeout: '2 minutes',
      retry: { initialInterval: '200 milliseconds', maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE },
    }),
    /** Compensations: retried hard, since they put a tenant back where it was. */
    undo: proxyActivities<AirliftActivities>({
      startToCloseTimeout: '5 minutes',
      retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
    }),
  };
}
