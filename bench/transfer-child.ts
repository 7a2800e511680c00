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
  /** Warm-up only: the SDK cuts even a small file into blocks. */
  smallBlocks?: boolean;
}

const peakRssMiB = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;

/**
 * Two small transfers (1 MiB) by the same method before the measured one, to their own blob and
 * file: one with the job's own settings and one cut in 256 KiB blocks, so both ways a method sends
 * (whole, in blocks) have run. What a process pays once (loading code, compiling it) is paid here, as
 * a worker pays it once for all its transfers, and is charged to no measured transfer.
 */
async function warmUp(job: TransferJob, container: ContainerClient): Promise<void> {
  const file = `${job.file}.warm-up`;
  const blobName = `${job.blobName}.warm-up`;
  await writeRandomFile(file, MiB);
  const downloads = job.method.includes('download');
  if (downloads) await uploadResumable(container, blobName, file, { blockSizeBytes: MiB / 4, concurrency: 1 });
  for (const blockSizeBytes of [job.blockSizeBytes, MiB / 4]) {
    const warm: TransferJob = { ...job, file: downloads ? `${file}.back` : file, blobName, blockSizeBytes, smallBlocks: blockSizeBytes === MiB / 4 };
    if (job.method === 'airlift-upload')
      Object.assign(warm, await digestArtifact(file, MiB, file, (bytes) => uploadBlockSize(bytes, { blockSizeBytes: blockSizeBytes!, concurrency: 1 })), { concurrency: 1 });
    await methods(container, warm)[job.method]();
    if (!downloads) await container.getBlockBlobClient(blobName).deleteIfExists();
    rmSync(`${file}.back`, { force: true });
  }
  await container.getBlockBlobClient(blobName).deleteIfExists();
  for (const f of [file, `${file}.blocks.json`]) rmSync(f, { force: true });
}

/** What each method does with one job. */
function methods(container: ContainerClient, job: TransferJob): Record<TransferJob['method'], () => Promise<unknown>> {
  const tuned = { ...(job.blockSizeBytes ? { blockSize: job.blockSizeBytes, concurrency: job.concurrency } : {}), ...(job.smallBlocks ? { maxSingleShotSize: 0 } : {}) };
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
