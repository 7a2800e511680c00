// Real processes for the fault matrix: the Temporal dev server on a database file, gateway nodes,
// workers. Each is started in its own process group so SIGKILL takes it down whole, as a crash would;
// the harness kills only what it started, by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { SEARCH_ATTRIBUTES } from '../workflows/contract';

export const REPO = join(__dirname, '..');

const started = new Set<ChildProcess>();

/** Kills every process this harness started and that still runs (on exit, or Ctrl-C). */
export function killAllStarted(): void {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  started.clear();
}

export interface Proc {
  name: string;
  child: ChildProcess;
  /** Output so far (also appended to the log file). */
  output(): string;
  exited: Promise<void>;
  /** Sends the signal to the whole process group; resolves when the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function startProcess(name: string, command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; logFile: string }): Proc {
  const child = spawn(command, args, { cwd: options.cwd ?? REPO, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  started.add(child);
  const log = createWriteStream(options.logFile, { flags: 'a' });
  let text = '';
  const onData = (d: Buffer) => {
    log.write(d);
    text += d.toString();
    if (text.length > 200_000) text = text.slice(-100_000);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      log.end(`\n[${name} exited: ${signal ?? code}]\n`);
      started.delete(child);
      resolve();
    }),
  );
  return {
    name,
    child,
    output: () => text,
    exited,
    kill: async (signal = 'SIGKILL') => {
      // The group, even when its leader is gone: servers it started die with it.
      try {
        process.kill(-child.pid!, signal);
      } catch {
        return;
      }
      await exited;
    },
  };
}

/**
 * A free port below the kernel's ephemeral range (32768 and up on Linux), for a process the matrix
 * kills and restarts on the same port: no `listen(0)` elsewhere on the machine (another test running
 * beside this one) can be handed it while the process is down.
 */
export async function restartablePort(): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `probe` answers true; the error names what did not happen and the process's last words. */
export async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs: number, proc?: Proc): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await Promise.resolve(probe()).catch(() => false)) return;
    if (proc && (proc.child.exitCode !== null || proc.child.signalCode !== null))
      throw new Error(`${proc.name} exited before ${what}: ${proc.output().trim().split('\n').slice(-5).join(' | ')}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${proc ? `: ${proc.output().trim().split('\n').slice(-3).join(' | ')}` : ''}`);
    await sleep(100);
  }
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return res.ok;
}

/** The Temporal dev server on a database file, so a restart keeps every workflow. */
export class TemporalServer {
  proc?: Proc;

  constructor(
    private readonly cli: string,
    readonly port: number,
    private readonly dbFile: string,
    private readonly logFile: string,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc = startProcess(
      'temporal',
      this.cli,
      [
        'server', 'start-dev', '--db-filename', this.dbFile, '--ip', '127.0.0.1', '--port', String(this.port), '--headless', '--log-level', 'error',
        // The same keys the workflows upsert (workflows/contract.ts), all keywords.
        ...SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=Keyword`]),
      ],
      { logFile: this.logFile },
    );
    await until(`the Temporal dev server on port ${this.port}`, () => portOpen(this.port), 60_000, this.proc);
  }

  async kill(): Promise<void> {
    await this.proc?.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.proc?.kill('SIGTERM');
  }
}
