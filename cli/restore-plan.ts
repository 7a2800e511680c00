// What `airlift plan` says about each tenant's restore, as a DBA reads it: the folder the target
// restores from, how the restoring server reads it and until when (one choice per container, shared
// by every restore into it), the write freeze, and how many restores an instance runs at once.
import type { LoadedFleet, Tenant } from '../config/fleet';
import { artifactFolder } from '../azure/artifact-folder';
import { LRS_MAX_CONCURRENT_RESTORES } from '../azure/managed-instance';
import { LRS_MAX_DAYS, sasWindow } from '../azure/sas';
import { restoreKindOf } from '../engines';

export const MIGRATION_PLACEHOLDER = '<migration-id>';

/** How restoring servers read one container: the same for every restore into it. */
export interface ContainerAccessPlan {
  container: string;
  kind: 'managed-identity' | 'sas' | 'worker-download';
  detail: string;
  /** For a SAS: the expiry of the one token a restore starting now would get. */
  validUntil?: string;
  /** The tenants whose restores present this credential. */
  sharedBy: string[];
}

export interface TenantRestorePlan {
  /** The artifact's own flat folder: LRS is started with this full URI. */
  folderUri: string;
  lastBackupName: string;
  /** How the restore authenticates: the container's one credential choice. */
  authentication: Omit<ContainerAccessPlan, 'sharedBy'>;
  writeFreeze: { from: 'cutting_over'; until: 'cutting_over'; estimate: string; trackingPauseBudgetMs: number };
  /** Restores at once on the target instance, and the fleet's own concurrency beside it. */
  concurrency: { target: string; perInstanceLimit?: number; tenantsOnInstance: number; fleetConcurrency: number; note: string };
}

/** The container's one credential choice for restores, and whom it serves. */
export function containerAccessPlan(fleet: LoadedFleet, containerUrl: string, now = Date.now()): ContainerAccessPlan {
  const kinds = new Set(fleet.tenants.map((t) => restoreKindOf(fleet.targets[t.target])));
  const readers = fleet.tenants.filter((t) => restoreKindOf(fleet.targets[t.target]) !== 'file').map((t) => t.id);
  const timeout = fleet.policy.activityTimeoutMinutes;
  if (!readers.length)
    return { container: containerUrl, kind: 'worker-download', detail: 'no server reads the container: the worker downloads each artifact with the storage credential of the fleet file', sharedBy: [] };
  // A SQL Server on a VM reads through a SAS in a CREDENTIAL; a Managed Instance through the fleet's choice.
  const sas = fleet.storage.restoreAccess === 'sas' || kinds.has('restore-from-url');
  if (!sas)
    return {
      container: containerUrl,
      kind: 'managed-identity',
      detail: "the Managed Instance's own managed identity (storageContainerIdentity: ManagedIdentity); it needs Storage Blob Data Reader on the storage account. No token, no expiry",
      sharedBy: readers,
    };
  const window = sasWindow(timeout, now);
  const delegation = Boolean(fleet.storage.accountUrl);
  return {
    container: containerUrl,
    kind: 'sas',
    detail:
      `one ${delegation ? 'user delegation' : 'account-key'} SAS for the whole container, Read and List only (sp=rl, sr=c), made once per window of ${timeout} min (the restore timeout; LRS allows at most ${LRS_MAX_DAYS} days) and handed to every restore into it` +
      (delegation ? '; a user delegation SAS lives at most 7 days: for longer restores use restoreAccess: managed-identity' : ''),
    validUntil: (delegation ? new Date(Math.min(window.expiresOn.getTime(), now + 7 * 24 * 3600_000)) : window.expiresOn).toISOString(),
    sharedBy: readers,
  };
}

export function tenantRestorePlan(fleet: LoadedFleet, tenant: Tenant, containerUrl: string, artifactFile: string, access: ContainerAccessPlan): TenantRestorePlan {
  const target = fleet.targets[tenant.target];
  const { policy } = fleet;
  const onInstance = fleet.tenants.filter((t) => t.target === tenant.target).length;
  const kind = restoreKindOf(target);
  const limit = kind === 'managed-instance' ? LRS_MAX_CONCURRENT_RESTORES : undefined;
  const copy = policy.maxUploadMiBps ? `${Math.ceil(1024 / policy.maxUploadMiBps)} s per GiB copied (at ${policy.maxUploadMiBps} MiB/s)` : 'the copy (no bandwidth cap set)';
  const authentication = { container: access.container, kind: access.kind, detail: access.detail, ...(access.validUntil ? { validUntil: access.validUntil } : {}) };
  return {
    folderUri: `${containerUrl}/${artifactFolder(tenant.id, MIGRATION_PLACEHOLDER)}`,
    lastBackupName: artifactFile,
    authentication: kind === 'file' ? { container: containerUrl, kind: 'worker-download', detail: 'the worker downloads the artifact with its own storage credential' } : authentication,
    writeFreeze: {
      from: 'cutting_over',
      until: 'cutting_over',
      estimate: `writes wait only inside the cut-over's fence, at most ${policy.cutoverPauseBudgetMs} ms (the pause budget; past it the cut-over is called off and tried again); the tenant writes through the snapshot, ${copy}, the restore, verification and the rollback window`,
      trackingPauseBudgetMs: policy.cutoverPauseBudgetMs,
    },
    concurrency: {
      target: tenant.target,
      ...(limit ? { perInstanceLimit: limit } : {}),
      tenantsOnInstance: onInstance,
      fleetConcurrency: policy.concurrency,
      note: limit
        ? policy.concurrency > limit
          ? `the wave may start ${policy.concurrency} tenants at once but the Log Replay Service runs at most ${limit} restores per instance: restores beyond it wait for a free one`
          : `at most ${limit} LRS restores per instance; a restore waits for a free one (other waves count too)`
        : 'no per-instance restore limit',
    },
  };
}
