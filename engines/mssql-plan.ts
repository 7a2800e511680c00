// SQL Server's and Managed Instance's part of `airlift plan`: the T-SQL shown under the steps, and
// `--check`: connectivity, permissions, the backup share, ARM, and each tenant's readiness from the
// source's inventory (engines/mssql-inventory.ts). Nothing is changed.
import { access, constants } from 'node:fs/promises';
import sql from 'mssql';
import { bindParameters } from './mssql';
import * as tsql from './mssql-sql';
import * as capture_sql from './mssql-capture-sql';
import * as rowHash from './mssql-row-hash';
import * as inventory from './mssql-inventory';
import { redactSecrets } from '../protocol/errors';
import type { CheckConnection, CheckResult, CheckSession, PlanInventory, TenantReadiness } from './plan-check';
import { renderSqlServerPlan, sqlServerPlan } from './mssql-plan-facts';

/** The tracking table as the demo schema has it; the statement has one @v_<column> per column of yours. */
const DEMO_TRACKING_TABLE: tsql.MssqlTable = {
  schema: 'dbo', name: 'tracking_events', key: ['seq'],
  columns: [
    { name: 'seq', type: 'bigint', identity: true }, { name: 'event_id', type: 'nvarchar' }, { name: 'ad_id', type: 'int' }, { name: 'kind', type: 'nvarchar' },
    { name: 'occurred_at', type: 'nvarchar' }, { name: 'user_agent', type: 'nvarchar' }, { name: 'payload', type: 'nvarchar' },
  ],
};

interface SqlEndpointFields {
  engine: string;
  server: string;
  port: number;
  user?: string;
  passwordEnv?: string;
  encrypt: boolean;
  trustServerCertificate: boolean;
}

/** The real `--check` connection to a server's master database, each statement bounded by `within`. */
export async function connectForCheck(e: SqlEndpointFields, env: NodeJS.ProcessEnv, within: <T>(ms: number, work: Promise<T>) => Promise<T>): Promise<CheckConnection> {
  const password = e.passwordEnv ? env[e.passwordEnv] : undefined;
  if (e.passwordEnv && !password) throw new Error(`environment variable ${e.passwordEnv} is not set`);
  const pool = new sql.ConnectionPool({ server: e.server, port: e.port, user: e.user, password, database: 'master', connectionTimeout: 8000, options: { encrypt: e.encrypt, trustServerCertificate: e.trustServerCertificate } });
  await within(10_000, pool.connect());
  return {
    run: async <T>(statement: tsql.Statement, values?: Record<string, unknown>) => (await within(30_000, bindParameters(pool.request(), statement, values).query(statement.sql))).recordset as T[],
    close: () => pool.close(),
  };
}

/** The T-SQL `plan` shows for a SQL Server source. */
function planDetails() {
  return {
    // Change capture is installed with these statements (one trigger per table; shown for the demo's tracking table).
    journaling: [tsql.renderStatement(capture_sql.captureSchema), tsql.renderStatement(capture_sql.captureTriggerStatement(DEMO_TRACKING_TABLE))],
    catchingUp: [tsql.renderStatement(capture_sql.safePointStatement), tsql.renderStatement(capture_sql.readChangesQuery), tsql.renderStatement(capture_sql.applyBeginStatement)],
    verifying: [tsql.renderStatement(tsql.listTablesQuery()), tsql.renderStatement(rowHash.serverLevelQuery), "per table: the row-hash statement for the older server of the pair; `airlift plan --check --json` prints each table's (readiness[].rowHashes)"],
  };
}

async function connectFor(name: string, e: SqlEndpointFields, role: 'source' | 'target', session: CheckSession): Promise<CheckConnection | Error> {
  const connection = await session.deps.connect(e, session.env).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
  session.connections.set(`${role}:${name}`, connection);
  return connection;
}

async function checkSqlServer(name: string, e: SqlEndpointFields & { backupShare?: string }, databases: string[], role: 'source' | 'target', session: CheckSession, options: { restorePermissions: boolean }): Promise<CheckResult[]> {
  const connection = await connectFor(name, e, role, session);
  const what = `${role} ${name} (${e.server}:${e.port})`;
  if (connection instanceof Error) return [{ what, ok: false, detail: /environment variable/.test(connection.message) ? connection.message : `cannot connect: ${redactSecrets(connection.message)}` }];
  const results: CheckResult[] = [{ what, ok: true, detail: 'connected' }];
  for (const db of databases) {
    const [row] = await connection.run<{ id: number | null; can_backup: number | null }>(inventory.backupPermissionQuery(db));
    if (role === 'source') results.push({ what: `${what} database ${db}`, ok: Boolean(row.id) && row.can_backup === 1, detail: !row.id ? 'does not exist' : row.can_backup === 1 ? 'exists, BACKUP DATABASE allowed' : 'exists, but the login lacks BACKUP DATABASE (grant db_backupoperator)' });
    else results.push({ what: `${what} database ${db}`, ok: !row.id, detail: row.id ? 'already exists: airlift will not overwrite it' : 'free' });
  }
  if (role === 'target' && options.restorePermissions) {
    const [row] = await connection.run<{ create_db: number; credential: number }>(inventory.restorePermissionsQuery);
    results.push({ what: `${what} permissions`, ok: row.create_db === 1 && row.credential === 1, detail: `CREATE ANY DATABASE: ${row.create_db === 1 ? 'yes' : 'missing'}; ALTER ANY CREDENTIAL: ${row.credential === 1 ? 'yes' : 'missing'}` });
  }
  if (role === 'source' && e.backupShare)
    results.push(await access(e.backupShare, constants.R_OK).then(
      () => ({ what: `${what} backupShare ${e.backupShare}`, ok: true, detail: 'readable by this worker' }),
      (err: NodeJS.ErrnoException) => ({ what: `${what} backupShare ${e.backupShare}`, ok: false, detail: `not readable here (${err.code}); mount the folder the server writes backups to` }),
    ));
  return results;
}

/** What a SQL Server source's tenant needs of its target: read from the source's inventory and the target's server. */
async function readiness(tenant: { id: string; database: string; source: string; target: string }, session: CheckSession): Promise<TenantReadiness | undefined> {
  const { fleet } = session;
  const target = fleet.targets[tenant.target] as { engine: string; collation?: string };
  const src = session.connections.get(`source:${tenant.source}`);
  if (!src || src instanceof Error) return undefined;
  const managedInstance = target.engine === 'azure-sql-mi';
  const inv = await inventory.readSourceInventory(src, tenant.database);
  const facts: inventory.TargetFacts = { kind: managedInstance ? 'managed-instance' : 'sql-server', ...(managedInstance ? { collation: target.collation } : {}) };
  const tgt = session.connections.get(`target:${tenant.target}`);
  const sqlTarget = target.engine === 'mssql' || managedInstance;
  if (tgt && !(tgt instanceof Error)) {
    facts.level = await inventory.readServerLevel(tgt);
    facts.logins = await inventory.readTargetLogins(tgt);
  }
  const mi = managedInstance ? session.instances.get(tenant.target) : undefined;
  if (mi?.storageBytes !== undefined) {
    // Every tenant of this fleet bound for the instance from a SQL Server counts against its storage.
    let planned = 0;
    for (const other of fleet.tenants.filter((t) => t.target === tenant.target && fleet.sources[t.source].engine === 'mssql')) {
      const c = session.connections.get(`source:${other.source}`);
      if (c && !(c instanceof Error)) planned += (await inventory.readSourceInventory(c, other.database)).db?.sizeBytes ?? 0;
    }
    Object.assign(facts, { storageBytes: mi.storageBytes, plannedBytes: planned });
  }
  const findings = sqlTarget ? inventory.assessInventory(inv, facts) : [];
  const level = Math.min(inv.server.level, facts.level ?? (facts.kind === 'managed-instance' ? rowHash.NEWEST_LEVEL : inv.server.level));
  const rowHashes = inv.db
    ? [...tsql.tablesFromCatalog(await src.run<tsql.CatalogColumnRow>(tsql.listTablesQuery(tenant.database)))].map(([id, table]) => {
      const s = rowHash.rowHashQuery(table, { lower: true, upper: true }, rowHash.hashDialect(level));
      return { table: id, sql: s.sql, types: s.types ?? {} };
    })
    : [];
  const rowHashLevelName = level >= rowHash.NEWEST_LEVEL ? 'newest (2016 or later)' : String(level);
  return { tenant: tenant.id, database: tenant.database, findings, rowHashLevel: level, rowHashLevelName, rowHashes };
}

export const mssqlPlan: PlanInventory<SqlEndpointFields & { backupShare?: string; backupDirectory?: string }> = {
  planDetails,
  planFacts(input) {
    const mi = input.target.restoreKind === 'managed-instance';
    const continuous = mi && input.target.autoCompleteRestore === false;
    const facts = sqlServerPlan({
      database: input.database,
      ...(mi ? { managedInstance: { continuous, logShipping: continuous && Boolean(input.source.backupDirectory && input.source.backupShare) } } : {}),
      restoreAccess: input.restoreAccess,
      sasMinutes: input.sasMinutes,
      logBackupSeconds: input.logBackupSeconds,
    });
    return { facts, lines: renderSqlServerPlan(facts) };
  },
  checkEndpoint: (name, e, role, databases, session) => checkSqlServer(name, e, databases, role, session, { restorePermissions: true }),
  readiness,
};

export const managedInstancePlan: PlanInventory<SqlEndpointFields & { subscriptionId: string; resourceGroup: string; managedInstance: string }> = {
  async checkEndpoint(name, e, role, databases, session) {
    const results = await checkSqlServer(name, e, databases, role, session, { restorePermissions: false });
    try {
      const mi = await session.deps.managedInstance(e);
      session.instances.set(name, mi);
      results.push({ what: `target ${name} ARM`, ok: true, detail: `Managed Instance ${mi.name} in ${mi.location} is visible to this identity` });
    } catch (err) {
      results.push({ what: `target ${name} ARM`, ok: false, detail: `cannot read the Managed Instance: ${redactSecrets((err as Error).message.split('\n')[0])} (needs SQL Managed Instance Contributor)` });
    }
    return results;
  },
};
