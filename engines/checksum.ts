// Streaming checksums: an artifact is never held whole in memory.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Artifact, KeyValue } from './engine';

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** What the snapshot records beside an artifact for its upload: the MD5 of each block the upload will cut. */
export interface BlockDigests {
  sha256: string;
  bytes: number;
  blockSizeBytes: number;
  /** Base64 MD5 of each block, in order (the Put Block `Content-MD5`). */
  md5: string[];
}

/**
 * The artifact as the snapshot hands it on, in one read of the file: its size and sha256 and, when
 * the upload's block size is known (`blockSizeOf(size)`), the MD5 of every block written to
 * `<recordAt>.blocks.json`. The upload then sends each block with the MD5 of what the snapshot wrote,
 * not of what it read back later, and spends no time hashing.
 */
export async function digestArtifact(file: string, sizeBytes: number, recordAt: string, blockSizeOf?: (sizeBytes: number) => number): Promise<Artifact> {
  const hash = createHash('sha256');
  const blockSizeBytes = blockSizeOf?.(sizeBytes);
  const md5: string[] = [];
  let block: Hash | undefined;
  let inBlock = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    for (let at = 0; blockSizeBytes && at < chunk.length; ) {
      const take = Math.min(chunk.length - at, blockSizeBytes - inBlock);
      (block ??= createHash('md5')).update(chunk.subarray(at, at + take));
      at += take;
      inBlock += take;
      if (inBlock === blockSizeBytes) {
        md5.push(block.digest('base64'));
        block = undefined;
        inBlock = 0;
      }
    }
  }
  if (block) md5.push(block.digest('base64'));
  const sha256 = hash.digest('hex');
  if (!blockSizeBytes) return { file, sizeBytes, sha256 };
  const blockDigests = `${recordAt}.blocks.json`;
  await mkdir(dirname(blockDigests), { recursive: true });
  await writeFile(blockDigests, JSON.stringify({ sha256, bytes: sizeBytes, blockSizeBytes, md5 } satisfies BlockDigests));
  return { file, sizeBytes, sha256, blockDigests };
}

/** A type-tagged, unambiguous encoding of one value, so `1`, `1.0`, `'1'` and X'31' all differ. */
export function encodeValue(v: unknown): string {
  if (v === null || v === undefined) return 'N;';
  if (typeof v === 'bigint') return `i${v};`;
  if (typeof v === 'number') return Number.isInteger(v) ? `i${v};` : `r${v};`;
  if (typeof v === 'string') return `s${Buffer.byteLength(v)}:${v};`;
  if (Buffer.isBuffer(v)) return `b${v.length}:${v.toString('hex')};`;
  return `?${String(v)};`;
}

export function renderValue(v: KeyValue): string {
  if (v === null) return 'NULL';
  if (typeof v === 'string') return `'${v.replace(/'/g, "''")}'`;
  if (Buffer.isBuffer(v)) return `0x${v.toString('hex')}`;
  return String(v);
}

export function renderKey(columns: string[], values: KeyValue[]): string {
  return columns.map((c, i) => `${c}=${renderValue(values[i] ?? null)}`).join(', ');
}
