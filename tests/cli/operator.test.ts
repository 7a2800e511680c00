// The operator's CLI as a war room uses it, on the real stack (issue 11, findings 1 to 7): every
// refusal and every bad id is one line and exit code 2, the words say what is true, `status` shows
// who is frozen and for how long, and the Temporal UI tells a rolled-back tenant from a migrated one.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import { workflowMetadataQuery } from '@temporalio/workflow';
import { freePort } from '../../azure/azurite';
import { Catalog } from '../../ingestion/catalog';
import {
  migrationIdOf,
  outcomeSearchAttribute,
  rollbackSignal,
  statusQuery,
  TASK_QUEUE,
  tenantWorkflowId,
  waveWorkflowId,
  type MigrationPolicy,
  type TenantResult,
  type TenantStatus,
} from '../../workflows/contract';
import { makeFleet, startWorker, useTestStack, waitFor, workerEnv, TEST_ADMIN_TOKEN_ENV, type TestStack } from '../helpers/stack';

const currentStack = useTestStack();
let stack: TestStack;
beforeEach(() => (stack = currentStack()));

const bin = `${__dirname}/../../bin/airlift.js`;

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** The CLI as its own process, without blocking this one (the test's worker keeps working). */
function airlift(args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env, cwd, timeout: 120000 }, (err, stdout, stderr) =>
      resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** What the standards ask of every refusal: one line on stderr naming the fix, no stack, exit 2. */
function expectRefusal(run: Run, ...texts: (string | RegExp)[]): void {
  expect({ status: run.status, stderr: run.stderr }).toMatchObject({ status: 2 });
  const lines = run.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^airlift: /);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  for (const text of texts) expect(lines[0]).toMatch(text);
}

function writeModeInCatalog(catalogPath: string, tenantId: string): string | undefined {
  const catalog = new Catalog(catalogPath);
  try {
    return catalog.get(tenantId)?.writeMode;
  } finally {
    catalog.close();
  }
}

test('an unreachable stack, a bad setting and a short admin token are each one line with the fix and exit 2; --debug adds the stack', async () => {
  const { dir, fleet, cleanup } = makeFleet({ tenants: 1, rows: 10, gatewayUrl: 'http://127.0.0.1:1' });
  try {
    const nobody = `127.0.0.1:${await freePort()}`;
    const env = { ...process.env, TEMPORAL_ADDRESS: nobody };
    for (const args of [['status', 'w1'], ['wave', 'start', '-f', fleet.file, '--wave', 'w1']])
      expectRefusal(await airlift(args, env, dir), `cannot reach Temporal at ${nobody}`, /airlift dev/);
    const debug = await airlift(['status', 'w1', '--debug'], env, dir);
    expect(debug.status).toBe(2);
    expect(debug.stderr).toMatch(/\n\s+at /);

    expectRefusal(await airlift(['status', 'w1'], { ...process.env, TEMPORAL_ADDRESS: 'no-port-here' }, dir), 'TEMPORAL_ADDRESS: "no-port-here" is not host:port');
    expectRefusal(
      await airlift(['ingest', '-f', fleet.file, '--port', String(await freePort())], { ...process.env, [TEST_ADMIN_TOKEN_ENV]: 'short' }, dir),
      `the admin token in ${TEST_ADMIN_TOKEN_ENV} has 5 characters; at least 16 are needed`,
    );
  } finally {
    cleanup();
  }
}, 300000);

test('a war-room wave: frozen tenants shown, refusals exit 2 with the truth, a finished wave id is refused and its rerun starts none of its finished tenants', async () => {
  const { dir, fleet, cleanup } = makeFleet({ tenants: 3, rows: 300, policy: { cutover: 'manual', concurrency: 2, rollbackWindowSeconds: 600 } });
  const [t1, t2, t3] = fleet.tenants.map((t) => t.id);
  const env = { ...workerEnv(stack, fleet), TEMPORAL_ADDRESS: stack.env.address };
  const cli = (...args: string[]) => airlift(args, env, dir);
  const client = stack.env.client;
  const statusOf = (tenantId: string) => client.workflow.getHandle(tenantWorkflowId(tenantId)).query(statusQuery);
  const inPhase = (tenantId: string, phase: string) => waitFor(`${tenantId} in ${phase}`, async () => ((await statusOf(tenantId)).phase === phase ? true : undefined));
  const wave = `w-${randomUUID().slice(0, 8)}`;
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  try {
    const started = await cli('wave', 'start', '-f', fleet.file, '--wave', wave);
    expect(started.stderr).toBe('');
    expect(started.stdout).toContain(`wave ${wave} started: 3 tenants, concurrency 2`);

    // Finding 4: unknown ids are errors, one line each.
    expectRefusal(await cli('status', `${wave}x`), `no wave ${wave}x`, 'check the wave id');
    expectRefusal(await cli('status', '--tenant', `${t1}x`), `tenant ${t1}x has no migration workflow`, 'no running wave lists it');

    await inPhase(t1, 'awaiting_cutover');
    await inPhase(t2, 'awaiting_cutover');

    // Finding 5: approving a tenant the wave has not started yet says so, not "has no migration workflow".
    expectRefusal(await cli('approve', t3), `approve refused: tenant ${t3} is pending in wave ${wave}`, 'has not started yet');

    // Finding 2 and 6: whose writes are open or frozen, counts per phase; the cut-over pause is its own column.
    // Change capture keeps every tenant writable until its cut-over's fence: awaiting approval, writes are open.
    const frozen = await cli('status', wave);
    expect(frozen.status).toBe(0);
    expect(frozen.stdout).toContain(`3 tenants: 2 awaiting approval, 1 pending`);
    // Issue 21: a pending tenant says why it waits.
    expect(frozen.stdout).toMatch(new RegExp(`${t3}\\s+pending\\s+pending.*waiting for a concurrency slot: 2 of 2 in use \\(a tenant in its rollback window holds none\\)`));
    expect(frozen.stdout).not.toContain('with writes frozen');
    expect(frozen.stdout).toMatch(/WRITES\s+ELAPSED\s+PROGRESS\s+BYTES\s+RATE\s+ETA/);
    expect(frozen.stdout).toContain('CUTOVER PAUSE');
    expect(frozen.stdout).toMatch(new RegExp(`${t1}\\s+running\\s+awaiting_cutover\\s+open\\s+\\d+(m\\d\\d)?s`));
    const json = JSON.parse((await cli('status', wave, '--json')).stdout) as { tenants: { tenantId: string; writeMode?: string; frozenSince?: string; elapsedMs?: number; status?: TenantStatus }[] };
    const row1 = json.tenants.find((t) => t.tenantId === t1)!;
    expect(row1).toMatchObject({ writeMode: 'read_write' });
    expect(row1.frozenSince).toBeUndefined();
    expect(row1.elapsedMs).toBeGreaterThan(0);
    expect(row1.status!.copyBytesPerSecond).toBeGreaterThan(0);
    // What status says is what the catalog enforces.
    expect(writeModeInCatalog(fleet.catalog.path, t1)).toBe('read_write');

    // Finding 3: complete outside the window, pause and resume twice: each refusal exits 2 with the reason.
    expectRefusal(await cli('complete', t1), `complete refused: tenant ${t1} is in phase awaiting_cutover`);
    const paused = await cli('pause', t1);
    expect(paused.stdout).toContain(`tenant ${t1} paused: approved or not, it holds before cutting_over until \`airlift resume ${t1}\``);
    expectRefusal(await cli('pause', t1), `pause refused: tenant ${t1} is already paused`);
    expect((await cli('status', '--tenant', t1)).stdout).toContain('awaiting_cutover (pause requested)');
    expect((await cli('resume', t1)).stdout).toContain(`tenant ${t1} resumed`);
    expectRefusal(await cli('resume', t1), `resume refused: tenant ${t1} is not paused`);
    expectRefusal(await cli('pause', '--wave', `${wave}x`), `pause refused: no wave ${wave}x`);

    // A rollback with a long reason: the table cuts the note, `status --tenant` prints it whole.
    const reason = `customer escalation: ${'the customer asked to stay on the old servers until their quarter closes; '.repeat(2)}ticket 4711`;
    expect((await cli('rollback', t2, '--reason', reason)).status).toBe(0);
    await waitFor(`${t2} rolled back`, async () => ((await statusOf(t2)).outcome === 'rolled_back' ? true : undefined));
    const detail = await cli('status', '--tenant', t2);
    expect(detail.stdout).toContain(`note: rollback: ${reason}`);
    expect(detail.stdout.split('\n')[2]).not.toContain('ticket 4711');
    // Finding 5: a second rollback says where the tenant is.
    expectRefusal(await cli('rollback', t2, '--reason', 'again'), `rollback refused: tenant ${t2} was rolled back and is served from its source; nothing to roll back`);

    expect((await cli('approve', t1)).stdout).toContain(`cut-over of ${t1} approved`);
    await inPhase(t1, 'rollback_window');
    const window = await cli('status', '--tenant', t1);
    // The target takes every write in the window: WRITES says open, and the catalog agrees.
    expect(writeModeInCatalog(fleet.catalog.path, t1)).toBe('read_write');
    expect(window.stdout).toMatch(new RegExp(`${t1}\\s+running\\s+rollback_window\\s+open`));
    expect(window.stdout).toContain(`rollback window closes at `);
    // Issue 21: the countdown to the point of no return, and what each choice does now.
    expect(window.stdout).toMatch(/\(in \d+m\d\ds\): then the point of no return/);
    expect(window.stdout).toMatch(/note: window closes in \d+m\d\ds: the point of no return/);
    expectRefusal(await cli('pause', t1), `pause refused: tenant ${t1} is in rollback_window`);
    expect((await cli('complete', t1)).stdout).toContain(`rollback window of ${t1} ended; finalizing: past the point of no return: the tenant stays on its target`);
    await inPhase(t3, 'awaiting_cutover');
    expect((await cli('approve', '--wave', wave)).stdout).toContain(`cut-over of ${t3} approved`);
    await inPhase(t3, 'rollback_window');
    expect((await cli('complete', t3)).status).toBe(0);
    await client.workflow.getHandle(waveWorkflowId(wave)).result();

    // Finding 7: in the Temporal UI's list a rolled-back tenant is told apart from a migrated one.
    const outcomeOf = async (tenantId: string) => (await client.workflow.getHandle(tenantWorkflowId(tenantId)).describe()).typedSearchAttributes.get(outcomeSearchAttribute);
    expect(await outcomeOf(t1)).toBe('completed');
    expect(await outcomeOf(t2)).toBe('rolled_back');
    const listed = await waitFor('the rolled-back tenant in the visibility list', async () => {
      const ids: string[] = [];
      for await (const w of client.workflow.list({ query: `AirliftWave = '${wave}' AND AirliftOutcome = 'rolled_back'` })) ids.push(w.workflowId);
      return ids.length ? ids : undefined;
    });
    expect(listed).toEqual([tenantWorkflowId(t2)]);
    expect(await client.workflow.getHandle(tenantWorkflowId(t1)).describe().then((d) => d.staticSummary())).toBe(`tenant ${t1}, wave ${wave}`);

    // Finding 5: a later wave's run of t2 is not shown as this wave's.
    const other = `${wave}-b`;
    expect((await cli('wave', 'start', '-f', fleet.file, '--wave', other, '--tenants', t2)).status).toBe(0);
    await inPhase(t2, 'awaiting_cutover');
    const old = JSON.parse((await cli('status', wave, '--json')).stdout) as { tenants: { tenantId: string; state: string; phase: string; status?: TenantStatus }[] };
    expect(old.tenants.find((t) => t.tenantId === t2)).toMatchObject({ state: 'rolled_back', phase: 'rolled_back', status: { waveId: wave, rollbackReason: reason } });
    expect((await cli('rollback', t2, '--reason', 'test: end the other wave')).status).toBe(0);

    // Finding 1: a wave id that already ran is refused; --rerun starts only its tenants that did not
    // finish, and here every one did (issue 21: the rerun used to start the migrated ones and paint them failed).
    expectRefusal(await cli('wave', 'start', '-f', fleet.file, '--wave', wave), `wave ${wave} already ran`, '2 migrated, 1 rolled back', '--rerun');
    const rerun = await cli('wave', 'start', '-f', fleet.file, '--wave', wave, '--rerun');
    expectRefusal(rerun, `wave ${wave} --rerun: no tenant left to start (3 skipped, each with why above)`);
    expect(rerun.stdout).toContain(`skipped ${t1}: migrated in the earlier run of ${wave}`);
    expect(rerun.stdout).toContain(`skipped ${t2}: rolled back in the earlier run of ${wave}; a rerun starts only its tenants that did not finish (name it with --tenants to migrate it again)`);
    expect(await outcomeOf(t1)).toBe('completed');
  } finally {
    await worker.stop();
    cleanup();
  }
}, 900000);

test('Temporal UI: a cancelled tenant is rolled back (not failed), the details speak in phases, and a rollback reason needs no JSON typing', async () => {
  const { fleet, cleanup } = makeFleet({ tenants: 3, rows: 200, policy: { pauseBefore: ['snapshotting'] } });
  const worker = await startWorker(stack, fleet, TASK_QUEUE);
  const start = (tenantId: string) =>
    stack.env.client.workflow.start('migrateTenant', {
      workflowId: tenantWorkflowId(tenantId),
      taskQueue: TASK_QUEUE,
      args: [{ tenantId, migrationId: migrationIdOf(randomUUID()), policy: fleet.policy as MigrationPolicy }],
    });
  try {
    const [cancelled, bySignalObject, bySignalEmpty] = fleet.tenants.map((t) => t.id);
    const handles = await Promise.all([start(cancelled), start(bySignalObject), start(bySignalEmpty)]);
    for (const h of handles) await waitFor('held before snapshotting', async () => ((await h.query(statusQuery)).heldBefore === 'snapshotting' ? true : undefined));

    const details = (await handles[0].query(workflowMetadataQuery)).currentDetails ?? '';
    expect(details).toMatch(new RegExp(`tenant ${cancelled}: journaling\\*\\* since \\d\\d:\\d\\d:\\d\\d UTC`));
    expect(details).toContain('writes open');
    expect(details).toContain(`held before snapshotting by the policy's pauseBefore: \`airlift resume ${cancelled}\``);
    // What the operator can do, and what a rollback would do now, come before the rest (the UI's box cuts the bottom off).
    expect(details).toContain('a rollback now: replication stops, capture comes off the source, and the target database and blobs of this migration are dropped');
    expect(details.indexOf('held before snapshotting')).toBeLessThan(details.indexOf('writes open'));

    await handles[0].cancel();
    const result = (await handles[0].result()) as TenantResult;
    expect(result.outcome).toBe('rolled_back');
    expect(result.status.phase).toBe('rolled_back');
    expect(result.status.rollbackReason).toContain('workflow cancelled');
    const described = await handles[0].describe();
    expect(described.status.name).toBe('COMPLETED');
    expect(described.typedSearchAttributes.get(outcomeSearchAttribute)).toBe('rolled_back');
    expect(writeModeInCatalog(fleet.catalog.path, cancelled)).toBe('read_write');
    expect((await handles[0].query(workflowMetadataQuery)).currentDetails).toContain('rolled back: served from its source');
    // The history reads as the runbook: each activity scheduled with its summary, in order.
    const summaries = ((await handles[0].fetchHistory()).events ?? [])
      .filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => (e.userMetadata?.summary ? defaultPayloadConverter.fromPayload<string>(e.userMetadata.summary as never) : e.activityTaskScheduledEventAttributes!.activityType?.name));
    expect(summaries).toEqual([
      'preflight: source, target, catalog and container checked',
      'journaling: change capture installed on every table',
      "rollback: delete this migration's blobs",
      'change capture off',
    ]);

    // What the Temporal UI sends for a signal typed as {"reason": …} or left empty.
    await handles[1].signal(rollbackSignal, { reason: 'typed as an object in the UI' });
    await handles[2].signal(rollbackSignal);
    expect(((await handles[1].result()) as TenantResult).status.rollbackReason).toBe('typed as an object in the UI');
    expect(((await handles[2].result()) as TenantResult).status.rollbackReason).toBe('operator request (signal)');
  } finally {
    await worker.stop();
    cleanup();
  }
});
