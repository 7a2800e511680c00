// Contract tests: the real @azure/arm-sql client, driven by airlift's Managed Instance restorer, against
// the Managed Instance EMULATOR (tests/helpers/mi-emulator.ts: ARM in REST shapes, Log Replay Service
// state and rules, backup folders really listed and read in Azurite). No Azure is reached: this shows
// what airlift sends and that it follows the documented LRS rules the emulator encodes, not that
// Azure accepts it.
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { startAzurite, type AzuriteHandle } from '../../azure/azurite';
import { artifactBlobName, artifactFolder } from '../../azure/artifact-folder';
import { ManagedInstanceRestore, ManagedInstanceRestoreError, type ManagedInstanceRef, type RestoreAccess } from '../../azure/managed-instance';
import { ContainerReadAccess, sasWindow } from '../../azure/sas';
import type { BlobArtifact } from '../../engines';
import { ManagedInstanceEmulator } from '../helpers/mi-emulator';

const SUB = '00000000-1111-2222-3333-444444444444';
const BASE = `/subscriptions/${SUB}/resourceGroups/rg-airlift/providers/Microsoft.Sql/managedInstances/mi-prod`;

let azurite: AzuriteHandle;
let emulator: ManagedInstanceEmulator;
let container: ContainerClient;
let access: ContainerReadAccess;

beforeAll(async () => {
  azurite = await startAzurite();
  emulator = await ManagedInstanceEmulator.start({ subscriptionId: SUB, resourceGroup: 'rg-airlift', managedInstance: 'mi-prod', azuriteConnectionString: azurite.connectionString, fileRestoreMs: 150, storageSizeInGB: 32 });
  container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('airlift-artifacts');
  await container.createIfNotExists();
  access = new ContainerReadAccess(container);
});
afterAll(async () => {
  await emulator?.close();
  await azurite?.stop();
});

function restorer(overrides: Partial<ManagedInstanceRef> = {}): ManagedInstanceRestore {
  const mi: ManagedInstanceRef = { subscriptionId: SUB, resourceGroup: 'rg-airlift', managedInstance: 'mi-prod', collation: 'SQL_Latin1_General_CP1_CI_AS', autoCompleteRestore: true, resourceManagerUrl: emulator.url, restorePollSeconds: 0.05, ...overrides };
  return ManagedInstanceRestore.connect(mi, emulator.credential(), { tlsOptions: { ca: emulator.ca } } as never);
}

/** Uploads backup files into the tenant's folder and describes the artifact as the restore activity does. */
async function artifact(tenant: string, migration: string, files: string[], how: 'sas' | 'managed-identity' = 'sas'): Promise<BlobArtifact> {
  for (const f of files) await container.getBlockBlobClient(artifactBlobName(tenant, migration, f)).upload(`backup ${f}`, `backup ${f}`.length);
  const last = files[files.length - 1];
  const sas = () => access.sas(120);
  return {
    url: `${container.url}/${artifactBlobName(tenant, migration, last)}`,
    containerUrl: container.url,
    folderUrl: `${container.url}/${artifactFolder(tenant, migration)}`,
    blobName: artifactBlobName(tenant, migration, last),
    lastBackupName: last,
    sizeBytes: 10,
    sha256: '',
    sas: async () => (await sas()).token,
    access: async (): Promise<RestoreAccess> => (how === 'sas' ? { kind: 'sas', ...(await sas()) } : { kind: 'managed-identity' }),
  };
}

const puts = (db: string) => emulator.requests.filter((r) => r.method === 'PUT' && r.path === `${BASE}/databases/${db}`);

test('contract: create with RestoreExternalBackup from the tenant\'s own flat folder, progress, then completeRestore only once the last backup is restored', async () => {
  const a = await artifact('acme', 'm1', ['acme_full.bak', 'acme_log1.trn', 'acme_log2.trn', 'acme_log3.trn', 'acme_log4.trn', 'acme_log5.trn']);
  const progress: Record<string, unknown>[] = [];
  emulator.options.fileRestoreMs = 600; // slow enough to be seen restoring on a busy machine
  try {
    await restorer({ autoCompleteRestore: false }).restore('acme_db', a, 'm1', (fraction, detail) => progress.push({ fraction, ...detail }));
  } finally {
    emulator.options.fileRestoreMs = 150;
  }

  const [put] = puts('acme_db');
  expect(put.apiVersion).toBe('2022-05-01-preview');
  const sas = (put.body as { properties: { storageContainerSasToken: string } }).properties.storageContainerSasToken;
  expect(put.body).toEqual({
    location: 'westeurope',
    tags: { 'airlift-migration': 'm1' },
    properties: {
      createMode: 'RestoreExternalBackup',
      // "You must start LRS separately for each database that points to the full URI path that contains an individual database folder."
      storageContainerUri: `${container.url}/acme.m1`,
      storageContainerSasToken: sas,
      collation: 'SQL_Latin1_General_CP1_CI_AS',
      // Continuous mode names its last backup when it is completed, not when it starts.
      autoCompleteRestore: false,
    },
  });
  // "generated for the entire Azure Blob Storage container, and it must have Read and List permissions only"
  expect(sas).toMatch(/(^|&)sp=rl(&|$)/);
  expect(sas).toMatch(/(^|&)sr=c(&|$)/);
  // Manual completion waits until restoreDetails names the last backup as restored (the emulator refuses an early one).
  const complete = emulator.requests.filter((r) => r.method === 'POST');
  expect(complete.map((r) => [r.path, r.body])).toEqual([[`${BASE}/databases/acme_db/completeRestore`, { lastBackupName: 'acme_log5.trn' }]]);
  const before = progress.filter((p) => p.lastRestoredFileName === 'acme_log5.trn');
  expect(before.length).toBeGreaterThan(0);
  expect(progress.some((p) => p.status === 'Restoring' && (p.filesQueued as number) + (p.filesRestoring as number) > 0)).toBe(true);
  expect(emulator.list().find((d) => d.name === 'acme_db')).toMatchObject({ status: 'Online', tags: { 'airlift-migration': 'm1' } });
  expect(emulator.countsFor('acme_db')).toEqual({ creates: 1, completes: 1, deletes: 0 });
});

test('contract: with autoCompleteRestore no completeRestore is sent and the database comes online by itself', async () => {
  await restorer().restore('auto_db', await artifact('auto', 'm1', ['auto.bak']), 'm1');
  expect(emulator.countsFor('auto_db')).toEqual({ creates: 1, completes: 0, deletes: 0 });
  expect(emulator.list().find((d) => d.name === 'auto_db')?.status).toBe('Online');
});

test('resume: a restore interrupted half way and run again finds its database restoring and sends no second create', async () => {
  const a = await artifact('slow', 'm1', ['a.bak', 'b.trn', 'c.trn', 'd.trn']);
  const first = new AbortController();
  const interrupted = restorer().restore('slow_db', a, 'm1', (_f, detail) => {
    if (detail?.status === 'Restoring') first.abort();
  }, first.signal);
  await expect(interrupted).rejects.toThrow();
  expect(emulator.list().find((d) => d.name === 'slow_db')?.status).toBe('Restoring');
  const resumed: Record<string, unknown>[] = [];
  await restorer().restore('slow_db', a, 'm1', (_f, detail) => resumed.push(detail ?? {}));
  expect(resumed[0]).toMatchObject({ resumed: true });
  expect(emulator.countsFor('slow_db').creates).toBe(1);
  expect(emulator.list().find((d) => d.name === 'slow_db')?.status).toBe('Online');
});

test('rule: the container root instead of the database folder is refused ("full URI path that contains an individual database folder")', async () => {
  const a = await artifact('root', 'm1', ['root.bak']);
  const err = await restorer().restore('root_db', { ...a, folderUrl: container.url }, 'm1').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ManagedInstanceRestoreError);
  expect((err as Error).message).toContain('names the container only');
  expect((err as Error).message).not.toMatch(/sig=(?!\[redacted\])/);
});

test('rule: a nested folder inside the database folder fails the restore ("Nesting folders inside database folders isn\'t supported")', async () => {
  const a = await artifact('nested', 'm1', ['full.bak']);
  await container.getBlockBlobClient(`${artifactFolder('nested', 'm1')}/logs/log1.trn`).upload('x', 1);
  const err = await restorer().restore('nested_db', a, 'm1').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ManagedInstanceRestoreError);
  expect((err as Error).message).toContain('nested folder');
  // A failed restore is still this migration's database: the rollback deletes it.
  expect(await restorer().dropRestored('nested_db', 'm1')).toBe(true);
});

test('rule: the keyword backup in the folder name is refused ("should not have the container name or the folder name as keywords backup or backups")', async () => {
  const err = await restorer().restore('kw_db', await artifact('backups-inc', 'm1', ['x.bak']), 'm1').catch((e: unknown) => e);
  expect((err as Error).message).toContain('keyword backup');
});

test('rule: a SAS with more than Read and List is refused ("if you grant Read, List, and Write permissions, LRS won\'t be able to start")', async () => {
  const a = await artifact('rwl', 'm1', ['x.bak']);
  const token = (await access.sas(120)).token.replace('sp=rl', 'sp=rwl');
  const err = await restorer().restore('rwl_db', { ...a, access: async () => ({ kind: 'sas', token, expiresOn: new Date() }) }, 'm1').catch((e: unknown) => e);
  expect((err as Error).message).toContain('Read and List permissions only');
});

test('rule: parallel restores into one container share one SAS; two workers make the same one, and a different one is refused', async () => {
  // Two workers, each with its own wiring, in the same window: the same token.
  const other = new ContainerReadAccess(BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('airlift-artifacts'));
  expect((await other.sas(120)).token).toBe((await access.sas(120)).token);
  const slow = restorer({ restorePollSeconds: 0.05 });
  const one = await artifact('par1', 'm1', Array.from({ length: 12 }, (_, i) => `${String(i).padStart(2, '0')}.bak`));
  const two = await artifact('par2', 'm1', ['1.bak']);
  const running = slow.restore('par1_db', one, 'm1');
  await new Promise((r) => setTimeout(r, 100));
  await slow.restore('par2_db', two, 'm1'); // the same SAS: accepted while par1 restores
  // A SAS of another window (a worker that made its own) is refused while par1 still restores from this container.
  const foreign = (await import('../../azure/sas')).containerReadSas(container, sasWindow(60 * 24 * 3));
  const three = await artifact('par3', 'm1', ['1.bak']);
  const err = await slow.restore('par3_db', { ...three, access: async () => ({ kind: 'sas', token: await foreign, expiresOn: new Date() }) }, 'm1').catch((e: unknown) => e);
  expect((err as Error).message).toContain('same SAS');
  await running;
});

test('rule: a SAS and the managed identity are never used in parallel on one storage account', async () => {
  const slow = restorer();
  const running = slow.restore('mix1_db', await artifact('mix1', 'm1', ['1.bak', '2.trn', '3.trn', '4.trn']), 'm1');
  await new Promise((r) => setTimeout(r, 100));
  const err = await slow.restore('mix2_db', await artifact('mix2', 'm1', ['1.bak'], 'managed-identity'), 'm1').catch((e: unknown) => e);
  expect((err as Error).message).toContain('cannot be used in parallel on one storage account');
  await running;
  // Once no SAS restore runs, the managed identity reads the folder itself.
  await slow.restore('mix3_db', await artifact('mix3', 'm1', ['1.bak'], 'managed-identity'), 'm1');
  expect(puts('mix3_db')[0].body).toMatchObject({ properties: { storageContainerIdentity: 'ManagedIdentity' } });
  expect(JSON.stringify(puts('mix3_db')[0].body)).not.toContain('storageContainerSasToken');
});

test('rule: autocomplete fails when files lie beyond lastBackupName ("If the system detects more backup files beyond the last specified backup file, the migration will fail")', async () => {
  const a = await artifact('beyond', 'm1', ['1.bak', '2.trn']);
  const err = await restorer().restore('beyond_db', { ...a, lastBackupName: '1.bak' }, 'm1').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ManagedInstanceRestoreError);
  expect((err as Error).message).toContain('beyond the last backup file 1.bak');
  expect(await restorer().dropRestored('beyond_db', 'm1')).toBe(true);
});

test('limit: at 100 restores on the instance ("up to 100 simultaneous restore processes per single managed instance") a restore waits for a free one', async () => {
  expect(emulator.list().filter((d) => d.status === 'Restoring')).toEqual([]);
  for (let i = 0; i < 100; i++) emulator.seed(`busy_${i}`, { status: 'Restoring', tags: { 'airlift-migration': 'other' } });
  try {
    // Not a reason to fail preflight: the restore waits for a free one.
    expect(await restorer().prerequisites('wait_db')).toEqual([]);
    const seen: Record<string, unknown>[] = [];
    const waiting = restorer().restore('wait_db', await artifact('wait', 'm1', ['1.bak']), 'm1', (_f, d) => seen.push(d ?? {}));
    await new Promise((r) => setTimeout(r, 400));
    expect(seen.some((d) => d.status === 'WaitingForRestoreSlot' && d.restoring === 100)).toBe(true);
    expect(emulator.countsFor('wait_db').creates).toBe(0);
    emulator.drop('busy_0');
    await waiting;
    expect(emulator.countsFor('wait_db').creates).toBe(1);
  } finally {
    for (let i = 0; i < 100; i++) emulator.drop(`busy_${i}`);
  }
});

test('preflight: a database larger than the instance\'s storage is named, with the fix', async () => {
  expect(await restorer().prerequisites('huge_db', 40 * 1024 ** 3)).toEqual([
    'Managed Instance mi-prod: database huge_db (40.0 GiB) is larger than the instance\'s storage (32.0 GiB); scale the instance\'s storage up first',
  ]);
  expect(await restorer().prerequisites('small_db', 1024 ** 3)).toEqual([]);
});

test('delete is sent only for a database this migration created, by its tag', async () => {
  await restorer().restore('drop_me', await artifact('dropme', 'm1', ['1.bak']), 'm1');
  emulator.seed('not_ours', { tags: { 'airlift-migration': 'another-migration' } });
  emulator.seed('untagged');
  const from = emulator.requests.length;
  expect(await restorer().dropRestored('not_ours', 'm1')).toBe(false);
  expect(await restorer().dropRestored('untagged', 'm1')).toBe(false);
  expect(await restorer().dropRestored('drop_me', 'another-migration')).toBe(false);
  expect(emulator.requests.slice(from).filter((r) => r.method === 'DELETE')).toEqual([]);
  expect(await restorer().dropRestored('drop_me', 'm1')).toBe(true);
  expect(await restorer().dropRestored('never_there', 'm1')).toBe(false);
  expect(emulator.list().map((d) => d.name)).toEqual(expect.arrayContaining(['not_ours', 'untagged']));
  expect(emulator.list().some((d) => d.name === 'drop_me')).toBe(false);
});

test('a database of the same name that this migration did not create is refused, and nothing is sent to it', async () => {
  emulator.seed('taken_db', { tags: { 'airlift-migration': 'someone-else' } });
  const err = await restorer().restore('taken_db', await artifact('taken', 'm1', ['1.bak']), 'm1').catch((e: unknown) => e);
  expect((err as Error).message).toBe('Managed Instance mi-prod: database taken_db already exists (restored by migration someone-else); airlift will not restore over it');
  expect(emulator.countsFor('taken_db').creates).toBe(0);
});

test('limit: "A single LRS job can run for a maximum of 30 days, after which it will be automatically canceled": the restore then fails saying so', async () => {
  let now = Date.now();
  const aging = await ManagedInstanceEmulator.start({ subscriptionId: SUB, resourceGroup: 'rg-airlift', managedInstance: 'mi-prod', azuriteConnectionString: azurite.connectionString, fileRestoreMs: 60_000, clock: () => now });
  try {
    const mi: ManagedInstanceRef = { subscriptionId: SUB, resourceGroup: 'rg-airlift', managedInstance: 'mi-prod', collation: 'SQL_Latin1_General_CP1_CI_AS', autoCompleteRestore: false, resourceManagerUrl: aging.url, restorePollSeconds: 0.05 };
    const r = ManagedInstanceRestore.connect(mi, aging.credential(), { tlsOptions: { ca: aging.ca } } as never);
    const err = await r
      .restore('old_db', await artifact('old', 'm1', ['1.bak']), 'm1', (_f, d) => {
        if (d?.status === 'Restoring') now += 31 * 24 * 3600_000;
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManagedInstanceRestoreError);
    expect((err as Error).message).toBe('Managed Instance mi-prod: database old_db is gone while restoring (the LRS job was stopped, or ran past its 30 days)');
    expect(aging.list()).toEqual([]);
  } finally {
    await aging.close();
  }
});
