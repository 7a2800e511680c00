// The airlift worker: the tenant and wave workflows and every activity, over the adapters that the
// fleet file names. Secrets are resolved here, from this worker's environment, and nowhere else.
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { LoadedFleet } from '../config/fleet';
import type { TokenCredential } from '@azure/core-auth';
import { createActivities } from '../activities';
import { createAdapters } from './adapters';
import type { EngineFactory } from '../engines';
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
  /** Builds the engine of an endpoint (engines/ `createEngine` by default); tests stand one engine in for another. */
  createEngine?: EngineFactory;
}

export const workflowsPath = require.resolve('../workflows');

export async function createAirliftWorker(options: AirliftWorkerOptions): Promise<{ worker: Worker; close: () => void }> {
  const adapters = createAdapters(options.fleet, options.env ?? process.env, { azureCredential: options.azureCredential, createEngine: options.createEngine });
  const worker = await Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue ?? TASK_QUEUE,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath }),
    activities: createActivities(adapters),
    // Progress and cancellation ride on heartbeats: a cancellation reaches a running activity only
    // in the answer to its next heartbeat sent, so this bounds how long stopping the dual-write
    // takes (twice per tenant, the largest fixed cost of a small one). Only the dual-write
    // heartbeats this often (after each idle poll); the other activities throttle their own.
    maxHeartbeatThrottleInterval: '200 milliseconds',
    interceptors: options.interceptors,
  });
  return { worker, close: () => void adapters.close() };
}
