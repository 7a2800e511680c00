// Download of artifacts of growing size through one Azurite, side by side in the same run: airlift's
// resumable ranged download checked against the blob's sha256 (ranges as the restore activity asks), the Azure SDK's `downloadToFile`
// (one streamed GET, its only way to a file), and the SDK's parallel ranged download with tuned block
// size x concurrency (`downloadToBuffer`, which holds the whole blob in memory, then one write).
// Each run is a fresh process; each method's fastest of `repeats` round-robin runs is kept.
import type { ContainerClient } from '@azure/storage-blob';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { uploadResumable } from '../azure/block-upload';
import { downloadRangeBytes } from '../azure/block-download';
import { MiB, ratio, round, writeRandomFile, type BenchResult } from './measure';
import { bestOf, policyDefaults, withBlobBench, type RunTransfer } from './blob-bench';

export const SDK_DOWNLOAD_TUNINGS = [
  { blockMiB: 4, concurrency: 8 },
  { blockMiB: 16, concurrency: 4 },
];

export async function benchDownload(sizesMiB: number[], repeats: number): Promise<BenchResult> {
  const { blockSizeBytes, concurrency } = policyDefaults();
  // The range size the restore activity asks for with the policy's block size.
  const rangeBytes = downloadRangeBytes(blockSizeBytes);
  return withBlobBench('download', async (container: ContainerClient, dir: string, transfer: RunTransfer) => {
    const rows: Record<string, unknown>[] = [];
    const vsDefault: number[] = [];
    const vsBest: number[] = [];
    const peaks: number[] = [];
    for (const size of sizesMiB) {
      const source = join(dir, `artifact-${size}.bin`);
      const file = join(dir, `back-${size}.bin`);
      await writeRandomFile(source, size * MiB);
      const blobName = `bench/${size}.bin`;
      await uploadResumable(container, blobName, source, { blockSizeBytes, concurrency });
      rmSync(source, { force: true });
      const download = (job: Omit<Parameters<RunTransfer>[0], 'blobName' | 'file'>) => async () => {
        const m = await transfer({ ...job, blobName, file });
        rmSync(file, { force: true });
        return m;
      };
      const ours = `airlift (${rangeBytes / MiB} MiB x ${concurrency}, sha256 checked)`;
      const tuned = SDK_DOWNLOAD_TUNINGS.map((t) => `downloadToBuffer + write (${t.blockMiB} MiB x ${t.concurrency})`);
      const best = await bestOf(repeats, {
        [ours]: download({ method: 'airlift-download', blockSizeBytes: rangeBytes, concurrency }),
        'downloadToFile (defaults)': download({ method: 'sdk-download' }),
        ...Object.fromEntries(SDK_DOWNLOAD_TUNINGS.map((t, i) => [tuned[i], download({ method: 'sdk-download-buffer', blockSizeBytes: t.blockMiB * MiB, concurrency: t.concurrency })])),
      });
      const rate = (name: string) => size / best[name].seconds;
      for (const [method, m] of Object.entries(best))
        rows.push({ artifactMiB: size, method, MiBps: round(size / m.seconds), peakRssMiB: round(m.peakRssMiB), rssBeforeMiB: round(m.startRssMiB) });
      const sdkBest = Math.max(rate('downloadToFile (defaults)'), ...tuned.map(rate));
      rows.push({ artifactMiB: size, method: 'ratio airlift / SDK', MiBps: `${ratio(rate(ours), rate('downloadToFile (defaults)'))} (downloadToFile), ${ratio(rate(ours), sdkBest)} (best)` });
      vsDefault.push(rate(ours) / rate('downloadToFile (defaults)'));
      vsBest.push(rate(ours) / sdkBest);
      peaks.push(round(best[ours].peakRssMiB));
      await container.deleteBlob(blobName);
    }
    return {
      rows,
      ratios: { downloadVsSdk: round(Math.min(...vsDefault), 2), downloadVsSdkBest: round(Math.min(...vsBest), 2), downloadPeakRssMiB: Math.max(...peaks) },
    };
  });
}
