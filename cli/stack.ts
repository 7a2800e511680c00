// The embedded stack: a Temporal dev server (with the Web UI and airlift's search attributes) and
// Azurite, both started by airlift and stopped with it. In memory for the demo; for `airlift dev`,
// kept in a state folder (Temporal's database file, Azurite's blobs, the ports), so a stack that is
// killed and started again comes back on the same ports with every wave where it was.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startAzurite, freePort, portIsFree, type AzuriteHandle } from '../azure/azurite';
import { SEARCH_ATTRIBUTES } from '../workflows/contract';
import { ensureTemporalCli } from './temporal-cli';
import { OperatorError } from './waves';

export interface EmbeddedStack {
  temporal: TestWorkflowEnvironment;
  address: string;
  namespace: string;
  uiUrl?: string;
  azurite: AzuriteHandle;
  /** The state folder, when the stack keeps its state. */
  stateDir?: string;
  /** Whether the state folder held a stack before (this start resumes it). */
  resumed: boolean;
  close(): Promise<void>;
}

export interface StackOptions {
  ui?: boolean;
  log?: (line: string) => void;
  /** Keep Temporal's history and the blobs in this folder, and reuse the ports of its last run. */
  stateDir?: string;
}

/** What a state folder remembers of its stack: the ports everything else points at. */
interface StackPorts {
  temporalPort: number;
  uiPort?: number;
  azuritePort: number;
  /** The `airlift dev` process that last ran the stack. */
  pid: number;
}

export const STACK_FILE = 'stack.json';
export const TEMPORAL_DB_FILE = 'temporal.db';
export const AZURITE_DIR = 'azurite';

function readPorts(stateDir: string): StackPorts | undefined {
  const file = join(stateDir, STACK_FILE);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as StackPorts;
  } catch {
    throw new OperatorError(`${file}: is not valid JSON; delete it to start the stack on new ports (the state beside it is kept)`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Processes whose command line names the state folder: servers left behind by a killed `airlift dev` (Linux only). */
function leftoverProcesses(stateDir: string): number[] {
  if (!existsSync('/proc')) return [];
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(stateDir)) found.push(Number(entry));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/** The ports of the last run, each checked free; new free ports for a fresh state folder. */
async function choosePorts(stateDir: string | undefined, ui: boolean): Promise<Omit<StackPorts, 'pid'> & { resumed: boolean }> {
  const last = stateDir ? readPorts(stateDir) : undefined;
  if (!last) return { temporalPort: await freePort(), uiPort: ui ? await freePort() : undefined, azuritePort: await freePort(), resumed: false };
  const wanted: [string, number | undefined][] = [['Temporal', last.temporalPort], ['the Temporal Web UI', ui ? last.uiPort : undefined], ['Azurite', last.azuritePort]];
  for (const [what, port] of wanted) {
    if (port === undefined || (await portIsFree(port))) continue;
    const running = last.pid !== process.pid && alive(last.pid) ? ` airlift dev (pid ${last.pid}) may still be running for it: stop it first.` : '';
    const leftovers = leftoverProcesses(stateDir!);
    const left = leftovers.length ? ` Processes still using ${stateDir}: ${leftovers.join(', ')} (left behind by a killed airlift dev?); stop them (kill ${leftovers.join(' ')}) and start again.` : '';
    throw new OperatorError(
      `port ${port} (${what} of the stack kept in ${stateDir}) is taken, so the stack cannot come back where the worker, gateways and .airlift/dev.json expect it.${running}${left}${running || left ? '' : ' Free the port, or delete ' + join(stateDir!, STACK_FILE) + ' to start on new ports.'}`,
    );
  }
  return { temporalPort: last.temporalPort, uiPort: ui ? (last.uiPort ?? (await freePort())) : undefined, azuritePort: last.azuritePort, resumed: true };
}

export async function startEmbeddedStack(options: StackOptions = {}): Promise<EmbeddedStack> {
  const log = options.log ?? (() => {});
  const path = ensureTemporalCli(log);
  const stateDir = options.stateDir ? resolve(options.stateDir) : undefined;
  if (stateDir) mkdirSync(join(stateDir, AZURITE_DIR), { recursive: true });
  const ports = await choosePorts(stateDir, Boolean(options.ui));
  const [temporalStart, azuriteStart] = await Promise.allSettled([
    TestWorkflowEnvironment.createLocal({
      server: {
        executable: path ? { type: 'existing-path', path } : undefined,
        ip: '127.0.0.1',
        port: ports.temporalPort,
        ui: Boolean(options.ui),
        uiPort: ports.uiPort,
        dbFilename: stateDir ? join(stateDir, TEMPORAL_DB_FILE) : undefined,
        searchAttributes: SEARCH_ATTRIBUTES,
        log: { format: 'pretty', level: 'error' },
      },
    }),
    startAzurite({ port: ports.azuritePort, location: stateDir ? join(stateDir, AZURITE_DIR) : undefined }),
  ]);
  if (temporalStart.status === 'rejected' || azuriteStart.status === 'rejected') {
    // Whatever did start is stopped, so a failed start leaves no process behind.
    if (temporalStart.status === 'fulfilled') await temporalStart.value.teardown();
    if (azuriteStart.status === 'fulfilled') await azuriteStart.value.stop();
    throw temporalStart.status === 'rejected' ? temporalStart.reason : (azuriteStart as PromiseRejectedResult).reason;
  }
  const temporal = temporalStart.value;
  const azurite = azuriteStart.value;
  if (stateDir) {
    const remembered: StackPorts = { temporalPort: ports.temporalPort, uiPort: ports.uiPort, azuritePort: ports.azuritePort, pid: process.pid };
    writeFileSync(join(stateDir, STACK_FILE), JSON.stringify(remembered, null, 2));
  }
  return {
    temporal,
    address: temporal.address,
    namespace: temporal.namespace ?? 'default',
    uiUrl: ports.uiPort ? `http://127.0.0.1:${ports.uiPort}` : undefined,
    azurite,
    stateDir,
    resumed: ports.resumed,
    close: async () => {
      await Promise.allSettled([temporal.teardown(), azurite.stop()]);
    },
  };
}
