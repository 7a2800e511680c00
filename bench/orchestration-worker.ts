// The orchestration benchmark's worker, in a process of its own so its peak RSS is its own:
// `node -r tsx/cjs bench/orchestration-worker.ts <fleet.yaml> <temporal address> <namespace>`.
// Prints "ready" once polling; stops on SIGTERM and prints its peak RSS (VmHWM) in MiB.
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { readFileSync } from 'node:fs';
import { loadFleet } from '../config/fleet';
import { createAirliftWorker } from '../workers/worker';

function peakRssMiB(): number {
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return hwm ? Number(hwm[1]) / 1024 : process.memoryUsage.rss() / (1024 * 1024);
}

async function main(): Promise<void> {
  const [fleetFile, address, namespace] = process.argv.slice(2);
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const connection = await NativeConnection.connect({ address });
  const { worker, close } = await createAirliftWorker({ connection, namespace, fleet: loadFleet(fleetFile) });
  process.once('SIGTERM', () => worker.shutdown());
  const running = worker.run();
  process.stdout.write('ready\n');
  await running;
  close();
  await connection.close();
  process.stdout.write(`peakRssMiB ${peakRssMiB().toFixed(1)}\n`);
}

void main();
