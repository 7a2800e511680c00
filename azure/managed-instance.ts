// Restore on Azure SQL Managed Instance through ARM (@azure/arm-sql): a managed database created
// with createMode RestoreExternalBackup from the artifact container, its progress read from
// restoreDetails, completed when not auto-completing, and dropped only if this migration made it.
import { ManagedInstanceRestoreError } from '../protocol/errors';
import { SqlManagementClient, type ManagedDatabase } from '@azure/arm-sql';
import type { TokenCredential } from '@azure/core-auth';
import { redactSecrets } from './blob-store';

export interface ManagedInstanceRef {
  subscriptionId: string;
  resourceGroup: string;
  managedInstance: string;
  collation: string;
  storageAccess: 'sas' | 'managed-identity';
  autoCompleteRestore: boolean;
}

export interface RestoreProgress {
  status: string;
  percent: number;
  filesRestored: number;
  filesUnrestorable: number;
  unrestorableFiles: string[];
  blockReason?: string;
}

export { ManagedInstanceRestoreError };

/** The tag that records which migration created a managed database. */
export const MIGRATION_TAG = 'airlift-migration';

/** The api-version @azure/arm-sql sends for managed databases (pinned by the contract tests). */
export const MANAGED_DATABASES_API_VERSION = '2022-05-01-preview';

/** The body of the create request; `sas` is absent when the instance reads with its managed identity. */
export function managedDatabaseCreateBody(mi: ManagedInstanceRef, location: string, containerUri: string, lastBackupName: string, migrationId: string, sas?: string): ManagedDatabase {
  return {
    location,
    tags: { [MIGRATION_TAG]: migrationId },
    createMode: 'RestoreExternalBackup',
    storageContainerUri: containerUri,
    ...(mi.storageAccess === 'sas' ? { storageContainerSasToken: sas } : { storageContainerIdentity: 'ManagedIdentity' }),
    collation: mi.collation,
    autoCompleteRestore: mi.autoCompleteRestore,
    lastBackupName,
  };
}

/** The ARM path of a managed database. */
export const managedDatabasePath = (mi: ManagedInstanceRef, database: string): string =>
  `/subscriptions/${mi.subscriptionId}/resourceGroups/${mi.resourceGroup}/providers/Microsoft.Sql/managedInstances/${mi.managedInstance}/databases/${database}`;

export class ManagedInstanceRestore {
  constructor(
    private readonly client: SqlManagementClient,
    private readonly mi: ManagedInstanceRef,
    private readonly pollMs = 15_000,
  ) {}

  static connect(mi: ManagedInstanceRef, credential: TokenCredential, options?: ConstructorParameters<typeof SqlManagementClient>[2]): ManagedInstanceRestore {
    return new ManagedInstanceRestore(new SqlManagementClient(credential, mi.subscriptionId, options), mi);
  }

  async progress(database: string): Promise<RestoreProgress> {
    const d = await this.client.managedDatabaseRestoreDetails.get(this.mi.resourceGroup, this.mi.managedInstance, database, 'Default');
    return {
      status: d.status ?? 'Unknown',
      percent: d.percentCompleted ?? 0,
      filesRestored: d.numberOfFilesRestored ?? 0,
      filesUnrestorable: d.numberOfFilesUnrestorable ?? 0,
      unrestorableFiles: (d.unrestorableFiles ?? []).map((f) => f.name ?? '?'),
      blockReason: d.blockReason || undefined,
    };
  }

  async restore(
    database: string,
    source: { containerUri: string; lastBackupName: string; migrationId: string; sas?: () => Promise<string> },
    onProgress: (p: RestoreProgress) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    try {
      const instance = await this.client.managedInstances.get(this.mi.resourceGroup, this.mi.managedInstance);
      const sas = this.mi.storageAccess === 'sas' ? await source.sas?.() : undefined;
      const poller = await this.client.managedDatabases.beginCreateOrUpdate(
        this.mi.resourceGroup, this.mi.managedInstance, database,
        managedDatabaseCreateBody(this.mi, instance.location, source.containerUri, source.lastBackupName, source.migrationId, sas),
        { updateIntervalInMs: this.pollMs, abortSignal: signal },
      );
      while (!poller.isDone()) {
        await poller.poll({ abortSignal: signal });
        const progress = await this.progress(database).catch(() => undefined);
        if (progress) {
          onProgress(progress);
          if (progress.filesUnrestorable > 0 || progress.status === 'Failed')
            throw new ManagedInstanceRestoreError(
              `Managed Instance ${this.mi.managedInstance} cannot restore ${database}: ${progress.status}${progress.blockReason ? ` (${progress.blockReason})` : ''}; unrestorable files: ${progress.unrestorableFiles.join(', ') || 'none listed'}`,
            );
        }
        if (!poller.isDone()) await new Promise((r) => setTimeout(r, this.pollMs));
      }
      await poller.pollUntilDone();
      if (!this.mi.autoCompleteRestore) {
        const complete = await this.client.managedDatabases.beginCompleteRestore(this.mi.resourceGroup, this.mi.managedInstance, database, { lastBackupName: source.lastBackupName }, { updateIntervalInMs: this.pollMs });
        await complete.pollUntilDone();
      }
      onProgress(await this.progress(database));
    } catch (err) {
      if (err instanceof ManagedInstanceRestoreError) throw err;
      // ARM errors can carry the request; only a redacted message leaves this function.
      throw new ManagedInstanceRestoreError(`Managed Instance ${this.mi.managedInstance}: restore of ${database} failed: ${redactSecrets((err as Error).message)}`);
    }
  }

  /** Deletes the managed database only if its tag says this migration created it. */
  async dropIfCreatedBy(database: string, migrationId: string): Promise<boolean> {
    const existing = await this.client.managedDatabases.get(this.mi.resourceGroup, this.mi.managedInstance, database).catch((err: { statusCode?: number }) => {
      if (err.statusCode === 404) return undefined;
      throw err;
    });
    if (existing?.tags?.[MIGRATION_TAG] !== migrationId) return false;
    await (await this.client.managedDatabases.beginDelete(this.mi.resourceGroup, this.mi.managedInstance, database, { updateIntervalInMs: this.pollMs })).pollUntilDone();
    return true;
  }
}
