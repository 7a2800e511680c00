// Upload and download of artifacts of growing size through Azurite: throughput and the peak memory
// of this process above its baseline, which should stay flat (bounded by blocks in flight).
import { BlobServiceClient } from '@azure/storage-blob';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAzurite } from '../azure/azurite';
import { uploadResumable } from '../azure/block-upload';
import { downloadVerified } from '../azure/block-download';

const MiB = 1024 * 1024;

async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const out = createWriteStream(file);
  const chunk = randomBytes(MiB);
  for (let done = 0; done < bytes; done += MiB) if (!out.write(chunk)) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
}

/** Runs `work` while sampling RSS; returns seconds taken and the peak RSS above the start. */
async function measured(work: () => Promise<unknown>): Promise<{ seconds: number; peakMiB: number }> {
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const started = process.hrtime.bigint();
  await work();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  return { seconds, peakMiB: (peak - base) / MiB };
}

export async function benchUpload(sizesMiB = [32, 128, 512]): Promise<Record<string, unknown>[]> {
  const azurite = await startAzurite();
  const dir = mkdtempSync(join(tmpdir(), 'airlift-bench-'));
  const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('bench');
  await container.createIfNotExists();
  const blockSizeBytes = 4 * MiB;
  const concurrency = 4;
  const rows: Record<string, unknown>[] = [];
  try {
    for (const size of sizesMiB) {
      const file = join(dir, `artifact-${size}.bin`);
      await writeRandomFile(file, size * MiB);
      const up = await measured(() => uploadResumable(container, `bench/${size}.bin`, file, { blockSizeBytes, concurrency }));
      const down = await measured(() => downloadVerified(container, `bench/${size}.bin`, join(dir, `back-${size}.bin`), { blockSizeBytes, concurrency }));
      rows.push({
        artifactMiB: size,
        blockMiB: blockSizeBytes / MiB,
        concurrency,
        uploadMiBps: +(size / up.seconds).toFixed(1),
        uploadPeakRssMiB: +up.peakMiB.toFixed(1),
        downloadMiBps: +(size / down.seconds).toFixed(1),
        downloadPeakRssMiB: +down.peakMiB.toFixed(1),
      });
      rmSync(file, { force: true });
      rmSync(join(dir, `back-${size}.bin`), { force: true });
      await container.deleteBlob(`bench/${size}.bin`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await azurite.stop();
  }
  return rows;
}
