// Connects to the artifact container: a connection string read from a named env var, or an account
// URL with DefaultAzureCredential. Secrets never leave this file in a message.
import { StorageConfigError } from '../protocol/errors';
import { DefaultAzureCredential } from '@azure/identity';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';

export interface StorageConfig {
  container: string;
  connectionStringEnv?: string;
  accountUrl?: string;
}

export { StorageConfigError };

import { redactSecrets } from '../protocol/errors';

export { redactSecrets };

export function connectContainer(config: StorageConfig, env: NodeJS.ProcessEnv = process.env): ContainerClient {
  if (config.connectionStringEnv) {
    const value = env[config.connectionStringEnv];
    if (!value)
      throw new StorageConfigError(
        `storage.connectionStringEnv: environment variable ${config.connectionStringEnv} is not set on this worker; export it with the storage account's connection string`,
      );
    try {
      return BlobServiceClient.fromConnectionString(value).getContainerClient(config.container);
    } catch (err) {
      throw new StorageConfigError(`storage.connectionStringEnv: ${config.connectionStringEnv} does not hold a valid connection string (${redactSecrets((err as Error).message)})`);
    }
  }
  if (config.accountUrl) return new BlobServiceClient(config.accountUrl, new DefaultAzureCredential()).getContainerClient(config.container);
  throw new StorageConfigError('storage: give connectionStringEnv or accountUrl');
}

export { artifactBlobName } from './artifact-folder';
