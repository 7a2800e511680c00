// The Managed Instance restorer for a target endpoint, signed in with DefaultAzureCredential.
import { DefaultAzureCredential } from '@azure/identity';
import { ManagedInstanceRestore, type ManagedInstanceRef } from '../azure/managed-instance';

const restorers = new Map<string, ManagedInstanceRestore>();

export function managedInstance(endpoint: ManagedInstanceRef): ManagedInstanceRestore {
  const key = `${endpoint.subscriptionId}/${endpoint.resourceGroup}/${endpoint.managedInstance}`;
  let restorer = restorers.get(key);
  if (!restorer) restorers.set(key, (restorer = ManagedInstanceRestore.connect(endpoint, new DefaultAzureCredential())));
  return restorer;
}
