// What every activity needs: the fleet, the engines for a tenant's two sides, the artifact container,
// the catalog, and a throttled heartbeat that carries a resumable checkpoint.
import { Context } from '@temporalio/activity';
import type { ContainerClient } from '@azure/storage-blob';
import { join } from 'node:path';
import { findTenant, type LoadedFleet, type Tenant } from '../config/fleet';
import type { Engine, FleetEngines, RestoreTarget } from '../engines';
import type { ContainerReadAccess } from '../azure/sas';
import type { Catalog } from '../ingestion/catalog';
import type { RouteControl } from '../ingestion/routes';

export interface ActivityDeps {
  fleet: LoadedFleet;
  container: ContainerClient;
  catalog: Catalog;
  /** Fences, modes and primary flips: through the gateways, or the catalog alone. */
  routes: RouteControl;
  /** The engines of the fleet's endpoints and the restorers of its targets, built once by the worker's wiring. */
  engines: FleetEngines;
  /** The container's one read access for restores (its SAS made once and shared). */
  restoreAccess: ContainerReadAccess;
}

export interface TenantSides {
  tenant: Tenant;
  source: Engine;
  target: Engine;
  /** How the target is restored: a file, RESTORE FROM URL, or a Managed Instance through ARM. */
  restorer: RestoreTarget;
  /** Where this migration's local files (snapshot, download) live. */
  workDir: string;
}

export function tenantSides(deps: ActivityDeps, tenantId: string, migrationId: string): TenantSides {
  const tenant = findTenant(deps.fleet, tenantId);
  return {
    tenant,
    source: deps.engines.engine('sources', tenant.source),
    target: deps.engines.engine('targets', tenant.target),
    restorer: deps.engines.restorer(tenant.target),
    workDir: join(deps.fleet.workDirectory, tenantId, migrationId),
  };
}

/**
 * Runs `work` with a heartbeat that carries the latest details: sent at most every `everyMs` when
 * progress is reported, and re-sent every few seconds when it is not, so a step that reports rarely
 * (a one-step backup, a long RESTORE) is never taken for a dead worker.
 */
export async function withHeartbeat<T>(work: (beat: (details: unknown) => void) => Promise<T>, everyMs = 500): Promise<T> {
  const context = Context.current();
  // Until there is news, re-send the checkpoint this attempt started from, never an empty one.
  let latest: unknown = context.info.heartbeatDetails;
  let last = 0;
  const send = () => {
    last = Date.now();
    context.heartbeat(latest);
  };
  const keepAlive = setInterval(send, 5000);
  try {
    return await work((details) => {
      latest = details;
      if (Date.now() - last >= everyMs) send();
    });
  } finally {
    clearInterval(keepAlive);
  }
}

/**
 * Runs a step that keeps no checkpoint with a bare heartbeat every second, so a worker that dies
 * under it is noticed within the preset's heartbeat timeout (seconds), not its start-to-close
 * timeout (minutes) while it holds a fence.
 */
export async function keptAlive<T>(work: () => Promise<T>): Promise<T> {
  const context = Context.current();
  const timer = setInterval(() => context.heartbeat(), 1000);
  try {
    context.heartbeat();
    return await work();
  } finally {
    clearInterval(timer);
  }
}

export function checkpoint<T>(): T | undefined {
  return Context.current().info.heartbeatDetails as T | undefined;
}

export const cancellation = (): AbortSignal => Context.current().cancellationSignal;

/** A sleep that ends early, with the cancellation, when the activity is cancelled. */
export function sleepUnlessCancelled(ms: number): Promise<void> {
  const signal = cancellation();
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
