// PostgreSQL as the fleet file names it: a server (airlift's private cluster, an existing server, or
// Azure Database for PostgreSQL flexible server), with a password or a Microsoft Entra access token
// read from an environment variable, TLS, and pg_restore's parallel jobs.
import { z } from 'zod';
import pg from 'pg';
import { engineKind } from './engine-kind';
import { envName, secretFromEnv } from './endpoint-fields';
import { PostgresEngine } from './postgres';
import * as pgsql from './postgres-sql';
import { redactSecrets } from '../protocol/errors';
import type { CheckResult } from './plan-check';

const endpoint = z.strictObject({
  engine: z.literal('postgres'),
  host: z.string({ error: 'must be the host name of the PostgreSQL server' }).min(1),
  port: z.int().min(1).max(65535).default(5432),
  user: z.string().min(1).default('postgres'),
  /** The variable holding the password, or with `authentication: entra` a Microsoft Entra access token. */
  passwordEnv: envName.optional(),
  /** `entra`: the password is an access token for https://ossrdbms-aad.database.windows.net (Azure Database for PostgreSQL). */
  authentication: z.enum(['password', 'entra']).default('password'),
  /** TLS: `require` (encrypted), `verify-full` (and the server's certificate checked), `disable` (a private cluster on loopback only). */
  ssl: z.enum(['disable', 'require', 'verify-full']).default('require'),
  /** pg_restore --jobs on a target. */
  restoreJobs: z.int().min(1).max(64).default(4),
  /** On a target: the extensions it allows (Azure: the azure.extensions server parameter); a source extension outside it stops preflight. */
  allowedExtensions: z.array(z.string().regex(/^[a-z0-9_]+$/, { error: 'must be an extension name such as pg_trgm' })).optional(),
});

type PostgresEndpointConfig = z.infer<typeof endpoint>;

const secretOf = (e: PostgresEndpointConfig, env: NodeJS.ProcessEnv) =>
  secretFromEnv(e.passwordEnv, env, e.authentication === 'entra' ? `a Microsoft Entra access token for ${e.user} (az account get-access-token --resource-type oss-rdbms)` : `the password of ${e.user} for ${e.host}`);

/** `--check`: connect to the maintenance database, the version, and each database of the role. */
async function checkEndpoint(name: string, e: PostgresEndpointConfig, role: 'source' | 'target', databases: string[], env: NodeJS.ProcessEnv): Promise<CheckResult[]> {
  const what = `${role} ${name} (PostgreSQL ${e.host}:${e.port})`;
  let client: pg.Client | undefined;
  try {
    client = new pg.Client({ host: e.host, port: e.port, user: e.user, password: secretOf(e, env), database: 'postgres', ssl: e.ssl === 'disable' ? false : { rejectUnauthorized: e.ssl === 'verify-full' }, connectionTimeoutMillis: 8000 });
    await client.connect();
    const [server] = (await client.query<{ version: string; num: number }>("SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS num")).rows;
    const results: CheckResult[] = [{ what, ok: server.num >= 130000, detail: `connected, PostgreSQL ${server.version}${server.num >= 130000 ? '' : ': 13 or later is needed'}` }];
    for (const db of databases) {
      const [row] = (await client.query<{ exists: boolean }>('SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1) AS exists', [db])).rows;
      results.push(role === 'source'
        ? { what: `${what} database ${db}`, ok: row.exists, detail: row.exists ? 'exists' : 'does not exist' }
        : { what: `${what} database ${db}`, ok: !row.exists, detail: row.exists ? 'already exists: airlift will not overwrite it' : 'free' });
    }
    if (role === 'target') {
      const [can] = (await client.query<{ createdb: boolean }>('SELECT rolcreatedb OR rolsuper AS createdb FROM pg_roles WHERE rolname = current_user')).rows;
      results.push({ what: `${what} permissions`, ok: Boolean(can?.createdb), detail: `CREATEDB: ${can?.createdb ? 'yes' : 'missing (ALTER ROLE … CREATEDB)'}` });
    }
    return results;
  } catch (err) {
    return [{ what, ok: false, detail: /environment variable/.test((err as Error).message) ? (err as Error).message : `cannot connect: ${redactSecrets((err as Error).message)}` }];
  } finally {
    await client?.end().catch(() => undefined);
  }
}

export const postgresKind = engineKind({
  kind: 'postgres',
  endpoint,
  sides: { source: true, target: true },
  restoreKind: 'file',
  resolvePaths: (e) => e,
  create: (e, env) => new PostgresEngine({ ...e, get password() { return secretOf(e, env); } }),
  plan: {
    planDetails: () => ({
      journaling: [pgsql.captureSchema.trim(), ...pgsql.captureTriggerStatements({ oid: 0, name: 'tracking_events', key: ['seq'] }).map((s) => `${s};`)],
      catchingUp: [`${pgsql.headSnapshotQuery};`, `${pgsql.openTransactionsQuery};   -- the head is read up to only once this is 0`, `${pgsql.readChangesQuery};`],
      verifying: ['per table, in the server: md5 of each row\'s text form (md5(t::text)), concatenated in primary-key order per chunk: md5(string_agg(…)); differing chunks are read row by row to name the rows'],
    }),
    checkEndpoint: (name, e, role, databases, session) => checkEndpoint(name, e, role, databases, session.env),
  },
});
