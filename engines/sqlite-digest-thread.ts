// Chunk digests of SQLite tables on threads of their own. Verification reads every row of both
// sides; on threads the source and the target are read at once (one core each), and the worker's
// event loop stays free for heartbeats and workflow tasks meanwhile. Two threads, started on first
// use and kept for the life of the process; they never hold the process open while idle.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { ChunkDigest, KeyRange, KeyValue, TableInfo } from './engine';

const ROLE = 'airlift-sqlite-digests';
const THREADS = 2;

interface Job {
  id: number;
  file: string;
  table: TableInfo;
  chunkRows: number;
  within: KeyRange;
}

/** A BLOB key crosses threads as a Uint8Array; the engine and the verifier compare Buffers. */
const revive = (values: KeyValue[] | null): KeyValue[] | null =>
  values &&
  values.map((v) => {
    const bytes = v as unknown;
    return bytes instanceof Uint8Array && !Buffer.isBuffer(bytes) ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : v;
  });

interface Thread {
  worker: Worker;
  busy: number;
}

const threads: Thread[] = [];
const pending = new Map<number, { resolve: (chunks: ChunkDigest[]) => void; reject: (err: Error) => void; thread: Thread }>();
let nextId = 0;

function startThread(): Thread {
  const worker = new Worker(`require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(__filename)});`, { eval: true, workerData: { role: ROLE } });
  const thread: Thread = { worker, busy: 0 };
  worker.unref();
  worker.on('message', ({ id, chunks, error }: { id: number; chunks?: ChunkDigest[]; error?: string }) => {
    const job = pending.get(id);
    if (!job) return;
    pending.delete(id);
    if (--thread.busy === 0) worker.unref();
    if (error !== undefined) job.reject(new Error(error));
    else job.resolve(chunks!.map((c) => ({ ...c, lower: revive(c.lower), upper: revive(c.upper) })));
  });
  const fail = (err: Error) => {
    const at = threads.indexOf(thread);
    if (at >= 0) threads.splice(at, 1);
    for (const [id, job] of pending)
      if (job.thread === thread) {
        pending.delete(id);
        job.reject(new Error(`the digest thread stopped: ${err.message}`));
      }
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
  threads.push(thread);
  return thread;
}

/** The chunk digests of `table` in the SQLite file `file`, computed on the least busy digest thread. */
export function chunkDigestsInThread(file: string, table: TableInfo, chunkRows: number, within: KeyRange): Promise<ChunkDigest[]> {
  const thread = threads.length < THREADS ? startThread() : threads.reduce((a, b) => (b.busy < a.busy ? b : a));
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, thread });
    if (thread.busy++ === 0) thread.worker.ref();
    thread.worker.postMessage({ id, file, table, chunkRows, within } satisfies Job);
  });
}

if (!isMainThread && (workerData as { role?: string } | undefined)?.role === ROLE) {
  const { chunkDigestsOf } = require('./sqlite-digest') as typeof import('./sqlite-digest');
  parentPort!.on('message', ({ id, file, table, chunkRows, within }: Job) => {
    try {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      db.defaultSafeIntegers(true);
      try {
        parentPort!.postMessage({ id, chunks: chunkDigestsOf(db, table, chunkRows, { lower: revive(within.lower), upper: revive(within.upper) }) });
      } finally {
        db.close();
      }
    } catch (err) {
      parentPort!.postMessage({ id, error: (err as Error).message });
    }
  });
}
