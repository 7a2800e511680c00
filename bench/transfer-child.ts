// One transfer of the upload/download benchmarks, in a fresh process so its peak RSS (the kernel's
// VmHWM) is its own and no earlier run's garbage is counted:
// `node -r tsx/cjs bench/transfer-child.ts '<json>'`, the connection string in AIRLIFT_BENCH_STORAGE.
// Prints one JSON line: seconds taken and peak RSS in MiB.
import { BlobServiceClient } from '@azure/storage-blob';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { uploadResumable } from '../azure/block-upload';
import { downloadVerified } from '../azure/block-download';
import { readOnce } from './measure';

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

async function run(job: TransferJob): Promise<void> {
  const container = BlobServiceClient.fromConnectionString(process.env.AIRLIFT_BENCH_STORAGE!).getContainerClient(job.container);
  const tuned = job.blockSizeBytes ? { blockSize: job.blockSizeBytes, concurrency: job.concurrency } : {};
  const transfer = { blockSizeBytes: job.blockSizeBytes!, concurrency: job.concurrency! };
  const work: Record<TransferJob['method'], () => Promise<unknown>> = {
    read: () => readOnce(job.file),
    'airlift-upload': () => uploadResumable(container, job.blobName, job.file, { ...transfer, sha256: job.sha256, blockDigests: job.blockDigests }),
    'sdk-upload': () => container.getBlockBlobClient(job.blobName).uploadFile(job.file, tuned),
    'airlift-download': () => downloadVerified(container, job.blobName, job.file, transfer),
    'sdk-download': () => container.getBlobClient(job.blobName).downloadToFile(job.file),
    'sdk-download-buffer': async () => writeFile(job.file, await container.getBlobClient(job.blobName).downloadToBuffer(0, undefined, tuned)),
  };
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
