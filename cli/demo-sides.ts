// What `airlift demo --engine <kind>` runs its tenants on: SQLite files in the demo's folder, or two
// PostgreSQL private clusters (the on-premises source and the cloud target) started in it. Each entry
// gives the fleet file's source and target endpoints and makes a tenant's database on the source.
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../azure/azurite';
import { createTenantDatabase } from './demo-data';
import { createPostgresTenantDatabase } from './demo-data-postgres';
import { serverFromEnv, startPostgresCluster, type PostgresServer } from './postgres-cluster';

export interface DemoSides {
  /** Starts what the tenants live on (nothing for files); the endpoints are written into the fleet file. */
  start(dir: string, log: (line: string) => void): Promise<{ source: Record<string, unknown>; target: Record<string, unknown>; stop(): Promise<void> }>;
  /** Makes a tenant's database with `rows` tracking events on the source. */
  createTenant(dir: string, database: string, rows: number, seed: number): Promise<void>;
}


export const DEMO_SIDES: Record<string, DemoSides> = {
  sqlite: {
    start: async () => ({ source: { engine: 'sqlite', directory: './source' }, target: { engine: 'sqlite', directory: './cloud' }, stop: async () => undefined }),
    createTenant: async (dir, database, rows, seed) => void createTenantDatabase(join(dir, 'source'), database, rows, seed),
  },
  postgres: (() => {
    let source: PostgresServer | undefined;
    return {
      async start(dir, log) {
        // The server runs as the postgres OS user when this is root: it must be able to pass through the demo's folder.
        chmodSync(dir, 0o711);
        if (serverFromEnv()) log('PGHOST names a server, but the demo makes and drops databases: it runs on private clusters of its own');
        const [onprem, cloud] = [await startPostgresCluster(join(dir, 'pg-onprem'), { port: await freePort() }), await startPostgresCluster(join(dir, 'pg-cloud'), { port: await freePort() })];
        source = onprem;
        log(`PostgreSQL private clusters: source 127.0.0.1:${onprem.port}, target 127.0.0.1:${cloud.port} (initdb + pg_ctl in ${dir})`);
        const endpoint = (s: PostgresServer) => ({ engine: 'postgres', host: s.host, port: s.port, user: s.user, ssl: 'disable', restoreJobs: 2 });
        return { source: endpoint(onprem), target: endpoint(cloud), stop: async () => void (await Promise.all([onprem.stop(), cloud.stop()])) };
      },
      createTenant: async (_dir, database, rows, seed) => createPostgresTenantDatabase(source!, database, rows, seed),
    };
  })(),
};
