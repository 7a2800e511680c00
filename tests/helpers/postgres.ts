// A PostgreSQL server for a test file: airlift's own private cluster in a temporary folder (the test
// may stop, kill and restart it), or the server PG* variables name (PGHOST set), used as it is.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { freePort } from '../../azure/azurite';
import { serverFromEnv, startPostgresCluster, type PostgresCluster, type PostgresServer } from '../../cli/postgres-cluster';

export interface TestPostgres {
  server: PostgresServer;
  /** The private cluster, absent when PG* variables named a server. */
  cluster?: PostgresCluster;
  /** A database name no other test uses. */
  name(prefix: string): string;
  /** A client on `database` (the caller ends it). */
  client(database?: string): Promise<pg.Client>;
  stop(): Promise<void>;
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const existing = serverFromEnv();
  const dir = existing ? undefined : mkdtempSync(join(tmpdir(), 'airlift-pg-'));
  const cluster = dir ? await startPostgresCluster(dir, { port: await freePort() }) : undefined;
  const server = existing ?? cluster!;
  return {
    server,
    cluster,
    name: (prefix) => `${prefix}_${randomBytes(4).toString('hex')}`,
    client: async (database = 'postgres') => {
      const c = new pg.Client({ host: server.host, port: server.port, user: server.user, password: server.password, database });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    },
    stop: async () => {
      await cluster?.stop('immediate').catch(() => undefined);
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
