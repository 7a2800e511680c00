// Download of artifacts of growing size through one Azurite, side by side in the same run: airlift's
// resumable ranged download checked against the blob's sha256, the Azure SDK's `downloadToFile`
// (one streamed GET, its only way to a file), and the SDK's parallel ranged download with tuned block
// size x concurrency (`downloadToBuffer`, which holds the whole blob in memory, then one write).
import type { ContainerClient } from '@azure/storage-blob';
import { rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { uploadResumable } from '../azure/block-upload';
import { downloadVerified } from '../azure/block-download';
import { MiB, measured, ratio, round, writeRandomFile, type BenchResult } from './measure';
import { policyDefaults, withBlobBench } from './blob-bench';

export const SDK_DOWNLOAD_TUNINGS = [
  { blockMiB: 4, concurrency: 8 },
  { blockMiB: 16, concurrency: 4 },
];

export async function benchDownload(sizesMiB: number[]): Promise<BenchResult> {
  const { blockSizeBytes, concurrency } = policyDefaults();
  return withBlobBench('download', async (container: ContainerClient, dir: string) => {
    const rows: Record<string, unknown>[] = [];
    const vsDefault: number[] = [];
    const vsBest: number[] = [];
    for (const size of sizesMiB) {
      const file = join(dir, `artifact-${size}.bin`);
      const back = join(dir, `back-${size}.bin`);
      await writeRandomFile(file, size * MiB);
      const blobName = `bench/${size}.bin`;
      await uploadResumable(container, blobName, file, { blockSizeBytes, concurrency });
      rmSync(file, { force: true });
      const blob = container.getBlobClient(blobName);
      const rate = (seconds: number) => round(size / seconds);
      const row = (name: string, m: { seconds: number; peakRssMiB: number }) => {
        rows.push({ artifactMiB: size, method: name, MiBps: rate(m.seconds), peakRssMiB: round(m.peakRssMiB) });
        rmSync(back, { force: true });
        return rate(m.seconds);
      };
      const ours = row(`airlift (${blockSizeBytes / MiB} MiB x ${concurrency}, sha256 checked)`, await measured(() => downloadVerified(container, blobName, back, { blockSizeBytes, concurrency })));
      const sdkDefault = row('downloadToFile (defaults)', await measured(() => blob.downloadToFile(back)));
      let best = 0;
      for (const t of SDK_DOWNLOAD_TUNINGS) {
        const m = await measured(async () => writeFile(back, await blob.downloadToBuffer(0, undefined, { blockSize: t.blockMiB * MiB, concurrency: t.concurrency })));
        best = Math.max(best, row(`downloadToBuffer + write (${t.blockMiB} MiB x ${t.concurrency})`, m));
      }
      rows.push({ artifactMiB: size, method: 'ratio airlift / SDK', MiBps: `${ratio(ours, sdkDefault)} (downloadToFile), ${ratio(ours, Math.max(best, sdkDefault))} (best)` });
      vsDefault.push(ours / sdkDefault);
      vsBest.push(ours / Math.max(best, sdkDefault));
      await blob.delete();
    }
    return { rows, ratios: { downloadVsSdk: round(Math.min(...vsDefault), 2), downloadVsSdkBest: round(Math.min(...vsBest), 2) } };
  });
}
