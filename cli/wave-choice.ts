// Which tenants a `wave start` starts, and which it skips and why. One rule for a whole-fleet start,
// a start with --tenants and a --rerun: a tenant already served from its target, or running in
// another wave, is never started; one an operator rolled back, or whose last run was terminated
// (nobody finished it), only when named; a rerun means the tenants of that wave that did not finish.
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import {
  outcomeSearchAttribute,
  phaseSearchAttribute,
  statusQuery,
  tenantWorkflowId,
  waveSearchAttribute,
  type WaveStatus,
} from '../workflows/contract';

/** Every run of each workflow a visibility query lists, newest first. */
export async function runsByWorkflow(client: Client, query: string): Promise<Map<string, WorkflowExecutionInfo[]>> {
  const runs = new Map<string, WorkflowExecutionInfo[]>();
  for await (const info of client.workflow.list({ query })) {
    const list = runs.get(info.workflowId) ?? [];
    list.push(info);
    runs.set(info.workflowId, list);
  }
  for (const list of runs.values()) list.sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
  return runs;
}

export interface SkippedTenant {
  tenantId: string;
  /** A sentence: why it was not started, and how to start it if that is possible. */
  why: string;
}

export interface TenantChoice {
  start: string[];
  skipped: SkippedTenant[];
  /** Named with --tenants although an operator rolled them back (or their run was terminated): started anyway. */
  again: SkippedTenant[];
}

export interface ChoiceRequest {
  /** Every tenant of the fleet file, in its order. */
  fleetTenants: string[];
  /** --tenants, when given. */
  named?: string[];
  /** With --rerun: the earlier run of this wave id, whose unfinished tenants are the candidates. */
  rerunOf?: WaveStatus;
  /** The fleet file, for the reconcile hint. */
  fleetFile: string;
}

/** How a tenant's latest run stands, from its visibility record. */
function standing(info: WorkflowExecutionInfo): { running: boolean; outcome?: string; waveId?: string; closedAs: string } {
  const attrs = info.typedSearchAttributes;
  const phase = attrs.get(phaseSearchAttribute);
  const outcome = attrs.get(outcomeSearchAttribute) ?? (phase === 'completed' || phase === 'rolled_back' || phase === 'failed' ? phase : undefined);
  return { running: info.status.name === 'RUNNING', outcome, waveId: attrs.get(waveSearchAttribute) || undefined, closedAs: info.status.name.toLowerCase() };
}

/** An operator's rollback reason, when a worker answers the closed run's query soon; a nicety, never worth a wait. */
async function rollbackReason(client: Client, info: WorkflowExecutionInfo): Promise<string | undefined> {
  const query = client.workflow.getHandle(info.workflowId, info.runId).query(statusQuery).then((s) => s.rollbackReason, () => undefined);
  return Promise.race([query, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 3000).unref())]);
}

export async function chooseTenants(client: Client, request: ChoiceRequest): Promise<TenantChoice> {
  const { named, rerunOf } = request;
  const candidates = named ?? (rerunOf ? rerunOf.tenants.filter((r) => r.state !== 'completed' && r.state !== 'rolled_back').map((r) => r.tenantId) : request.fleetTenants);
  const choice: TenantChoice = { start: [], skipped: [], again: [] };
  if (rerunOf && !named)
    for (const r of rerunOf.tenants.filter((row) => row.state === 'completed' || row.state === 'rolled_back'))
      choice.skipped.push({ tenantId: r.tenantId, why: `${r.state === 'completed' ? 'migrated' : 'rolled back'} in the earlier run of ${rerunOf.waveId}; a rerun starts only its tenants that did not finish${r.state === 'rolled_back' ? ' (name it with --tenants to migrate it again)' : ''}` });
  const latest = new Map([...(await runsByWorkflow(client, "WorkflowType = 'migrateTenant'"))].map(([id, runs]) => [id, runs[0]]));
  const reconcile = `run \`airlift reconcile -f ${request.fleetFile}\` first`;
  await Promise.all(candidates.map(async (tenantId) => {
    const info = latest.get(tenantWorkflowId(tenantId));
    if (!info) return;
    const s = standing(info);
    const where = s.waveId ? `wave ${s.waveId}` : 'no wave';
    if (s.running) return choice.skipped.push({ tenantId, why: `running in ${where} (workflow ${info.workflowId}); a tenant migrates in one workflow at a time` });
    if (s.outcome === 'completed') return choice.skipped.push({ tenantId, why: `already served from its target (migrated in ${where}, ${info.closeTime?.toISOString() ?? ''})`.replace(', )', ')') });
    const isNamed = named?.includes(tenantId) ?? false;
    if (s.outcome === 'rolled_back') {
      const reason = await rollbackReason(client, info);
      const why = `rolled back by an operator in ${where}${reason ? ` (${reason})` : ''}; served from its source`;
      return isNamed ? choice.again.push({ tenantId, why }) : choice.skipped.push({ tenantId, why: `${why}; name it with --tenants to migrate it again` });
    }
    if (s.outcome === undefined && (s.closedAs === 'terminated' || s.closedAs === 'timed_out')) {
      const why = `its last run (${where}) was ${s.closedAs.replace('_', ' ')} before it ended, so nothing finished or undid it`;
      return isNamed ? choice.again.push({ tenantId, why: `${why}; ${reconcile} unless you did` }) : choice.skipped.push({ tenantId, why: `${why}: ${reconcile}, then name it with --tenants` });
    }
  }));
  const skippedIds = new Set(choice.skipped.map((s) => s.tenantId));
  choice.start = candidates.filter((t) => !skippedIds.has(t));
  const order = new Map(request.fleetTenants.map((t, i) => [t, i]));
  choice.skipped.sort((a, b) => (order.get(a.tenantId) ?? 0) - (order.get(b.tenantId) ?? 0));
  return choice;
}
