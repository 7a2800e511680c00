// `airlift plan` as an operator runs it: the steps and exact statements, and never a secret.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { azuriteConnectionString } from '../../azure/azurite';
import { makeFleet } from '../helpers/stack';

const root = join(__dirname, '../..');
const SECRETS = {
  AIRLIFT_DC1_PASSWORD: 'Hunter2-Sup3rSecret-dc1',
  AIRLIFT_MI_PASSWORD: 'MiPassw0rd-Sup3rSecret',
  AIRLIFT_SQLVM_PASSWORD: 'VmPassw0rd-Sup3rSecret',
  AIRLIFT_STORAGE_CONNECTION_STRING:
    'DefaultEndpointsProtocol=https;AccountName=airliftartifacts;AccountKey=c2VjcmV0LWtleS1mb3ItdGhlLXRlc3Qtb25seS0wMTIzNDU2Nzg5;EndpointSuffix=core.windows.net',
};
const plan = (args: string[]) =>
  spawnSync(process.execPath, [join(root, 'bin/airlift.js'), 'plan', ...args], { encoding: 'utf8', env: { ...process.env, ...SECRETS }, timeout: 60000 });

function expectNoSecret(text: string) {
  for (const secret of Object.values(SECRETS)) expect(text).not.toContain(secret);
  expect(text).not.toContain('c2VjcmV0LWtleS1mb3I');
  expect(text).not.toMatch(/AccountKey=|sig=/);
}

test('plan for SQL Server to Managed Instance: BACKUP … COPY_ONLY and RestoreExternalBackup for every tenant, no secret', () => {
  const run = plan(['-f', join(root, 'examples/fleet.mssql-to-mi.yaml')]);
  expect(run.status).toBe(0);
  for (const [tenant, db] of [['acme', 'acme'], ['globex', 'globex'], ['initech', 'initech_prod']]) {
    const section = run.stdout.split('== tenant ').find((s) => s.startsWith(`${tenant} `))!;
    expect(section).toContain(`BACKUP DATABASE [${db}] TO DISK = @disk0 WITH COPY_ONLY, CHECKSUM`);
    expect(section).toContain('"createMode": "RestoreExternalBackup"');
    expect(section).toContain(`PUT /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-airlift/providers/Microsoft.Sql/managedInstances/mi-airlift-prod/databases/${db}?api-version=2022-05-01-preview`);
    // One flat folder per database, and LRS started with its full URI (Overview of Log Replay Service, Limitations).
    expect(section).toContain(`"storageContainerUri": "https://airliftartifacts.blob.core.windows.net/airlift-artifacts/${tenant}.<migration-id>"`);
    expect(section).toContain(`"lastBackupName": "${db}-<migration-id>.bak"`);
    expect(section).toContain('"storageContainerIdentity": "ManagedIdentity"');
    expect(section).not.toContain('storageContainerSasToken');
  }
  expectNoSecret(run.stdout + run.stderr);
});

test('plan --json for Managed Instance: each tenant its own flat folder URI, one credential choice shared by every restore into the container, the LRS limit per instance', () => {
  const run = plan(['-f', join(root, 'examples/fleet.mssql-to-mi.yaml'), '--json']);
  expect(run.status).toBe(0);
  const doc = JSON.parse(run.stdout) as {
    restoreAccess: { kind: string; sharedBy: string[] };
    tenants: { tenant: string; restore: { folderUri: string; authentication: { kind: string }; writeFreeze: { estimate: string }; concurrency: { perInstanceLimit: number; note: string } } }[];
  };
  const folders = doc.tenants.map((t) => t.restore.folderUri);
  expect(folders).toEqual(['acme', 'globex', 'initech'].map((id) => `https://airliftartifacts.blob.core.windows.net/airlift-artifacts/${id}.<migration-id>`));
  // Flat: the container, then one folder; no "backup" in either.
  for (const f of folders) expect(new URL(f).pathname.split('/').filter(Boolean)).toHaveLength(2);
  for (const f of folders) expect(f).not.toMatch(/backup/i);
  expect(doc.restoreAccess).toMatchObject({ kind: 'managed-identity', sharedBy: ['acme', 'globex', 'initech'] });
  expect(new Set(doc.tenants.map((t) => JSON.stringify(t.restore.authentication))).size).toBe(1);
  for (const t of doc.tenants) {
    expect(t.restore.concurrency.perInstanceLimit).toBe(100);
    expect(t.restore.writeFreeze.estimate).toContain("writes wait only inside the cut-over's fence");
  }
  expectNoSecret(run.stdout + run.stderr);
});

test('plan with restoreAccess: sas: one read+list SAS for the container, its expiry shown, the token itself never', () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlift-plan-'));
  try {
    const file = join(dir, 'fleet.yaml');
    const text = readFileSync(join(root, 'examples/fleet.mssql-to-mi.yaml'), 'utf8').replace('restoreAccess: managed-identity', 'restoreAccess: sas').replace('backupShare: /mnt/sql01-backups', `backupShare: ${dir}`);
    writeFileSync(file, text);
    const run = plan(['-f', file, '--json']);
    expect(run.status).toBe(0);
    const doc = JSON.parse(run.stdout) as { restoreAccess: { kind: string; validUntil: string; detail: string }; tenants: { restore: { authentication: { kind: string; validUntil: string } }; steps: { phase: string; detail: string[] }[] }[] };
    expect(doc.restoreAccess.kind).toBe('sas');
    expect(doc.restoreAccess.detail).toContain('Read and List only');
    // At least the restore timeout (360 min) from now, at most twice that.
    const left = Date.parse(doc.restoreAccess.validUntil) - Date.now();
    expect(left).toBeGreaterThanOrEqual(360 * 60_000 - 60_000);
    expect(left).toBeLessThanOrEqual(2 * 360 * 60_000);
    for (const t of doc.tenants) expect(t.restore.authentication).toMatchObject({ kind: 'sas', validUntil: doc.restoreAccess.validUntil });
    expect(doc.tenants[0].steps.find((s) => s.phase === 'restoring')!.detail.join('\n')).toContain('"storageContainerSasToken": "[redacted');
    expectNoSecret(run.stdout + run.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('plan for SQL Server to SQL Server on a VM: the credential holds the SAS as a redacted parameter, then RESTORE … FROM URL', () => {
  const run = plan(['-f', join(root, 'examples/fleet.mssql-to-sqlvm.yaml'), '--json']);
  expect(run.status).toBe(0);
  const doc = JSON.parse(run.stdout) as { tenants: { tenant: string; steps: { phase: string; detail: string[] }[] }[] };
  expect(doc.tenants.map((t) => t.tenant)).toEqual(['acme', 'globex']);
  const restore = doc.tenants[0].steps.find((s) => s.phase === 'restoring')!.detail.join('\n');
  expect(restore).toContain("N' CREDENTIAL ' + QUOTENAME(@url)");
  expect(restore).toContain('@sas = [redacted]');
  // Restored under a name that records the migration, renamed once marked (issue 8 item 4).
  expect(restore).toContain('RESTORE DATABASE [airlift_restoring_<migration-id>] FROM URL = @url WITH MOVE @logical0 TO @physical0, CHECKSUM, STATS = 5;');
  expect(restore).toContain('ALTER DATABASE [airlift_restoring_<migration-id>] MODIFY NAME = [acme];');
  expect(restore).toContain('@url = "https://airliftartifacts.blob.core.windows.net/airlift-artifacts/acme.<migration-id>/acme-<migration-id>.bak"');
  expect(doc.tenants[0].steps.map((s) => s.phase)).toEqual([
    'preflight', 'journaling', 'snapshotting', 'copying', 'restoring', 'catching_up', 'verifying', 'cutting_over', 'rollback_window', 'completed',
  ]);
  expectNoSecret(run.stdout + run.stderr);
});

test('plan --check reports an unreachable SQL Server as missing, exits 1, and prints no password', () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlift-plan-'));
  try {
    const file = join(dir, 'fleet.yaml');
    writeFileSync(file, [
      'sources:',
      '  dc1: { engine: mssql, server: 127.0.0.1, port: 1, user: sa, passwordEnv: AIRLIFT_DC1_PASSWORD, backupDirectory: /var/opt/mssql/backup, backupShare: ./share }',
      'targets:',
      '  cloud: { engine: sqlite, directory: ./cloud }',
      'storage: { container: airlift-artifacts, connectionStringEnv: AIRLIFT_STORAGE_CONNECTION_STRING }',
      'tenants:',
      '  - { id: acme, database: acme, source: dc1, target: cloud }',
    ].join('\n'));
    const run = plan(['-f', file, '--check']);
    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/MISSING {2}source dc1 \(127\.0\.0\.1:1\): cannot connect/);
    expect(run.stdout).toContain('ok       target cloud');
    expectNoSecret(run.stdout + run.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Issue 20, "What done looks like": per tenant, what the SQL Server path checks and does beyond its steps.
test('plan --json and the human plan show per tenant: minimum version, recovery model and log chain, Managed Instance limits, foreign keys, key counters, the credential against the LRS window, the log backup cadence', () => {
  const run = plan(['-f', join(root, 'examples/fleet.mssql-to-mi.yaml'), '--json']);
  expect(run.status).toBe(0);
  const doc = JSON.parse(run.stdout) as { tenants: { tenant: string; sourceFacts: Record<string, Record<string, unknown>> }[] };
  for (const t of doc.tenants) {
    const s = t.sourceFacts;
    expect(s.minimumVersion).toMatchObject({ version: '13.0.4001', release: 'SQL Server 2016 SP1' });
    expect(s.recoveryModel.required).toMatch(/^FULL/);
    expect(String(s.recoveryModel.statement)).toContain('rs.last_log_backup_lsn IS NULL');
    expect(s.managedInstanceLimits.checked).toEqual(expect.arrayContaining([expect.stringMatching(/at most 100 LRS restores per instance/)]));
    expect(s.managedInstanceLimits.notChecked).toEqual(expect.arrayContaining([expect.stringMatching(/databases per instance/)]));
    expect(String(s.foreignKeys.underTheFence)).toContain('WITH NOCHECK');
    expect((s.foreignKeys.statements as string[]).join('\n')).toContain("N' WITH CHECK CHECK CONSTRAINT ' + QUOTENAME(@key)");
    expect((s.keyCounters.statements as string[]).join('\n')).toMatch(/DBCC CHECKIDENT \(@table, RESEED, @reseed\)[\s\S]*ALTER SEQUENCE/);
    expect(s.credential).toMatchObject({ kind: 'managed-identity', ok: true });
    expect(s.logBackups).toMatchObject({ shipped: false });
  }
  const human = plan(['-f', join(root, 'examples/fleet.mssql-to-mi.yaml')]).stdout.split('== tenant ').find((x) => x.startsWith('acme '))!;
  for (const line of ['minimum version: SQL Server 2016 SP1 (13.0.4001)', 'recovery model: FULL', 'Managed Instance limits checked:', 'NOT checked yet:', 'foreign keys: the target is opened with its foreign keys re-enabled WITH NOCHECK', 'key counters: under the fence, both ways: IDENTITY (IDENT_CURRENT, DBCC CHECKIDENT … RESEED) and SEQUENCE', 'credential: ', 'log backups: ']) expect(human).toContain(line);
});

test('continuous LRS with a SAS and a log backup a minute: the plan says the credential is too short for the LRS window and the cadence too fast', () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlift-plan-'));
  try {
    const file = join(dir, 'fleet.yaml');
    const text = readFileSync(join(root, 'examples/fleet.mssql-to-mi.yaml'), 'utf8')
      .replace('restoreAccess: managed-identity', 'restoreAccess: sas')
      .replace('backupShare: /mnt/sql01-backups', `backupShare: ${dir}`)
      .replace(/autoCompleteRestore: true/, 'autoCompleteRestore: false');
    expect(text).toContain('autoCompleteRestore: false');
    writeFileSync(file, text);
    const run = plan(['-f', file, '--json']);
    expect(run.status).toBe(0);
    const doc = JSON.parse(run.stdout) as { tenants: { sourceFacts: { credential: { ok: boolean; fix: string; lrsWindow: string }; logBackups: { shipped: boolean; ok: boolean; filesPerDay: number; note: string } } }[] };
    const s = doc.tenants[0].sourceFacts;
    expect(s.credential).toMatchObject({ ok: false, fix: expect.stringContaining('storage.restoreAccess: managed-identity'), lrsWindow: expect.stringContaining('up to 30 days') });
    expect(s.logBackups).toMatchObject({ shipped: true, ok: false, filesPerDay: 1440, note: expect.stringContaining('thousands of files') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Issue 21 finding 8: the VACUUM warning preflight gives a SQLite tenant with a table keyed by rowid is in `plan --check` too.
test('plan --check on SQLite tenants gives the warning preflight gives: a table keyed by rowid must not be VACUUMed', () => {
  const { fleet, cleanup } = makeFleet({ tenants: 1, rows: 10, storageEnv: 'AIRLIFT_PLAN_STORAGE' });
  try {
    const run = spawnSync(process.execPath, [join(root, 'bin/airlift.js'), 'plan', '-f', fleet.file, '--check'], {
      encoding: 'utf8', env: { ...process.env, AIRLIFT_PLAN_STORAGE: azuriteConnectionString(1) }, timeout: 60000,
    });
    const db = fleet.tenants[0].database;
    expect(run.stdout).toContain(`== readiness ${fleet.tenants[0].id} (database ${db}): 0 blocking, 1 warning, 0 ready`);
    expect(run.stdout).toMatch(new RegExp(`WARNING +change capture: do not VACUUM ${db} while it migrates; tables without a primary key are keyed by rowid: "?audit_log"?`));
  } finally {
    cleanup();
  }
});
