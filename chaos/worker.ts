// The fault matrix's worker process: the real airlift worker (createAirliftWorker) plus the hold
// interceptor, so the harness can kill it with SIGKILL like any worker. Run with tsx:
//   node -r tsx/cjs chaos/worker.ts <fleet.yaml> <task-queue> <workflow-bundle.js>
// TEMPORAL_ADDRESS names the server; AIRLIFT_CHAOS_HOLDS (JSON) the steps to hold and the switches to stall.
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { loadFleet } from '../config/fleet';
import { createEngine } from '../engines';
import { createAirliftWorker } from '../workers/worker';
import { HOLD_PLAN_ENV, holdInterceptor, stallingEngines, type HoldPlan } from './holds';

async function main(): Promise<void> {
  const [fleetFile, taskQueue, bundle] = process.argv.slice(2);
  const address = process.env.TEMPORAL_ADDRESS;
  if (!fleetFile || !taskQueue || !bundle || !address) throw new Error('usage: TEMPORAL_ADDRESS=host:port chaos/worker.ts <fleet.yaml> <task-queue> <workflow-bundle.js>');
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const plan: HoldPlan = process.env[HOLD_PLAN_ENV] ? JSON.parse(process.env[HOLD_PLAN_ENV]!) : { dir: '/nonexistent', rules: [], maxHoldMs: 0 };
  const fleet = loadFleet(fleetFile);
  const connection = await NativeConnection.connect({ address });
  const client = new Client({ connection: await Connection.connect({ address }) });
  const { worker, close } = await createAirliftWorker({
    connection,
    namespace: 'default',
    fleet,
    taskQueue,
    workflowBundle: { codePath: bundle },
    interceptors: { activity: [holdInterceptor(plan, client)] },
    createEngine: stallingEngines(plan, (endpoint) => (Object.values(fleet.sources).includes(endpoint) ? 'source' : 'target'), createEngine),
  });
  process.once('SIGTERM', () => worker.shutdown());
  console.log(`chaos worker ${process.pid} polling ${taskQueue}`);
  await worker.run();
  close();
  await connection.close();
}

main().catch((err) => {
  console.error(`chaos worker: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
