// The airlift command as an operator runs it: a real process, its output and exit code.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = join(__dirname, '../../bin/airlift.js');
const airlift = (args: string[], timeout = 180000) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout });

test('demo migrates every tenant and ends with a JSON summary line', () => {
  const run = airlift(['demo', '--tenants', '3', '--rows', '800', '--json']);
  expect(run.stderr).not.toMatch(/airlift: /);
  expect(run.status).toBe(0);
  const lines = run.stdout.trim().split('\n');
  const summary = JSON.parse(lines[lines.length - 1]);
  expect(summary).toMatchObject({ tenants: 3, migrated: 3, failed: 0, rolledBack: 0, tablesVerified: 15, mismatches: 0 });
  expect(summary.bytesCopied).toBeGreaterThan(3 * 100_000);
  expect(summary.seconds).toBeGreaterThan(0);
  expect(run.stdout).toContain('Web UI: http://127.0.0.1:');
  expect(run.stdout).toMatch(/tenant-2: completed/);
});

test('demo under live load, with one tenant rolled back after cut-over, loses no event and measures the pause', () => {
  const run = airlift(['demo', '--tenants', '3', '--rows', '800', '--load', '300', '--rollback', 'tenant-2', '--json']);
  expect(run.status).toBe(0);
  const lines = run.stdout.trim().split('\n');
  const summary = JSON.parse(lines[lines.length - 1]);
  expect(summary).toMatchObject({ tenants: 3, migrated: 2, rolledBack: 1, failed: 0, mismatches: 0, eventsLost: 0 });
  expect(summary.eventsAccepted).toBeGreaterThan(300);
  expect(summary.cutoverPauseMsP50).toBeGreaterThanOrEqual(0);
  expect(summary.cutoverPauseMsP99).toBeGreaterThanOrEqual(summary.cutoverPauseMsP50);
  expect(run.stdout).toContain('rollback of tenant-2 requested during its rollback window');
  // The simulated application wrote to four tables the whole time, through the rollback window too
  // (nothing froze it), lost none of its acknowledged writes, and every table still verified identical.
  expect(summary.appWrites).toBeGreaterThan(0);
  expect(summary.appWritesLost).toBe(0);
  expect(summary.app.writesByPhase.rollback_window).toBeGreaterThan(0);
  expect(summary.appWritePauseMsP99).toBeGreaterThanOrEqual(summary.appWritePauseMsP50);
});

test('--help lists the operator commands', () => {
  const run = airlift(['--help']);
  expect(run.status).toBe(0);
  for (const cmd of ['demo', 'dev', 'worker', 'ingest', 'wave', 'status', 'approve', 'complete', 'rollback', 'pause', 'resume', 'reconcile', 'plan']) expect(run.stdout).toContain(`  ${cmd}`);
});

test('bad arguments and bad fleet files are refused with the field and the fix', () => {
  const zero = airlift(['demo', '--tenants', '0']);
  expect(zero.status).not.toBe(0);
  expect(zero.stderr).toContain('--tenants must be a whole number of at least 1, got "0"');

  const dir = mkdtempSync(join(tmpdir(), 'airlift-cli-'));
  try {
    const file = join(dir, 'fleet.yaml');
    writeFileSync(file, 'sources: {}\ntargets: {}\nstorage: { container: ok-name, connectionStringEnv: X }\ntenants: [{ id: a, database: "a]b", source: s, target: t }]\n');
    const run = airlift(['wave', 'start', '-f', file]);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`${file}: tenants[0].database: "a]b" is not a valid SQL identifier`);
    expect(run.stderr).toContain(`${file}: tenants[0].source: "s" is not defined under sources`);
    expect(run.stderr).not.toContain('    at '); // a clear message, not a stack trace
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
