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
  /** The war-room port the last run of this state folder used. */
  warRoomPort?: number;
  close(): Promise<void>;
}

export interface StackOptions {
  ui?: boolean;
  log?: (line: string) => void;
  /** Keep Temporal's history and the blobs in this folder, and reuse the ports of its last run. */
  stateDir?: string;
}

/** What a state folder remembers of its stack: the ports everything else points at, and its processes. */
interface StackPorts {
  temporalPort: number;
  uiPort?: number;
  azuritePort: number;
  /** The war-room page's port, kept so an open page reconnects to the restarted stack by itself. */
  warRoomPort?: number;
  /** The `airlift dev` process that last ran the stack. */
  pid: number;
  /** The servers it started (Temporal, Azurite): pid and start time, so a reused pid is never taken for one. */
  servers?: { pid: number; startTime: string }[];
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

/** A process's start time in clock ticks since boot (Linux), which a reused pid does not share. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function commandLineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** Processes whose command line names the state folder: the servers a stack on it runs (Linux only). */
function serversOf(stateDir: string): number[] {
  if (!existsSync('/proc')) return [];
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    if (commandLineOf(Number(entry)).includes(stateDir)) found.push(Number(entry));
  }
  return found;
}

async function stopProcess(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (const until = Date.now() + 10000; Date.now() < until && alive(pid); ) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  for (const until = Date.now() + 5000; Date.now() < until && alive(pid); ) await new Promise((r) => setTimeout(r, 50));
}

/**
 * A stack whose `airlift dev` was killed (SIGKILL, a closed terminal) left its Temporal server and
 * Azurite running on the state folder: they are found by the pids it recorded (checked by start time
 * and command line) and stopped, so this start takes the folder and its ports over. A live `airlift
 * dev` on the same folder is refused instead.
 */
async function stopLeftovers(stateDir: string, last: StackPorts, log: (line: string) => void): Promise<void> {
  if (last.pid !== process.pid && alive(last.pid) && /airlift/.test(commandLineOf(last.pid)))
    throw new OperatorError(`airlift dev (pid ${last.pid}) is still running on ${stateDir}; use it (its stack is in ${join(stateDir, STACK_FILE)}) or stop it (Ctrl-C in its terminal, or kill ${last.pid}) and start again`);
  const recorded = (last.servers ?? []).filter((p) => alive(p.pid) && startTimeOf(p.pid) === p.startTime && commandLineOf(p.pid).includes(stateDir)).map((p) => p.pid);
  // A state folder from before pids were recorded: its servers name the folder on their command line.
  const leftovers = last.servers ? recorded : serversOf(stateDir);
  if (!leftovers.length) return;
  log(`Stopping what a killed airlift dev left running on ${stateDir}: ${leftovers.map((pid) => `pid ${pid} (${commandLineOf(pid).split(' ')[0].split('/').pop()})`).join(', ')}`);
  await Promise.all(leftovers.map(stopProcess));
}

/** The ports of the last run, each checked free; new free ports for a fresh state folder. */
async function choosePorts(stateDir: string | undefined, ui: boolean, log: (line: string) => void): Promise<Omit<StackPorts, 'pid'> & { resumed: boolean }> {
  const last = stateDir ? readPorts(stateDir) : undefined;
  if (!last) return { temporalPort: await freePort(), uiPort: ui ? await freePort() : undefined, azuritePort: await freePort(), resumed: false };
  await stopLeftovers(stateDir!, last, log);
  const wanted: [string, number | undefined][] = [['Temporal', last.temporalPort], ['the Temporal Web UI', ui ? last.uiPort : undefined], ['Azurite', last.azuritePort]];
  for (const [what, port] of wanted) {
    if (port === undefined || (await portIsFree(port))) continue;
    throw new OperatorError(
      `port ${port} (${what} of the stack kept in ${stateDir}) is taken by a process this stack did not start, so the stack cannot come back where the worker, gateways and .airlift/dev.json expect it. Free the port, or delete ${join(stateDir!, STACK_FILE)} to start on new ports.`,
    );
  }
  return { temporalPort: last.temporalPort, uiPort: ui ? (last.uiPort ?? (await freePort())) : undefined, azuritePort: last.azuritePort, warRoomPort: last.warRoomPort, resumed: true };
}

/** Remembers the war-room page's port in the state folder, for the next start. */
export function rememberWarRoomPort(stateDir: string, port: number): void {
  const last = readPorts(stateDir);
  if (last) writeFileSync(join(stateDir, STACK_FILE), JSON.stringify({ ...last, warRoomPort: port }, null, 2));
}

export async function startEmbeddedStack(options: StackOptions = {}): Promise<EmbeddedStack> {
  const log = options.log ?? (() => {});
  const path = ensureTemporalCli(log);
  const stateDir = options.stateDir ? resolve(options.stateDir) : undefined;
  if (stateDir) mkdirSync(join(stateDir, AZURITE_DIR), { recursive: true });
  const ports = await choosePorts(stateDir, Boolean(options.ui), log);
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
    const servers = serversOf(stateDir).map((pid) => ({ pid, startTime: startTimeOf(pid) ?? '' }));
    const remembered: StackPorts = { temporalPort: ports.temporalPort, uiPort: ports.uiPort, azuritePort: ports.azuritePort, warRoomPort: ports.warRoomPort, pid: process.pid, servers };
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
    warRoomPort: ports.warRoomPort,
    close: async () => {
      await Promise.allSettled([temporal.teardown(), azurite.stop()]);
    },
  };
}
