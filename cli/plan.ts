// `airlift plan`: the dry run. For each tenant, the ordered steps with the exact T-SQL (parameters
// shown, secrets redacted), blob names and ARM operations. `--check` also tries connectivity and
// permissions. Nothing is changed by either.
import { BlobServiceClient } from '@azure/storage-blob';
import { DefaultAzureCredential } from '@azure/identity';
import { SqlManagementClient } from '@azure/arm-sql';
import { findTenant, type LoadedFleet, type Tenant } from '../config/fleet';
import { redactSecrets } from '../azure/blob-store';
import { managedInstanceRestorers } from '../azure/managed-instance';
import { createEngine, createRestoreTarget, kindOf, restoreKindOf, type PlannedArtifact, type PlanStep, type RestoreTarget, type SnapshotSource } from '../engines';
import type { CheckResult, CheckSession, EngineCheckDeps, Finding, TenantReadiness, Verdict } from '../engines/plan-check';
import { connectForCheck } from '../engines/mssql-plan';
import { ROW_HASH_PAGE_ROWS } from '../engines/mssql';
import { artifactBlobName, artifactFolder } from '../azure/artifact-folder';
import { containerAccessPlan, tenantRestorePlan, type TenantRestorePlan } from './restore-plan';

export type { PlanStep, CheckResult, TenantReadiness };

/** What `--check` reaches out to; tests replace it with test doubles. */
export interface CheckDeps extends EngineCheckDeps {
  /** Whether the artifact container exists (throws when storage cannot be reached). */
  containerExists(fleet: LoadedFleet, env: NodeJS.ProcessEnv): Promise<boolean>;
}

export interface TenantPlan {
  tenant: string;
  database: string;
  source: string;
  target: string;
  /** The folder, how the restore reads it and until when, the write freeze, the restore limit per instance. */
  restore: TenantRestorePlan;
  /** What the source's engine says beyond the steps (SQL Server: minimum version, log chain, limits, keys and counters at cut-over, credential, log backups). */
  sourceFacts?: unknown;
  /** The same, as the human-readable plan prints it. */
  factLines?: string[];
  steps: PlanStep[];
}

const MIGRATION = '<migration-id>';
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
  const restorer: RestoreTarget = createRestoreTarget(fleet.targets[tenant.target], createEngine(fleet.targets[tenant.target], env), { managedInstance });
  const details = kindOf(source).plan.planDetails?.() ?? { journaling: [], catchingUp: [], verifying: [] };
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
  const steps: PlanStep[] = [
    { phase: 'preflight', action: `source ${snapshotter.describe()} has ${tenant.database}; target ${restorer.describe()} has no ${tenant.database} (or one this migration restored); its prerequisites; container ${container} writable; catalog says primary=source`, detail: [] },
    { phase: 'journaling', action: 'change capture installed on every table (triggers record each changed key and refuse writes while the gate is closed); source gate open; watermark w0 = change-log head. The tenant keeps writing on every table until the cut-over', detail: [...details.journaling, ...admin('mode', { outbox: true })] },
    snapshotter.planSnapshot(tenant.database, MIGRATION),
    { phase: 'copying', action: `block upload to ${container}/${blobName}: ${fleet.policy.blockSizeMiB} MiB blocks, ${fleet.policy.uploadConcurrency} in flight, MD5 per block, sha256 in metadata${fleet.policy.maxUploadMiBps ? `, at most ${fleet.policy.maxUploadMiBps} MiB/s` : `; an artifact of at most ${Math.min(fleet.policy.blockSizeMiB * fleet.policy.uploadConcurrency, 256)} MiB in one Put Blob, its MD5 checked`}`, detail: [] },
    restorer.planRestore(tenant.database, planned),
    { phase: 'catching_up', action: `dual-write: the rows the source's change log names from w0, copied as they are now to the target, until fewer than ${fleet.policy.catchUpLagEvents} changes behind`, detail: details.catchingUp },
    { phase: 'verifying', action: `every table compared in key-ordered chunks of ${fleet.policy.verifyChunkRows} rows, read in pages of ${ROW_HASH_PAGE_ROWS}; differing rows named; rows whose change is still on its way are compared again at cut-over`, detail: details.verifying },
    ...(fleet.policy.cutover === 'manual' ? [{ phase: 'awaiting_cutover', action: 'waits for `airlift approve`', detail: [] }] : []),
    { phase: 'cutting_over', action: `fence (the only time the tenant's writes wait), drain the change log to the fence, compare every row changed since verification, flip primary to target, release; called off past ${fleet.policy.cutoverPauseBudgetMs} ms`, detail: [...admin('fence'), ...admin('primary', { side: 'target', outbox: true }), ...admin('unfence')] },
    { phase: 'rollback_window', action: `reverse dual-write keeps the source current for ${fleet.policy.rollbackWindowSeconds} s, or until \`airlift complete\``, detail: [] },
    { phase: 'completed', action: 'change capture removed from the target; the source is left intact with only its fence (airlift never drops a source database)', detail: admin('mode', { outbox: false }) },
  ];
  const restore = tenantRestorePlan(fleet, tenant, container, file, containerAccessPlan(fleet, container));
  const target = fleet.targets[tenant.target];
  const facts = kindOf(source).plan.planFacts?.({
    database: tenant.database,
    source: source as never,
    target: { restoreKind: restoreKindOf(target), autoCompleteRestore: (target as { autoCompleteRestore?: boolean }).autoCompleteRestore },
    restoreAccess: fleet.storage.restoreAccess,
    sasMinutes: fleet.policy.activityTimeoutMinutes,
    logBackupSeconds: fleet.policy.logBackupSeconds,
  });
  return { tenant: tenant.id, database: tenant.database, source: tenant.source, target: tenant.target, restore, ...(facts ? { sourceFacts: facts.facts, factLines: facts.lines } : {}), steps };
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
    for (const line of p.factLines ?? []) out.push(`    ${line}`);
    p.steps.forEach((s, i) => {
      out.push(`${String(i + 1).padStart(2)}. ${s.phase}: ${s.action}`);
      for (const d of s.detail) out.push(d.split('\n').map((l) => `      ${l}`).join('\n'));
    });
    out.push('');
  }
  return out.join('\n');
}

async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export const realCheckDeps: CheckDeps = {
  connect: (e, env) => connectForCheck(e, env, within),
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

/**
 * Tries everything the plan needs, changing nothing, and says what is missing; for SQL Server
 * sources also what each tenant's target needs (`readiness`).
 */
export async function checkPlan(fleet: LoadedFleet, tenantIds: string[], env: NodeJS.ProcessEnv = process.env, deps: CheckDeps = realCheckDeps): Promise<{ checks: CheckResult[]; readiness: TenantReadiness[] }> {
  const tenants = tenantIds.map((id) => findTenant(fleet, id));
  const results: CheckResult[] = [];
  const session: CheckSession = { env, deps, fleet, connections: new Map(), instances: new Map() };
  const dbsOf = (key: 'source' | 'target', name: string) => tenants.filter((t) => t[key] === name).map((t) => t.database);
  try {
    for (const [role, all] of [['source', fleet.sources], ['target', fleet.targets]] as const) {
      for (const [name, e] of Object.entries(all)) {
        const databases = dbsOf(role, name);
        if (databases.length) results.push(...(await kindOf(e).plan.checkEndpoint(name, e as never, role, databases, session)));
      }
    }
    const readiness: TenantReadiness[] = [];
    for (const tenant of tenants) {
      const r = (await kindOf(fleet.sources[tenant.source]).plan.readiness?.(tenant, session)) ?? (await captureReadinessOf(tenant, fleet, env));
      if (r) readiness.push(r);
    }
    results.push(...(await checkStorageAndGateways(fleet, env, deps)));
    return { checks: results, readiness };
  } finally {
    for (const c of session.connections.values()) if (!(c instanceof Error)) await c.close().catch(() => undefined);
  }
}

/**
 * For an engine without a readiness check of its own (SQLite, PostgreSQL): what preflight's capture
 * check finds in the database, the same words (a table keyed by rowid: do not VACUUM), as findings.
 */
async function captureReadinessOf(tenant: Tenant, fleet: LoadedFleet, env: NodeJS.ProcessEnv): Promise<TenantReadiness | undefined> {
  const engine = createEngine(fleet.sources[tenant.source], env);
  try {
    if (!engine.captureReadiness || !(await engine.probe(tenant.database)).exists) return undefined;
    const { problems, warnings } = await engine.captureReadiness(tenant.database);
    const findings: Finding[] = [
      ...problems.map((detail) => ({ item: 'change capture', verdict: 'blocking' as const, detail })),
      ...warnings.map((detail) => ({ item: 'change capture', verdict: 'warning' as const, detail })),
    ];
    if (!findings.length) findings.push({ item: 'change capture', verdict: 'ready', detail: 'every table can be captured and verified by key' });
    return { tenant: tenant.id, database: tenant.database, findings, rowHashes: [] };
  } catch {
    // Unreachable: the endpoint check above already says so.
    return undefined;
  } finally {
    await engine.close().catch(() => undefined);
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
  const label: Record<Verdict, string> = { ready: 'ready   ', warning: 'WARNING ', blocking: 'BLOCKING' };
  const out: string[] = [];
  for (const r of readiness) {
    const count = (v: Verdict) => r.findings.filter((f) => f.verdict === v).length;
    out.push(`== readiness ${r.tenant} (database ${r.database}): ${count('blocking')} blocking, ${count('warning')} warning, ${count('ready')} ready`);
    for (const f of r.findings) {
      out.push(`${label[f.verdict]}  ${f.item}: ${f.detail}`);
      if (f.fix) out.push(`          fix: ${f.fix}`);
    }
    if (r.rowHashLevelName !== undefined) out.push(`row hashes: ${r.rowHashes.length} tables, hashed as SQL Server level ${r.rowHashLevelName} on both sides (--json prints each statement)`);
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
