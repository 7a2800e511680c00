// One transfer of the upload/download benchmarks, in a fresh process so its peak RSS (the kernel's
// VmHWM) is its own and no earlier run's garbage is counted, after a 1 MiB warm-up by the same method:
// `node -r tsx/cjs bench/transfer-child.ts '<json>'`, the connection string in AIRLIFT_BENCH_STORAGE.
// Prints one JSON line: seconds taken and peak RSS in MiB.
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { uploadBlockSize, uploadResumable } from '../azure/block-upload';
import { digestArtifact } from '../engines/checksum';
import { downloadVerified } from '../azure/block-download';
import { MiB, readOnce, writeRandomFile } from './measure';

export interface TransferJob {
  method: 'read' | 'airlift-upload' | 'sdk-upload' | 'airlift-download' | 'sdk-download' | 'sdk-download-buffer';
  container: string;
  blobName: string;
  file: string;
  sha256?: string;
  blockDigests?: string;
  blockSizeBytes?: number;
  concurrency?: number;
}

const peakRssMiB = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;

/**
 * One small transfer (1 MiB) by the same method before the measured one, to its own blob and file:
 * what a process pays once (loading code, compiling it) is paid here, as a worker pays it once for
 * all its transfers, and not charged to the measured transfer of any method.
 */
async function warmUp(job: TransferJob, container: ContainerClient): Promise<void> {
  const file = `${job.file}.warm-up`;
  const blobName = `${job.blobName}.warm-up`;
  await writeRandomFile(file, MiB);
  const warm: TransferJob = { ...job, file, blobName };
  if (job.method === 'airlift-upload') {
    const digests = await digestArtifact(file, MiB, file, (bytes) => uploadBlockSize(bytes, { blockSizeBytes: job.blockSizeBytes!, concurrency: job.concurrency! }));
    Object.assign(warm, digests);
  }
  const downloads = job.method.includes('download');
  if (downloads) {
    await uploadResumable(container, blobName, file, { blockSizeBytes: MiB, concurrency: 1 });
    warm.file = `${file}.back`;
  }
  await methods(container, warm)[job.method]();
  await container.getBlockBlobClient(blobName).deleteIfExists();
  for (const f of [file, `${file}.back`, `${file}.blocks.json`]) rmSync(f, { force: true });
}

/** What each method does with one job. */
function methods(container: ContainerClient, job: TransferJob): Record<TransferJob['method'], () => Promise<unknown>> {
  const tuned = job.blockSizeBytes ? { blockSize: job.blockSizeBytes, concurrency: job.concurrency } : {};
  const transfer = { blockSizeBytes: job.blockSizeBytes!, concurrency: job.concurrency! };
  return {
    read: () => readOnce(job.file),
    'airlift-upload': () => uploadResumable(container, job.blobName, job.file, { ...transfer, sha256: job.sha256, blockDigests: job.blockDigests }),
    'sdk-upload': () => container.getBlockBlobClient(job.blobName).uploadFile(job.file, tuned),
    'airlift-download': () => downloadVerified(container, job.blobName, job.file, transfer),
    'sdk-download': () => container.getBlobClient(job.blobName).downloadToFile(job.file),
    'sdk-download-buffer': async () => writeFile(job.file, await container.getBlobClient(job.blobName).downloadToBuffer(0, undefined, tuned)),
  };
}

async function run(job: TransferJob): Promise<void> {
  const container = BlobServiceClient.fromConnectionString(process.env.AIRLIFT_BENCH_STORAGE!).getContainerClient(job.container);
  const work = methods(container, job);
  await warmUp(job, container);
  const startRssMiB = peakRssMiB();
  const started = process.hrtime.bigint();
  await work[job.method]();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(`${JSON.stringify({ seconds, peakRssMiB: peakRssMiB(), startRssMiB })}\n`);
}

run(JSON.parse(process.argv[2]) as TransferJob).catch((err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
