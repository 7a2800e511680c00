// Which tenants `wave start` starts, on the real stack, through the CLI as an operator runs it
// (issue 21 finding 1, issue 17 item 7): a rerun starts only that wave's tenants that did not finish;
// a whole-fleet start skips tenants served from their target, running in another wave, or rolled back
// by an operator, and says why for each; a rolled-back tenant is migrated again only when named; and a
// tenant another wave holds is listed by the wave as skipped, never failed.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { createTenantDatabase } from '../../cli/demo-data';
import { startWave } from '../../cli/waves';
import { statusQuery, TASK_QUEUE, tenantWorkflowId, waveWorkflowId, type MigrationPolicy, type WaveStatus } from '../../workflows/contract';
import { makeFleet, startWorker, useTestStack, waitFor, workerEnv, type TestStack } from '../helpers/stack';

const currentStack = useTestStack();
let stack: TestStack;
beforeEach(() => (stack = currentStack()));

const bin = join(__dirname, '../../bin/airlift.js');
function airlift(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env, cwd, timeout: 120000 }, (err, stdout, stderr) =>
      resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('a rerun starts only the wave\'s unfinished tenants; a whole-fleet start skips the migrated, the rolled back and the running, each with why', async () => {
  const { dir, fleet, cleanup } = makeFleet({ tenants: 4, rows: 100, policy: { concurrency: 4 } });
  const [t1, t2, t3, t4] = fleet.tenants.map((t) => t.id);
  // The same fleet with a breakpoint, so the tenants of wave H stay running as long as the test needs.
  const holdFile = join(dir, 'fleet-hold.yaml');
  const doc = parse(readFileSync(fleet.file, 'utf8'));
  writeFileSync(holdFile, stringify({ ...doc, policy: { ...doc.policy, pauseBefore: ['snapshotting'] } }));
  const env = { ...workerEnv(stack, fleet), TEMPORAL_ADDRESS: stack.env.address };
  const cli = (...args: string[]) => airlift(args, env, dir);
  const client = stack.env.client;
  const waveResult = (id: string) => client.workflow.getHandle(waveWorkflowId(id)).result() as Promise<WaveStatus>;
  const statusOf = (tenantId: string) => client.workflow.getHandle(tenantWorkflowId(tenantId)).query(statusQuery);
  const suffix = randomUUID().slice(0, 6);
  const [A, H, C, D] = ['A', 'H', 'C', 'D'].map((w) => `${w}-${suffix}`);
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  try {
    // Wave A: t1 migrates, t2 fails at preflight (its database is not there yet).
    const t2File = join(dir, 'source', `${fleet.tenants[1].database}.db`);
    rmSync(t2File);
    expect((await cli('wave', 'start', '-f', fleet.file, '--wave', A, '--tenants', `${t1},${t2}`)).status).toBe(0);
    const first = await waveResult(A);
    expect(first.tenants.map((r) => [r.tenantId, r.state])).toEqual([[t1, 'completed'], [t2, 'failed']]);

    // Wave H holds t3 and t4 at a breakpoint; the operator rolls t3 back.
    expect((await cli('wave', 'start', '-f', holdFile, '--wave', H, '--tenants', `${t3},${t4}`)).status).toBe(0);
    for (const t of [t3, t4]) await waitFor(`${t} held`, async () => ((await statusOf(t)).heldBefore === 'snapshotting' ? true : undefined));
    expect((await cli('rollback', t3, '--reason', 'customer asked to wait')).status).toBe(0);
    await waitFor(`${t3} rolled back`, async () => ((await statusOf(t3)).outcome === 'rolled_back' ? true : undefined));

    // The rerun of A: t2 only (t1 finished; t3 and t4 were never A's).
    createTenantDatabase(join(dir, 'source'), fleet.tenants[1].database, 100, 2);
    const rerun = await cli('wave', 'start', '-f', fleet.file, '--wave', A, '--rerun');
    expect(rerun.stderr).toBe('');
    expect(rerun.stdout).toContain(`skipped ${t1}: migrated in the earlier run of ${A}; a rerun starts only its tenants that did not finish`);
    expect(rerun.stdout).toContain(`wave ${A} started again (rerun 2): 1 tenants`);
    expect((await waveResult(A)).tenants.map((r) => [r.tenantId, r.state])).toEqual([[t2, 'completed']]);

    // A whole-fleet start: nothing left to start, and each tenant says why.
    const whole = await cli('wave', 'start', '-f', fleet.file, '--wave', C);
    expect(whole.status).toBe(2);
    expect(whole.stderr.trim()).toBe(`airlift: wave ${C}: no tenant left to start (4 skipped, each with why above)`);
    const lines = whole.stdout.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^skipped ${t1}: already served from its target \\(migrated in wave ${A}, \\d{4}-`));
    expect(lines[1]).toMatch(new RegExp(`^skipped ${t2}: already served from its target \\(migrated in wave ${A}, `));
    expect(lines[2]).toBe(`skipped ${t3}: rolled back by an operator in wave ${H} (customer asked to wait); served from its source; name it with --tenants to migrate it again`);
    expect(lines[3]).toBe(`skipped ${t4}: running in wave ${H} (workflow ${tenantWorkflowId(t4)}); a tenant migrates in one workflow at a time`);

    // A wave started around the CLI (no choice made) lists the tenant another wave holds as skipped, not failed.
    await startWave(client, D, [t4], fleet.policy as MigrationPolicy);
    const byHand = await waveResult(D);
    expect(byHand.tenants).toEqual([{ tenantId: t4, state: 'skipped', error: expect.stringContaining(`skipped: ${t4} is being migrated by another run of ${tenantWorkflowId(t4)}`) }]);
    expect((await cli('status', D)).stdout).toMatch(new RegExp(`${t4}\\s+skipped\\s+skipped`));

    // Named, the rolled-back tenant migrates again; the running one is still skipped.
    const named = await cli('wave', 'start', '-f', fleet.file, '--wave', C, '--tenants', `${t3},${t4}`);
    expect(named.stdout).toContain(`migrating ${t3} again, since --tenants names it: rolled back by an operator in wave ${H} (customer asked to wait); served from its source`);
    expect(named.stdout).toContain(`skipped ${t4}: running in wave ${H}`);
    expect(named.stdout).toContain(`wave ${C} started: 1 tenants`);
    expect((await waveResult(C)).tenants.map((r) => [r.tenantId, r.state])).toEqual([[t3, 'completed']]);
    expect((await cli('rollback', t4, '--reason', 'test: end wave H')).status).toBe(0);
    await waveResult(H);

    // Every wave, newest first, with its tenants by state; `status` without a wave id says the same.
    const waves = await cli('waves');
    expect(waves.stdout).toMatch(/^WAVE\s+STATE\s+STARTED\s+ENDED\s+TENANTS\s+BY STATE/);
    const lineOf = (w: string) => waves.stdout.split('\n').find((l) => l.startsWith(`${w} `));
    expect(lineOf(A)).toMatch(/\scompleted\s.*\s1\s+1 completed$/);
    expect(lineOf(H)).toMatch(/\s2\s+2 rolled back$/);
    expect(lineOf(D)).toMatch(/\s1\s+1 skipped$/);
    expect(waves.stdout.trim().split('\n').slice(2).map((l) => l.split(/\s+/)[0])).toEqual(expect.arrayContaining([A, H, C, D]));
    expect((await cli('status')).stdout).toBe(waves.stdout);
  } finally {
    await worker.stop();
    cleanup();
  }
}, 600000);
