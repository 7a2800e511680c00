// Starts the Azurite blob emulator: the embedded default's "Azure Storage". In memory on a free port
// for tests and the demo; on disk, on a port kept from its last run, for `airlift dev`.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';

/** Azurite's documented development account; it opens nothing but a local emulator. */
const DEV_ACCOUNT = 'devstoreaccount1';
const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** The connection string of Azurite's development account on a local port. */
export function azuriteConnectionString(port: number): string {
  return `DefaultEndpointsProtocol=http;AccountName=${DEV_ACCOUNT};AccountKey=${DEV_KEY};BlobEndpoint=http://127.0.0.1:${port}/${DEV_ACCOUNT};`;
}

/** Whether nothing listens on `port` on 127.0.0.1 (a listen there succeeds). */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface AzuriteHandle {
  port: number;
  connectionString: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  timeoutMs?: number;
  /** Keep blobs in this folder (they outlive the process); default: in memory. */
  location?: string;
  /** Listen here; default: a free port. */
  port?: number;
}

export async function startAzurite(options: AzuriteOptions = {}): Promise<AzuriteHandle> {
  const port = options.port ?? (await freePort());
  const main = join(dirname(require.resolve('azurite/package.json')), 'dist/src/blob/main.js');
  const persistence = options.location ? ['--location', options.location] : ['--inMemoryPersistence'];
  const child = spawn(
    process.execPath,
    [main, ...persistence, '--skipApiVersionCheck', '--disableTelemetry', '--loose', '--silent', '--blobHost', '127.0.0.1', '--blobPort', String(port)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Azurite did not start within ${options.timeoutMs ?? 30000} ms:\n${output}`)), options.timeoutMs ?? 30000);
    const onData = (data: Buffer) => {
      output += data.toString();
      if (/successfully listen/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited with code ${code} before it was ready:\n${output}`));
    });
  });
  child.stdout!.resume();
  child.stderr!.resume();
  return {
    port,
    process: child,
    connectionString: azuriteConnectionString(port),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
