// Log shipping from SQL Server to Managed Instance under LRS in continuous mode (issue 9), the
// protocol without Temporal: airlift's real SQL Server engine against the SQL Server STAND-IN
// (tests/helpers/fake-sql-server.ts: msdb backup history, an LSN counter, backup files in the
// emulated format), the real block upload into Azurite, and airlift's real Managed Instance restorer
// (@azure/arm-sql) against the Managed Instance EMULATOR (tests/helpers/mi-emulator.ts). Neither SQL
// Server nor Azure is reached: this shows the T-SQL and ARM requests airlift sends and that the
// protocol keeps the chain LRS needs, by the documented rules the emulator encodes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { SqlManagementClient } from '@azure/arm-sql';
import { startAzurite, type AzuriteHandle } from '../../azure/azurite';
import { artifactBlobName, artifactFolder } from '../../azure/artifact-folder';
import { ManagedInstanceRestore, type RestoreAccess } from '../../azure/managed-instance';
import { ContainerReadAccess } from '../../azure/sas';
import { blobShippingFolder } from '../../azure/shipping-folder';
import type { BlobArtifact } from '../../engines';
import { renderStatement } from '../../engines/mssql-sql';
import { LogChainBrokenError, ManagedInstanceRestoreError } from '../../protocol/errors';
import { logBackupName, resumeCursor, shipNext, type LogShipping } from '../../protocol/log-shipping';
import { FakeSqlServer, fakeDatabase } from '../helpers/fake-sql-server';
import { FakeBackedMssqlEngine } from '../helpers/fake-mssql-engine';
import { ManagedInstanceEmulator } from '../helpers/mi-emulator';
import { waitFor } from '../helpers/stack';

const SUB = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const BASE = `/subscriptions/${SUB}/resourceGroups/rg-lrs/providers/Microsoft.Sql/managedInstances/mi-lrs`;
const SERVER_FOLDER = 'D:\\airlift';

let azurite: AzuriteHandle;
let emulator: ManagedInstanceEmulator;
let container: ContainerClient;
let access: ContainerReadAccess;
let share: string;

beforeAll(async () => {
  azurite = await startAzurite();
  emulator = await ManagedInstanceEmulator.start({ subscriptionId: SUB, resourceGroup: 'rg-lrs', managedInstance: 'mi-lrs', azuriteConnectionString: azurite.connectionString, fileRestoreMs: 100 });
  container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('airlift-artifacts');
  await container.createIfNotExists();
  access = new ContainerReadAccess(container);
  share = mkdtempSync(join(tmpdir(), 'airlift-lrs-share-'));
});
afterAll(async () => {
  await emulator?.close();
  await azurite?.stop();
  if (share) rmSync(share, { recursive: true, force: true });
});

/** One tenant on the stand-in server, its engine, the continuous restorer, and the shipping over its folder. */
function tenant(tenantId: string, migrationId: string) {
  const database = `${tenantId}_db`;
  const fake = new FakeSqlServer({
    productVersion: '15.0.4316.3', engineEdition: 3, edition: 'Enterprise Edition', logins: [], jobs: [], msdbReadable: true, canCreateDatabase: true, canAlterCredential: true,
    databases: { [database]: fakeDatabase() },
    backupFolder: { server: SERVER_FOLDER, local: share },
  });
  const engine = new FakeBackedMssqlEngine(fake, { server: 'sql01', port: 1433, encrypt: false, trustServerCertificate: true, compression: false, backupDirectory: SERVER_FOLDER, backupShare: share });
  const restorer = ManagedInstanceRestore.connect(
    { subscriptionId: SUB, resourceGroup: 'rg-lrs', managedInstance: 'mi-lrs', collation: 'SQL_Latin1_General_CP1_CI_AS', autoCompleteRestore: false, resourceManagerUrl: emulator.url, restorePollSeconds: 0.05 },
    emulator.credential(),
    { tlsOptions: { ca: emulator.ca } } as never,
  );
  const folder = artifactFolder(tenantId, migrationId);
  const fullBackupName = engine.artifactName(database, migrationId);
  const shipping: LogShipping = { database, migrationId, source: engine.logBackups!, folder: blobShippingFolder(container, folder, { blockSizeBytes: 4 << 20, concurrency: 2 }), fullBackupName };
  const artifact = (): BlobArtifact => ({
    url: `${container.url}/${artifactBlobName(tenantId, migrationId, fullBackupName)}`,
    containerUrl: container.url,
    folderUrl: `${container.url}/${folder}`,
    blobName: artifactBlobName(tenantId, migrationId, fullBackupName),
    lastBackupName: fullBackupName,
    sizeBytes: 0,
    sha256: '',
    sas: async () => (await access.sas(120)).token,
    access: async (): Promise<RestoreAccess> => ({ kind: 'sas', ...(await access.sas(120)) }),
  });
  /** Snapshot (the engine's BACKUP DATABASE) and copy of the full backup into the tenant's folder. */
  const snapshotAndCopy = async () => {
    const snap = await engine.snapshot(database, join(share, fullBackupName));
    await shipping.folder.upload(snap.file, fullBackupName);
  };
  const inFolder = () => shipping.folder.list();
  return { database, fake, engine, restorer, shipping, artifact, snapshotAndCopy, inFolder };
}

const row = (id: number) => ({ table: 'orders', id, note: `order ${id}` });

test('writes during the copy and after it are shipped as log backups, restored in LSN order, and present once the restore is completed at the tail-log backup', async () => {
  const t = tenant('acme', 'lrs0000000000001');
  for (const id of [1, 2, 3]) t.fake.write(t.database, row(id));
  await t.snapshotAndCopy();
  // The tenant writes on while the full backup is copied and restored.
  for (const id of [4, 5]) t.fake.write(t.database, row(id));
  await t.restorer.restore(t.database, t.artifact(), 'lrs0000000000001', undefined, undefined, { keepRestoring: true });
  expect(await t.restorer.state(t.database)).toMatchObject({ online: false, status: 'Restoring', lastRestoredFileName: t.shipping.fullBackupName, filesRestored: 1 });

  let cursor = await resumeCursor(t.shipping);
  expect(cursor).toMatchObject({ seq: 0, lastBackupName: t.shipping.fullBackupName });
  cursor = await shipNext(t.shipping, cursor);
  for (const id of [6, 7]) t.fake.write(t.database, row(id));
  cursor = await shipNext(t.shipping, cursor);
  // Restore lag, as the workflow reads it: the restore details name the last file restored.
  await waitFor('the second log backup restored', async () => ((await t.restorer.state(t.database)).lastRestoredFileName === cursor.lastBackupName ? true : undefined), 20_000);
  expect(await t.restorer.state(t.database)).toMatchObject({ filesDetected: 3, filesRestored: 3, filesQueued: 0, online: false });

  // Cut-over: (fenced) the tail-log backup, restored, then completed with its name.
  t.fake.write(t.database, row(8));
  const tail = await shipNext(t.shipping, cursor);
  expect(tail.lastBackupName).toBe(logBackupName(t.database, 'lrs0000000000001', 3));
  await t.restorer.complete(t.database, tail.lastBackupName);

  expect(emulator.list().find((d) => d.name === t.database)).toMatchObject({ status: 'Online', tags: { 'airlift-migration': 'lrs0000000000001' } });
  expect(emulator.restoredRows(t.database)).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map(row));
  expect(emulator.countsFor(t.database)).toEqual({ creates: 1, completes: 1, deletes: 0 });
  expect((await t.inFolder()).sort()).toEqual([t.shipping.fullBackupName, ...[1, 2, 3].map((n) => logBackupName(t.database, 'lrs0000000000001', n))].sort());

  // What was sent, snapshotted: the T-SQL with its values and declared types, and the ARM requests.
  expect(t.fake.sent.map((s) => renderStatement({ sql: s.sql, params: {}, types: s.types }, s.values as Record<string, string>))).toMatchSnapshot('T-SQL');
  const arm = emulator.requests
    .filter((r) => r.path.startsWith(`${BASE}/databases/${t.database}`))
    .map((r) => ({ method: r.method, path: r.path.slice(BASE.length), apiVersion: r.apiVersion, body: JSON.parse(JSON.stringify(r.body ?? null).split(container.url).join('<container>').replace(/"storageContainerSasToken":"[^"]*"/, '"storageContainerSasToken":"<SAS>"')) }));
  // Reads of restoreDetails repeat as often as the machine is slow: one of each kind is kept.
  const distinct = arm.filter((r, i) => !(r.method === 'GET' && arm.findIndex((o) => o.method === r.method && o.path === r.path) !== i));
  expect(distinct).toMatchSnapshot('ARM');
}, 60_000);

test("a log backup taken by the customer's own job breaks the chain: shipping refuses, names the LSN range and the file, and uploads nothing; LRS refuses such a gap too", async () => {
  const t = tenant('globex', 'lrs0000000000002');
  t.fake.state.jobs.push({ name: 'Nightly log backups', step: 'BACKUP LOG', database: t.database, enabled: true });
  // Preflight says so before anything starts.
  expect(await t.engine.logBackupPreflight(t.database)).toEqual([expect.stringMatching(/SQL Agent job 'Nightly log backups' step 1 .*takes log backups of globex_db: a log backup airlift does not ship breaks the chain/)]);

  t.fake.write(t.database, row(1));
  await t.snapshotAndCopy();
  await t.restorer.restore(t.database, t.artifact(), 'lrs0000000000002', undefined, undefined, { keepRestoring: true });
  const first = await shipNext(t.shipping, await resumeCursor(t.shipping));
  t.fake.write(t.database, row(2));
  const foreign = t.fake.customerLogBackup(t.database, 'E:\\nightly\\globex_db_log_2300.trn');
  t.fake.write(t.database, row(3));

  const refused = await shipNext(t.shipping, first).catch((err: Error) => err);
  expect(refused).toBeInstanceOf(LogChainBrokenError);
  expect((refused as Error).message).toBe(
    `globex_db: the log chain shipped to the target is broken: the log records from LSN ${first.lastLsn} (after ${first.lastBackupName}) to LSN ${foreign.lastLsn} are in E:\\nightly\\globex_db_log_2300.trn (LSN ${foreign.firstLsn} to ${foreign.lastLsn}, ${foreign.finishedAt.toISOString()}), a log backup airlift did not take; LRS cannot restore past the gap. Stop the job that takes log backups of this database (airlift plan --check names it), roll back and migrate again`,
  );
  expect(first.lastLsn).toBe(foreign.firstLsn); // the range named is exactly the one that is missing
  expect(t.fake.sent.filter((s) => s.sql.startsWith('BACKUP LOG'))).toHaveLength(1); // no backup taken past the gap
  expect(await t.inFolder()).not.toContain(logBackupName(t.database, 'lrs0000000000002', 2));

  // Had the backup after the gap been shipped anyway, LRS could not restore it: the emulator fails the restore and names the gap.
  const next = logBackupName(t.database, 'lrs0000000000002', 2);
  await t.engine.takeLogBackup(t.database, next);
  await t.shipping.folder.upload(t.engine.localPath(next), next);
  const failed = await waitFor('the restore to fail at the gap', () => t.restorer.state(t.database).then(() => undefined, (err: Error) => err), 20_000);
  expect(failed).toBeInstanceOf(ManagedInstanceRestoreError);
  expect(failed.message).toContain(`the log chain is broken: ${next} starts at LSN ${foreign.lastLsn}, the database is restored up to LSN ${first.lastLsn}`);

  // Rollback before cut-over: the restoring database this migration's tag names is deleted, nothing else.
  expect(await t.restorer.dropRestored(t.database, 'lrs0000000000002')).toBe(true);
  expect(emulator.list().map((d) => d.name)).not.toContain(t.database);
}, 60_000);

// "Copy-only backups (SQL Server)": a copy-only log backup leaves the log chain as it was; the next
// regular log backup holds the same records (issue 20, defect 6: it is not a break in the chain).
test("someone else's COPY_ONLY log backup between two shipments breaks nothing: shipping goes on and LRS restores the chain", async () => {
  const t = tenant('hooli', 'lrs0000000000009');
  t.fake.write(t.database, row(1));
  await t.snapshotAndCopy();
  await t.restorer.restore(t.database, t.artifact(), 'lrs0000000000009', undefined, undefined, { keepRestoring: true });
  const first = await shipNext(t.shipping, await resumeCursor(t.shipping));
  t.fake.write(t.database, row(2));
  t.fake.customerCopyOnlyLogBackup(t.database, 'E:\\adhoc\\hooli_db_copyonly.trn');
  t.fake.write(t.database, row(3));
  const second = await shipNext(t.shipping, first);
  expect(second.seq).toBe(2);
  await waitFor('both log backups restored', async () => ((await t.restorer.state(t.database)).lastRestoredFileName === second.lastBackupName ? true : undefined), 20_000);
  expect(await t.restorer.dropRestored(t.database, 'lrs0000000000009')).toBe(true);
}, 60_000);

test('a retried attempt neither takes a log backup twice nor skips one: it finds the one it took by its file name in the backup history', async () => {
  const t = tenant('initech', 'lrs0000000000003');
  t.fake.write(t.database, row(1));
  await t.snapshotAndCopy();
  const start = await resumeCursor(t.shipping);
  // An attempt took backup 1 and died before uploading it.
  const one = logBackupName(t.database, 'lrs0000000000003', 1);
  t.fake.write(t.database, row(2));
  await t.engine.takeLogBackup(t.database, one);
  const backupLogs = () => t.fake.sent.filter((s) => s.sql.startsWith('BACKUP LOG')).length;
  expect(backupLogs()).toBe(1);
  // Its successor starts from what the folder says (the full backup) and ships backup 1 without taking it again.
  expect(await resumeCursor(t.shipping)).toEqual(start);
  const after = await shipNext(t.shipping, start);
  expect(after).toMatchObject({ seq: 1, lastBackupName: one });
  expect(backupLogs()).toBe(1);
  // Died after the upload, before its checkpoint: the next one resumes after backup 1, and takes backup 2.
  expect(await resumeCursor(t.shipping)).toEqual(after);
  t.fake.write(t.database, row(3));
  expect((await shipNext(t.shipping, after)).lastBackupName).toBe(logBackupName(t.database, 'lrs0000000000003', 2));
  expect(backupLogs()).toBe(2);
}, 60_000);

test('rule: continuous mode completes only with the last backup name, and only once that file is restored', async () => {
  const t = tenant('umbrella', 'lrs0000000000004');
  t.fake.write(t.database, row(1));
  await t.snapshotAndCopy();
  emulator.options.fileRestoreMs = 3_000;
  try {
    await t.restorer.restore(t.database, t.artifact(), 'lrs0000000000004', undefined, undefined, { keepRestoring: true });
    const shipped = await shipNext(t.shipping, await resumeCursor(t.shipping));
    const client = new SqlManagementClient(emulator.credential(), SUB, { endpoint: emulator.url, tlsOptions: { ca: emulator.ca } } as never);
    const complete = (lastBackupName: string) => client.managedDatabases.beginCompleteRestoreAndWait('rg-lrs', 'mi-lrs', t.database, { lastBackupName }).then(() => 'completed', (err: Error) => err.message);
    // "Continuous mode requires … the name of the last backup file".
    expect(await complete('')).toMatch(/needs lastBackupName/);
    expect(await complete('not-in-the-folder.trn')).toMatch(/is not in the folder/);
    // The log backup is still queued or restoring.
    expect(await complete(shipped.lastBackupName)).toMatch(/has not been restored yet/);
    expect(emulator.list().find((d) => d.name === t.database)?.status).toBe('Restoring');
  } finally {
    emulator.options.fileRestoreMs = 100;
  }
  await t.restorer.complete(t.database, (await resumeCursor(t.shipping)).lastBackupName);
  expect(emulator.list().find((d) => d.name === t.database)?.status).toBe('Online');
}, 60_000);
