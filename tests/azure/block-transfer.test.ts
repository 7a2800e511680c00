// Block upload and download against a real Azurite, with requests counted on the wire.
import { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { containerReadSas, sasWindow } from '../../azure/sas';
import { spawn } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAzurite, type AzuriteHandle } from '../../azure/azurite';
import { blockSizeFor, MAX_BLOCKS, MAX_WHOLE_BYTES, sentWhole, uploadBlockSize, uploadResumable } from '../../azure/block-upload';
import { BlobChecksumError, downloadVerified } from '../../azure/block-download';
import { BlobNotOursError } from '../../protocol/errors';
import { digestArtifact } from '../../engines/checksum';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy';

const BLOCK = 256 * 1024;
let azurite: AzuriteHandle;
let proxy: CountingProxy;
let container: ContainerClient;
let dir: string;

beforeAll(async () => {
  azurite = await startAzurite();
  proxy = await startCountingProxy(azurite.connectionString);
  container = BlobServiceClient.fromConnectionString(proxy.connectionString).getContainerClient('transfer-test');
  await container.createIfNotExists();
  dir = mkdtempSync(join(tmpdir(), 'airlift-blob-'));
});
afterAll(async () => {
  await proxy?.close();
  await azurite?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function artifact(name: string, bytes: number): { file: string; sha256: string } {
  const file = join(dir, name);
  const data = randomBytes(bytes);
  writeFileSync(file, data);
  return { file, sha256: createHash('sha256').update(data).digest('hex') };
}

const count = (what: string) => proxy.seen.filter((s) => s === what).length;

test('upload then download round-trips the bytes, with sha256 in metadata and deterministic block ids', async () => {
  const { file, sha256 } = artifact('roundtrip.bin', 3 * BLOCK + 1234);
  proxy.seen.length = 0;
  const up = await uploadResumable(container, 't1/m1/roundtrip.bin', file, { blockSizeBytes: BLOCK, concurrency: 3 });
  expect(up).toMatchObject({ blocks: 4, blocksSent: 4, blocksReused: 0, sha256 });
  expect(count('PUT block')).toBe(4);
  expect(count('PUT blocklist')).toBe(1);
  const props = await container.getBlobClient('t1/m1/roundtrip.bin').getProperties();
  expect(props.metadata?.sha256).toBe(sha256);

  const down = await downloadVerified(container, 't1/m1/roundtrip.bin', join(dir, 'back', 'roundtrip.bin'), { blockSizeBytes: BLOCK, concurrency: 2 });
  expect(down.sha256).toBe(sha256);
  expect(readFileSync(down.file).equals(readFileSync(file))).toBe(true);

  proxy.seen.length = 0;
  const again = await uploadResumable(container, 't1/m1/roundtrip.bin', file, { blockSizeBytes: BLOCK, concurrency: 3 });
  expect(again.alreadyCommitted).toBe(true);
  expect(count('PUT block')).toBe(0);
});

describe('the block size grows so an artifact of any realistic size fits in 50,000 blocks (issue 8 item 12)', () => {
  // Put Block List: at most 50,000 committed blocks per blob, each at most 4000 MiB; with 4 MiB
  // blocks an artifact over 195 GiB would be refused only at the final commit.
  const MiB = 1024 * 1024;
  const GiB = 1024 * MiB;

  test('4 MiB blocks stay 4 MiB up to 195 GiB; above, the smallest multiple that fits', () => {
    expect(blockSizeFor(195 * GiB, 4 * MiB)).toBe(4 * MiB);
    expect(Math.ceil((195 * GiB) / (4 * MiB))).toBeLessThanOrEqual(MAX_BLOCKS);
    expect(blockSizeFor(300 * GiB, 4 * MiB)).toBe(8 * MiB);
    const tib = blockSizeFor(4 * 1024 * GiB, 4 * MiB);
    expect(Math.ceil((4 * 1024 * GiB) / tib)).toBeLessThanOrEqual(MAX_BLOCKS);
    expect(tib % (4 * MiB)).toBe(0);
    // Past 50,000 blocks of 4000 MiB nothing fits: said up front, not at the commit.
    expect(() => blockSizeFor(200 * 1024 * GiB, 4 * MiB)).toThrow(/more than the 4194304000 bytes a block may hold/);
  });

  test('an upload over the block limit is committed in fewer, larger blocks, and reads back whole', async () => {
    // The limit lowered to 8 blocks: 17 blocks' worth of data goes as 6 blocks of 3 x 256 KiB.
    const { file, sha256 } = artifact('scaled.bin', 16 * BLOCK + 999);
    const up = await uploadResumable(container, 't5/m1/scaled.bin', file, { blockSizeBytes: BLOCK, concurrency: 3, maxBlocks: 8 });
    expect(up).toMatchObject({ blocks: 6, blockSizeBytes: 3 * BLOCK, sha256 });
    const list = await container.getBlockBlobClient('t5/m1/scaled.bin').getBlockList('committed');
    expect(list.committedBlocks?.length).toBe(6);
    expect(list.committedBlocks?.every((b) => b.size <= 3 * BLOCK)).toBe(true);
    const down = await downloadVerified(container, 't5/m1/scaled.bin', join(dir, 'back', 'scaled.bin'), { blockSizeBytes: BLOCK, concurrency: 2 });
    expect(down.sha256).toBe(sha256);
  });
});

test('many blocks through a few reused buffers: each block is sent once with its own MD5 and comes back where it belongs', async () => {
  const blocks = 23;
  const { file, sha256 } = artifact('many.bin', blocks * BLOCK + 777);
  const data = readFileSync(file);
  proxy.seen.length = 0;
  proxy.headers.length = 0;
  const up = await uploadResumable(container, 't5/m1/many.bin', file, { blockSizeBytes: BLOCK, concurrency: 3, sha256 });
  expect(up.blocksSent).toBe(blocks + 1);
  // Per-block integrity: the service checks each block against the MD5 sent with it.
  const md5OfBlock = (i: number) => createHash('md5').update(data.subarray(i * BLOCK, (i + 1) * BLOCK)).digest('base64');
  const sent = proxy.headers.filter((_, i) => proxy.seen[i] === 'PUT block').map((h) => h['content-md5']);
  expect(sent.sort()).toEqual(Array.from({ length: blocks + 1 }, (_, i) => md5OfBlock(i)).sort());

  const down = await downloadVerified(container, 't5/m1/many.bin', join(dir, 'back', 'many.bin'), { blockSizeBytes: BLOCK, concurrency: 3 });
  expect(down).toMatchObject({ sha256, blocksFetched: blocks + 1 });
  expect(readFileSync(down.file).equals(data)).toBe(true);
});

test('block MD5s recorded by the snapshot are the ones sent; bytes changed on disk after the snapshot are refused by the service', async () => {
  const blocks = 5;
  const { file, sha256 } = artifact('recorded.bin', blocks * BLOCK + 99);
  const data = readFileSync(file);
  const recorded = await digestArtifact(file, data.length, file, (size) => blockSizeFor(size, BLOCK));
  expect(recorded.sha256).toBe(sha256);
  const md5OfBlock = (i: number) => createHash('md5').update(data.subarray(i * BLOCK, (i + 1) * BLOCK)).digest('base64');
  expect(JSON.parse(readFileSync(recorded.blockDigests!, 'utf8')).md5).toEqual(Array.from({ length: blocks + 1 }, (_, i) => md5OfBlock(i)));

  proxy.seen.length = 0;
  proxy.headers.length = 0;
  const up = await uploadResumable(container, 't8/m1/recorded.bin', file, { blockSizeBytes: BLOCK, concurrency: 2, sha256, blockDigests: recorded.blockDigests });
  expect(up.blocksSent).toBe(blocks + 1);
  const sent = proxy.headers.filter((_, i) => proxy.seen[i] === 'PUT block').map((h) => h['content-md5']);
  expect(sent.sort()).toEqual(Array.from({ length: blocks + 1 }, (_, i) => md5OfBlock(i)).sort());

  // One byte of block 3 flips on disk after the snapshot: the service refuses that block (Put Block
  // checks Content-MD5, "Put Block" REST reference), so the copy fails instead of shipping it.
  const changed = Buffer.from(data);
  changed[3 * BLOCK + 10] ^= 0xff;
  writeFileSync(file, changed);
  await expect(uploadResumable(container, 't8/m1/changed.bin', file, { blockSizeBytes: BLOCK, concurrency: 2, sha256, blockDigests: recorded.blockDigests })).rejects.toThrow(/MD5/i);
  expect((await container.getBlobClient('t8/m1/changed.bin').exists())).toBe(false);

  // Recorded for another block size (the policy changed since the snapshot): hashed as read instead.
  const other = await uploadResumable(container, 't8/m1/other.bin', file, { blockSizeBytes: 2 * BLOCK, concurrency: 2, sha256: 'c'.repeat(64), blockDigests: recorded.blockDigests });
  expect(other.blocksSent).toBe(3);
});

test('an artifact that fits in one round of blocks goes whole in one request, checked against the MD5 the snapshot wrote', async () => {
  const settings = { blockSizeBytes: BLOCK, concurrency: 4 };
  const { file, sha256 } = artifact('whole.bin', 3 * BLOCK + 10);
  const data = readFileSync(file);
  const recorded = await digestArtifact(file, data.length, file, (size) => uploadBlockSize(size, settings));
  const md5 = createHash('md5').update(data).digest();
  expect(JSON.parse(readFileSync(recorded.blockDigests!, 'utf8')).md5).toEqual([md5.toString('base64')]);

  proxy.seen.length = 0;
  const up = await uploadResumable(container, 't9/m1/whole.bin', file, { ...settings, sha256, blockDigests: recorded.blockDigests });
  expect(up).toMatchObject({ blocks: 1, blocksSent: 1, alreadyCommitted: false });
  // One Put Blob: no check before it, no blocks, no commit.
  expect(proxy.seen).toEqual(['PUT']);
  const props = await container.getBlobClient('t9/m1/whole.bin').getProperties();
  expect(props.metadata?.sha256).toBe(sha256);
  expect(Buffer.from(props.contentMD5!).equals(md5)).toBe(true);

  // Sent again (an attempt that finished, then retried): the blob there is this artifact, so nothing is sent.
  proxy.seen.length = 0;
  const again = await uploadResumable(container, 't9/m1/whole.bin', file, { ...settings, sha256, blockDigests: recorded.blockDigests });
  expect(again).toMatchObject({ alreadyCommitted: true, blocksSent: 0 });
  expect(proxy.seen).toEqual(['PUT', 'HEAD']);

  // Bytes changed on disk after the snapshot: what the service received does not have the MD5 the
  // snapshot wrote, so the blob is deleted and the upload fails.
  const changed = Buffer.from(data);
  changed[BLOCK + 5] ^= 0xff;
  writeFileSync(file, changed);
  await expect(uploadResumable(container, 't9/m1/changed.bin', file, { ...settings, sha256, blockDigests: recorded.blockDigests })).rejects.toThrow(/MD5/);
  expect(await container.getBlobClient('t9/m1/changed.bin').exists()).toBe(false);

  // A blob of that name holding something else is replaced; without recorded MD5s the file is hashed as read.
  writeFileSync(file, data);
  await container.getBlockBlobClient('t9/m1/stale.bin').upload('stale', 5, { metadata: { sha256: 'e'.repeat(64) } });
  const replaced = await uploadResumable(container, 't9/m1/stale.bin', file, { ...settings, sha256 });
  expect(replaced).toMatchObject({ alreadyCommitted: false, blocksSent: 1 });
  const back = await downloadVerified(container, 't9/m1/stale.bin', join(dir, 'back', 'stale.bin'), { blockSizeBytes: BLOCK, concurrency: 2 });
  expect(readFileSync(back.file).equals(data)).toBe(true);

  // A service that does not say what MD5 it computed proves nothing: the same bytes go again as one
  // block, which the service checks against the snapshot's MD5 before the commit.
  proxy.seen.length = 0;
  proxy.dropResponseHeaders = (method, comp) => (method === 'PUT' && comp === '' ? ['content-md5'] : []);
  try {
    const unsaid = await uploadResumable(container, 't9/m1/unsaid.bin', file, { ...settings, sha256, blockDigests: recorded.blockDigests });
    expect(unsaid).toMatchObject({ blocks: 1, blocksSent: 1 });
  } finally {
    proxy.dropResponseHeaders = undefined;
  }
  expect(proxy.seen).toEqual(['PUT', 'HEAD', 'GET blocklist', 'PUT block', 'PUT blocklist']);
  expect((await container.getBlobClient('t9/m1/unsaid.bin').downloadToBuffer()).equals(data)).toBe(true);

  // Under a bandwidth cap the same artifact goes in blocks.
  proxy.seen.length = 0;
  const capped = await uploadResumable(container, 't9/m1/capped.bin', file, { ...settings, sha256, maxMiBps: 100 });
  expect(capped.blocks).toBe(4);
  expect(count('PUT block')).toBe(4);
});

test('only what fits in one round of blocks, at most 256 MiB and not under a bandwidth cap, goes whole', () => {
  const MiB = 1024 * 1024;
  expect(sentWhole(32 * MiB, { blockSizeBytes: 8 * MiB, concurrency: 4 })).toBe(true);
  expect(sentWhole(32 * MiB + 1, { blockSizeBytes: 8 * MiB, concurrency: 4 })).toBe(false);
  expect(sentWhole(32 * MiB, { blockSizeBytes: 8 * MiB, concurrency: 4, maxMiBps: 50 })).toBe(false);
  // 256 MiB blocks x 16 would hold 4 GiB in memory for one request (and past 2 GiB one read cannot fill it).
  expect(sentWhole(3 * 1024 * MiB, { blockSizeBytes: 256 * MiB, concurrency: 16 })).toBe(false);
  expect(sentWhole(MAX_WHOLE_BYTES, { blockSizeBytes: 256 * MiB, concurrency: 16 })).toBe(true);
  expect(uploadBlockSize(3 * 1024 * MiB, { blockSizeBytes: 256 * MiB, concurrency: 16 })).toBe(256 * MiB);
  expect(uploadBlockSize(0, { blockSizeBytes: MiB, concurrency: 4 })).toBe(1);
});

test('a download whose second range is held back fetches ahead only a bounded window, then checks the sha256 in order', async () => {
  const blocks = 12;
  const { file, sha256 } = artifact('late-second.bin', blocks * BLOCK + 5);
  await uploadResumable(container, 't6/m1/late-second.bin', file, { blockSizeBytes: BLOCK, concurrency: 4, sha256 });
  const ranged = () => proxy.headers.filter((h, i) => proxy.seen[i] === 'GET' && h['x-ms-range']).length;
  proxy.seen.length = 0;
  proxy.headers.length = 0;
  let fetchedWhileHeld = -1;
  proxy.delay = (method, headers) => {
    if (method !== 'GET' || headers['x-ms-range'] !== `bytes=${BLOCK}-${2 * BLOCK - 1}`) return 0;
    setTimeout(() => (fetchedWhileHeld = ranged()), 1500);
    return 1600;
  };
  try {
    const down = await downloadVerified(container, 't6/m1/late-second.bin', join(dir, 'back', 'late-second.bin'), { blockSizeBytes: BLOCK, concurrency: 4 });
    expect(down.sha256).toBe(sha256);
    expect(readFileSync(down.file).equals(readFileSync(file))).toBe(true);
  } finally {
    proxy.delay = undefined;
  }
  // The first range (which also told the size) is hashed; while the second is held, ranges run
  // ahead of the hash by a window of 2 x concurrency ranges and no further: ranges 0..8 asked for.
  expect(fetchedWhileHeld).toBe(9);
  // No HEAD before the data: every request of the download is a ranged GET, one per range.
  expect(ranged()).toBe(blocks + 1);
  expect(proxy.seen.filter((m) => m !== 'GET')).toEqual([]);
});

/** An artifact of `blocks` BLOCKs uploaded as t7/m1/<name>.bin, and where its download goes. */
async function uploaded(name: string, blocks: number): Promise<{ file: string; sha256: string; blobName: string; dest: string }> {
  const { file, sha256 } = artifact(`${name}.bin`, blocks * BLOCK);
  const blobName = `t7/m1/${name}.bin`;
  await uploadResumable(container, blobName, file, { blockSizeBytes: BLOCK, concurrency: 4, sha256 });
  return { file, sha256, blobName, dest: join(dir, 'back', `${name}.bin`) };
}

/** Downloads `blobName` to `dest` in BLOCK ranges and stops it once half of its `blocks` are in. */
async function stopHalfWay(blobName: string, dest: string, blocks: number, concurrency: number): Promise<void> {
  const stop = new AbortController();
  const halfWay = (done: number) => done >= (blocks / 2) * BLOCK && stop.abort();
  await expect(downloadVerified(container, blobName, dest, { blockSizeBytes: BLOCK, concurrency, signal: stop.signal, onProgress: halfWay })).rejects.toThrow();
}

test('a download stopped half way resumes: only the missing blocks are fetched, and the whole file is checked', async () => {
  const blocks = 16;
  const { file, sha256, blobName, dest } = await uploaded('resume-down', blocks);
  await stopHalfWay(blobName, dest, blocks, 2);
  const finished = (JSON.parse(readFileSync(`${dest}.partial.done.json`, 'utf8')) as { done: number[] }).done;
  expect(finished.length).toBeGreaterThanOrEqual(blocks / 2);
  expect(finished.length).toBeLessThan(blocks);

  proxy.seen.length = 0;
  proxy.headers.length = 0;
  const down = await downloadVerified(container, blobName, dest, { blockSizeBytes: BLOCK, concurrency: 4 });
  expect(down).toMatchObject({ sha256, blocksReused: finished.length, blocksFetched: blocks - finished.length });
  expect(count('GET')).toBe(blocks - finished.length);
  expect(readFileSync(dest).equals(readFileSync(file))).toBe(true);
  expect(() => readFileSync(`${dest}.partial.done.json`)).toThrow();
});

test('a download stopped half way and resumed with another range size starts over, and still checks out', async () => {
  const blocks = 8;
  const { file, sha256, blobName, dest } = await uploaded('resize-down', blocks);
  await stopHalfWay(blobName, dest, blocks, 1);
  // The journal's range indexes mean nothing for ranges twice as large: none is taken as done.
  const down = await downloadVerified(container, blobName, dest, { blockSizeBytes: 2 * BLOCK, concurrency: 2 });
  expect(down).toMatchObject({ sha256, blocksReused: 0, blocksFetched: blocks / 2 });
  expect(readFileSync(dest).equals(readFileSync(file))).toBe(true);
});

test('a download stopped half way starts over when the blob was replaced since, or its partial file is gone', async () => {
  const blocks = 8;
  const first = artifact('replaced-v1.bin', blocks * BLOCK);
  const blobName = 't7/m1/replaced.bin';
  await uploadResumable(container, blobName, first.file, { blockSizeBytes: BLOCK, concurrency: 4, sha256: first.sha256 });
  const dest = join(dir, 'back', 'replaced.bin');
  await stopHalfWay(blobName, dest, blocks, 1);
  // Another version under the same name (its ETag differs): the journalled ranges are of the old one.
  const second = artifact('replaced-v2.bin', blocks * BLOCK);
  await container.getBlobClient(blobName).delete();
  await uploadResumable(container, blobName, second.file, { blockSizeBytes: BLOCK, concurrency: 4, sha256: second.sha256 });
  const down = await downloadVerified(container, blobName, dest, { blockSizeBytes: BLOCK, concurrency: 2 });
  expect(down).toMatchObject({ sha256: second.sha256, blocksReused: 0, blocksFetched: blocks });
  expect(readFileSync(dest).equals(readFileSync(second.file))).toBe(true);

  rmSync(dest);
  await stopHalfWay(blobName, dest, blocks, 1);
  rmSync(`${dest}.partial`);
  const again = await downloadVerified(container, blobName, dest, { blockSizeBytes: BLOCK, concurrency: 2 });
  expect(again).toMatchObject({ sha256: second.sha256, blocksReused: 0, blocksFetched: blocks });
});

test('an upload killed half way resumes without sending the staged blocks again', async () => {
  const blocks = 32;
  const { file, sha256 } = artifact('killed.bin', blocks * BLOCK);
  const blobName = 't2/m1/killed.bin';
  const child = spawn(process.execPath, ['-r', 'tsx/cjs', join(__dirname, '../helpers/upload-child.ts'), 'transfer-test', blobName, file, String(BLOCK)], {
    env: { ...process.env, AIRLIFT_CHILD_STORAGE: azurite.connectionString },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      const done = [...output.matchAll(/progress (\d+)/g)].map((m) => Number(m[1]));
      if (done.length && done[done.length - 1] >= (blocks / 2) * BLOCK) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.once('exit', () => reject(new Error(`upload child ended before it was killed:\n${output}`)));
  });
  await new Promise((r) => child.once('exit', r));
  expect(output).not.toContain('finished');

  const staged = (await container.getBlockBlobClient(blobName).getBlockList('uncommitted')).uncommittedBlocks ?? [];
  expect(staged.length).toBeGreaterThanOrEqual(blocks / 2);
  expect(staged.length).toBeLessThan(blocks);

  proxy.seen.length = 0;
  const resumed = await uploadResumable(container, blobName, file, { blockSizeBytes: BLOCK, concurrency: 4 });
  expect(resumed.blocksReused).toBe(staged.length);
  expect(count('PUT block')).toBe(blocks - staged.length); // only the missing blocks went over the wire
  expect(resumed.blocksSent).toBe(blocks - staged.length);

  const down = await downloadVerified(container, blobName, join(dir, 'back', 'killed.bin'), { blockSizeBytes: BLOCK, concurrency: 4 });
  expect(down.sha256).toBe(sha256);
});

test('a download whose bytes do not match the recorded sha256 is refused and leaves no file', async () => {
  const { file } = artifact('corrupt.bin', BLOCK + 10);
  await uploadResumable(container, 't3/m1/corrupt.bin', file, { blockSizeBytes: BLOCK, concurrency: 1 });
  await container.getBlobClient('t3/m1/corrupt.bin').setMetadata({ sha256: 'f'.repeat(64) });
  const dest = join(dir, 'back', 'corrupt.bin');
  await expect(downloadVerified(container, 't3/m1/corrupt.bin', dest, { blockSizeBytes: BLOCK, concurrency: 2 })).rejects.toThrow(BlobChecksumError);
  expect(() => readFileSync(dest)).toThrow();
  expect(() => readFileSync(`${dest}.partial`)).toThrow();
});

test('a blob airlift did not upload is refused before anything is written; an empty artifact comes back empty', async () => {
  await container.getBlockBlobClient('t3/m1/foreign.bin').upload('not ours', 8);
  const dest = join(dir, 'back', 'foreign.bin');
  await expect(downloadVerified(container, 't3/m1/foreign.bin', dest, { blockSizeBytes: BLOCK, concurrency: 2 })).rejects.toThrow(BlobNotOursError);
  expect(() => readFileSync(`${dest}.partial`)).toThrow();

  // An empty blob has no byte range to ask for (the service answers 416): its properties are asked instead.
  const { file, sha256 } = artifact('empty.bin', 0);
  await uploadResumable(container, 't3/m1/empty.bin', file, { blockSizeBytes: BLOCK, concurrency: 1, sha256 });
  const down = await downloadVerified(container, 't3/m1/empty.bin', join(dir, 'back', 'empty.bin'), { blockSizeBytes: BLOCK, concurrency: 2 });
  expect(down).toMatchObject({ bytes: 0, sha256: createHash('sha256').digest('hex') });
  expect(readFileSync(down.file).length).toBe(0);
});

test('the restore SAS reads and lists the one container, and cannot write or reach another', async () => {
  const { file } = artifact('sas.bin', 1000);
  await uploadResumable(container, 't4/m1/sas.bin', file, { blockSizeBytes: BLOCK, concurrency: 1 });
  const direct = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('transfer-test');
  const sas = await containerReadSas(direct, sasWindow(30));
  expect(sas).toMatch(/(^|&)sp=rl(&|$)/);
  expect(sas).toMatch(/(^|&)sr=c(&|$)/);
  const viaSas = new ContainerClient(`${direct.url}?${sas}`);
  expect((await viaSas.getBlobClient('t4/m1/sas.bin').downloadToBuffer()).length).toBe(1000);
  const names: string[] = [];
  for await (const b of viaSas.listBlobsFlat({ prefix: 't4/' })) names.push(b.name);
  expect(names).toEqual(['t4/m1/sas.bin']);
  await expect(viaSas.getBlockBlobClient('t4/m1/evil.bin').upload('x', 1)).rejects.toMatchObject({ statusCode: 403 });
  const other = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('other-container');
  await other.createIfNotExists();
  await expect(new ContainerClient(`${other.url}?${sas}`).getProperties()).rejects.toMatchObject({ statusCode: 403 });
});
