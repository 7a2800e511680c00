// Upload of artifacts of growing size through one Azurite, side by side in the same run: airlift's
// resumable block upload (policy defaults, sha256 known from the snapshot as in a migration), the
// Azure SDK's own `BlockBlobClient.uploadFile` with its defaults and with a few tuned settings, and a
// plain read of the file as the limit. Peak RSS of this process beside each.
import type { ContainerClient } from '@azure/storage-blob';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { uploadResumable } from '../azure/block-upload';
import { sha256File } from '../engines/checksum';
import { MiB, measured, ratio, readOnce, round, writeRandomFile, type BenchResult } from './measure';
import { policyDefaults, withBlobBench } from './blob-bench';

/** Block size x concurrency settings a user tuning `uploadFile` would try; the best one is reported. */
export const SDK_TUNINGS = [
  { blockMiB: 4, concurrency: 8 },
  { blockMiB: 8, concurrency: 8 },
  { blockMiB: 16, concurrency: 4 },
];

export async function benchUpload(sizesMiB: number[]): Promise<BenchResult> {
  const { blockSizeBytes, concurrency } = policyDefaults();
  return withBlobBench('upload', async (container: ContainerClient, dir: string) => {
    const rows: Record<string, unknown>[] = [];
    const vsDefault: number[] = [];
    const vsBest: number[] = [];
    for (const size of sizesMiB) {
      const file = join(dir, `artifact-${size}.bin`);
      await writeRandomFile(file, size * MiB);
      // Known before the copy, as the snapshot step computes it; not part of the upload's time.
      const sha256 = await sha256File(file);
      const rate = (seconds: number) => round(size / seconds);
      const row = (name: string, m: { seconds: number; peakRssMiB: number }, extra: Record<string, unknown> = {}) => {
        rows.push({ artifactMiB: size, method: name, MiBps: rate(m.seconds), peakRssMiB: round(m.peakRssMiB), ...extra });
        return rate(m.seconds);
      };
      const blob = (name: string) => container.getBlockBlobClient(`bench/${size}-${name}.bin`);
      const drop = (name: string) => blob(name).deleteIfExists();

      row('read the file (limit)', await measured(() => readOnce(file)));
      const ours = row(`airlift (${blockSizeBytes / MiB} MiB x ${concurrency}, MD5 per block)`, await measured(() => uploadResumable(container, `bench/${size}-airlift.bin`, file, { blockSizeBytes, concurrency, sha256 })));
      await drop('airlift');
      const sdkDefault = row('uploadFile (defaults)', await measured(() => blob('sdk').uploadFile(file)));
      await drop('sdk');
      let best = 0;
      for (const t of SDK_TUNINGS) {
        const m = await measured(() => blob('sdk').uploadFile(file, { blockSize: t.blockMiB * MiB, concurrency: t.concurrency }));
        best = Math.max(best, row(`uploadFile (${t.blockMiB} MiB x ${t.concurrency})`, m));
        await drop('sdk');
      }
      rows.push({ artifactMiB: size, method: 'ratio airlift / uploadFile', MiBps: `${ratio(ours, sdkDefault)} (defaults), ${ratio(ours, Math.max(best, sdkDefault))} (best)` });
      vsDefault.push(ours / sdkDefault);
      vsBest.push(ours / Math.max(best, sdkDefault));
      rmSync(file, { force: true });
    }
    // The worst size decides: airlift must keep up at every size, not on average.
    return { rows, ratios: { uploadVsSdk: round(Math.min(...vsDefault), 2), uploadVsSdkBest: round(Math.min(...vsBest), 2) } };
  });
}
