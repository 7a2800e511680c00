// `airlift dev` survives itself: the whole embedded stack (Temporal dev server, Azurite, worker) is
// killed with SIGKILL while a tenant is held mid-migration, started again, and the same wave's
// tenant resumes where it was and completes.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Catalog } from '../../ingestion/catalog';
import { makeFleet, waitFor } from '../helpers/stack';
import { freePort } from '../../azure/azurite';
import { launchChromium } from '../../cli/browser';
import { tmpdir } from 'node:os';

const bin = join(__dirname, '../../bin/airlift.js');

/** The CLI as its own process, finding the stack through the .airlift/dev.json that `dev` left in `cwd`. */
function airlift(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd, env, timeout: 120000 }, (err, stdout, stderr) =>
      resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

interface Dev {
  process: ChildProcess;
  output: () => string;
  exited: Promise<void>;
}

/** `airlift dev -f fleet.yaml` in its own process group, so a kill reaches the servers it started too. */
async function startDev(cwd: string, env: NodeJS.ProcessEnv, warRoomPort: number): Promise<Dev> {
  const child = spawn(process.execPath, [bin, 'dev', '-f', 'fleet.yaml', '--war-room-port', String(warRoomPort)], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor('airlift dev to run its worker', async () => {
    if (child.exitCode !== null) throw new Error(`airlift dev exited with ${child.exitCode}:\n${output}`);
    return output.includes('worker running for') ? true : undefined;
  }, 120000).catch((err: Error) => {
    throw new Error(`${err.message}\n${output}`);
  });
  return { process: child, output: () => output, exited };
}

/** Kills the whole process group and waits until none of it is left. */
async function killGroup(dev: Dev, signal: NodeJS.Signals): Promise<void> {
  const pgid = dev.process.pid!;
  try {
    process.kill(-pgid, signal);
  } catch {
    return;
  }
  await dev.exited;
  await waitFor('every process of the stack to be gone', async () => {
    try {
      process.kill(-pgid, 0);
      return undefined;
    } catch {
      return true;
    }
  }, 60000);
}

interface WaveJson {
  tenants: { tenantId: string; state: string; phase: string; paused: boolean; status?: { migrationId: string } }[];
}

async function waveStatus(waveId: string, cwd: string, env: NodeJS.ProcessEnv): Promise<WaveJson | undefined> {
  const run = await airlift(['status', waveId, '--json'], cwd, env);
  return run.status === 0 ? (JSON.parse(run.stdout) as WaveJson) : undefined;
}

/** Kills `airlift dev` alone, as a closed terminal or the OOM killer would: its servers stay behind. */
async function killDevOnly(dev: Dev): Promise<void> {
  process.kill(dev.process.pid!, 'SIGKILL');
  await dev.exited;
}

test('airlift dev killed with SIGKILL mid-migration comes back on its ports, and the wave resumes and completes', async () => {
  const { dir, fleet, cleanup } = makeFleet({ tenants: 1, rows: 400, policy: { pauseBefore: ['verifying'] }, storageEnv: 'AIRLIFT_DEV_RESTART_STORAGE' });
  const tenant = fleet.tenants[0];
  // The stack is found through .airlift/dev.json, never through the test runner's own settings.
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.TEMPORAL_ADDRESS;
  delete env[fleet.storage.connectionStringEnv!];
  const warRoomPort = await freePort();
  let dev = await startDev(dir, env, warRoomPort);
  try {
    expect(dev.output()).toContain(`State kept in ${join(dir, '.airlift', 'stack')}`);
    const started = await airlift(['wave', 'start', '-f', 'fleet.yaml', '--wave', 'k1'], dir, env);
    expect(started.stderr).toBe('');
    const held = await waitFor('the tenant to hold before verifying', async () => {
      const wave = await waveStatus('k1', dir, env);
      const t = wave?.tenants[0];
      return t?.paused && t.state === 'running' ? t : undefined;
    });
    const address = /Temporal: (\S+)/.exec(dev.output())![1];

    await killGroup(dev, 'SIGKILL');
    dev = await startDev(dir, env, warRoomPort);
    expect(dev.output()).toContain('Resumed the stack kept in');
    expect(/Temporal: (\S+)/.exec(dev.output())![1]).toBe(address);

    // The same run of the same tenant, still held where it was.
    const after = await waveStatus('k1', dir, env);
    expect(after?.tenants[0]).toMatchObject({ tenantId: tenant.id, state: 'running', phase: held.phase, paused: true });
    expect(after?.tenants[0].status?.migrationId).toBe(held.status!.migrationId);

    const resumed = await airlift(['resume', tenant.id], dir, env);
    expect(resumed.stderr).toBe('');
    expect(resumed.status).toBe(0);
    const done = await waitFor('the tenant to complete', async () => {
      const t = (await waveStatus('k1', dir, env))?.tenants[0];
      return t && t.state !== 'running' && t.state !== 'pending' ? t : undefined;
    }, 180000);
    expect(done).toMatchObject({ state: 'completed', phase: 'completed' });
    const catalog = new Catalog(fleet.catalog.path);
    try {
      expect(catalog.get(tenant.id)).toMatchObject({ primary: 'target', writeMode: 'read_write', outbox: false });
    } finally {
      catalog.close();
    }
  } finally {
    await killGroup(dev, 'SIGKILL');
    cleanup();
  }
}, 420000);

test('airlift dev alone killed with SIGKILL: run again, it stops the servers it left, takes its ports and state back, and the open war-room page reconnects by itself', async () => {
  const { dir, fleet, cleanup } = makeFleet({ tenants: 1, rows: 200, policy: { pauseBefore: ['verifying'] }, storageEnv: 'AIRLIFT_DEV_RESTART_STORAGE' });
  const tenant = fleet.tenants[0];
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.TEMPORAL_ADDRESS;
  delete env[fleet.storage.connectionStringEnv!];
  const warRoomPort = await freePort();
  const browser = await launchChromium();
  let dev = await startDev(dir, env, warRoomPort);
  try {
    const url = `http://127.0.0.1:${warRoomPort}`;
    expect(dev.output()).toContain(`War room: ${url}`);
    // Started from another folder, naming the fleet file: the stack beside it is found.
    const started = await airlift(['wave', 'start', '-f', join(dir, 'fleet.yaml'), '--wave', 'k2'], tmpdir(), env);
    expect(started.stderr).toBe('');
    const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
    await page.goto(url);
    const phase = page.locator(`#rows .row[data-tenant="${tenant.id}"] .c-phase`);
    await waitFor('the page to show the tenant held', async () => ((await phase.textContent()) === 'held before verifying (breakpoint)' ? true : undefined));
    await page.locator('#live', { hasText: 'live' }).waitFor();

    await killDevOnly(dev);
    // The page notices, greys what it shows and says how old it is.
    await page.locator('#live', { hasText: 'reconnecting…' }).waitFor({ timeout: 30000 });
    await page.locator('body.stale').waitFor();
    await page.locator('#updated', { hasText: /^data from \d+s ago/ }).waitFor();

    dev = await startDev(dir, env, warRoomPort);
    expect(dev.output()).toMatch(/Stopping what a killed airlift dev left running on .*: pid \d+ \(temporal\), pid \d+ \(node\)|Stopping what a killed airlift dev left running on .*: pid \d+ \(node\), pid \d+ \(temporal\)/);
    expect(dev.output()).toContain('Resumed the stack kept in');
    // No reload: the same page is live again on the same port, and its data is fresh.
    await page.locator('#live', { hasText: 'live' }).waitFor({ timeout: 60000 });
    await waitFor('the page to be fresh again', async () => ((await page.locator('body.stale').count()) === 0 ? true : undefined), 30000);
    await expect(phase.textContent()).resolves.toBe('held before verifying (breakpoint)');

    const resumed = await airlift(['resume', tenant.id], dir, env);
    expect(resumed.stderr).toBe('');
    await waitFor('the page to show the tenant completed', async () => ((await phase.textContent()) === 'completed' ? true : undefined), 180000);
    await expect(page.locator(`#rows .row[data-tenant="${tenant.id}"] .c-served`).textContent()).resolves.toBe('Azure');
  } finally {
    await browser.close();
    await killGroup(dev, 'SIGKILL');
    cleanup();
  }
}, 420000);
