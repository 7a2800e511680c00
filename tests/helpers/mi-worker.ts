// TEST WIRING, run as its own process (so a test can kill it with SIGKILL): the real airlift worker
// (createAirliftWorker, DefaultAzureCredential signing in to the Managed Instance emulator), except
// that the SQL side of an `azure-sql-mi` target is the emulator's restored database file
// (mi-emulator.ts `sqlDirectory`), answered as SQLite: no T-SQL endpoint can run here.
//   node -r tsx/cjs tests/helpers/mi-worker.ts <fleet.yaml> <task-queue>
// TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, AIRLIFT_TEST_WORKFLOW_BUNDLE and AIRLIFT_MI_SQL_DIRECTORY come from the environment.
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { loadFleet } from '../../config/fleet';
import { createEngine } from '../../engines';
import { SqliteEngine } from '../../engines/sqlite';
import { createAirliftWorker } from '../../workers/worker';

async function main(): Promise<void> {
  const [fleetFile, taskQueue] = process.argv.slice(2);
  const { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: namespace = 'default', AIRLIFT_TEST_WORKFLOW_BUNDLE: bundle, AIRLIFT_MI_SQL_DIRECTORY: sqlDirectory } = process.env;
  if (!fleetFile || !taskQueue || !address || !bundle || !sqlDirectory) throw new Error('usage: TEMPORAL_ADDRESS=… AIRLIFT_TEST_WORKFLOW_BUNDLE=… AIRLIFT_MI_SQL_DIRECTORY=… mi-worker.ts <fleet.yaml> <task-queue>');
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const connection = await NativeConnection.connect({ address });
  const { worker, close } = await createAirliftWorker({
    connection,
    namespace,
    fleet: loadFleet(fleetFile),
    taskQueue,
    workflowBundle: { codePath: bundle },
    createEngine: (endpoint, env) => (endpoint.engine === 'azure-sql-mi' ? new SqliteEngine(sqlDirectory) : createEngine(endpoint, env)),
  });
  process.once('SIGTERM', () => worker.shutdown());
  await worker.run();
  close();
  await connection.close();
}

main().catch((err) => {
  console.error(`mi worker: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
