// Resumable, parallel ranged download of one artifact, checked against the sha256 that the upload
// stored in the blob's metadata. Finished ranges are recorded beside the partial file, so a retry
// fetches only what is missing.
//
// A fresh download hashes the blocks in order as they arrive, so the artifact is not read a second
// time; fetching runs at most a small window of blocks ahead of the hash, which bounds memory. A
// resumed download hashes the finished file instead, since part of it came from an earlier attempt.
import { BlobChecksumError, BlobNotOursError } from '../protocol/errors';
import type { ContainerClient } from '@azure/storage-blob';
import { createHash } from 'node:crypto';
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

/** The journal of finished blocks, rewritten after each block; writes never overlap and the latest state always lands. */
function blockJournal(file: string, done: Set<number>): { record: () => Promise<void> } {
  let writing: Promise<void> | undefined;
  let dirty = false;
  const flush = async (): Promise<void> => {
    while (dirty) {
      dirty = false;
      await writeFile(`${file}.tmp`, JSON.stringify([...done]));
      await rename(`${file}.tmp`, file);
    }
  };
  return {
    record: () => {
      dirty = true;
      writing ??= flush().finally(() => (writing = undefined));
      return writing;
    },
  };
}

/**
 * Folds blocks into a sha256 strictly in index order while they arrive out of order. `room(i)`
 * resolves once block i is within `window` blocks of the next one to hash; buffers handed in are
 * given back to `release` once hashed.
 */
class InOrderHash {
  private readonly hash = createHash('sha256');
  private readonly arrived = new Map<number, { block: Buffer; whole: Buffer }>();
  private readonly waiting: { index: number; wake: () => void; fail: (err: unknown) => void }[] = [];
  private next = 0;
  private failure?: { error: unknown };

  constructor(
    private readonly window: number,
    private readonly release: (buffer: Buffer) => void,
  ) {}

  room(index: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure.error);
    if (index < this.next + this.window) return Promise.resolve();
    return new Promise((wake, fail) => this.waiting.push({ index, wake, fail }));
  }

  /** A block failed: it will never be hashed, so nobody waiting for room gets it. */
  abort(error: unknown): void {
    this.failure ??= { error };
    for (const w of this.waiting.splice(0)) w.fail(error);
  }

  /** `block` is the block's bytes, a view of `whole`, the buffer given back once hashed. */
  add(index: number, block: Buffer, whole: Buffer): void {
    this.arrived.set(index, { block, whole });
    for (let b = this.arrived.get(this.next); b; b = this.arrived.get(this.next)) {
      this.hash.update(b.block);
      this.arrived.delete(this.next++);
      this.release(b.whole);
    }
    for (let i = this.waiting.length - 1; i >= 0; i--)
      if (this.waiting[i].index < this.next + this.window) this.waiting.splice(i, 1)[0].wake();
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

export async function downloadVerified(container: ContainerClient, blobName: string, destFile: string, options: TransferOptions): Promise<DownloadResult> {
  const blob = container.getBlobClient(blobName);
  const props = await blob.getProperties({ abortSignal: options.signal });
  const size = props.contentLength ?? 0;
  const expected = props.metadata?.sha256;
  if (!expected) throw new BlobNotOursError(`blob ${blobName} carries no sha256 metadata; it was not uploaded by airlift`);

  const partial = `${destFile}.partial`;
  const journalFile = `${partial}.done.json`;
  await mkdir(dirname(destFile), { recursive: true });
  const done = new Set<number>(
    await readFile(journalFile, 'utf8').then((t) => JSON.parse(t) as number[]).catch(() => [] as number[]),
  );
  const resumed = done.size > 0;
  const journal = blockJournal(journalFile, done);
  const handle = await open(partial, resumed ? 'r+' : 'w+').catch(() => open(partial, 'w+'));
  const blocks = Math.max(1, Math.ceil(size / options.blockSizeBytes));
  // Buffers are reused: memory stays at the window's blocks, whatever the artifact's size.
  const pool: Buffer[] = [];
  const inOrder = resumed ? undefined : new InOrderHash(options.concurrency * 2, (b) => pool.push(b));
  const take = () => pool.pop() ?? Buffer.allocUnsafeSlow(options.blockSizeBytes);
  let bytesDone = 0;
  let blocksFetched = 0;
  let blocksReused = 0;
  try {
    await forEachLimited(blocks, options.concurrency, async (i) => {
      options.signal?.throwIfAborted();
      const offset = i * options.blockSizeBytes;
      const length = Math.max(0, Math.min(options.blockSizeBytes, size - offset));
      if (done.has(i)) {
        blocksReused++;
      } else {
        await inOrder?.room(i);
        const whole = take();
        const buffer = whole.subarray(0, length);
        try {
          if (length > 0) {
            await blob.downloadToBuffer(buffer, offset, length, { abortSignal: options.signal, concurrency: 1, blockSize: length });
            await handle.write(buffer, 0, length, offset);
          }
        } catch (err) {
          inOrder?.abort(err);
          throw err;
        }
        if (inOrder) inOrder.add(i, buffer, whole);
        else pool.push(whole);
        done.add(i);
        blocksFetched++;
        await journal.record();
      }
      bytesDone += length;
      options.onProgress?.(bytesDone, size);
    });
    await handle.truncate(size);
  } finally {
    await handle.close();
  }
  const sha256 = inOrder ? inOrder.digest() : await sha256File(partial);
  if (sha256 !== expected) {
    await rm(partial, { force: true });
    await rm(journalFile, { force: true });
    throw new BlobChecksumError(`downloaded ${blobName} has sha256 ${sha256} but the blob says ${expected}; the partial file was discarded, a retry downloads it again`);
  }
  await rename(partial, destFile);
  await rm(journalFile, { force: true });
  return { file: destFile, bytes: size, sha256, blocksFetched, blocksReused };
}
