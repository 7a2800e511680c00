// Resumable, parallel ranged download of one artifact, checked against the sha256 that the upload
// stored in the blob's metadata. Finished ranges are recorded beside the partial file, so a retry
// fetches only what is missing.
//
// Each range is streamed straight to its place in the file, so memory stays flat whatever the range
// size. A fresh download hashes the blocks in index order as they land, on the hashing thread, from
// the page cache they were just written to; fetching runs at most a small window of blocks ahead of
// the hash. A resumed download hashes the finished file instead, since part of it came from an
// earlier attempt.
import { BlobChecksumError, BlobNotOursError } from '../protocol/errors';
import type { BlobClient, ContainerClient } from '@azure/storage-blob';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { dirname } from 'node:path';
import { sha256File } from '../engines/checksum';
import { forEachLimited, type TransferOptions } from './block-upload';
import { startBlockHasher } from './block-hasher';

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
 * Folds the partial file's blocks into a sha256 strictly in index order while they land out of
 * order: the hashing thread reads each block back (from the page cache, just written) once every
 * block before it has landed. `room(i)` resolves once block i is within `window` blocks of the last
 * one hashed, so the fetch never runs far ahead of the hash.
 */
class InOrderHash {
  private readonly hasher = startBlockHasher();
  private readonly landed = new Map<number, { offset: number; length: number }>();
  private readonly waiting: { index: number; wake: () => void; fail: (err: unknown) => void }[] = [];
  private next = 0;
  private hashed = 0;
  private lastInThread: Promise<void> = Promise.resolve();
  private failure?: { error: unknown };

  constructor(
    private readonly file: string,
    private readonly window: number,
  ) {}

  room(index: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure.error);
    if (index < this.hashed + this.window) return Promise.resolve();
    return new Promise((wake, fail) => this.waiting.push({ index, wake, fail }));
  }

  /** A block failed: it will never be hashed, so nobody waiting for room gets it. */
  abort(error: unknown): void {
    this.failure ??= { error };
    for (const w of this.waiting.splice(0)) w.fail(error);
  }

  /** Block `index` (`length` bytes at `offset`) is in the file. */
  add(index: number, offset: number, length: number): void {
    this.landed.set(index, { offset, length });
    for (let b = this.landed.get(this.next); b; b = this.landed.get(this.next)) {
      this.landed.delete(this.next++);
      this.lastInThread = this.hasher.sha256File(this.file, b.offset, b.length).then(
        () => {
          this.hashed++;
          for (let i = this.waiting.length - 1; i >= 0; i--)
            if (this.waiting[i].index < this.hashed + this.window) this.waiting.splice(i, 1)[0].wake();
        },
        (err: unknown) => this.abort(err),
      );
    }
  }

  async digest(): Promise<string> {
    await this.lastInThread;
    if (this.failure) throw this.failure.error;
    return this.hasher.sha256Digest();
  }

  close(): Promise<void> {
    return this.hasher.close();
  }
}

/**
 * Writes the blob's `length` bytes from `offset` to the same place in `file`: one ranged GET streamed
 * straight to disk, so memory stays flat whatever the range size. Anything but exactly `length`
 * bytes is an error.
 */
async function fetchRange(blob: BlobClient, file: string, offset: number, length: number, signal?: AbortSignal): Promise<void> {
  const { readableStreamBody: body } = await blob.download(offset, length, { abortSignal: signal, maxRetryRequests: 5 });
  let received = 0;
  body!.on('data', (chunk: Buffer) => (received += chunk.length));
  await pipeline(body!, createWriteStream(file, { flags: 'r+', start: offset }), { signal });
  if (received !== length) throw new Error(`the service sent ${received} of the ${length} bytes asked for at offset ${offset}`);
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
  const inOrder = resumed ? undefined : new InOrderHash(partial, options.concurrency * 2);
  let bytesDone = 0;
  let blocksFetched = 0;
  let blocksReused = 0;
  let sha256: string | undefined;
  try {
    await forEachLimited(blocks, options.concurrency, async (i) => {
      options.signal?.throwIfAborted();
      const offset = i * options.blockSizeBytes;
      const length = Math.max(0, Math.min(options.blockSizeBytes, size - offset));
      if (done.has(i)) {
        blocksReused++;
      } else {
        await inOrder?.room(i);
        try {
          if (length > 0) await fetchRange(blob, partial, offset, length, options.signal);
        } catch (err) {
          inOrder?.abort(err);
          throw err;
        }
        inOrder?.add(i, offset, length);
        done.add(i);
        blocksFetched++;
        await journal.record();
      }
      bytesDone += length;
      options.onProgress?.(bytesDone, size);
    });
    await handle.truncate(size);
    sha256 = inOrder ? await inOrder.digest() : undefined;
  } finally {
    await Promise.all([handle.close(), inOrder?.close()]);
  }
  sha256 ??= await sha256File(partial);
  if (sha256 !== expected) {
    await rm(partial, { force: true });
    await rm(journalFile, { force: true });
    throw new BlobChecksumError(`downloaded ${blobName} has sha256 ${sha256} but the blob says ${expected}; the partial file was discarded, a retry downloads it again`);
  }
  await rename(partial, destFile);
  await rm(journalFile, { force: true });
  return { file: destFile, bytes: size, sha256, blocksFetched, blocksReused };
}
