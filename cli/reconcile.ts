// `airlift reconcile`: the wiring around protocol/reconcile.ts. Asks Temporal which tenants a running
// migration owns (and which migration it runs), builds the tenant's engines, the catalog, the
// gateways' admin API and the artifact container, and lets the protocol find and repair the rest.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { LoadedFleet } from '../config/fleet';
import { fleetEngines } from '../engines';
import { hostname } from 'node:os';
import { Catalog } from '../ingestion/catalog';
import { catalogRoutes, gatewayRoutes, type RouteControl } from '../ingestion/routes';
import { GatewayAdmin } from '../ingestion/admin-client';
import { connectContainer } from '../azure/blob-store';
import { DefaultAzureCredential } from '@azure/identity';
import { managedInstanceRestorers } from '../azure/managed-instance';
import { statusQuery, tenantWorkflowId, type TenantInput } from '../workflows/contract';
import { inspectTenant, needsAttention, repairTenant, type Ownership, type ReconcileAdapters, type ReconcileTenant, type TenantReport } from '../protocol/reconcile';
import { OperatorError } from './waves';

/** Temporal as reconcile sees it: a client, or why there is none. */
export type TemporalAccess = { client: Client; address: string } | { error: string; address: string };

export interface ReconcileResult {
  temporal: { address: string; reachable: boolean; error?: string };
  applied: boolean;
  tenants: TenantReport[];
  /** Tenants that need a repair (or a person) after this run. */
  needingRepair: string[];
}

const TENANT_WORKFLOW_TYPE = 'migrateTenant';

/** The migration id a run carries in its input (no worker needed); the status query for older runs. */
async function migrationIdOf(client: Client, workflowId: string, runId: string): Promise<string | undefined> {
  try {
    const { history } = await client.workflowService.getWorkflowExecutionHistory({ namespace: client.options.namespace, execution: { workflowId, runId }, maximumPageSize: 1 });
    const payload = history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    const input = payload ? (defaultPayloadConverter.fromPayload(payload) as Partial<TenantInput>) : undefined;
    if (input?.migrationId) return input.migrationId;
  } catch {
    // Fall through to the query.
  }
  const status = await client.connection.withDeadline(Date.now() + 5000, () => client.workflow.getHandle(workflowId).query(statusQuery)).catch(() => undefined);
  return status?.migrationId;
}

async function ownerFromTemporal(client: Client, tenantId: string): Promise<Ownership> {
  const workflowId = tenantWorkflowId(tenantId);
  try {
    const d = await client.workflow.getHandle(workflowId).describe();
    if (d.type !== TENANT_WORKFLOW_TYPE || d.status.name !== 'RUNNING')
      return { kind: 'none', lastRun: `${workflowId} ${d.status.name.toLowerCase()}${d.closeTime ? ` at ${d.closeTime.toISOString()}` : ''}` };
    return { kind: 'workflow', workflowId, migrationId: await migrationIdOf(client, workflowId, d.runId) };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { kind: 'none' };
    return { kind: 'unknown', reason: `Temporal: ${(err as Error).message.split('\n')[0]}` };
  }
}

/** Runs `fn` over `items`, at most `limit` at once, keeping their order. */
async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    }),
  );
  return out;
}

function routesFor(fleet: LoadedFleet, catalog: Catalog, env: NodeJS.ProcessEnv): { routes: RouteControl; views?: ReconcileAdapters['gatewayViews'] } {
  const ingestion = fleet.ingestion;
  if (!ingestion) return { routes: catalogRoutes(catalog) };
  const token = env[ingestion.adminTokenEnv];
  if (!token) throw new OperatorError(`ingestion.adminTokenEnv: environment variable ${ingestion.adminTokenEnv} is not set; export the gateways' admin token in it (reconcile reads and lifts their fences)`);
  const nodes = ingestion.gateways.map((url) => ({ url, admin: new GatewayAdmin([url], token) }));
  return {
    routes: gatewayRoutes(ingestion.gateways, token, catalog),
    views: (tenantId) =>
      Promise.all(
        nodes.map(({ url, admin }) =>
          admin.view(tenantId).then(
            ([v]) => ({ gateway: url, fenced: v.fenced, primary: v.primary }),
            (err: Error) => ({ gateway: url, error: err.message }),
          ),
        ),
      ),
  };
}

/** Reads every tenant of the fleet, and with `apply` repairs those no running workflow owns. */
export async function reconcileFleet(fleet: LoadedFleet, temporal: TemporalAccess, options: { apply: boolean; env?: NodeJS.ProcessEnv; tenants?: string[] }): Promise<ReconcileResult> {
  const env = options.env ?? process.env;
  const reachable = 'client' in temporal;
  if (options.apply && !reachable)
    throw new OperatorError(`reconcile --apply refused, since which tenants a running migration owns cannot be known: ${temporal.error}`);
  const wanted = options.tenants ? new Set(options.tenants) : undefined;
  const tenants = fleet.tenants.filter((t) => !wanted || wanted.has(t.id));

  const catalog = new Catalog(fleet.catalog.path);
  const engines = fleetEngines(fleet, env, { managedInstance: managedInstanceRestorers(new DefaultAzureCredential()) });
  try {
    const { routes, views } = routesFor(fleet, catalog, env);
    let container: ReturnType<typeof connectContainer> | undefined;
    let storageError: string | undefined;
    try {
      container = connectContainer(fleet.storage, env);
    } catch (err) {
      storageError = (err as Error).message;
    }
    const ownerOf = (tenantId: string): Promise<Ownership> =>
      'client' in temporal ? ownerFromTemporal(temporal.client, tenantId) : Promise.resolve({ kind: 'unknown', reason: `Temporal at ${temporal.address} cannot be reached` });
    // Every tenant of the fleet is asked, not only the ones reconciled: a live migration's id must be known wherever its marker lies.
    const owners = new Map(await mapLimited(fleet.tenants, 16, async (t) => [t.id, await ownerOf(t.id)] as const));
    const owned = [...owners.values()];
    const live = owned.some((o) => o.kind === 'unknown' || (o.kind === 'workflow' && !o.migrationId))
      ? undefined
      : new Set(owned.flatMap((o) => (o.kind === 'workflow' && o.migrationId ? [o.migrationId] : [])));

    const adapters: ReconcileAdapters = {
      catalog,
      holder: `airlift reconcile (pid ${process.pid} on ${hostname()})`,
      routes,
      gatewayViews: views,
      listBlobs: async function* (prefix) {
        if (!container) throw new Error(storageError ?? 'no storage');
        for await (const blob of container.listBlobsFlat({ prefix, includeUncommitedBlobs: true })) yield { name: blob.name, size: blob.properties.contentLength ?? 0 };
      },
      ownerOf,
      liveMigrations: live,
    };
    const reports: TenantReport[] = [];
    for (const t of tenants) {
      const tenant: ReconcileTenant = {
        tenantId: t.id,
        database: t.database,
        source: engines.engine('sources', t.source),
        target: engines.engine('targets', t.target),
        dropTarget: (migrationId) => engines.restorer(t.target).dropRestored(t.database, migrationId),
      };
      const report = await inspectTenant(adapters, tenant, owners.get(t.id));
      if (options.apply && report.repairs.length && !report.problems.length) {
        await repairTenant(adapters, tenant, report);
        // What is left, read afresh: the result says whether the tenant is whole now.
        const after = await inspectTenant(adapters, tenant);
        report.repairs = after.repairs;
        report.problems = after.problems;
        report.catalog = after.catalog;
        report.source = after.source;
        report.target = after.target;
        report.gateways = after.gateways;
      }
      reports.push(report);
    }
    return {
      temporal: { address: temporal.address, reachable, error: 'error' in temporal ? temporal.error : undefined },
      applied: options.apply,
      tenants: reports,
      needingRepair: reports.filter(needsAttention).map((r) => r.tenantId),
    };
  } finally {
    catalog.close();
    await engines.close();
  }
}
