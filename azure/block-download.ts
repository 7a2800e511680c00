// Resumable, parallel ranged download of one artifact, checked against the sha256 that the upload
// stored in the blob's metadata. Finished ranges are recorded beside the partial file, so a retry
// fetches only what is missing.
import { BlobChecksumError, BlobNotOursError } from '../protocol/errors';
import type { ContainerClient } from '@azure/storage-blob';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { sha256File } from '../engines/checksum';
import { forEachLimited, type TransferOptions } from './block-upload';

export { BlobChecksumError };

export interface DownloadResult {
  file: string;
  bytes: number;
  sha256: string;
  blocksFetched: number;
  blocksReused: number;
}

export async function downloadVerified(container: ContainerClient, blobName: string, destFile: string, options: TransferOptions): Promise<DownloadResult> {
  const blob = container.getBlobClient(blobName);
  const props = await blob.getProperties({ abortSignal: options.signal });
  const size = props.contentLength ?? 0;
  const expected = props.metadata?.sha256;
  if (!expected) throw new BlobNotOursError(`blob ${blobName} carries no sha256 metadata; it was not uploaded by airlift`);

  const partial = `${destFile}.partial`;
  const journal = `${partial}.done.json`;
  await mkdir(dirname(destFile), { recursive: true });
  const done = new Set<number>(
    await readFile(journal, 'utf8').then((t) => JSON.parse(t) as number[]).catch(() => [] as number[]),
  );
  const handle = await open(partial, done.size ? 'r+' : 'w+').catch(() => open(partial, 'w+'));
  const blocks = Math.max(1, Math.ceil(size / options.blockSizeBytes));
  let bytesDone = 0;
  let blocksFetched = 0;
  let blocksReused = 0;
  try {
    await forEachLimited(blocks, options.concurrency, async (i) => {
      options.signal?.throwIfAborted();
      const offset = i * options.blockSizeBytes;
      const length = Math.min(options.blockSizeBytes, size - offset);
      if (done.has(i)) {
        blocksReused++;
      } else if (length > 0) {
        const buffer = await blob.downloadToBuffer(offset, length, { abortSignal: options.signal });
        await handle.write(buffer, 0, length, offset);
        done.add(i);
        blocksFetched++;
        await writeFile(journal, JSON.stringify([...done]));
      }
      bytesDone += Math.max(0, length);
      options.onProgress?.(bytesDone, size);
    });
    await handle.truncate(size);
  } finally {
    await handle.close();
  }
  const sha256 = await sha256File(partial);
  if (sha256 !== expected) {
    await rm(partial, { force: true });
    await rm(journal, { force: true });
    throw new BlobChecksumError(`downloaded ${blobName} has sha256 ${sha256} but the blob says ${expected}; the partial file was discarded, a retry downloads it again`);
  }
  await rename(partial, destFile);
  await rm(journal, { force: true });
  return { file: destFile, bytes: size, sha256, blocksFetched, blocksReused };
}
