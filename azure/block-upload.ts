// Resumable, parallel block upload of one artifact. Block ids are derived from the artifact's sha256
// and the block index, so a retry lists the blocks already staged and sends only the rest.
// Memory is bounded by concurrency x block size, whatever the artifact's size.
import type { BlockBlobClient, ContainerClient } from '@azure/storage-blob';
import { open, readFile, stat } from 'node:fs/promises';
import { sha256File, type BlockDigests } from '../engines/checksum';
import { startBlockHasher } from './block-hasher';

export interface TransferOptions {
  /** The block size asked for; an upload raises it when the artifact would need more than `maxBlocks` blocks. */
  blockSizeBytes: number;
  /** At most this many blocks per blob (default MAX_BLOCKS; tests lower it). */
  maxBlocks?: number;
  concurrency: number;
  signal?: AbortSignal;
  /** Caps the bandwidth used, so a copy in business hours does not saturate the uplink. */
  maxMiBps?: number;
  /** Called after each block with the bytes done so far (reused blocks count as done). */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
}

export interface UploadResult {
  blobName: string;
  bytes: number;
  blocks: number;
  blocksSent: number;
  blocksReused: number;
  sha256: string;
  /** The block size used: the one asked for, or larger so the blob fits in `maxBlocks` blocks. */
  blockSizeBytes: number;
  /** The blob was already committed with this sha256: nothing was sent. */
  alreadyCommitted: boolean;
}

/**
 * Put Block List: a block blob has at most 50,000 committed blocks, each at most 4000 MiB
 * (REST API 2019-12-12 and later; "Understanding block blobs, append blobs, and page blobs").
 * 50,000 blocks of 4 MiB cap an artifact at 195 GiB, and the limit bites only at the final commit.
 */
export const MAX_BLOCKS = 50_000;
export const MAX_BLOCK_BYTES = 4000 * 1024 * 1024;

/**
 * The block size for an artifact of `size` bytes: the one asked for, or the smallest multiple of it
 * that fits the artifact in `maxBlocks` blocks. It depends only on the size, so a resumed upload
 * cuts the same blocks (and block ids) as the attempt before it.
 */
export function blockSizeFor(size: number, requested: number, maxBlocks = MAX_BLOCKS): number {
  const blockSize = requested * Math.max(1, Math.ceil(size / (requested * maxBlocks)));
  if (blockSize > MAX_BLOCK_BYTES)
    throw new RangeError(`an artifact of ${size} bytes needs blocks of ${blockSize} bytes to fit ${maxBlocks} blocks, more than the ${MAX_BLOCK_BYTES} bytes a block may hold`);
  return blockSize;
}

/**
 * An artifact that fits in one round of parallel blocks (block size x concurrency, at most
 * MAX_WHOLE_BYTES) gains nothing from blocks: they would all be in flight at once, and a retry would
 * send most of it again either way. It goes whole, in one Put Blob: one request where blocks take a
 * check, the blocks and a commit. Not under a bandwidth cap, where blocks keep the rate even and the
 * progress moving.
 */
export function sentWhole(size: number, t: Pick<TransferOptions, 'blockSizeBytes' | 'concurrency' | 'maxMiBps'>): boolean {
  return !t.maxMiBps && size <= Math.min(t.blockSizeBytes * t.concurrency, MAX_WHOLE_BYTES);
}

/** The largest artifact sent whole: held in memory for the one request, as the Azure SDK's own single-shot limit. */
export const MAX_WHOLE_BYTES = 256 * 1024 * 1024;

/**
 * The block size an upload with these settings cuts an artifact of `size` bytes into: the whole
 * artifact when it goes in one request, else `blockSizeFor`. The snapshot records the block MD5s
 * with the same, so the upload finds them ready.
 */
export function uploadBlockSize(size: number, t: Pick<TransferOptions, 'blockSizeBytes' | 'concurrency' | 'maxMiBps' | 'maxBlocks'>): number {
  return sentWhole(size, t) ? Math.max(1, size) : blockSizeFor(size, t.blockSizeBytes, t.maxBlocks);
}

export const blockId = (sha256: string, index: number): string =>
  Buffer.from(`airlift-${sha256.slice(0, 16)}-${String(index).padStart(6, '0')}`).toString('base64');

/**
 * Runs `work` over 0..count-1 with at most `concurrency` in flight. After the first failure no new
 * index starts; the ones in flight are waited for, then the first failure is thrown, so nothing of
 * this call still runs once it has returned.
 */
export async function forEachLimited(count: number, concurrency: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (!failure && next < count) {
      const index = next++;
      try {
        await work(index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  if (failure) throw failure.error;
}

/** Waits as long as needed to keep the average rate at or under `maxMiBps`. */
export function bandwidthLimiter(maxMiBps?: number): (bytes: number) => Promise<void> {
  if (!maxMiBps) return async () => {};
  const started = Date.now();
  let granted = 0;
  return async (bytes) => {
    granted += bytes;
    const due = started + (granted / (maxMiBps * 1024 * 1024)) * 1000;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  };
}

/**
 * The block MD5s the snapshot recorded, when they describe this very upload: the same artifact
 * (sha256 and size) cut into blocks of the same size. Anything else (missing, another policy's block
 * size, unreadable) means the blocks are hashed as they are read.
 */
async function recordedDigests(path: string | undefined, expect: { sha256: string; bytes: number; blockSizeBytes: number; blocks: number }): Promise<Buffer[] | undefined> {
  if (!path) return undefined;
  const recorded = await readFile(path, 'utf8').then((text) => JSON.parse(text) as BlockDigests, () => undefined);
  const fits = recorded?.sha256 === expect.sha256 && recorded.bytes === expect.bytes && recorded.blockSizeBytes === expect.blockSizeBytes && recorded.md5?.length === expect.blocks;
  return fits ? recorded.md5.map((m) => Buffer.from(m, 'base64')) : undefined;
}

export async function uploadResumable(
  container: ContainerClient,
  blobName: string,
  file: string,
  options: TransferOptions & { sha256?: string; metadata?: Record<string, string>; blockDigests?: string },
): Promise<UploadResult> {
  const { size } = await stat(file);
  const sha256 = options.sha256 ?? (await sha256File(file));
  const blob = container.getBlockBlobClient(blobName);
  const blockSize = uploadBlockSize(size, options);
  const blocks = Math.max(1, Math.ceil(size / blockSize));
  const base = { blobName, bytes: size, blocks, sha256, blockSizeBytes: blockSize };
  const recorded = await recordedDigests(options.blockDigests, { sha256, bytes: size, blockSizeBytes: blockSize, blocks });
  let unconfirmed = false;
  if (sentWhole(size, options)) {
    const whole = await putWhole(blob, file, size, sha256, recorded?.[0], options);
    if (whole) return { ...base, ...whole };
    // The service did not say what it received: the same bytes go again as one block, checked before
    // the commit, and the blob just put is not taken as finished.
    unconfirmed = true;
  }

  // Both asked at once: one round trip before the first block, not two.
  const missing = (err: { statusCode?: number }) => {
    if (err.statusCode === 404) return undefined;
    throw err;
  };
  const [existing, list] = await Promise.all([blob.getProperties().catch(missing), blob.getBlockList('uncommitted').catch(missing)]);
  // A blob committed from blocks (each checked against its MD5 on the way in) has no MD5 of its own;
  // one put whole has the MD5 of what the service received, which must be this artifact's.
  const storedMd5 = existing?.contentMD5 && Buffer.from(existing.contentMD5);
  const sameBytes = storedMd5 ? blocks === 1 && recorded !== undefined && storedMd5.equals(recorded[0]) : true;
  if (!unconfirmed && existing?.metadata?.sha256 === sha256 && existing.contentLength === size && sameBytes) {
    options.onProgress?.(size, size);
    return { ...base, blocksSent: 0, blocksReused: blocks, alreadyCommitted: true };
  }
  const staged = new Map<string, number>((list?.uncommittedBlocks ?? []).map((b) => [b.name, b.size]));

  const ids = Array.from({ length: blocks }, (_, i) => blockId(sha256, i));
  const lengthOf = (i: number) => Math.max(0, Math.min(blockSize, size - i * blockSize));
  let blocksSent = 0;
  let blocksReused = 0;
  let bytesDone = 0;
  const throttle = bandwidthLimiter(options.maxMiBps);
  const handle = await open(file, 'r');
  // One buffer per block in flight, reused: memory stays at concurrency x block size.
  const pool: Buffer[] = [];
  const hasher = recorded ? undefined : startBlockHasher();
  try {
    await forEachLimited(blocks, options.concurrency, async (i) => {
      options.signal?.throwIfAborted();
      const length = lengthOf(i);
      if (staged.get(ids[i]) === length) {
        blocksReused++;
      } else {
        await throttle(length);
        const readBuffer = pool.pop() ?? Buffer.allocUnsafeSlow(blockSize);
        const { bytesRead } = await handle.read(readBuffer, 0, length, i * blockSize);
        // Without a recorded MD5, the read buffer goes to the hashing thread and comes back with it.
        const { block, md5 } = recorded ? { block: readBuffer, md5: recorded[i] } : await hasher!.md5(readBuffer, length);
        if (bytesRead !== length) throw new Error(`${file} changed while uploading: block ${i} read ${bytesRead} of ${length} bytes`);
        await blob.stageBlock(ids[i], block.subarray(0, length), length, { transactionalContentMD5: md5, abortSignal: options.signal });
        pool.push(block);
        blocksSent++;
      }
      bytesDone += length;
      options.onProgress?.(bytesDone, size);
    });
  } finally {
    await Promise.all([handle.close(), hasher?.close()]);
  }
  await blob.commitBlockList(ids, {
    metadata: { ...options.metadata, sha256 },
    blobHTTPHeaders: { blobContentType: 'application/octet-stream' },
    abortSignal: options.signal,
  });
  return { ...base, blocksSent, blocksReused, alreadyCommitted: false };
}

/**
 * The artifact in one Put Blob, sent only if no blob of that name exists yet (If-None-Match: *), with
 * the MD5 the snapshot recorded of the whole file (else hashed here as read) as
 * `x-ms-blob-content-md5`, which the service checks before it keeps the blob (for a block blob put
 * in one request Azure takes it as Content-MD5, its maintainers in Azure/azure-storage-ruby#64;
 * Azurite 3.35 compares it too). The check that does not rest on that: the service answers with the MD5 it computed of what it
 * received (Put Blob, response header Content-MD5, "computed by Blob Storage"); if that differs, the
 * blob is deleted (only the version this call wrote, If-Match) and the upload fails. An answer
 * without it proves nothing, so the caller sends the bytes again as one block, which the service
 * checks before the commit (undefined is returned). A blob already there is kept when its sha256,
 * size and stored MD5 say it is this artifact (an earlier attempt finished), and replaced otherwise.
 */
async function putWhole(
  blob: BlockBlobClient,
  file: string,
  size: number,
  sha256: string,
  recordedMd5: Buffer | undefined,
  options: { metadata?: Record<string, string>; signal?: AbortSignal; onProgress?: (done: number, total: number) => void },
): Promise<Pick<UploadResult, 'blocksSent' | 'blocksReused' | 'alreadyCommitted'> | undefined> {
  let body: Buffer = Buffer.allocUnsafeSlow(size);
  const handle = await open(file, 'r');
  try {
    for (let done = 0; done < size; ) {
      const { bytesRead } = await handle.read(body, done, size - done, done);
      if (bytesRead === 0) throw new Error(`${file} changed while uploading: it ends after ${done} of ${size} bytes`);
      done += bytesRead;
    }
  } finally {
    await handle.close();
  }
  let md5 = recordedMd5;
  if (!md5) {
    const hasher = startBlockHasher();
    try {
      ({ block: body, md5 } = await hasher.md5(body, size));
    } finally {
      await hasher.close();
    }
  }
  const put = (onlyIfAbsent: boolean) =>
    blob.upload(body, size, {
      conditions: onlyIfAbsent ? { ifNoneMatch: '*' } : undefined,
      metadata: { ...options.metadata, sha256 },
      blobHTTPHeaders: { blobContentType: 'application/octet-stream', blobContentMD5: md5 },
      abortSignal: options.signal,
    });
  const refused = (err: { statusCode?: number; code?: string }) => {
    // The service compared the bytes with the MD5 sent and refused them: nothing was kept.
    if (err.statusCode === 400 && /md5/i.test(`${err.code} ${(err as Error).message}`))
      throw new Error(`the service refused ${file}: its bytes do not have the MD5 ${md5!.toString('base64')} the snapshot wrote (changed on disk since?); nothing was kept`);
    throw err;
  };
  let answer = await put(true).catch((err: { statusCode?: number }) => (err.statusCode === 409 ? undefined : refused(err)));
  if (!answer) {
    const there = await blob.getProperties({ abortSignal: options.signal });
    if (there.metadata?.sha256 === sha256 && there.contentLength === size && there.contentMD5 && Buffer.from(there.contentMD5).equals(md5!)) {
      options.onProgress?.(size, size);
      return { blocksSent: 0, blocksReused: 1, alreadyCommitted: true };
    }
    answer = await put(false).catch(refused);
  }
  if (!answer.contentMD5) return undefined;
  if (!Buffer.from(answer.contentMD5).equals(md5!)) {
    await blob.deleteIfExists({ conditions: { ifMatch: answer.etag }, abortSignal: options.signal }).catch((err: { statusCode?: number }) => {
      if (err.statusCode !== 412) throw err;
    });
    throw new Error(
      `the service stored ${file} with MD5 ${Buffer.from(answer.contentMD5).toString('base64')}, not the ${md5!.toString('base64')} the snapshot wrote: the blob was deleted; a retry sends it again`,
    );
  }
  options.onProgress?.(size, size);
  return { blocksSent: 1, blocksReused: 0, alreadyCommitted: false };
}
