// Resumable, parallel ranged download of one artifact, checked against the sha256 that the upload
// stored in the blob's metadata. Finished ranges are recorded beside the partial file, so a retry
// fetches only what is missing.
//
// Each range is written to its place in the file as it arrives, in runs of about a MiB, so memory
// stays flat whatever the range size. A fresh download hashes those runs in byte order as they land,
// on the hashing thread, from the page cache they were just written to: the hash follows the range
// that is next in order while it arrives, and fetching runs at most a small window ahead of the hash.
// A resumed download hashes the finished file instead, since part of it came from an earlier attempt.
import { BlobChecksumError, BlobNotOursError } from '../protocol/errors';
import type { BlobClient, ContainerClient } from '@azure/storage-blob';
import { mkdir, open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { sha256File } from '../engines/checksum';
import { forEachLimited, type TransferOptions } from './block-upload';
import { inlineSha256, startBlockHasher, type Sha256Feed } from './block-hasher';

export { BlobChecksumError };

export interface DownloadResult {
  file: string;
  bytes: number;
  sha256: string;
  blocksFetched: number;
  blocksReused: number;
}

/**
 * The journal of finished ranges (the range size, the blob version they came from, their indexes),
 * rewritten after each range; writes never overlap and the latest state always lands.
 */
function rangeJournal(file: string, rangeBytes: number, etag: string | undefined, done: Set<number>): { record: () => Promise<void> } {
  let writing: Promise<void> | undefined;
  let dirty = false;
  const flush = async (): Promise<void> => {
    while (dirty) {
      dirty = false;
      await writeFile(`${file}.tmp`, JSON.stringify({ rangeBytes, etag, done: [...done] }));
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

/** What an earlier attempt journalled: the ranges it finished, if it cut the blob into ranges of this size. */
async function journalled(file: string, rangeBytes: number): Promise<{ etag?: string; done: Set<number> }> {
  const journal = await readFile(file, 'utf8').then((t) => JSON.parse(t) as { rangeBytes?: number; etag?: string; done?: number[] }, () => undefined);
  const fits = journal?.rangeBytes === rangeBytes && Array.isArray(journal.done);
  return { etag: journal?.etag, done: new Set(fits ? journal.done : []) };
}

/**
 * The range size a download asks for with a given upload block size: at least DOWNLOAD_RANGE_BYTES.
 * Each range is written as it arrives, so memory does not grow with it; fewer, larger ranges cost
 * the service and the client less per byte (measured by `npm run bench -- download`).
 */
export const DOWNLOAD_RANGE_BYTES = 32 * 1024 * 1024;
export const downloadRangeBytes = (blockSizeBytes: number): number => Math.max(blockSizeBytes, DOWNLOAD_RANGE_BYTES);

/**
 * Folds the partial file into a sha256 strictly in byte order while its pieces land out of order:
 * each run of bytes written is handed to the hashing thread (which reads it back from the page
 * cache, just written) once everything before it has landed, so the hash follows the in-order range
 * as it arrives. `room(offset)` resolves once `offset` is within `windowBytes` of what is hashed, so
 * the fetch never runs far ahead of the hash.
 */
class InOrderHash {
  private readonly landed = new Map<number, number>();
  private readonly waiting: { offset: number; wake: () => void; fail: (err: unknown) => void }[] = [];
  /** Where the next run to hand over starts. */
  private frontier = 0;
  private hashedBytes = 0;
  private lastInThread: Promise<void> = Promise.resolve();
  private failure?: { error: unknown };

  constructor(
    private readonly file: string,
    private readonly windowBytes: number,
    private readonly hasher: Sha256Feed,
  ) {}

  room(offset: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure.error);
    if (offset < this.hashedBytes + this.windowBytes) return Promise.resolve();
    return new Promise((wake, fail) => this.waiting.push({ offset, wake, fail }));
  }

  /** A range failed: it will never be hashed, so nobody waiting for room gets it. */
  abort(error: unknown): void {
    this.failure ??= { error };
    for (const w of this.waiting.splice(0)) w.fail(error);
  }

  /**
   * `length` bytes at `offset` are in the file (`chunks`, still in memory). A hash kept on this thread
   * takes the chunks of a run that is next in order straight away, without reading them back.
   */
  add(offset: number, length: number, chunks: Buffer[]): void {
    if (offset === this.frontier && this.hasher.sha256Bytes) {
      this.hasher.sha256Bytes(chunks);
      this.frontier += length;
      this.hashed(length);
    } else {
      this.landed.set(offset, length);
    }
    for (let run = this.landed.get(this.frontier); run !== undefined; run = this.landed.get(this.frontier)) {
      this.landed.delete(this.frontier);
      const at = this.frontier;
      this.frontier += run;
      this.lastInThread = this.hasher.sha256File(this.file, at, run).then(
        () => this.hashed(run),
        (err: unknown) => this.abort(err),
      );
    }
  }

  private hashed(bytes: number): void {
    this.hashedBytes += bytes;
    for (let i = this.waiting.length - 1; i >= 0; i--)
      if (this.waiting[i].offset < this.hashedBytes + this.windowBytes) this.waiting.splice(i, 1)[0].wake();
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

type Ranged = Awaited<ReturnType<BlobClient['download']>>;

/** Received data is written in runs of about this much: one write call per run, not one per socket read. */
const WRITE_RUN_BYTES = 1024 * 1024;

/** Writes `chunks` at `position`, all of them: a short write goes on from where it stopped. */
async function writeAll(file: FileHandle, chunks: Buffer[], position: number): Promise<void> {
  let rest = chunks;
  let at = position;
  while (rest.length) {
    let { bytesWritten } = await file.writev(rest, at);
    at += bytesWritten;
    while (rest.length && bytesWritten >= rest[0].length) {
      bytesWritten -= rest[0].length;
      rest = rest.slice(1);
    }
    if (bytesWritten > 0) rest = [rest[0].subarray(bytesWritten), ...rest.slice(1)];
  }
}

/**
 * Writes the blob's `length` bytes from `offset` to the same place in `file`: one ranged GET of the
 * blob version `etag` only (or the body of one already answered, `answered`), written as it arrives
 * in runs of WRITE_RUN_BYTES, each reported to `wrote` (with its chunks) once in the file, so memory
 * stays flat whatever the range size. Anything but exactly `length` bytes is an error.
 */
async function fetchRange(
  blob: BlobClient,
  file: FileHandle,
  offset: number,
  length: number,
  wrote: (offset: number, length: number, chunks: Buffer[]) => void,
  etag: string | undefined,
  signal?: AbortSignal,
  answered?: Ranged,
): Promise<void> {
  const { readableStreamBody: body } =
    answered ?? (await blob.download(offset, length, { abortSignal: signal, maxRetryRequests: 5, conditions: etag ? { ifMatch: etag } : undefined }));
  let at = offset;
  let run: Buffer[] = [];
  let runBytes = 0;
  for await (const chunk of body! as AsyncIterable<Buffer>) {
    if (at + runBytes + chunk.length > offset + length) throw new Error(`the service sent more than the ${length} bytes asked for at offset ${offset}`);
    run.push(chunk);
    runBytes += chunk.length;
    if (runBytes >= WRITE_RUN_BYTES) {
      await writeAll(file, run, at);
      wrote(at, runBytes, run);
      at += runBytes;
      run = [];
      runBytes = 0;
    }
  }
  if (runBytes) {
    await writeAll(file, run, at);
    wrote(at, runBytes, run);
  }
  at += runBytes;
  if (at !== offset + length) throw new Error(`the service sent ${at - offset} of the ${length} bytes asked for at offset ${offset}`);
}

/**
 * The blob's size and sha256 metadata. With `firstBlockBytes`, from the ranged GET of the first
 * range, whose answer carries both (Content-Range names the whole size, and a GET returns the
 * metadata as a HEAD does): one round trip before the data flows, not two. That answer's body is
 * still unread and is returned as `first`. An empty blob has no range to ask for (416), so its
 * properties are asked instead.
 */
async function lookUp(blob: BlobClient, firstBlockBytes: number | undefined, signal?: AbortSignal): Promise<{ size: number; sha256?: string; etag?: string; first?: Ranged }> {
  if (firstBlockBytes) {
    const first = await blob.download(0, firstBlockBytes, { abortSignal: signal, maxRetryRequests: 5 }).catch((err: { statusCode?: number }) => {
      if (err.statusCode === 416) return undefined;
      throw err;
    });
    if (first) {
      // Nobody reads the body until its range's turn: an error before then is kept for that reader
      // (the stream stays errored), not thrown at the process.
      first.readableStreamBody?.on('error', () => {});
      const whole = Number(/\/(\d+)$/.exec(first.contentRange ?? '')?.[1] ?? first.contentLength);
      return { size: whole, sha256: first.metadata?.sha256, etag: first.etag, first };
    }
  }
  const props = await blob.getProperties({ abortSignal: signal });
  return { size: props.contentLength ?? 0, sha256: props.metadata?.sha256, etag: props.etag };
}

/**
 * Downloads `blobName` to `destFile` in ranges of `options.blockSizeBytes` (callers pick it with
 * `downloadRangeBytes`), `options.concurrency` at a time, and checks the whole against the blob's
 * sha256 before the file takes its name.
 */
export async function downloadVerified(container: ContainerClient, blobName: string, destFile: string, options: TransferOptions): Promise<DownloadResult> {
  const blob = container.getBlobClient(blobName);
  const rangeBytes = options.blockSizeBytes;
  const partial = `${destFile}.partial`;
  const journalFile = `${partial}.done.json`;
  await mkdir(dirname(destFile), { recursive: true });
  const before = await journalled(journalFile, rangeBytes);
  const done = before.done;
  // A fresh download asks for its first range straight away and learns the size from it.
  const { size, sha256: expected, etag, first: firstAnswer } = await lookUp(blob, done.has(0) ? undefined : rangeBytes, options.signal);
  let first = firstAnswer;
  if (!expected) {
    first?.readableStreamBody?.destroy();
    throw new BlobNotOursError(`blob ${blobName} carries no sha256 metadata; it was not uploaded by airlift`);
  }
  // Ranges of another version of the blob, or of a partial file that is gone, are worth nothing.
  if (before.etag !== etag) done.clear();
  let handle = done.size ? await open(partial, 'r+').catch(() => undefined) : undefined;
  if (!handle) done.clear();
  const resumed = done.size > 0;
  try {
    if (!resumed) await rm(journalFile, { force: true });
    handle ??= await open(partial, 'w+');
  } catch (err) {
    first?.readableStreamBody?.destroy();
    throw err;
  }
  const journal = rangeJournal(journalFile, rangeBytes, etag, done);
  const blocks = Math.max(1, Math.ceil(size / rangeBytes));
  // One range is hashed on this thread as it lands; more are hashed on a thread of their own, which
  // starts while the first range arrives.
  const inOrder = resumed ? undefined : new InOrderHash(partial, options.concurrency * 2 * rangeBytes, blocks === 1 ? inlineSha256() : startBlockHasher());
  let bytesDone = 0;
  let blocksFetched = 0;
  let blocksReused = 0;
  let sha256: string | undefined;
  try {
    await forEachLimited(blocks, options.concurrency, async (i) => {
      options.signal?.throwIfAborted();
      const offset = i * rangeBytes;
      const length = Math.max(0, Math.min(rangeBytes, size - offset));
      if (done.has(i)) {
        blocksReused++;
      } else {
        await inOrder?.room(offset);
        try {
          const answered = i === 0 ? first : undefined;
          if (i === 0) first = undefined;
          if (length > 0) await fetchRange(blob, handle, offset, length, (at, bytes, chunks) => inOrder?.add(at, bytes, chunks), etag, options.signal, answered);
        } catch (err) {
          inOrder?.abort(err);
          throw err;
        }
        done.add(i);
        blocksFetched++;
        // One range is all or nothing: nothing to resume from, so nothing to journal.
        if (blocks > 1) await journal.record();
      }
      bytesDone += length;
      options.onProgress?.(bytesDone, size);
    });
    await handle.truncate(size);
    sha256 = inOrder ? await inOrder.digest() : undefined;
  } finally {
    first?.readableStreamBody?.destroy();
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
