// Every domain error of airlift, in one module. Each class says whether a retry can help: transient
// faults (a connection that drops, a node that blinks, a fenced write) are retried with backoff;
// configuration, permission and integrity faults are not, since the same call would fail the same
// way. The activity presets build their `nonRetryableErrorTypes` from this module alone.
// Plain TypeScript with no imports: workflows, activities, engines, the gateway and the CLI share it.

interface ErrorClass {
  readonly type: string;
  readonly retryable: boolean;
}

const registry: ErrorClass[] = [];

/** A base class per error: the class name travels to Temporal as the failure type. */
function defineError(type: string, retryable: boolean) {
  const errorClass = class extends Error {
    static readonly type = type;
    static readonly retryable = retryable;
    override name = type;
    /** Whether a retry of the same call can succeed. */
    readonly retryable = retryable;
  };
  registry.push(errorClass);
  return errorClass;
}

// Configuration: the fleet file, the environment, names.
export class FleetConfigError extends defineError('FleetConfigError', false) {}
export class StorageConfigError extends defineError('StorageConfigError', false) {}
export class TemporalConfigError extends defineError('TemporalConfigError', false) {}
export class MissingSecretError extends defineError('MissingSecretError', false) {}
export class InvalidIdentifierError extends defineError('InvalidIdentifierError', false) {}

// The tenant's databases.
/** The database (or its file) is not there: a retry finds it missing too. */
export class DatabaseMissingError extends defineError('DatabaseMissingError', false) {}
/** A connection failed or dropped, a timeout, throttling: transient. */
export class ConnectionError extends defineError('ConnectionError', true) {}
/** The login lacks a permission: an operator must grant it. */
export class PermissionError extends defineError('PermissionError', false) {}
export class PreflightError extends defineError('PreflightError', false) {}
export class TargetExistsError extends defineError('TargetExistsError', false) {}
/** The target takes writes (it is the tenant's primary): it is neither dropped nor restored over. */
export class TargetInUseError extends defineError('TargetInUseError', false) {}
/** The tenant is not where this step expects it (a workflow reset past a cut-over, say): it stops. */
export class TenantMovedError extends defineError('TenantMovedError', false) {}
export class IntegrityCheckError extends defineError('IntegrityCheckError', false) {}

// Artifacts and blobs.
/** The artifact's bytes are not what was snapshotted: corruption, never retried blindly. */
export class ArtifactChecksumError extends defineError('ArtifactChecksumError', false) {}
/** A blob without airlift's sha256 metadata was not uploaded by airlift: a retry cannot fix it. */
export class BlobNotOursError extends defineError('BlobNotOursError', false) {}
/** The artifact's blob is gone and this worker holds no snapshot to send again: a retry cannot bring it back. */
export class ArtifactMissingError extends defineError('ArtifactMissingError', false) {}
/** A download whose bytes did not match: the partial file is discarded and a retry fetches it again. */
export class BlobChecksumError extends defineError('BlobChecksumError', true) {}
/** The Managed Instance reports files it cannot restore, or the restore failed for good. */
export class ManagedInstanceRestoreError extends defineError('ManagedInstanceRestoreError', false) {}

// The protocol.
/** Events would be held longer than the budget: the cut-over is called off and tried again later. */
export class PauseBudgetExceededError extends defineError('PauseBudgetExceededError', false) {}
export class VerificationMismatchError extends defineError('VerificationMismatchError', false) {}
/** A table the older server of a pair cannot hash (a value too long for HASHBYTES before 2016). */
export class VerificationUnsupportedError extends defineError('VerificationUnsupportedError', false) {}
/** A gateway node did not answer or refused an admin call: it may be restarting. */
export class GatewayAdminError extends defineError('GatewayAdminError', true) {}
/** A gateway node refused an admin call (4xx: token refused, tenant not in its fleet): fix, then retry. */
export class GatewayAdminRefusedError extends defineError('GatewayAdminRefusedError', false) {}
/** A switch attempt found that a later one (or a call-off) took over: it changes nothing more. */
export class SwitchSupersededError extends defineError('SwitchSupersededError', true) {}
/** A mode change from an earlier migration step arrived after a later one: it is not applied. */
export class StaleModeChangeError extends defineError('StaleModeChangeError', false) {}
/** A write reached a side whose fence is raised or that is not primary: reload the route, retry. */
export class FencedWriteError extends defineError('FencedWriteError', true) {}
/** Two different changes claim one key in the other side: replication stops instead of dropping one. */
export class ReplicationConflictError extends defineError('ReplicationConflictError', false) {}
/**
 * Log records of the source were backed up where airlift does not ship from (someone else's log
 * backup), or a shipped backup does not follow the one before: LRS cannot restore past the gap.
 */
export class LogChainBrokenError extends defineError('LogChainBrokenError', false) {}

/** The failure types a retry cannot fix, for the activity presets. */
export const nonRetryableErrorTypes: string[] = registry.filter((c) => !c.retryable).map((c) => c.type);

/** Whether an error is one of these classes: its message was written for people, whole and without a stack. */
export function isDomainError(err: unknown): boolean {
  return registry.some((c) => err instanceof (c as unknown as new () => Error));
}

/** Whether an error (by class or by failure type) is one a retry can fix; unknown errors are. */
export function isRetryable(err: unknown): boolean {
  const type = (err as { type?: string; name?: string } | undefined)?.type ?? (err as { name?: string } | undefined)?.name;
  return !nonRetryableErrorTypes.includes(type ?? '');
}

/** Removes keys, SAS signatures and connection-string secrets from any text. */
export function redactSecrets(text: string): string {
  return text
    .replace(/(AccountKey|SharedAccessSignature|SharedAccessKey)=[^;\s"']+/gi, '$1=[redacted]')
    .replace(/([?&]sig=)[^&\s"']+/gi, '$1[redacted]')
    .replace(/(Password|Pwd)=[^;\s"']+/gi, '$1=[redacted]');
}
