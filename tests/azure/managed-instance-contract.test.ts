// Contract tests: the real @azure/arm-sql client, driven by airlift's Managed Instance restore,
// against a local HTTPS server that answers in the documented Managed Instance REST shapes
// (long-running operations included). Every request the client sends is recorded and checked.
// No Azure is reached; this shows what airlift sends, not that Azure accepts it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqlManagementClient } from '@azure/arm-sql';
import { ManagedInstanceRestore, ManagedInstanceRestoreError, type RestoreProgress } from '../../azure/managed-instance';

interface Seen {
  method: string;
  path: string;
  apiVersion: string | null;
  auth: string | undefined;
  body: unknown;
}

const SUB = '00000000-1111-2222-3333-444444444444';
const BASE = `/subscriptions/${SUB}/resourceGroups/rg-airlift/providers/Microsoft.Sql/managedInstances/mi-prod`;
const SAS = 'sv=2024-08-04&sr=c&sp=rl&sig=Zx9TopSecretSignature';

let server: Server;
let port: number;
let dir: string;
let ca: Buffer;
const seen: Seen[] = [];
/** Per database: how many times its restore details and operation were asked for. */
const asked = new Map<string, number>();

function reply(res: import('node:http').ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body === undefined ? '' : JSON.stringify(body));
}

function database(name: string, tags: Record<string, string>) {
  return { id: `${BASE}/databases/${name}`, name, type: 'Microsoft.Sql/managedInstances/databases', location: 'westeurope', tags, properties: { status: 'Online', collation: 'SQL_Latin1_General_CP1_CI_AS' } };
}

const created = new Map<string, Record<string, string>>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlift-arm-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  ca = readFileSync(join(dir, 'cert.pem'));
  server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: ca }, (req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      const url = new URL(req.url!, `https://127.0.0.1:${port}`);
      seen.push({ method: req.method!, path: url.pathname, apiVersion: url.searchParams.get('api-version'), auth: req.headers.authorization, body: text ? JSON.parse(text) : undefined });
      const origin = `https://127.0.0.1:${port}`;
      const m = /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Sql\/managedInstances\/mi-prod(?:\/databases\/([^/]+)(\/restoreDetails\/Default|\/completeRestore)?)?$/.exec(url.pathname);
      const op = /^\/operations\/(\w+)\/(\w+)$/.exec(url.pathname);
      if (op) {
        // Long-running operations: in progress once, then done.
        const [, kind, db] = op;
        const n = (asked.get(`${kind}/${db}`) ?? 0) + 1;
        asked.set(`${kind}/${db}`, n);
        if (kind === 'create') return reply(res, 200, { name: 'op', status: n < 2 ? 'InProgress' : 'Succeeded' });
        return n < 2 ? reply(res, 202, undefined, { location: `${origin}${url.pathname}`, 'retry-after': '0' }) : reply(res, 200, {});
      }
      if (!m) return reply(res, 404, { error: { code: 'NotFound', message: `no route ${url.pathname}` } });
      const [, db, sub] = m;
      if (!db && req.method === 'GET') return reply(res, 200, { id: BASE, name: 'mi-prod', location: 'westeurope', properties: { state: 'Ready' } });
      if (sub === '/restoreDetails/Default') {
        const n = (asked.get(`details/${db}`) ?? 0) + 1;
        asked.set(`details/${db}`, n);
        if (db === 'broken')
          return reply(res, 200, { id: `${BASE}/databases/${db}/restoreDetails/Default`, name: 'Default', properties: { status: 'Failed', blockReason: 'Backup file is corrupted', percentCompleted: 10, numberOfFilesRestored: 0, numberOfFilesUnrestorable: 1, unrestorableFiles: [{ name: 'broken-m1.bak' }] } });
        const done = n >= 2;
        return reply(res, 200, { id: `${BASE}/databases/${db}/restoreDetails/Default`, name: 'Default', properties: { status: done ? 'Completed' : 'Restoring', percentCompleted: done ? 100 : 40, numberOfFilesDetected: 1, numberOfFilesRestored: done ? 1 : 0, numberOfFilesUnrestorable: 0, unrestorableFiles: [] } });
      }
      if (sub === '/completeRestore' && req.method === 'POST') return reply(res, 202, undefined, { location: `${origin}/operations/complete/${db}`, 'retry-after': '0' });
      if (req.method === 'PUT') {
        created.set(db, (JSON.parse(text) as { tags: Record<string, string> }).tags);
        return reply(res, 201, { ...database(db, created.get(db)!), properties: { provisioningState: 'InProgress' } }, { 'azure-asyncoperation': `${origin}/operations/create/${db}`, 'retry-after': '0' });
      }
      if (req.method === 'GET') return created.has(db) ? reply(res, 200, database(db, created.get(db)!)) : reply(res, 404, { error: { code: 'ResourceNotFound', message: 'not found' } });
      if (req.method === 'DELETE') {
        created.delete(db);
        return reply(res, 202, undefined, { location: `${origin}/operations/delete/${db}`, 'retry-after': '0' });
      }
      return reply(res, 405, { error: { code: 'MethodNotAllowed', message: req.method } });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => (seen.length = 0));

const credential = { getToken: async () => ({ token: 'test-token', expiresOnTimestamp: Date.now() + 3_600_000 }) };

function restorer(autoCompleteRestore: boolean): ManagedInstanceRestore {
  const client = new SqlManagementClient(credential, SUB, { endpoint: `https://127.0.0.1:${port}`, tlsOptions: { ca } } as never);
  return new ManagedInstanceRestore(client, { subscriptionId: SUB, resourceGroup: 'rg-airlift', managedInstance: 'mi-prod', collation: 'SQL_Latin1_General_CP1_CI_AS', storageAccess: 'sas', autoCompleteRestore }, 5);
}

const source = (db: string) => ({ containerUri: 'https://acct.blob.core.windows.net/airlift', lastBackupName: `${db}-m1.bak`, migrationId: 'm1', sas: async () => SAS });

test('contract: create with RestoreExternalBackup, LRO polling, restore progress, then completeRestore', async () => {
  const progress: RestoreProgress[] = [];
  await restorer(false).restore('acme_db', source('acme_db'), (p) => progress.push(p));

  expect(seen.every((s) => s.auth === 'Bearer test-token')).toBe(true);
  const put = seen.find((s) => s.method === 'PUT')!;
  expect(put.path).toBe(`${BASE}/databases/acme_db`);
  expect(put.apiVersion).toBe('2022-05-01-preview');
  expect(put.body).toEqual({
    location: 'westeurope',
    tags: { 'airlift-migration': 'm1' },
    properties: {
      createMode: 'RestoreExternalBackup',
      storageContainerUri: 'https://acct.blob.core.windows.net/airlift',
      storageContainerSasToken: SAS,
      collation: 'SQL_Latin1_General_CP1_CI_AS',
      autoCompleteRestore: false,
      lastBackupName: 'acme_db-m1.bak',
    },
  });
  expect(seen[0]).toMatchObject({ method: 'GET', path: BASE }); // the instance, for its location
  expect(seen.some((s) => s.method === 'GET' && s.path === '/operations/create/acme_db')).toBe(true);
  expect(seen.filter((s) => s.path === `${BASE}/databases/acme_db/restoreDetails/Default`).length).toBeGreaterThanOrEqual(2);
  const complete = seen.find((s) => s.method === 'POST')!;
  expect(complete).toMatchObject({ path: `${BASE}/databases/acme_db/completeRestore`, body: { lastBackupName: 'acme_db-m1.bak' } });
  expect(seen.indexOf(complete)).toBeGreaterThan(seen.indexOf(put));
  expect(progress[0]).toMatchObject({ status: 'Restoring', percent: 40 });
  expect(progress[progress.length - 1]).toMatchObject({ status: 'Completed', percent: 100, filesRestored: 1 });
});

test('contract: with autoCompleteRestore no completeRestore is sent', async () => {
  await restorer(true).restore('auto_db', source('auto_db'), () => {});
  expect(seen.filter((s) => s.method === 'POST')).toEqual([]);
  expect((seen.find((s) => s.method === 'PUT')!.body as { properties: { autoCompleteRestore: boolean } }).properties.autoCompleteRestore).toBe(true);
});

test('contract: a restore with an unrestorable file fails naming the file and the reason', async () => {
  const err = await restorer(true).restore('broken', source('broken'), () => {}).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ManagedInstanceRestoreError);
  expect((err as Error).message).toBe('Managed Instance mi-prod cannot restore broken: Failed (Backup file is corrupted); unrestorable files: broken-m1.bak');
  expect((err as Error).message).not.toContain('Zx9TopSecretSignature');
});

test('contract: delete is sent only for a database this migration created', async () => {
  await restorer(true).restore('drop_me', source('drop_me'), () => {});
  seen.length = 0;
  expect(await restorer(true).dropIfCreatedBy('drop_me', 'another-migration')).toBe(false);
  expect(seen.filter((s) => s.method === 'DELETE')).toEqual([]);
  expect(await restorer(true).dropIfCreatedBy('drop_me', 'm1')).toBe(true);
  expect(seen.filter((s) => s.method === 'DELETE').map((s) => [s.path, s.apiVersion])).toEqual([[`${BASE}/databases/drop_me`, '2022-05-01-preview']]);
  expect(await restorer(true).dropIfCreatedBy('never_there', 'm1')).toBe(false);
});
