// airlift's private PostgreSQL cluster for the tests and the demo: `initdb` and `pg_ctl` in a folder
// of the work directory, on a free port of 127.0.0.1 with its own socket folder, run as the
// `postgres` OS user when airlift runs as root (the server refuses to run as root). Tests may stop,
// kill and restart it; the machine's shared server is never touched. With PG* variables naming a
// server (PGHOST), that server is used instead and nothing is started.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { postgresBinDirectory } from '../engines/postgres-bin';

export interface PostgresServer {
  host: string;
  port: number;
  user: string;
  /** The password, when the server named by PG* variables needs one (PGPASSWORD). */
  password?: string;
  /** Whether airlift started it (and may stop, kill and restart it). */
  privateCluster: boolean;
}

export interface PostgresCluster extends PostgresServer {
  dataDirectory: string;
  /** Starts the stopped cluster again on the same port and folder. */
  start(): Promise<void>;
  /** `pg_ctl stop -m <mode>`: `immediate` is a crash (no checkpoint), as a power cut or a killed server. */
  stop(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
}

/** The server PG* variables name, if they name one (PGHOST set). */
export function serverFromEnv(env: NodeJS.ProcessEnv = process.env): PostgresServer | undefined {
  if (!env.PGHOST) return undefined;
  return { host: env.PGHOST, port: Number(env.PGPORT ?? 5432), user: env.PGUSER ?? 'postgres', password: env.PGPASSWORD, privateCluster: false };
}

export class PostgresClusterError extends Error {
  override name = 'PostgresClusterError';
}

/** The uid/gid to run the server as: the `postgres` OS user when this process is root. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const found = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (found.status !== 0) throw new PostgresClusterError('running as root, and there is no `postgres` OS user to run the private PostgreSQL cluster as (PostgreSQL refuses to run as root); install PostgreSQL (apt-get install postgresql) or run airlift as another user');
  return { uid: Number(found.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function check(result: SpawnSyncReturns<string>, what: string, log: string): void {
  if (result.status === 0) return;
  const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-8).join('\n') : '';
  throw new PostgresClusterError(`${what} failed (exit ${result.status}): ${(result.stderr || result.stdout || '').trim()}${tail ? `\n${tail}` : ''}`);
}

/**
 * Starts (creating when new) a private cluster in `directory`; a folder that already holds one is
 * started again on its recorded port. Resolves once it accepts connections.
 */
export async function startPostgresCluster(directory: string, options: { port: number }): Promise<PostgresCluster> {
  const bin = postgresBinDirectory(['initdb', 'pg_ctl']);
  if (!bin) throw new PostgresClusterError('PostgreSQL server programs (initdb, pg_ctl) not found: install them (apt-get install postgresql), set AIRLIFT_PG_BIN to their folder, or point PGHOST/PGPORT/PGUSER at an existing server');
  const owner = serverUser();
  const dataDirectory = join(directory, 'data');
  const log = join(directory, 'server.log');
  const portFile = join(directory, 'port');
  mkdirSync(directory, { recursive: true });
  if (owner) chownSync(directory, owner.uid, owner.gid);
  const run = (program: string, args: string[]) => spawnSync(join(bin, program), args, { encoding: 'utf8', ...(owner ?? {}), cwd: directory, env: { ...process.env, LC_ALL: 'C' } });
  if (!existsSync(join(dataDirectory, 'PG_VERSION'))) {
    check(run('initdb', ['-D', dataDirectory, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']), 'initdb', log);
    const port = options.port;
    // Its own socket folder and loopback only: nothing of the machine's server is shared. fsync off:
    // a test cluster outlives a killed server (the OS keeps its writes), not a power cut.
    const settings = [
      `port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${directory.replace(/'/g, "''")}'`,
      'max_connections = 200', 'fsync = off', 'full_page_writes = off', 'synchronous_commit = off', "log_min_messages = 'warning'", 'shared_buffers = 64MB',
    ];
    writeFileSync(join(dataDirectory, 'postgresql.auto.conf'), `${settings.join('\n')}\n`);
    writeFileSync(portFile, String(port));
    if (owner) chownSync(join(dataDirectory, 'postgresql.auto.conf'), owner.uid, owner.gid);
  }
  const port = Number(readFileSync(portFile, 'utf8'));
  const start = async () => {
    check(run('pg_ctl', ['-D', dataDirectory, '-l', log, '-w', '-t', '60', 'start']), 'pg_ctl start', log);
  };
  const stop = async (mode: 'smart' | 'fast' | 'immediate' = 'fast') => {
    const result = run('pg_ctl', ['-D', dataDirectory, '-m', mode, '-w', 'stop']);
    if (result.status !== 0 && !/not running|No such file/i.test(result.stderr)) check(result, 'pg_ctl stop', log);
  };
  await stop('immediate').catch(() => undefined);
  await start();
  return { host: '127.0.0.1', port, user: 'postgres', privateCluster: true, dataDirectory, start, stop };
}

/** Stops a private cluster left running by a process that died (its folder still names it). */
export function stopPostgresClusterIn(directory: string): void {
  const bin = postgresBinDirectory(['pg_ctl']);
  if (!bin || !existsSync(join(directory, 'data', 'postmaster.pid'))) return;
  const owner = serverUser();
  spawn(join(bin, 'pg_ctl'), ['-D', join(directory, 'data'), '-m', 'immediate', 'stop'], { ...(owner ?? {}), stdio: 'ignore' });
}
