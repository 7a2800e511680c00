// What every benchmark shares: a timed run with its peak RSS, a random file, and rounding for tables.
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';

export const MiB = 1024 * 1024;

export interface Measured<T> {
  seconds: number;
  /** The highest resident set size of this process while the work ran, in MiB. */
  peakRssMiB: number;
  value: T;
}

/** One sampler for the whole process, so nested measurements see the same peaks. */
const samplers = new Set<{ peak: number }>();
let sampling: NodeJS.Timeout | undefined;

function sample(): void {
  const rss = process.memoryUsage.rss();
  for (const s of samplers) s.peak = Math.max(s.peak, rss);
}

/** Runs `work` while sampling this process's RSS every 10 ms; garbage is collected first. */
export async function measured<T>(work: () => Promise<T>): Promise<Measured<T>> {
  global.gc?.();
  const probe = { peak: process.memoryUsage.rss() };
  samplers.add(probe);
  sampling ??= setInterval(sample, 10);
  const started = process.hrtime.bigint();
  try {
    const value = await work();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    sample();
    return { seconds, peakRssMiB: probe.peak / MiB, value };
  } finally {
    samplers.delete(probe);
    if (!samplers.size) {
      clearInterval(sampling);
      sampling = undefined;
    }
  }
}

export async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const out = createWriteStream(file);
  // A fresh random MiB each time: no block of the file repeats, so nothing can be deduplicated.
  for (let done = 0; done < bytes; done += MiB) if (!out.write(randomBytes(Math.min(MiB, bytes - done)))) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
}

/** Reads the file once and does nothing with it: the limit any upload of it can reach. */
export async function readOnce(file: string): Promise<number> {
  let bytes = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) bytes += (chunk as Buffer).length;
  return bytes;
}

export const round = (n: number, digits = 1): number => +n.toFixed(digits);

export const ratio = (ours: number, reference: number): number => round(ours / reference, 2);

/** What one benchmark gives back: its table rows and the ratios it contributes to the JSON line. */
export interface BenchResult {
  rows: Record<string, unknown>[];
  ratios: Record<string, number>;
}
