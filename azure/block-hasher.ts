// Hashing of transfer blocks on a thread of its own, so it never holds up the event loop that sends
// or receives the other blocks (and the activity's heartbeats): the MD5 of each upload block (the
// block moves to the thread and back without a copy), and the running sha256 of a download, fed
// block by block in order from the file it landed in. The thread handles messages in posted order.
import { Worker } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';

const THREAD = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
let running;
let chunk;
parentPort.on('message', ({ id, op, buffer, length, file, offset }) => {
  if (op === 'md5') {
    const md5 = createHash('md5').update(new Uint8Array(buffer, 0, length)).digest();
    parentPort.postMessage({ id, buffer, md5 }, [buffer]);
  } else if (op === 'sha256-file') {
    try {
      const fd = openSync(file, 'r');
      chunk ??= Buffer.allocUnsafe(1 << 20);
      running ??= createHash('sha256');
      for (let done = 0; done < length; ) {
        const n = readSync(fd, chunk, 0, Math.min(chunk.length, length - done), offset + done);
        if (n === 0) throw new Error(file + ' ends before ' + (offset + length) + ' bytes');
        running.update(chunk.subarray(0, n));
        done += n;
      }
      closeSync(fd);
      parentPort.postMessage({ id });
    } catch (err) {
      parentPort.postMessage({ id, error: err.message });
    }
  } else {
    parentPort.postMessage({ id, hex: (running ?? createHash('sha256')).digest('hex') });
    running = undefined;
  }
});`;

interface Reply {
  block: Buffer;
  md5: Buffer;
  hex: string;
}

export interface BlockHasher {
  /**
   * The MD5 of the first `length` bytes of `block`, which must own its whole memory (made with
   * `Buffer.allocUnsafeSlow`): it is handed to the thread meanwhile and comes back as a new view.
   */
  md5(block: Buffer, length: number): Promise<{ block: Buffer; md5: Buffer }>;
  /** Feeds `length` bytes of `file` from `offset` to the running sha256 (call in order). */
  sha256File(file: string, offset: number, length: number): Promise<void>;
  /** The running sha256 of everything fed so far, in hex; the next update starts a new one. */
  sha256Digest(): Promise<string>;
  close(): Promise<void>;
}

export function startBlockHasher(): BlockHasher {
  const worker = new Worker(THREAD, { eval: true });
  const pending = new Map<number, { resolve: (r: Reply) => void; reject: (err: unknown) => void }>();
  let nextId = 0;
  let failure: Error | undefined;
  worker.on('message', ({ id, buffer, md5, hex, error }: { id: number; buffer?: ArrayBuffer; md5?: Uint8Array; hex?: string; error?: string }) => {
    const waiter = pending.get(id);
    pending.delete(id);
    if (error) waiter?.reject(new Error(`block hashing: ${error}`));
    else waiter?.resolve({ block: buffer && Buffer.from(buffer), md5: md5 && Buffer.from(md5), hex } as Reply);
  });
  const fail = (err: Error) => {
    failure = err;
    for (const waiter of pending.values()) waiter.reject(err);
    pending.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`block hashing thread exited (code ${code})`)));
  const ask = (op: 'md5' | 'sha256-file' | 'digest', block?: Buffer, length = 0, file?: string, offset = 0): Promise<Reply> => {
    if (failure) return Promise.reject(failure);
    if (block && (block.byteOffset !== 0 || block.buffer.byteLength !== block.length))
      throw new Error('block hasher: the block must own its whole memory (Buffer.allocUnsafeSlow)');
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, op, buffer: block?.buffer, length, file, offset }, block ? [block.buffer as ArrayBuffer] : []);
    });
  };
  return {
    md5: (block, length) => ask('md5', block, length),
    sha256File: async (file, offset, length) => void (await ask('sha256-file', undefined, length, file, offset)),
    sha256Digest: async () => (await ask('digest')).hex,
    close: async () => {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}

/** The running sha256 of file pieces, as the thread keeps it; on the calling thread, pieces still in memory can be fed too. */
export type Sha256Feed = Pick<BlockHasher, 'sha256File' | 'sha256Digest' | 'close'> & { sha256Bytes?: (chunks: Buffer[]) => void };

/**
 * The same running sha256 on the calling thread, for work too small to repay starting a thread
 * (about 30 ms of a core): each piece is hashed before the call returns, from memory when given
 * (`sha256Bytes`), else read back from the file.
 */
export function inlineSha256(): Sha256Feed {
  let running = createHash('sha256');
  const chunk = Buffer.allocUnsafe(1 << 20);
  return {
    sha256File: async (file, offset, length) => {
      const fd = openSync(file, 'r');
      try {
        for (let done = 0; done < length; ) {
          const n = readSync(fd, chunk, 0, Math.min(chunk.length, length - done), offset + done);
          if (n === 0) throw new Error(`block hashing: ${file} ends before ${offset + length} bytes`);
          running.update(chunk.subarray(0, n));
          done += n;
        }
      } finally {
        closeSync(fd);
      }
    },
    sha256Digest: async () => {
      const hex = running.digest('hex');
      running = createHash('sha256');
      return hex;
    },
    sha256Bytes: (chunks) => {
      for (const c of chunks) running.update(c);
    },
    close: async () => {},
  };
}
