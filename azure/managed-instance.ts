// The restorer for Azure SQL Managed Instance: the Log Replay Service through ARM (@azure/arm-sql). A
// managed database is created with createMode RestoreExternalBackup from the artifact's own folder,
// its progress read from restoreDetails, completed (when not auto-completing) once the last backup is
// restored, and deleted only when its tag names this migration. A retried or resumed restore finds its
// database already restoring and goes on watching it instead of creating it again.
import { ConnectionError, ManagedInstanceRestoreError, TargetExistsError } from '../protocol/errors';
import { SqlManagementClient, type ManagedDatabase } from '@azure/arm-sql';
import type { TokenCredential } from '@azure/core-auth';
import type { BlobArtifact, ContinuousRestore, ContinuousRestoreState, PlannedArtifact, PlanStep, Progress, RestoreOptions, RestoreTarget } from '../engines/engine';
import { redactSecrets } from './blob-store';

export interface ManagedInstanceRef {
  subscriptionId: string;
  resourceGroup: string;
  managedInstance: string;
  collation: string;
  autoCompleteRestore: boolean;
  /** Azure Resource Manager, for a sovereign cloud; Azure public when absent. */
  resourceManagerUrl?: string;
  /** How often restoreDetails is read. */
  restorePollSeconds?: number;
}

export interface RestoreProgress {
  status: string;
  percent: number;
  filesDetected: number;
  filesQueued: number;
  filesRestoring: number;
  filesRestored: number;
  filesUnrestorable: number;
  unrestorableFiles: string[];
  lastRestoredFileName?: string;
  blockReason?: string;
}

export { ManagedInstanceRestoreError };

/** The tag that records which migration created a managed database. */
export const MIGRATION_TAG = 'airlift-migration';

/** The api-version @azure/arm-sql sends for managed databases (pinned by the contract tests). */
export const MANAGED_DATABASES_API_VERSION = '2022-05-01-preview';

/** "LRS can support up to 100 simultaneous restore processes per single managed instance" (Overview of Log Replay Service, Limitations). */
export const LRS_MAX_CONCURRENT_RESTORES = 100;

/** How the instance reads the artifact folder: its own managed identity, or the container's one SAS. */
export type RestoreAccess = { kind: 'managed-identity' } | { kind: 'sas'; token: string; expiresOn: Date };

/**
 * The body of the create request: the folder's full URI, and either the SAS or the managed identity,
 * never both. `lastBackupName` only with auto-complete, which "requires the start command to specify
 * the file name of the last backup file"; in continuous mode the last backup is named when the
 * restore is completed, once log backups have stopped coming.
 */
export function managedDatabaseCreateBody(mi: ManagedInstanceRef, location: string, folderUri: string, lastBackupName: string, migrationId: string, access: { kind: 'managed-identity' } | { kind: 'sas'; token: string }): ManagedDatabase {
  return {
    location,
    tags: { [MIGRATION_TAG]: migrationId },
    createMode: 'RestoreExternalBackup',
    storageContainerUri: folderUri,
    ...(access.kind === 'sas' ? { storageContainerSasToken: access.token } : { storageContainerIdentity: 'ManagedIdentity' }),
    collation: mi.collation,
    autoCompleteRestore: mi.autoCompleteRestore,
    ...(mi.autoCompleteRestore ? { lastBackupName } : {}),
  };
}

/** The ARM path of a managed instance, or of one of its databases. */
export const managedInstancePath = (mi: ManagedInstanceRef): string =>
  `/subscriptions/${mi.subscriptionId}/resourceGroups/${mi.resourceGroup}/providers/Microsoft.Sql/managedInstances/${mi.managedInstance}`;
export const managedDatabasePath = (mi: ManagedInstanceRef, database: string): string => `${managedInstancePath(mi)}/databases/${database}`;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done);
  });

export class ManagedInstanceRestore implements RestoreTarget, ContinuousRestore {
  readonly restoresFrom = 'blob' as const;

  /** Continuous mode (autoCompleteRestore false): LRS keeps restoring the log backups put in the folder until completed. */
  get continuous(): ContinuousRestore | undefined {
    return this.mi.autoCompleteRestore ? undefined : this;
  }

  constructor(
    private readonly client: SqlManagementClient,
    readonly mi: ManagedInstanceRef,
    private readonly pollMs = (mi.restorePollSeconds ?? 15) * 1000,
  ) {}

  static connect(mi: ManagedInstanceRef, credential: TokenCredential, options: ConstructorParameters<typeof SqlManagementClient>[2] = {}): ManagedInstanceRestore {
    return new ManagedInstanceRestore(new SqlManagementClient(credential, mi.subscriptionId, { ...(mi.resourceManagerUrl ? { endpoint: mi.resourceManagerUrl } : {}), ...options }), mi);
  }

  private get where(): string {
    return `Managed Instance ${this.mi.managedInstance}`;
  }

  /** An ARM failure as a domain error: throttling, a server error or a dropped connection is retried; the rest is not. Secrets are cut out. */
  private classify(err: unknown, doing: string): Error {
    if (err instanceof ManagedInstanceRestoreError || err instanceof TargetExistsError || err instanceof ConnectionError) return err;
    const e = err as { statusCode?: number; code?: string; message?: string };
    const said = redactSecrets(String(e.message ?? err)).split('\n')[0];
    const network = ['REQUEST_SEND_ERROR', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN'].includes(e.code ?? '');
    const status = e.statusCode ?? 0;
    const transient = network || status === 408 || status === 429 || status >= 500 || e.code === 'TooManyConcurrentRestores';
    return transient ? new ConnectionError(`${this.where}: ${doing}: ${said}; retried`) : new ManagedInstanceRestoreError(`${this.where}: ${doing}: ${said}`);
  }

  private async database(name: string): Promise<ManagedDatabase | undefined> {
    return this.client.managedDatabases.get(this.mi.resourceGroup, this.mi.managedInstance, name).catch((err: { statusCode?: number }) => {
      if (err.statusCode === 404) return undefined;
      throw this.classify(err, `reading database ${name}`);
    });
  }

  async probe(database: string): Promise<{ exists: boolean; restoredBy?: string; status?: string }> {
    const found = await this.database(database);
    return found ? { exists: true, restoredBy: found.tags?.[MIGRATION_TAG], status: found.status } : { exists: false };
  }

  async progress(database: string): Promise<RestoreProgress> {
    const d = await this.client.managedDatabaseRestoreDetails.get(this.mi.resourceGroup, this.mi.managedInstance, database, 'Default');
    return {
      status: d.status ?? 'Unknown',
      percent: d.percentCompleted ?? 0,
      filesDetected: d.numberOfFilesDetected ?? 0,
      filesQueued: d.numberOfFilesQueued ?? 0,
      filesRestoring: d.numberOfFilesRestoring ?? 0,
      filesRestored: d.numberOfFilesRestored ?? 0,
      filesUnrestorable: d.numberOfFilesUnrestorable ?? 0,
      unrestorableFiles: (d.unrestorableFiles ?? []).map((f) => f.name ?? '?'),
      lastRestoredFileName: d.lastRestoredFileName || undefined,
      blockReason: d.blockReason || undefined,
    };
  }

  /** Databases of the instance that are being restored now, each one an LRS restore process. */
  async restoringCount(): Promise<number> {
    let n = 0;
    for await (const db of this.client.managedDatabases.listByInstance(this.mi.resourceGroup, this.mi.managedInstance)) if (db.status === 'Restoring') n++;
    return n;
  }

  /**
   * What would stop a restore of `sizeBytes` into this instance: its storage. LRS's limit of 100
   * restores per instance does not stop one: the restore waits for a free one.
   */
  async prerequisites(database: string, sizeBytes?: number): Promise<string[]> {
    const problems: string[] = [];
    try {
      const instance = await this.client.managedInstances.get(this.mi.resourceGroup, this.mi.managedInstance);
      const storageBytes = (instance.storageSizeInGB ?? 0) * 1024 ** 3;
      if (sizeBytes !== undefined && storageBytes > 0 && sizeBytes > storageBytes)
        problems.push(`${this.where}: database ${database} (${gib(sizeBytes)}) is larger than the instance's storage (${gib(storageBytes)}); scale the instance's storage up first`);
    } catch (err) {
      problems.push(this.classify(err, 'reading the instance').message);
    }
    return problems;
  }

  /**
   * Restores `database` from the artifact's folder, or resumes watching a restore this migration
   * started before (a retry, a worker that died): create is sent only when the database is not there.
   */
  async restore(database: string, artifact: BlobArtifact, migrationId: string, onProgress: Progress = () => {}, signal?: AbortSignal, options: RestoreOptions = {}): Promise<void> {
    try {
      const existing = await this.database(database);
      if (existing && existing.tags?.[MIGRATION_TAG] !== migrationId)
        throw new TargetExistsError(`${this.where}: database ${database} already exists${existing.tags?.[MIGRATION_TAG] ? ` (restored by migration ${existing.tags[MIGRATION_TAG]})` : ''}; airlift will not restore over it`);
      if (existing) onProgress(0, { status: existing.status ?? 'Unknown', resumed: true });
      else await this.start(database, artifact, migrationId, onProgress, signal);
      if (options.keepRestoring && this.continuous) await this.untilFullBackupRestored(database, onProgress, signal);
      else await this.untilRestored(database, artifact.lastBackupName, onProgress, signal);
    } catch (err) {
      // Cancelled (a rollback): the cancellation itself goes back, so Temporal sees a cancelled attempt.
      if (signal?.aborted) throw err;
      throw this.classify(err, `restore of ${database}`);
    }
  }

  private async start(database: string, artifact: BlobArtifact, migrationId: string, onProgress: Progress, signal?: AbortSignal): Promise<void> {
    // The Log Replay Service runs at most 100 restores per instance: wait for a free one.
    for (;;) {
      const restoring = await this.restoringCount();
      if (restoring < LRS_MAX_CONCURRENT_RESTORES) break;
      onProgress(0, { status: 'WaitingForRestoreSlot', restoring });
      await sleep(this.pollMs, signal);
      signal?.throwIfAborted();
    }
    const instance = await this.client.managedInstances.get(this.mi.resourceGroup, this.mi.managedInstance);
    const access = await artifact.access();
    const body = managedDatabaseCreateBody(this.mi, instance.location, artifact.folderUrl, artifact.lastBackupName, migrationId, access);
    const poller = await this.client.managedDatabases.beginCreateOrUpdate(this.mi.resourceGroup, this.mi.managedInstance, database, body, { updateIntervalInMs: this.pollMs, abortSignal: signal });
    await poller.pollUntilDone({ abortSignal: signal });
  }

  /**
   * Watches restoreDetails until the database is online. Without auto-complete, completeRestore is
   * sent only once the last backup has been restored: "Ensure that the last backup file has been
   * restored … Then, initiate manual cutover" (Overview of Log Replay Service, Autocomplete vs. continuous mode).
   */
  private async untilRestored(database: string, lastBackupName: string, onProgress: Progress, signal?: AbortSignal): Promise<void> {
    if (!this.mi.autoCompleteRestore) return this.completeOnceRestored(database, lastBackupName, onProgress, signal);
    for (;;) {
      signal?.throwIfAborted();
      if ((await this.watch(database, onProgress)).online) return;
      await sleep(this.pollMs, signal);
    }
  }

  /**
   * Without auto-complete: completeRestore with `lastBackupName` once it is the last file restored
   * and nothing is queued ("Ensure that the last backup file has been restored … Then, initiate
   * manual cutover", Overview of Log Replay Service, Autocomplete vs. continuous mode), then until the
   * database is online. A retry after the completion finds it online and stops.
   */
  private async completeOnceRestored(database: string, lastBackupName: string, onProgress: Progress, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const p = await this.watch(database, onProgress);
      if (p.online) return;
      if (p.lastRestoredFileName === lastBackupName && p.filesQueued === 0 && p.filesRestoring === 0) {
        const poller = await this.client.managedDatabases.beginCompleteRestore(this.mi.resourceGroup, this.mi.managedInstance, database, { lastBackupName }, { updateIntervalInMs: this.pollMs, abortSignal: signal });
        await poller.pollUntilDone({ abortSignal: signal });
        continue;
      }
      await sleep(this.pollMs, signal);
    }
  }


  /** Continuous mode: watches restoreDetails until the full backup (and maybe log backups after it) is restored; the database stays restoring. */
  private async untilFullBackupRestored(database: string, onProgress: Progress, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const p = await this.watch(database, onProgress);
      if (p.online || p.filesRestored > 0) return;
      await sleep(this.pollMs, signal);
    }
  }

  /** One look at the restore: a database gone or a failed restore is an error that names why. */
  private async watch(database: string, onProgress: Progress = () => {}): Promise<ContinuousRestoreState & { unrestorableFiles: string[] }> {
    const db = await this.database(database);
    if (!db) throw new ManagedInstanceRestoreError(`${this.where}: database ${database} is gone while restoring (the LRS job was stopped, or ran past its 30 days)`);
    const p = await this.progress(database);
    onProgress(p.percent / 100, { ...p });
    if (p.filesUnrestorable > 0 || p.status === 'Failed')
      throw new ManagedInstanceRestoreError(redactSecrets(`${this.where} cannot restore ${database}: ${p.status}${p.blockReason ? ` (${p.blockReason})` : ''}; unrestorable files: ${p.unrestorableFiles.join(', ') || 'none listed'}`));
    return { ...p, online: db.status === 'Online' };
  }

  async state(database: string): Promise<ContinuousRestoreState> {
    try {
      const p = await this.watch(database);
      return { status: p.status, online: p.online, lastRestoredFileName: p.lastRestoredFileName, filesDetected: p.filesDetected, filesQueued: p.filesQueued, filesRestoring: p.filesRestoring, filesRestored: p.filesRestored, blockReason: p.blockReason };
    } catch (err) {
      throw this.classify(err, `reading the restore of ${database}`);
    }
  }

  /** Continuous mode, at cut-over: completes the restore at `lastBackupName` once it is restored (see completeOnceRestored). */
  async complete(database: string, lastBackupName: string, onProgress: Progress = () => {}, signal?: AbortSignal): Promise<void> {
    try {
      await this.completeOnceRestored(database, lastBackupName, onProgress, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      throw this.classify(err, `completing the restore of ${database}`);
    }
  }

  describe(): string {
    return `Azure SQL Managed Instance ${this.mi.managedInstance} (resource group ${this.mi.resourceGroup})`;
  }

  planRestore(database: string, artifact: PlannedArtifact): PlanStep {
    const path = managedDatabasePath(this.mi, database);
    const access = artifact.restoreAccess === 'sas' ? ({ kind: 'sas', token: "[redacted: the container's one read+list SAS, shared by every restore into it]" } as const) : ({ kind: 'managed-identity' } as const);
    const { location, tags, ...properties } = managedDatabaseCreateBody(this.mi, '<location of the instance>', artifact.folderUrl, artifact.lastBackupName, artifact.migrationId, access);
    const api = `api-version=${MANAGED_DATABASES_API_VERSION}`;
    return {
      phase: 'restoring',
      action: `Log Replay Service through ARM (createMode RestoreExternalBackup) from the tenant's own flat folder ${artifact.folderUrl}, ${this.mi.autoCompleteRestore ? 'auto-completed at the last backup' : 'completed by airlift once the last backup is restored'}; a retried restore finds its database restoring and watches it again instead of creating it`,
      detail: [
        `GET ${managedInstancePath(this.mi)}  (location; storage size against the database)`,
        `GET ${managedInstancePath(this.mi)}/databases?${api}  (restores running: at ${LRS_MAX_CONCURRENT_RESTORES} the restore waits for a free one)`,
        `GET ${path}?${api}  (already there with tag ${MIGRATION_TAG}=${artifact.migrationId}: resume, no create; there without it: refused)`,
        `PUT ${path}?${api}\n${JSON.stringify({ location, tags, properties }, null, 2)}`,
        `GET ${path}/restoreDetails/Default?${api}  (every ${this.pollMs / 1000} s: percent, files queued, restoring and restored, last restored file, unrestorable files, block reason)`,
        ...(this.mi.autoCompleteRestore
          ? []
          : [`POST ${path}/completeRestore?${api}  (once restoreDetails names ${artifact.lastBackupName} as the last restored file and nothing is queued)\n${JSON.stringify({ lastBackupName: artifact.lastBackupName })}`]),
      ],
    };
  }

  /** Deletes the managed database only if its tag says this migration created it. */
  async dropRestored(database: string, migrationId: string): Promise<boolean> {
    try {
      const existing = await this.database(database);
      if (existing?.tags?.[MIGRATION_TAG] !== migrationId) return false;
      await (await this.client.managedDatabases.beginDelete(this.mi.resourceGroup, this.mi.managedInstance, database, { updateIntervalInMs: this.pollMs })).pollUntilDone();
      return true;
    } catch (err) {
      throw this.classify(err, `deleting ${database}`);
    }
  }
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;

/** One restorer per instance, signed in with `credential`; the worker's wiring builds one of these. */
export function managedInstanceRestorers(credential: TokenCredential, options: ConstructorParameters<typeof SqlManagementClient>[2] = {}): (mi: ManagedInstanceRef) => ManagedInstanceRestore {
  const restorers = new Map<string, ManagedInstanceRestore>();
  return (mi) => {
    const key = `${mi.resourceManagerUrl ?? ''}/${mi.subscriptionId}/${mi.resourceGroup}/${mi.managedInstance}`;
    let restorer = restorers.get(key);
    if (!restorer) restorers.set(key, (restorer = ManagedInstanceRestore.connect(mi, credential, options)));
    return restorer;
  };
}
