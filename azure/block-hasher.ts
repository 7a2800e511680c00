// MD5 of upload blocks on a thread of its own, so hashing never holds up the event loop that sends
// the other blocks (and the activity's heartbeats). Blocks move to the thread and back without a copy.
import { Worker } from 'node:worker_threads';

const THREAD = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', ({ id, buffer, length }) => {
  const md5 = createHash('md5').update(new Uint8Array(buffer, 0, length)).digest();
  parentPort.postMessage({ id, buffer, md5 }, [buffer]);
});`;

export interface BlockHasher {
  /**
   * The MD5 of the first `length` bytes of `block`, which must own its whole memory (made with
   * `Buffer.allocUnsafeSlow`): it is handed to the thread meanwhile and comes back as a new view.
   */
  md5(block: Buffer, length: number): Promise<{ block: Buffer; md5: Buffer }>;
  close(): Promise<void>;
}

export function startBlockHasher(): BlockHasher {
  const worker = new Worker(THREAD, { eval: true });
  const pending = new Map<number, { resolve: (r: { block: Buffer; md5: Buffer }) => void; reject: (err: unknown) => void }>();
  let nextId = 0;
  let failure: Error | undefined;
  worker.on('message', ({ id, buffer, md5 }: { id: number; buffer: ArrayBuffer; md5: Uint8Array }) => {
    const waiter = pending.get(id);
    pending.delete(id);
    waiter?.resolve({ block: Buffer.from(buffer), md5: Buffer.from(md5) });
  });
  const fail = (err: Error) => {
    failure = err;
    for (const waiter of pending.values()) waiter.reject(err);
    pending.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`block hashing thread exited (code ${code})`)));
  return {
    md5: (block, length) => {
      if (failure) return Promise.reject(failure);
      if (block.byteOffset !== 0 || block.buffer.byteLength !== block.length) throw new Error('block hasher: the block must own its whole memory (Buffer.allocUnsafeSlow)');
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, buffer: block.buffer, length }, [block.buffer as ArrayBuffer]);
      });
    },
    close: async () => {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}
