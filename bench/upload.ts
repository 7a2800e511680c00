// Upload of artifacts of growing size through one Azurite, side by side in the same run: airlift's
// resumable block upload (policy defaults, MD5 per block; the sha256 and the block MD5s recorded by
// the snapshot's one read of the file, as in a migration), the Azure SDK's own
// `BlockBlobClient.uploadFile` with its defaults and with a few tuned settings, and a plain read of
// the file as the limit. What recording the block MD5s adds to the snapshot's read is shown beside. Each run is a fresh process, so its peak RSS
// is its own; each method's fastest of `repeats` round-robin runs is kept (peak RSS: the highest).
import type { ContainerClient } from '@azure/storage-blob';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { digestArtifact, sha256File } from '../engines/checksum';
import { uploadBlockSize } from '../azure/block-upload';
import { MiB, ratio, round, writeRandomFile, type BenchResult } from './measure';
import { bestOf, policyDefaults, withBlobBench, type RunTransfer } from './blob-bench';

/** Block size x concurrency settings a user tuning `uploadFile` would try; the best one is reported. */
export const SDK_TUNINGS = [
  { blockMiB: 4, concurrency: 8 },
  { blockMiB: 8, concurrency: 8 },
  { blockMiB: 16, concurrency: 4 },
];

export async function benchUpload(sizesMiB: number[], repeats: number): Promise<BenchResult> {
  const { blockSizeBytes, concurrency } = policyDefaults();
  return withBlobBench('upload', async (container: ContainerClient, dir: string, transfer: RunTransfer) => {
    const rows: Record<string, unknown>[] = [];
    const vsDefault: number[] = [];
    const vsBest: number[] = [];
    const peaks: number[] = [];
    for (const size of sizesMiB) {
      const file = join(dir, `artifact-${size}.bin`);
      await writeRandomFile(file, size * MiB);
      // Known before the copy, as the snapshot step computes them; not part of the upload's time, but
      // what the block MD5s add to the snapshot's own read is measured here and shown.
      let started = process.hrtime.bigint();
      await sha256File(file);
      const sha256Seconds = Number(process.hrtime.bigint() - started) / 1e9;
      started = process.hrtime.bigint();
      const { sha256, blockDigests } = await digestArtifact(file, size * MiB, file, (bytes) => uploadBlockSize(bytes, { blockSizeBytes, concurrency }));
      const digestSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      const blobName = `bench/${size}.bin`;
      const upload = (job: Omit<Parameters<RunTransfer>[0], 'blobName' | 'file'>) => async () => {
        const m = await transfer({ ...job, blobName, file });
        await container.getBlockBlobClient(blobName).deleteIfExists();
        return m;
      };
      const ours = `airlift (${blockSizeBytes / MiB} MiB x ${concurrency})`;
      const tuned = SDK_TUNINGS.map((t) => `uploadFile (${t.blockMiB} MiB x ${t.concurrency})`);
      const best = await bestOf(repeats, {
        'read the file (limit)': () => transfer({ method: 'read', blobName, file }),
        [ours]: upload({ method: 'airlift-upload', sha256, blockDigests, blockSizeBytes, concurrency }),
        'uploadFile (defaults)': upload({ method: 'sdk-upload' }),
        ...Object.fromEntries(SDK_TUNINGS.map((t, i) => [tuned[i], upload({ method: 'sdk-upload', blockSizeBytes: t.blockMiB * MiB, concurrency: t.concurrency })])),
      });
      const rate = (name: string) => size / best[name].seconds;
      for (const [method, m] of Object.entries(best))
        rows.push({ artifactMiB: size, method, MiBps: round(size / m.seconds), peakRssMiB: round(m.peakRssMiB), rssBeforeMiB: round(m.startRssMiB) });
      const sdkBest = Math.max(rate('uploadFile (defaults)'), ...tuned.map(rate));
      rows.push({ artifactMiB: size, method: 'snapshot: sha256 alone / with block MD5s', MiBps: `${round(size / sha256Seconds)} / ${round(size / digestSeconds)}` });
      rows.push({ artifactMiB: size, method: 'ratio airlift / uploadFile', MiBps: `${ratio(rate(ours), rate('uploadFile (defaults)'))} (defaults), ${ratio(rate(ours), sdkBest)} (best)` });
      vsDefault.push(rate(ours) / rate('uploadFile (defaults)'));
      vsBest.push(rate(ours) / sdkBest);
      peaks.push(round(best[ours].peakRssMiB));
      rmSync(file, { force: true });
      rmSync(blockDigests!, { force: true });
    }
    // The worst size decides: airlift must keep up at every size, not on average.
    return {
      rows,
      ratios: { uploadVsSdk: round(Math.min(...vsDefault), 2), uploadVsSdkBest: round(Math.min(...vsBest), 2), uploadPeakRssMiB: Math.max(...peaks) },
    };
  });
}
