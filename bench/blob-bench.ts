// The setting the upload and download benchmarks share: one Azurite, one container, a scratch folder,
// and airlift's transfer settings as a fleet file without a policy gets them.
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAzurite } from '../azure/azurite';
import { parseFleet } from '../config/fleet';
import { MiB } from './measure';
import type { TransferJob } from './transfer-child';

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

/** Runs one transfer in a fresh process (bench/transfer-child.ts): its time, and its own peak RSS. */
export type RunTransfer = (job: Omit<TransferJob, 'container'>) => Promise<{ seconds: number; peakRssMiB: number; startRssMiB: number }>;

/**
 * Runs every method `repeats` times, round robin, and keeps each one's fastest run: on a machine
 * shared with other work, a load spike then cannot fall on one method alone.
 */
export async function bestOf<K extends string>(repeats: number, methods: Record<K, () => Promise<{ seconds: number; peakRssMiB: number; startRssMiB: number }>>) {
  const best = {} as Record<K, { seconds: number; peakRssMiB: number; startRssMiB: number }>;
  for (let r = 0; r < repeats; r++)
    for (const [name, run] of Object.entries(methods) as [K, () => Promise<{ seconds: number; peakRssMiB: number; startRssMiB: number }>][]) {
      const m = await run();
      const kept = best[name];
      best[name] = !kept || m.seconds < kept.seconds ? { ...m, peakRssMiB: Math.max(m.peakRssMiB, kept?.peakRssMiB ?? 0) } : { ...kept, peakRssMiB: Math.max(m.peakRssMiB, kept.peakRssMiB) };
    }
  return best;
}

/**
 * Azurite in memory keeps the extents of deleted blobs until its own collection runs, and a fuller
 * store makes it slower (and past half the machine's memory, it refuses writes): each upload runs
 * against a fresh Azurite (same port, empty store), so no method pays for another's garbage.
 */
export async function withBlobBench<T>(name: string, work: (container: ContainerClient, dir: string, transfer: RunTransfer) => Promise<T>): Promise<T> {
  let azurite = await startAzurite();
  const dir = mkdtempSync(join(tmpdir(), `airlift-bench-${name}-`));
  try {
    const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('bench');
    await container.createIfNotExists();
    const transfer: RunTransfer = async (job) => {
      if (job.method.endsWith('-upload')) {
        await azurite.stop();
        azurite = await startAzurite({ port: azurite.port });
        await container.createIfNotExists();
      }
      const { stdout } = await promisify(execFile)(process.execPath, ['-r', 'tsx/cjs', join(__dirname, 'transfer-child.ts'), JSON.stringify({ ...job, container: 'bench' })], {
        env: { ...process.env, AIRLIFT_BENCH_STORAGE: azurite.connectionString },
      });
      return JSON.parse(stdout.trim().split('\n').pop()!) as { seconds: number; peakRssMiB: number; startRssMiB: number };
    };
    return await work(container, dir, transfer);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await azurite.stop();
  }
}
