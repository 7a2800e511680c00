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
  'ArtifactChecksumError',
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
    /** Compensations: retried hard, since they put a tenant back where it was. */
    undo: proxyActivities<AirliftActivities>({
      startToCloseTimeout: '5 minutes',
      retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
    }),
  };
}
