// The setting the upload and download benchmarks share: one Azurite, one container, a scratch folder,
// and airlift's transfer settings as a fleet file without a policy gets them.
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAzurite } from '../azure/azurite';
import { parseFleet } from '../config/fleet';
import { MiB } from './measure';

export function policyDefaults(): { blockSizeBytes: number; concurrency: number } {
  const fleet = parseFleet(
    {
      sources: { s: { engine: 'sqlite', directory: './s' } },
      targets: { t: { engine: 'sqlite', directory: './t' } },
      storage: { container: 'bench', connectionStringEnv: 'UNUSED' },
      tenants: [{ id: 'bench', database: 'bench', source: 's', target: 't' }],
    },
    join(tmpdir(), 'fleet.yaml'),
  );
  return { blockSizeBytes: Math.round(fleet.policy.blockSizeMiB * MiB), concurrency: fleet.policy.uploadConcurrency };
}

export async function withBlobBench<T>(name: string, work: (container: ContainerClient, dir: string) => Promise<T>): Promise<T> {
  const azurite = await startAzurite();
  const dir = mkdtempSync(join(tmpdir(), `airlift-bench-${name}-`));
  try {
    const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('bench');
    await container.createIfNotExists();
    return await work(container, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await azurite.stop();
  }
}
