// The Managed Instance restorer for a target endpoint, signed in with DefaultAzureCredential.
import { DefaultAzureCredential } from '@azure/identity';
import { ManagedInstanceRestore, type ManagedInstanceRef } from '../azure/managed-instance';
import type { Endpoint } from '../config/fleet';
import type { Engine } from '../engines';

const restorers = new Map<string, ManagedInstanceRestore>();

export function managedInstance(endpoint: ManagedInstanceRef): ManagedInstanceRestore {
  const key = `${endpoint.subscriptionId}/${endpoint.resourceGroup}/${endpoint.managedInstance}`;
  let restorer = restorers.get(key);
  if (!restorer) restorers.set(key, (restorer = ManagedInstanceRestore.connect(endpoint, new DefaultAzureCredential())));
  return restorer;
}

/**
 * Drops a target database only if `migrationId` created it: a Managed Instance database through ARM,
 * by its tag; any other target through its engine's marker. The rollback and `reconcile` both use it.
 */
export function dropOwnedTarget(endpoint: Endpoint, target: Engine, database: string, migrationId: string): Promise<boolean> {
  if (endpoint.engine === 'azure-sql-mi') return managedInstance(endpoint).dropIfCreatedBy(database, migrationId);
  return target.dropRestored(database, migrationId);
}
