// `airlift plan`: the dry run. For each tenant, the ordered steps with the exact T-SQL (parameters
// shown, secrets redacted), blob names and ARM operations. `--check` also tries connectivity and
// permissions. Nothing is changed by either.
import { access, constants } from 'node:fs/promises';
import { BlobServiceClient } from '@azure/storage-blob';
import { DefaultAzureCredential } from '@azure/identity';
import { SqlManagementClient } from '@azure/arm-sql';
import sql from 'mssql';
import { findTenant, type Endpoint, type LoadedFleet, type Tenant } from '../config/fleet';
import * as tsql from '../engines/mssql-sql';
import * as capture_sql from '../engines/mssql-capture-sql';
import * as rowHash from '../engines/mssql-row-hash';
import * as inventory from '../engines/mssql-inventory';
import { bindParameters, ROW_HASH_PAGE_ROWS } from '../engines/mssql';
import { redactSecrets } from '../azure/blob-store';
import { managedInstanceRestorers } from '../azure/managed-instance';
import { createEngine, createRestoreTarget, type PlannedArtifact, type PlanStep, type RestoreTarget, type SnapshotSource } from '../engines';
import { artifactBlobName, artifactFolder } from '../azure/artifact-folder';
import { containerAccessPlan, tenantRestorePlan, type TenantRestorePlan } from './restore-plan';

export type { PlanStep };

export interface TenantPlan {
  tenant: string;
  database: string;
  source: string;
  target: string;
  /** The folder, how the restore reads it and until when, the write freeze, the restore limit per instance. */
  restore: TenantRestorePlan;
  steps: PlanStep[];
}

const MIGRATION = '<migration-id>';
/** The tracking table as the demo schema has it; the statement has one @v_<column> per column of yours. */
const DEMO_TRACKING_TABLE: tsql.MssqlTable = {
  schema: 'dbo', name: 'tracking_events', key: ['seq'],
  columns: [
    { name: 'seq', type: 'bigint', identity: true }, { name: 'event_id', type: 'nvarchar' }, { name: 'ad_id', type: 'int' }, { name: 'kind', type: 'nvarchar' },
    { name: 'occurred_at', type: 'nvarchar' }, { name: 'user_agent', type: 'nvarchar' }, { name: 'payload', type: 'nvarchar' },
  ],
};
/** `plan` builds the same restorers the worker does, signed in with nothing: it sends no request. */
const managedInstance = managedInstanceRestorers({
  getToken: async () => {
    throw new Error('airlift plan sends nothing to Azure');
  },
});

/** The container URL without any credential: from the account URL, or the connection string's endpoint. */
export function containerUrl(fleet: LoadedFleet, env: NodeJS.ProcessEnv): string {
  const { storage } = fleet;
  if (storage.accountUrl) return `${storage.accountUrl.replace(/\/$/, '')}/${storage.container}`;
  const value = env[storage.connectionStringEnv!];
  if (!value) return `<account in $${storage.connectionStringEnv}>/${storage.container}`;
  try {
    return BlobServiceClient.fromConnectionString(value).getContainerClient(storage.container).url;
  } catch {
    return `<account in $${storage.connectionStringEnv}>/${storage.container}`;
  }
}

export function planTenant(fleet: LoadedFleet, tenant: Tenant, env: NodeJS.ProcessEnv = process.env): TenantPlan {
  const source = fleet.sources[tenant.source];
  // The steps come from the same objects that run them: the source engine, the target's restorer.
  const snapshotter: SnapshotSource = createEngine(source, env);
  const restorer: RestoreTarget = createRestoreTarget(fleet.targets[tenant.target], createEngine(fleet.targets[tenant.target], env), managedInstance);
  const container = containerUrl(fleet, env);
  const file = snapshotter.artifactName(tenant.database, MIGRATION);
  const blobName = artifactBlobName(tenant.id, MIGRATION, file);
  const planned: PlannedArtifact = {
    url: `${container}/${blobName}`,
    containerUrl: container,
    folderUrl: `${container}/${artifactFolder(tenant.id, MIGRATION)}`,
    blobName,
    lastBackupName: file,
    migrationId: MIGRATION,
    restoreAccess: fleet.storage.restoreAccess,
    restoreMinutes: fleet.policy.activityTimeoutMinutes,
  };
  const gateways = fleet.ingestion?.gateways ?? [];
  const admin = (what: string, body?: object) =>
    gateways.length ? gateways.map((g) => `POST ${g}/admin/tenants/${tenant.id}/${what}${body ? ` ${JSON.stringify(body)}` : ''}  (bearer token from $${fleet.ingestion!.adminTokenEnv})`) : [`catalog ${fleet.catalog.path}: ${what}${body ? ` ${JSON.stringify(body)}` : ''}`];
  // On SQL Server, change capture is installed with these statements (one trigger per table; shown for the demo's tracking table).
  const capture = source.engine === 'sqlite' ? [] : [tsql.renderStatement(capture_sql.captureSchema), tsql.renderStatement(capture_sql.captureTriggerStatement(DEMO_TRACKING_TABLE))];
  const steps: PlanStep[] = [
    { phase: 'preflight', action: `source ${snapshotter.describe()} has ${tenant.database}; target ${restorer.describe()} has no ${tenant.database} (or one this migration restored); its prerequisites; container ${container} writable; catalog says primary=source`, detail: [] },
    { phase: 'journaling', action: 'change capture installed on every table (triggers record each changed key and refuse writes while the gate is closed); source gate open; watermark w0 = change-log head. The tenant keeps writing on every table until the cut-over', detail: [...capture, ...admin('mode', { outbox: true })] },
    snapshotter.planSnapshot(tenant.database, MIGRATION),
    { phase: 'copying', action: `block upload to ${container}/${blobName}: ${fleet.policy.blockSizeMiB} MiB blocks, ${fleet.policy.uploadConcurrency} in flight, MD5 per block, sha256 in metadata${fleet.policy.maxUploadMiBps ? `, at most ${fleet.policy.maxUploadMiBps} MiB/s` : `; an artifact of at most ${Math.min(fleet.policy.blockSizeMiB * fleet.policy.uploadConcurrency, 256)} MiB in one Put Blob, its MD5 checked`}`, detail: [] },
    restorer.planRestore(tenant.database, planned),
    { phase: 'catching_up', action: `dual-write: the rows the source's change log names from w0, copied as they are now to the target, until fewer than ${fleet.policy.catchUpLagEvents} changes behind`, detail: source.engine === 'mssql' ? [tsql.renderStatement(capture_sql.safePointStatement), tsql.renderStatement(capture_sql.readChangesQuery), tsql.renderStatement(capture_sql.applyBeginStatement)] : [] },
    { phase: 'verifying', action: `every table compared in key-ordered chunks of ${fleet.policy.verifyChunkRows} rows, read in pages of ${ROW_HASH_PAGE_ROWS}; differing rows named; rows whose change is still on its way are compared again at cut-over`, detail: source.engine === 'mssql' ? [tsql.renderStatement(tsql.listTablesQuery()), tsql.renderStatement(rowHash.serverLevelQuery), 'per table: the row-hash statement for the older server of the pair; `airlift plan --check --json` prints each table\'s (readiness[].rowHashes)'] : [] },
    ...(fleet.policy.cutover === 'manual' ? [{ phase: 'awaiting_cutover', action: 'waits for `airlift approve`', detail: [] }] : []),
    { phase: 'cutting_over', action: `fence (the only time the tenant's writes wait), drain the change log to the fence, compare every row changed since verification, flip primary to target, release; called off past ${fleet.policy.cutoverPauseBudgetMs} ms`, detail: [...admin('fence'), ...admin('primary', { side: 'target', outbox: true }), ...admin('unfence')] },
    { phase: 'rollback_window', action: `reverse dual-write keeps the source current for ${fleet.policy.rollbackWindowSeconds} s, or until \`airlift complete\``, detail: [] },
    { phase: 'completed', action: 'change capture removed from the target; the source is left intact with only its fence (airlift never drops a source database)', detail: admin('mode', { outbox: false }) },
  ];
  const restore = tenantRestorePlan(fleet, tenant, container, file, containerAccessPlan(fleet, container));
  return { tenant: tenant.id, database: tenant.database, source: tenant.source, target: tenant.target, restore, steps };
}

export function renderPlan(plans: TenantPlan[]): string {
  const out: string[] = [];
  for (const p of plans) {
    out.push(`== tenant ${p.tenant} (database ${p.database}: ${p.source} -> ${p.target})`);
    const r = p.restore;
    out.push(`    folder: ${r.folderUri}/  (last backup ${r.lastBackupName})`);
    out.push(`    restore reads it with: ${r.authentication.kind}${r.authentication.validUntil ? `, valid until ${r.authentication.validUntil}` : ''}: ${r.authentication.detail}`);
    out.push(`    write freeze: from ${r.writeFreeze.from} until ${r.writeFreeze.until}: ${r.writeFreeze.estimate}`);
    out.push(`    restores at once on ${r.concurrency.target}: ${r.concurrency.note}`);
    p.steps.forEach((s, i) => {
      out.push(`${String(i + 1).padStart(2)}. ${s.phase}: ${s.action}`);
      for (const d of s.detail) out.push(d.split('\n').map((l) => `      ${l}`).join('\n'));
    });
    out.push('');
  }
  return out.join('\n');
}

export interface CheckResult {
  what: string;
  ok: boolean;
  detail: string;
}

async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

type SqlEndpoint = Extract<Endpoint, { engine: 'mssql' | 'azure-sql-mi' }>;

/** A connection `--check` reads through: a real server, or in tests an in-process test double. */
export type CheckConnection = inventory.SqlRunner & { close(): Promise<void> };

/** What `--check` reaches out to; tests replace it with test doubles. */
export interface CheckDeps {
  connect(e: SqlEndpoint, env: NodeJS.ProcessEnv): Promise<CheckConnection>;
  /** The Managed Instance through ARM: its name, location and reserved storage. */
  managedInstance(e: Extract<Endpoint, { engine: 'azure-sql-mi' }>): Promise<{ name: string; location: string; storageBytes?: number }>;
  /** Whether the artifact container exists (throws when storage cannot be reached). */
  containerExists(fleet: LoadedFleet, env: NodeJS.ProcessEnv): Promise<boolean>;
}

export const realCheckDeps: CheckDeps = {
  async connect(e, env) {
    const password = e.passwordEnv ? env[e.passwordEnv] : undefined;
    if (e.passwordEnv && !password) throw new Error(`environment variable ${e.passwordEnv} is not set`);
    const pool = new sql.ConnectionPool({ server: e.server, port: e.port, user: e.user, password, database: 'master', connectionTimeout: 8000, options: { encrypt: e.encrypt, trustServerCertificate: e.trustServerCertificate } });
    await within(10_000, pool.connect());
    return {
      run: async <T>(statement: tsql.Statement, values?: Record<string, unknown>) => (await within(30_000, bindParameters(pool.request(), statement, values).query(statement.sql))).recordset as T[],
      close: () => pool.close(),
    };
  },
  async managedInstance(e) {
    const client = new SqlManagementClient(new DefaultAzureCredential(), e.subscriptionId);
    const mi = await within(20_000, client.managedInstances.get(e.resourceGroup, e.managedInstance));
    return { name: mi.name ?? e.managedInstance, location: mi.location, storageBytes: mi.storageSizeInGB ? mi.storageSizeInGB * 1024 ** 3 : undefined };
  },
  async containerExists(fleet, env) {
    const value = fleet.storage.connectionStringEnv ? env[fleet.storage.connectionStringEnv] : undefined;
    if (fleet.storage.connectionStringEnv && !value) throw new Error(`environment variable ${fleet.storage.connectionStringEnv} is not set`);
    const service = value ? BlobServiceClient.fromConnectionString(value) : new BlobServiceClient(fleet.storage.accountUrl!, new DefaultAzureCredential());
    return within(15_000, service.getContainerClient(fleet.storage.container).exists());
  },
};

async function checkSqlServer(name: string, e: SqlEndpoint, connection: CheckConnection | Error, databases: string[], role: 'source' | 'target'): Promise<CheckResult[]> {
  const what = `${role} ${name} (${e.server}:${e.port})`;
  if (connection instanceof Error) return [{ what, ok: false, detail: /environment variable/.test(connection.message) ? connection.message : `cannot connect: ${redactSecrets(connection.message)}` }];
  const results: CheckResult[] = [{ what, ok: true, detail: 'connected' }];
  for (const db of databases) {
    const [row] = await connection.run<{ id: number | null; can_backup: number | null }>(inventory.backupPermissionQuery(db));
    if (role === 'source') results.push({ what: `${what} database ${db}`, ok: Boolean(row.id) && row.can_backup === 1, detail: !row.id ? 'does not exist' : row.can_backup === 1 ? 'exists, BACKUP DATABASE allowed' : 'exists, but the login lacks BACKUP DATABASE (grant db_backupoperator)' });
    else results.push({ what: `${what} database ${db}`, ok: !row.id, detail: row.id ? 'already exists: airlift will not overwrite it' : 'free' });
  }
  if (role === 'target' && e.engine === 'mssql') {
    const [row] = await connection.run<{ create_db: number; credential: number }>(inventory.restorePermissionsQuery);
    results.push({ what: `${what} permissions`, ok: row.create_db === 1 && row.credential === 1, detail: `CREATE ANY DATABASE: ${row.create_db === 1 ? 'yes' : 'missing'}; ALTER ANY CREDENTIAL: ${row.credential === 1 ? 'yes' : 'missing'}` });
  }
  if (role === 'source' && e.engine === 'mssql' && e.backupShare)
    results.push(await access(e.backupShare, constants.R_OK).then(
      () => ({ what: `${what} backupShare ${e.backupShare}`, ok: true, detail: 'readable by this worker' }),
      (err: NodeJS.ErrnoException) => ({ what: `${what} backupShare ${e.backupShare}`, ok: false, detail: `not readable here (${err.code}); mount the folder the server writes backups to` }),
    ));
  return results;
}

/** Per tenant: what its source and target need (ready / warning / blocking, with the fix), and each table's row-hash statement. */
export interface TenantReadiness {
  tenant: string;
  database: string;
  findings: inventory.Finding[];
  /** The SQL Server version level both sides hash at: the older of the two. */
  rowHashLevel?: number;
  rowHashes: { table: string; sql: string; types: Record<string, string> }[];
}

async function readinessOf(
  fleet: LoadedFleet, tenant: Tenant, connection: (role: 'source' | 'target', name: string) => CheckConnection | Error | undefined,
  instance: (name: string) => Promise<{ storageBytes?: number } | undefined>,
): Promise<TenantReadiness | undefined> {
  const source = fleet.sources[tenant.source];
  const target = fleet.targets[tenant.target];
  const src = connection('source', tenant.source);
  if (source.engine !== 'mssql' || !src || src instanceof Error) return undefined;
  const inv = await inventory.readSourceInventory(src, tenant.database);
  const facts: inventory.TargetFacts = { kind: target.engine === 'azure-sql-mi' ? 'managed-instance' : 'sql-server', ...(target.engine === 'azure-sql-mi' ? { collation: target.collation } : {}) };
  const tgt = target.engine === 'sqlite' ? undefined : connection('target', tenant.target);
  if (tgt && !(tgt instanceof Error)) {
    facts.level = await inventory.readServerLevel(tgt);
    facts.logins = await inventory.readTargetLogins(tgt);
  }
  if (target.engine === 'azure-sql-mi') {
    const mi = await instance(tenant.target);
    if (mi?.storageBytes !== undefined) {
      // Every tenant of this fleet bound for the instance counts against its storage.
      let planned = 0;
      for (const other of fleet.tenants.filter((t) => t.target === tenant.target && fleet.sources[t.source].engine === 'mssql')) {
        const c = connection('source', other.source);
        if (c && !(c instanceof Error)) planned += (await inventory.readSourceInventory(c, other.database)).db?.sizeBytes ?? 0;
      }
      Object.assign(facts, { storageBytes: mi.storageBytes, plannedBytes: planned });
    }
  }
  const findings = target.engine === 'sqlite' ? [] : inventory.assessInventory(inv, facts);
  const level = Math.min(inv.server.level, facts.level ?? (facts.kind === 'managed-instance' ? rowHash.NEWEST_LEVEL : inv.server.level));
  const rowHashes = inv.db
    ? [...tsql.tablesFromCatalog(await src.run<tsql.CatalogColumnRow>(tsql.listTablesQuery(tenant.database)))].map(([id, table]) => {
      const s = rowHash.rowHashQuery(table, { lower: true, upper: true }, rowHash.hashDialect(level));
      return { table: id, sql: s.sql, types: s.types ?? {} };
    })
    : [];
  return { tenant: tenant.id, database: tenant.database, findings, rowHashLevel: level, rowHashes };
}

/**
 * Tries everything the plan needs, changing nothing, and says what is missing; for SQL Server
 * sources also what each tenant's target needs (`readiness`).
 */
export async function checkPlan(fleet: LoadedFleet, tenantIds: string[], env: NodeJS.ProcessEnv = process.env, deps: CheckDeps = realCheckDeps): Promise<{ checks: CheckResult[]; readiness: TenantReadiness[] }> {
  const tenants = tenantIds.map((id) => findTenant(fleet, id));
  const results: CheckResult[] = [];
  const connections = new Map<string, CheckConnection | Error>();
  const instances = new Map<string, { storageBytes?: number }>();
  const dbsOf = (key: 'source' | 'target', name: string) => tenants.filter((t) => t[key] === name).map((t) => t.database);
  try {
    for (const [role, all] of [['source', fleet.sources], ['target', fleet.targets]] as const) {
      for (const [name, e] of Object.entries(all)) {
        const databases = dbsOf(role, name);
        if (!databases.length) continue;
        if (e.engine === 'sqlite') {
          results.push(await access(e.directory, role === 'source' ? constants.R_OK : constants.W_OK).then(
            () => ({ what: `${role} ${name} (${e.directory})`, ok: true, detail: role === 'source' ? 'readable' : 'writable' }),
            (err: NodeJS.ErrnoException) => ({ what: `${role} ${name} (${e.directory})`, ok: role === 'target' && err.code === 'ENOENT', detail: err.code === 'ENOENT' && role === 'target' ? 'will be created' : `${err.code}` }),
          ));
          continue;
        }
        const connection = await deps.connect(e, env).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
        connections.set(`${role}:${name}`, connection);
        results.push(...(await checkSqlServer(name, e, connection, databases, role)));
        if (e.engine === 'azure-sql-mi') {
          try {
            const mi = await deps.managedInstance(e);
            instances.set(name, mi);
            results.push({ what: `target ${name} ARM`, ok: true, detail: `Managed Instance ${mi.name} in ${mi.location} is visible to this identity` });
          } catch (err) {
            results.push({ what: `target ${name} ARM`, ok: false, detail: `cannot read the Managed Instance: ${redactSecrets((err as Error).message.split('\n')[0])} (needs SQL Managed Instance Contributor)` });
          }
        }
      }
    }
    const readiness: TenantReadiness[] = [];
    for (const tenant of tenants) {
      const r = await readinessOf(fleet, tenant, (role, name) => connections.get(`${role}:${name}`), async (name) => instances.get(name));
      if (r) readiness.push(r);
    }
    results.push(...(await checkStorageAndGateways(fleet, env, deps)));
    return { checks: results, readiness };
  } finally {
    for (const c of connections.values()) if (!(c instanceof Error)) await c.close().catch(() => undefined);
  }
}

async function checkStorageAndGateways(fleet: LoadedFleet, env: NodeJS.ProcessEnv, deps: CheckDeps): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  try {
    const exists = await deps.containerExists(fleet, env);
    results.push({ what: `storage container ${fleet.storage.container}`, ok: true, detail: exists ? 'exists and is readable' : 'reachable; the container will be created' });
  } catch (err) {
    results.push({ what: `storage container ${fleet.storage.container}`, ok: false, detail: redactSecrets((err as Error).message.split('\n')[0]) });
  }
  for (const g of fleet.ingestion?.gateways ?? []) {
    const ok = await within(5000, fetch(`${g.replace(/\/$/, '')}/healthz`)).then((r) => r.ok, () => false);
    results.push({ what: `gateway ${g}`, ok, detail: ok ? 'healthy' : 'no answer on /healthz' });
  }
  return results;
}

/** Readiness as an operator reads it: one line per finding, the fix under each warning or blocking one. */
export function renderReadiness(readiness: TenantReadiness[]): string {
  const label: Record<inventory.Verdict, string> = { ready: 'ready   ', warning: 'WARNING ', blocking: 'BLOCKING' };
  const out: string[] = [];
  for (const r of readiness) {
    const count = (v: inventory.Verdict) => r.findings.filter((f) => f.verdict === v).length;
    out.push(`== readiness ${r.tenant} (database ${r.database}): ${count('blocking')} blocking, ${count('warning')} warning, ${count('ready')} ready`);
    for (const f of r.findings) {
      out.push(`${label[f.verdict]}  ${f.item}: ${f.detail}`);
      if (f.fix) out.push(`          fix: ${f.fix}`);
    }
    if (r.rowHashLevel !== undefined) out.push(`row hashes: ${r.rowHashes.length} tables, hashed as SQL Server level ${r.rowHashLevel >= rowHash.NEWEST_LEVEL ? 'newest (2016 or later)' : r.rowHashLevel} on both sides (--json prints each statement)`);
    out.push('');
  }
  return out.join('\n');
}

/** `airlift plan`: the plan, and with `check` what is missing and each tenant's readiness. Exit 1 when anything is missing or blocking. */
export async function planCommand(fleet: LoadedFleet, ids: string[], o: { check: boolean; json: boolean }, env: NodeJS.ProcessEnv = process.env, deps: CheckDeps = realCheckDeps): Promise<{ output: string; exitCode: number }> {
  const plans = ids.map((id) => planTenant(fleet, findTenant(fleet, id), env));
  const checked = o.check ? await checkPlan(fleet, ids, env, deps) : undefined;
  const failed = Boolean(checked?.checks.some((c) => !c.ok) || checked?.readiness.some((r) => r.findings.some((f) => f.verdict === 'blocking')));
  // One credential choice per container, shared by every restore into it.
  const restoreAccess = containerAccessPlan(fleet, containerUrl(fleet, env));
  if (o.json) return { output: JSON.stringify({ fleet: fleet.file, restoreAccess, tenants: plans, ...(checked ?? {}) }, null, 2), exitCode: failed ? 1 : 0 };
  const text = [renderPlan(plans)];
  if (checked) {
    text.push('== checks', ...checked.checks.map((c) => `${c.ok ? 'ok     ' : 'MISSING'}  ${c.what}: ${c.detail}`), '');
    text.push(renderReadiness(checked.readiness));
  }
  return { output: text.join('\n'), exitCode: failed ? 1 : 0 };
}
