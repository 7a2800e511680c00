// The embedded stack as an operator runs it: `airlift dev -f fleet.yaml` in the fleet's folder, its
// own process group (Temporal dev server, Azurite and its worker die with it on SIGKILL). Where it
// listens is read from the `.airlift/dev.json` it writes, as other airlift commands read it.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { azuriteConnectionString } from '../azure/azurite';
import { portOpen, REPO, startProcess, until, type Proc } from './processes';

interface DevFile {
  address: string;
  pid: number;
  azuritePort?: number;
}

export class DevStack {
  proc?: Proc;
  private state?: DevFile;

  constructor(
    private readonly dir: string,
    private readonly fleetFile: string,
    private readonly logFile: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  get address(): string {
    return this.state!.address;
  }

  get storageConnectionString(): string {
    return azuriteConnectionString(this.state!.azuritePort!);
  }

  async start(): Promise<void> {
    const devFile = join(this.dir, '.airlift', 'dev.json');
    rmSync(devFile, { force: true });
    const proc = startProcess('airlift dev', process.execPath, [join(REPO, 'bin/airlift.js'), 'dev', '-f', this.fleetFile], {
      cwd: dirname(this.fleetFile),
      env: { ...process.env, ...this.env },
      logFile: this.logFile,
    });
    this.proc = proc;
    await until('airlift dev to write .airlift/dev.json', () => existsSync(devFile), 120_000, proc);
    const state = JSON.parse(readFileSync(devFile, 'utf8')) as DevFile;
    if (!state.azuritePort) throw new Error(`${devFile}: no azuritePort; this airlift dev does not say where its blobs are`);
    this.state = state;
    const port = Number(state.address.split(':').pop());
    await until(`airlift dev's Temporal on ${state.address}`, () => portOpen(port), 60_000, proc);
    await until("airlift dev's worker", () => proc.output().includes('worker running'), 120_000, proc);
  }

  async kill(): Promise<void> {
    await this.proc?.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.proc?.kill('SIGTERM');
    // Whatever of its group is still there goes down hard.
    await this.proc?.kill('SIGKILL');
  }
}
