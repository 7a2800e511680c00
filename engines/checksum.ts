// Streaming checksums: an artifact is never held whole in memory.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { KeyValue } from './engine';

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
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
