// `airlift demo --screenshot` and `airlift ui` as an operator runs them: a real process, its output,
// its exit code, and the PNG it leaves.
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { useTestStack, waitFor } from '../helpers/stack';
import { freePort } from '../../azure/azurite';

const bin = join(__dirname, '../../bin/airlift.js');
const airlift = (args: string[], env: NodeJS.ProcessEnv = process.env, timeout = 240000) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout, env });

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'airlift-war-room-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('demo --screenshot saves a PNG of the war room once it shows every tenant ended, and prints its URL beside the Web UI', () => {
  const file = join(dir, 'war-room.png');
  const run = airlift(['demo', '--tenants', '2', '--rows', '500', '--screenshot', file, '--json']);
  expect(run.stderr).not.toMatch(/airlift: /);
  expect(run.status).toBe(0);
  expect(run.stdout).toMatch(/Web UI: http:\/\/127\.0\.0\.1:\d+ .*; war room: http:\/\/127\.0\.0\.1:\d+/);
  expect(run.stdout).toContain(`war room screenshot: ${file}`);
  const lines = run.stdout.trim().split('\n');
  expect(JSON.parse(lines[lines.length - 1])).toMatchObject({ tenants: 2, migrated: 2 });
  const png = readFileSync(file);
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  // IHDR: the page at the 1366 px of a common wall screen, every column fitting (no wider page).
  expect(png.readUInt32BE(16)).toBe(1366);
});

describe('airlift ui', () => {
  const currentStack = useTestStack();
  let fleetFile: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(() => {
    fleetFile = join(dir, 'fleet.yaml');
    writeFileSync(fleetFile, stringify({
      sources: { onprem: { engine: 'sqlite', directory: './source' } },
      targets: { cloud: { engine: 'sqlite', directory: './cloud' } },
      storage: { container: 'airlift-test', connectionStringEnv: 'AIRLIFT_TEST_STORAGE' },
      tenants: [{ id: 'acme', name: 'Acme Corp', database: 'acme', source: 'onprem', target: 'cloud' }],
    }));
    env = { ...process.env, TEMPORAL_ADDRESS: currentStack().env.address };
  });

  test('serves the fleet\'s tenants until Ctrl-C, read-only without an admin token', async () => {
    const child = spawn(process.execPath, [bin, 'ui', '-f', fleetFile, '--port', String(await freePort())], { env: { ...env, AIRLIFT_ADMIN_TOKEN: '' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const url = await waitFor('the war room URL', async () => /war room: (http:\/\/\S+?)[ ;]/.exec(out)?.[1]);
    expect(out).toContain('(read-only: no admin token in $AIRLIFT_ADMIN_TOKEN)');
    const snapshot = await waitFor('acme listed', async () => {
      const s = (await (await fetch(`${url}/api/snapshot`)).json()) as { tenants: { tenantId: string; name?: string; state: string }[] };
      return s.tenants.length ? s : undefined;
    });
    expect(snapshot.tenants).toEqual([expect.objectContaining({ tenantId: 'acme', name: 'Acme Corp', state: 'not_started' })]);
    const login = await fetch(`${url}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json', Origin: url }, body: JSON.stringify({ token: 'x'.repeat(20) }) });
    expect(login.status).toBe(403);
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });

  test('on a port that is taken it is refused in one line, exit code 2', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const run = airlift(['ui', '-f', fleetFile, '--port', String(port)], env, 60000);
      expect(run.status).toBe(2);
      expect(run.stderr).toBe(`airlift: --port ${port}: the port is taken on 127.0.0.1; choose another with --port\n`);
    } finally {
      taken.close();
    }
  });
});
