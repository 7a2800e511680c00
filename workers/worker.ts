// The airlift worker: the tenant and wave workflows and every activity, over the adapters that the
// fleet file names. Secrets are resolved here, from this worker's environment, and nowhere else.
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { FleetConfigError, type LoadedFleet } from '../config/fleet';
import { catalogRoutes, gatewayRoutes } from '../ingestion/routes';
import { connectContainer } from '../azure/blob-store';
import { ContainerReadAccess } from '../azure/sas';
import { managedInstanceRestorers } from '../azure/managed-instance';
import { DefaultAzureCredential } from '@azure/identity';
import type { TokenCredential } from '@azure/core-auth';
import { Catalog } from '../ingestion/catalog';
import { createActivities, type ActivityDeps } from '../activities';
import { TASK_QUEUE } from '../workflows/contract';

export interface AirliftWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  fleet: LoadedFleet;
  taskQueue?: string;
  /** A prebuilt bundle (tests build one for all); otherwise the workflows are bundled now. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  env?: NodeJS.ProcessEnv;
  /** Worker interceptors; the fault matrix slows chosen activities with one to hold a race window open. */
  interceptors?: WorkerOptions['interceptors'];
  /** How this worker signs in to Azure Resource Manager; DefaultAzureCredential by default. */
  azureCredential?: TokenCredential;
  /** Builds the engine of an endpoint (engines/ `createEngine` by default). */
  createEngine?: ActivityDeps['createEngine'];
}

export const workflowsPath = require.resolve('../workflows');

export async function createAirliftWorker(options: AirliftWorkerOptions): Promise<{ worker: Worker; close: () => void }> {
  const env = options.env ?? process.env;
  const container = connectContainer(options.fleet.storage, env);
  const catalog = new Catalog(options.fleet.catalog.path);
  const ingestion = options.fleet.ingestion;
  let routes = catalogRoutes(catalog);
  if (ingestion) {
    const token = env[ingestion.adminTokenEnv];
    if (!token) throw new FleetConfigError(`ingestion.adminTokenEnv: environment variable ${ingestion.adminTokenEnv} is not set on this worker; export the gateways' admin token in it`);
    routes = gatewayRoutes(ingestion.gateways, token, catalog);
  }
  const worker = await Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath }),
    activities: createActivities({
      fleet: options.fleet,
      container,
      catalog,
      routes,
      env,
      restoreAccess: new ContainerReadAccess(container),
      managedInstance: managedInstanceRestorers(options.azureCredential ?? new DefaultAzureCredential()),
      createEngine: options.createEngine,
    }),
    // Progress and cancellation ride on heartbeats: a cancellation reaches a running activity only
    // in the answer to its next heartbeat sent, so this bounds how long stopping the dual-write
    // takes (twice per tenant, the largest fixed cost of a small one). Only the dual-write
    // heartbeats this often (after each idle poll); the other activities throttle their own.
    maxHeartbeatThrottleInterval: '200 milliseconds',
    interceptors: options.interceptors,
  });
  return { worker, close: () => catalog.close() };
}
