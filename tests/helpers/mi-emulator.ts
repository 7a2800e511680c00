// EMULATOR — not Azure. A local HTTPS server that answers the Azure Resource Manager operations airlift
// sends to an Azure SQL Managed Instance (api-version 2022-05-01-preview for managed databases), in
// their REST shapes, and keeps state as the Log Replay Service (LRS) does: a database restoring from
// one folder of blob storage, restoreDetails with files detected, queued, restoring and restored,
// completion (automatic with lastBackupName, or completeRestore), failure, deletion and tags. It
// really lists and reads the backup files in Azurite with the credential it was given.
//
// Rules it enforces, each from the documentation (learn.microsoft.com, "Overview of Log Replay
// Service" and "Migrate databases from SQL Server to SQL Managed Instance by using Log Replay Service"):
//  - "You must start LRS separately for each database that points to the full URI path that contains
//    an individual database folder": storageContainerUri is a container plus one folder.
//  - "You must place backup files for different databases in separate folders … in a flat-file
//    structure. Nesting folders inside database folders isn't supported."
//  - "The backup URI path should not have the container name or the folder name as keywords backup or backups."
//  - "The shared access signature (SAS) token … must be generated for the entire Azure Blob Storage
//    container, and it must have Read and List permissions only"; "SAS tokens created with … a stored
//    access policy [are not] supported".
//  - "You cannot use both an SAS token and a managed identity in parallel on the same storage account."
//  - Restores into one container in parallel all present the same SAS (the rule as issue 8 states it).
//  - Autocomplete "requires the start command to specify the file name of the last backup file";
//    "If the system detects more backup files beyond the last specified backup file, the migration will fail."
//  - Continuous mode: complete only once "the last backup file has been restored".
//  - "LRS can support up to 100 simultaneous restore processes per single managed instance."
//  - "A single LRS job can run for a maximum of 30 days, after which it will be automatically canceled."
//  - A create for a database name that exists conflicts ("Does an existing database … have the same name").
//  - Continuous mode (autoCompleteRestore false) keeps scanning the folder and restores new backups as
//    they come, full backup first, then log backups in LSN order; a log backup whose records are all
//    restored already is skipped; one that starts after the LSN restored so far cannot be restored
//    (a gap in the chain: "the log chain is broken", as RESTORE LOG refuses it), so the restore fails
//    with the gap named in blockReason. LSN ranges as in "Log Sequence Numbers and Restore Planning":
//    a log backup holds [FirstLSN, LastLSN); the first after a full backup must reach over its LastLSN.
//  - Continuous mode "requires" completion with the name of the last backup file: completeRestore
//    without lastBackupName, with one that is not the last file restored, or while files are still
//    queued or restoring is refused; after completion the database is online and restores no more
//    ("After the migration finishes, the migration process is final and can't be resumed").
//  - CHECKSUM: "Although having CHECKSUM enabled for backups isn't required, it's highly recommended"
//    (LRS requires it no more since GA): not refused here; airlift always takes backups WITH CHECKSUM.
//    The 30 days of one LRS job were 36 hours in older documentation; the current limit is kept.
// Backup files are read in the emulated format of tests/helpers/emulated-backup.ts (the facts RESTORE
// HEADERONLY gives: type, first and last LSN, and the rows they hold); a file in another format (a
// SQLite snapshot) is restored as one full backup, in name order.
// The restored database's state: a restore "recovers" the database from what the backup holds, so
// the database comes online carrying the source's own objects as they were when the backup was
// taken: airlift's write gate (`open`, set by the source's journaling), its capture triggers and
// change log. With `sqlDirectory`, a restored SQLite snapshot comes online as `<database>.db` in that
// folder once the restore is completed (not before: "the database is not accessible while the
// restore is in progress", a database in the RESTORING state), and goes with the database when it is
// deleted; tests connect the target's SQL side to that file. It answers SQL as SQLite, not T-SQL:
// what the SQL Server engine sends to a Managed Instance is tested by its exact text (tests/engines).
// Not emulated: differential backups, striped backups, T-SQL connections to the restored database.
// The status codes and error codes of refusals are the emulator's own choice where the documentation
// names none (marked EMULATOR-CODE).
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobServiceClient, ContainerClient } from '@azure/storage-blob';
import { parseEmulatedBackup, type EmulatedBackup } from './emulated-backup';

export const EMULATOR_API_VERSION = '2022-05-01-preview';
const DAY_MS = 24 * 3600 * 1000;

export interface ManagedInstanceEmulatorOptions {
  subscriptionId: string;
  resourceGroup: string;
  managedInstance: string;
  /** Azurite, where the backup folders are: its connection string (the instance's identity reads with its key). */
  azuriteConnectionString: string;
  location?: string;
  storageSizeInGB?: number;
  /** How long the emulated service takes per backup file. */
  fileRestoreMs?: number;
  maxConcurrentRestores?: number;
  /** Whether the instance's managed identity holds Storage Blob Data Reader on the account. */
  identityCanRead?: boolean;
  /** Where a restored SQLite snapshot comes online as `<database>.db` (the restored database's SQL side). */
  sqlDirectory?: string;
  clock?: () => number;
}

type Access = { kind: 'sas'; token: string } | { kind: 'managed-identity' };

interface LrsJob {
  account: string;
  container: string;
  folder: string;
  access: Access;
  autoComplete: boolean;
  lastBackupName?: string;
  startedAt: number;
  /** Files of the folder as they were found, each with when, and its header when it has one. */
  files: { name: string; foundAt: number; backup?: EmulatedBackup; bytes?: Buffer }[];
  failure?: string;
  completed: boolean;
}

interface EmulatedDatabase {
  name: string;
  tags: Record<string, string>;
  collation: string;
  createdAt: number;
  job?: LrsJob;
  /** Set for databases that were there before (seeded), without a restore. */
  status?: 'Online' | 'Restoring';
}

export interface EmulatorRequest {
  method: string;
  path: string;
  apiVersion: string | null;
  body: unknown;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class ManagedInstanceEmulator {
  readonly token = `emulator-token-${randomUUID()}`;
  readonly identityHeader = `emulator-identity-${randomUUID()}`;
  readonly requests: EmulatorRequest[] = [];
  readonly ca: Buffer;
  readonly caFile: string;
  private readonly databases = new Map<string, EmulatedDatabase>();
  private readonly operations = new Map<string, { kind: 'create' | 'complete' | 'delete'; done: boolean; polls: number; error?: string }>();
  private readonly counts = new Map<string, { creates: number; completes: number; deletes: number }>();
  private readonly dir: string;
  private readonly clock: () => number;
  private server!: Server;
  private identity!: HttpServer;
  private origin = '';

  private constructor(readonly options: ManagedInstanceEmulatorOptions) {
    this.clock = options.clock ?? Date.now;
    this.dir = mkdtempSync(join(tmpdir(), 'airlift-mi-emulator-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(this.dir, 'key.pem'), '-out', join(this.dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    this.caFile = join(this.dir, 'cert.pem');
    this.ca = readFileSync(this.caFile);
  }

  static async start(options: ManagedInstanceEmulatorOptions): Promise<ManagedInstanceEmulator> {
    const emulator = new ManagedInstanceEmulator(options);
    emulator.server = createServer({ key: readFileSync(join(emulator.dir, 'key.pem')), cert: emulator.ca }, (req, res) => void emulator.handle(req, res));
    await new Promise<void>((r) => emulator.server.listen(0, '127.0.0.1', r));
    emulator.origin = `https://127.0.0.1:${(emulator.server.address() as AddressInfo).port}`;
    // The App Service managed-identity endpoint (IDENTITY_ENDPOINT, IDENTITY_HEADER): how a worker
    // process signs in with DefaultAzureCredential, unchanged, to this emulator.
    emulator.identity = createHttpServer((req, res) => {
      if (req.headers['x-identity-header'] !== emulator.identityHeader) return json(res, 401, { error: 'bad identity header' });
      json(res, 200, { access_token: emulator.token, expires_on: String(Math.floor(Date.now() / 1000) + 3600), resource: 'https://management.azure.com/', token_type: 'Bearer' });
    });
    await new Promise<void>((r) => emulator.identity.listen(0, '127.0.0.1', r));
    return emulator;
  }

  /** The ARM endpoint (fleet `resourceManagerUrl`). */
  get url(): string {
    return this.origin;
  }

  /** What a worker process needs in its environment to trust and sign in to this emulator. */
  workerEnv(): Record<string, string> {
    return {
      NODE_EXTRA_CA_CERTS: this.caFile,
      IDENTITY_ENDPOINT: `http://127.0.0.1:${(this.identity.address() as AddressInfo).port}/msi/token`,
      IDENTITY_HEADER: this.identityHeader,
    };
  }

  /** A credential for an in-process client. */
  credential() {
    return { getToken: async () => ({ token: this.token, expiresOnTimestamp: Date.now() + 3_600_000 }) };
  }

  /** How many create, completeRestore and delete requests reached one database name. */
  countsFor(database: string): { creates: number; completes: number; deletes: number } {
    return { ...(this.counts.get(database) ?? { creates: 0, completes: 0, deletes: 0 }) };
  }

  /** A database that is there already, as another team or migration left it. */
  seed(name: string, options: { tags?: Record<string, string>; status?: 'Online' | 'Restoring' } = {}): void {
    this.databases.set(name, { name, tags: options.tags ?? {}, collation: 'SQL_Latin1_General_CP1_CI_AS', createdAt: this.clock(), status: options.status ?? 'Online' });
  }

  /** The rows the restored database holds: those of every backup restored so far (emulated format only). */
  restoredRows(name: string): Record<string, unknown>[] {
    const job = this.databases.get(name)?.job;
    return job ? this.progressOf(job).rows.map((r) => r.row) : [];
  }

  /** Removes a database as someone else would (a seeded restore that ends). */
  drop(name: string): void {
    this.databases.delete(name);
  }

  /** The databases there now, with status and tags, as an operator would list them. */
  list(): { name: string; status: string; tags: Record<string, string> }[] {
    this.expire();
    return [...this.databases.values()].map((d) => ({ name: d.name, status: this.statusOf(d), tags: { ...d.tags } }));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.identity.closeAllConnections();
    await Promise.all([new Promise((r) => this.server.close(r)), new Promise((r) => this.identity.close(r))]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private count(database: string, what: 'creates' | 'completes' | 'deletes'): void {
    const c = this.counts.get(database) ?? { creates: 0, completes: 0, deletes: 0 };
    c[what]++;
    this.counts.set(database, c);
  }

  private get base(): string {
    const o = this.options;
    return `/subscriptions/${o.subscriptionId}/resourceGroups/${o.resourceGroup}/providers/Microsoft.Sql/managedInstances/${o.managedInstance}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += chunk;
    const url = new URL(req.url!, this.origin);
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    this.requests.push({ method: req.method!, path: url.pathname, apiVersion: url.searchParams.get('api-version'), body });
    try {
      if (req.headers.authorization !== `Bearer ${this.token}`) throw new Refusal(401, 'AuthenticationFailed', 'the access token is missing or was not issued for this emulator');
      this.expire();
      const op = /^\/operations\/([\w-]+)$/.exec(url.pathname);
      if (op) return this.operation(res, op[1], url.searchParams.get('style'));
      if (!url.pathname.toLowerCase().startsWith(this.base.toLowerCase())) throw new Refusal(404, 'ResourceNotFound', `no managed instance at ${url.pathname}`);
      const rest = url.pathname.slice(this.base.length);
      if (rest === '' && req.method === 'GET') return json(res, 200, this.instance());
      const m = /^\/databases(?:\/([^/]+)(\/restoreDetails\/Default|\/completeRestore)?)?$/.exec(rest);
      if (!m) throw new Refusal(404, 'ResourceNotFound', `no route ${url.pathname}`);
      if (url.searchParams.get('api-version') !== EMULATOR_API_VERSION)
        throw new Refusal(400, 'InvalidApiVersionParameter', `api-version ${url.searchParams.get('api-version')} is not the one this emulator answers (${EMULATOR_API_VERSION})`);
      const [, name, sub] = m;
      if (!name && req.method === 'GET') return json(res, 200, { value: [...this.databases.values()].map((d) => this.resource(d)) });
      if (!name) throw new Refusal(405, 'MethodNotAllowed', req.method!);
      if (sub === '/restoreDetails/Default' && req.method === 'GET') return json(res, 200, await this.details(this.existing(name)));
      if (sub === '/completeRestore' && req.method === 'POST') return await this.complete(res, name, body);
      if (sub) throw new Refusal(405, 'MethodNotAllowed', req.method!);
      if (req.method === 'GET') return json(res, 200, this.resource(this.existing(name)));
      if (req.method === 'PUT') return await this.create(res, name, body);
      if (req.method === 'DELETE') {
        this.count(name, 'deletes');
        if (!this.databases.delete(name)) return json(res, 204);
        this.removeSqlFiles(name);
        return this.accepted(res, 'delete', true);
      }
      throw new Refusal(405, 'MethodNotAllowed', req.method!);
    } catch (err) {
      if (err instanceof Refusal) return json(res, err.status, { error: { code: err.code, message: err.message } });
      return json(res, 500, { error: { code: 'InternalServerError', message: (err as Error).message } });
    }
  }

  private existing(name: string): EmulatedDatabase {
    const d = this.databases.get(name);
    if (!d) throw new Refusal(404, 'ResourceNotFound', `The requested resource of type 'Microsoft.Sql/managedInstances/databases' with name '${name}' was not found.`);
    return d;
  }

  private instance() {
    const o = this.options;
    return {
      id: this.base,
      name: o.managedInstance,
      type: 'Microsoft.Sql/managedInstances',
      location: o.location ?? 'westeurope',
      sku: { name: 'GP_Gen5', tier: 'GeneralPurpose', family: 'Gen5', capacity: 8 },
      properties: { state: 'Ready', provisioningState: 'Succeeded', storageSizeInGB: o.storageSizeInGB ?? 256, vCores: 8, collation: 'SQL_Latin1_General_CP1_CI_AS' },
    };
  }

  private statusOf(d: EmulatedDatabase): string {
    if (!d.job) return d.status ?? 'Online';
    return d.job.completed ? 'Online' : 'Restoring';
  }

  private resource(d: EmulatedDatabase) {
    return {
      id: `${this.base}/databases/${d.name}`,
      name: d.name,
      type: 'Microsoft.Sql/managedInstances/databases',
      location: this.options.location ?? 'westeurope',
      tags: d.tags,
      properties: { collation: d.collation, status: this.statusOf(d), creationDate: new Date(d.createdAt).toISOString(), defaultSecondaryLocation: 'northeurope' },
    };
  }

  /** Cancels LRS jobs past their 30 days, as the service does. */
  private expire(): void {
    for (const d of this.databases.values()) if (d.job && !d.job.completed && this.clock() - d.job.startedAt > 30 * DAY_MS) this.databases.delete(d.name);
  }

  private activeJobs(): LrsJob[] {
    return [...this.databases.values()].flatMap((d) => (d.job && !d.job.completed && !d.job.failure ? [d.job] : []));
  }

  /** Restores running on the instance: LRS jobs, and seeded databases left restoring. */
  private restoring(): number {
    return [...this.databases.values()].filter((d) => this.statusOf(d) === 'Restoring').length;
  }

  private async create(res: ServerResponse, name: string, body: Record<string, unknown> | undefined): Promise<void> {
    this.count(name, 'creates');
    const p = (body?.properties ?? {}) as Record<string, unknown>;
    if (this.databases.has(name)) throw new Refusal(409, 'ConflictingDatabaseOperation', `database ${name} already exists on ${this.options.managedInstance}`);
    if (p.createMode !== 'RestoreExternalBackup') throw new Refusal(400, 'InvalidCreateMode', 'this emulator answers only createMode RestoreExternalBackup (Log Replay Service)');
    const where = this.parseFolder(String(p.storageContainerUri ?? ''));
    const sas = p.storageContainerSasToken as string | undefined;
    const identity = p.storageContainerIdentity as string | undefined;
    if (Boolean(sas) === Boolean(identity)) throw new Refusal(400, 'InvalidStorageAccess', 'give either storageContainerSasToken or storageContainerIdentity (ManagedIdentity), not both and not neither');
    if (identity && identity !== 'ManagedIdentity') throw new Refusal(400, 'InvalidStorageAccess', `storageContainerIdentity must be ManagedIdentity, not ${identity}`);
    const access: Access = sas ? { kind: 'sas', token: sas } : { kind: 'managed-identity' };
    if (access.kind === 'sas') this.checkSas(access.token);
    const autoComplete = p.autoCompleteRestore === true;
    const lastBackupName = p.lastBackupName as string | undefined;
    if (autoComplete && !lastBackupName) throw new Refusal(400, 'LastBackupNameRequired', 'autoCompleteRestore needs lastBackupName, the file name of the last backup file');
    for (const job of this.activeJobs()) {
      if (job.account === where.account && job.access.kind !== access.kind)
        throw new Refusal(400, 'StorageAccessConflict', `storage account ${where.account} is read with ${job.access.kind === 'sas' ? 'a SAS token' : 'the managed identity'} by another restore; an SAS token and a managed identity cannot be used in parallel on one storage account`); // EMULATOR-CODE
      if (job.account === where.account && job.container === where.container && job.access.kind === 'sas' && access.kind === 'sas' && job.access.token !== access.token)
        throw new Refusal(400, 'StorageAccessConflict', `container ${where.container} is being restored from with another SAS token; parallel restores from one container must use the same SAS`); // EMULATOR-CODE
      if (job.account === where.account && job.container === where.container && job.folder === where.folder)
        throw new Refusal(400, 'FolderInUse', `folder ${where.folder} is being restored into another database; each database needs its own folder`); // EMULATOR-CODE
    }
    if (this.restoring() >= (this.options.maxConcurrentRestores ?? 100))
      throw new Refusal(409, 'TooManyConcurrentRestores', `${this.options.managedInstance} already runs ${this.restoring()} restores, the most LRS supports per instance`); // EMULATOR-CODE
    const job: LrsJob = { ...where, access, autoComplete, lastBackupName, startedAt: this.clock(), files: [], completed: false };
    this.databases.set(name, { name, tags: (body?.tags as Record<string, string>) ?? {}, collation: String(p.collation ?? 'SQL_Latin1_General_CP1_CI_AS'), createdAt: this.clock(), job });
    // The service starts the job asynchronously: a folder it cannot read, or that breaks a rule, shows
    // as a failed restore in restoreDetails (status Failed, the reason in blockReason).
    try {
      await this.scan(job);
      if (!job.files.length) job.failure = `no backup files in ${where.folder}/`;
    } catch (err) {
      job.failure = (err as Error).message;
    }
    const id = this.newOperation('create', true);
    json(res, 201, this.resource({ name, tags: (body?.tags as Record<string, string>) ?? {}, collation: String(p.collation), createdAt: this.clock(), status: 'Restoring' }), {
      'azure-asyncoperation': `${this.origin}/operations/${id}?style=async`,
      'retry-after': '0',
    });
  }

  /** Container and folder of a storageContainerUri, refused unless it is one flat database folder. */
  private parseFolder(uri: string): { account: string; container: string; folder: string } {
    const service = BlobServiceClient.fromConnectionString(this.options.azuriteConnectionString);
    const root = service.url.replace(/\/$/, '');
    if (!uri.startsWith(`${root}/`)) throw new Refusal(400, 'InvalidStorageContainerUri', `storageContainerUri ${uri} is not in the storage account ${root}`);
    const parts = uri.slice(root.length + 1).replace(/\/$/, '').split('/');
    if (parts.length < 2 || !parts[1])
      throw new Refusal(400, 'InvalidStorageContainerUri', `storageContainerUri ${uri} names the container only; start LRS for each database with the full URI of its own folder`);
    if (parts.length > 2) throw new Refusal(400, 'InvalidStorageContainerUri', `storageContainerUri ${uri} points into nested folders; use one folder per database directly in the container`);
    const [container, folder] = parts;
    for (const [what, value] of [['container', container], ['folder', folder]])
      if (/backups?/i.test(value)) throw new Refusal(400, 'InvalidStorageContainerUri', `the ${what} name ${value} contains the keyword backup, which LRS does not accept`);
    return { account: service.accountName, container, folder };
  }

  private checkSas(token: string): void {
    const q = new URLSearchParams(token);
    if (q.get('sp') !== 'rl') throw new Refusal(400, 'InvalidSasToken', `the SAS token must have Read and List permissions only (sp=rl), not sp=${q.get('sp')}`);
    if (q.get('sr') !== 'c') throw new Refusal(400, 'InvalidSasToken', `the SAS token must be generated for the entire container (sr=c), not sr=${q.get('sr')}`);
    if (q.get('si')) throw new Refusal(400, 'InvalidSasToken', 'SAS tokens defined through a stored access policy are not supported');
    const expires = Date.parse(q.get('se') ?? '');
    if (!(expires > this.clock())) throw new Refusal(400, 'InvalidSasToken', 'the SAS token has expired or has no expiry');
  }

  /** Lists the folder and reads each new file's first bytes in Azurite with the job's own credential. */
  private async scan(job: LrsJob): Promise<void> {
    const service = BlobServiceClient.fromConnectionString(this.options.azuriteConnectionString);
    let container: ContainerClient;
    if (job.access.kind === 'sas') container = new ContainerClient(`${service.getContainerClient(job.container).url}?${job.access.token}`);
    else if (this.options.identityCanRead === false) throw new Error(`the managed identity of ${this.options.managedInstance} has no read access to storage account ${job.account} (grant it Storage Blob Data Reader)`);
    else container = service.getContainerClient(job.container);
    const prefix = `${job.folder}/`;
    const names: string[] = [];
    try {
      for await (const blob of container.listBlobsFlat({ prefix })) names.push(blob.name.slice(prefix.length));
    } catch (err) {
      throw new Error(`cannot list ${job.container}/${prefix} with the given credential: ${(err as { statusCode?: number }).statusCode ?? ''} ${(err as Error).message.split('\n')[0]}`);
    }
    const nested = names.find((n) => n.includes('/'));
    if (nested) throw new Error(`the folder ${job.folder} holds a nested folder (${nested}); backup files must lie flat in the database folder`);
    for (const name of names.sort()) {
      if (job.files.some((f) => f.name === name)) continue;
      let bytes: Buffer;
      try {
        bytes = await container.getBlobClient(`${prefix}${name}`).downloadToBuffer();
      } catch (err) {
        throw new Error(`cannot read ${prefix}${name} with the given credential: ${(err as { statusCode?: number }).statusCode ?? ''}`);
      }
      const backup = parseEmulatedBackup(bytes);
      job.files.push({ name, foundAt: this.clock(), backup, ...(backup ? {} : { bytes }) });
    }
    if (job.autoComplete && job.lastBackupName) {
      const at = job.files.findIndex((f) => f.name === job.lastBackupName);
      if (at < 0) job.failure = `the last backup file ${job.lastBackupName} is not in the folder ${job.folder}`;
      else if (at < job.files.length - 1) job.failure = `backup files were found beyond the last backup file ${job.lastBackupName}: ${job.files.slice(at + 1).map((f) => f.name).join(', ')}`;
    }
  }

  /**
   * The restore's state at this moment: each file takes `fileRestoreMs`, one after the other, in chain
   * order (full backup, then log backups by first LSN). A log backup entirely before the restored LSN
   * is skipped; one that starts after it is a gap: nothing after it is restored.
   */
  private progressOf(job: LrsJob) {
    const per = this.options.fileRestoreMs ?? 500;
    const rank = (f: LrsJob['files'][number]) => (f.backup ? (f.backup.type === 'D' ? 0 : 1) : 0);
    const order = [...job.files].sort((a, b) => rank(a) - rank(b) || (a.backup && b.backup && rank(a) === 1 ? cmpLsn(a.backup.firstLsn, b.backup.firstLsn) : 0) || a.name.localeCompare(b.name));
    let at = job.startedAt;
    let chain: bigint | undefined;
    const restored: string[] = [];
    const skipped: string[] = [];
    const rows: EmulatedBackup['rows'] = [];
    let restoring: string | undefined;
    let queued = 0;
    let gap: string | undefined;
    for (const f of order) {
      const b = f.backup;
      if (b?.type === 'L') {
        if (chain === undefined) {
          gap = `log backup ${f.name} comes before any full backup in the folder`;
          break;
        }
        if (BigInt(b.lastLsn) <= chain) {
          skipped.push(f.name);
          continue;
        }
        if (BigInt(b.firstLsn) > chain) {
          // Reached only once everything before it is restored; until then it is just queued.
          if (restoring) queued++;
          else gap = `the log chain is broken: ${f.name} starts at LSN ${b.firstLsn}, the database is restored up to LSN ${chain}; the log records from LSN ${chain} to ${b.firstLsn} are in no backup in the folder`;
          break;
        }
      }
      // Redo skips log records the restored data already holds (those before the LSN restored so far).
      const from = chain;
      if (b) chain = BigInt(b.lastLsn);
      at = Math.max(at, f.foundAt) + per;
      if (at <= this.clock() && !restoring) {
        restored.push(f.name);
        if (b) rows.push(...(b.type === 'D' || from === undefined ? b.rows : b.rows.filter((r) => BigInt(r.lsn) >= from)));
      } else if (!restoring) restoring = f.name;
      else queued++;
    }
    return { restored, restoring, queued, skipped, gap, rows };
  }

  private async details(d: EmulatedDatabase) {
    const id = `${this.base}/databases/${d.name}/restoreDetails/Default`;
    const job = d.job;
    if (!job) return { id, name: 'Default', type: 'Microsoft.Sql/managedInstances/databases/restoreDetails', properties: { status: 'Completed', percentCompleted: 100 } };
    // Continuous mode keeps scanning the folder for new files, with the credential it was started with.
    if (!job.autoComplete && !job.completed && !job.failure) await this.scan(job).catch((err: Error) => (job.failure = err.message));
    const p = this.progressOf(job);
    if (p.gap && !job.completed) job.failure ??= p.gap;
    if (job.autoComplete && !job.failure && job.lastBackupName && p.restored.includes(job.lastBackupName)) this.online(d);
    const status = job.failure ? 'Failed' : job.completed ? 'Completed' : 'Restoring';
    return {
      id,
      name: 'Default',
      type: 'Microsoft.Sql/managedInstances/databases/restoreDetails',
      properties: {
        type: 'LRSRestore',
        status,
        blockReason: job.failure ?? '',
        lastUploadedFileName: job.files.at(-1)?.name,
        lastRestoredFileName: p.restored.at(-1),
        currentRestoringFileName: p.restoring,
        percentCompleted: job.files.length ? Math.round((100 * p.restored.length) / job.files.length) : 0,
        numberOfFilesDetected: job.files.length,
        numberOfFilesQueued: p.queued,
        numberOfFilesSkipped: p.skipped.length,
        numberOfFilesRestoring: p.restoring ? 1 : 0,
        numberOfFilesRestored: p.restored.length,
        numberOfFilesUnrestorable: job.failure ? 1 : 0,
        unrestorableFiles: job.failure ? [{ name: job.lastBackupName ?? job.files.at(-1)?.name ?? job.folder }] : [],
        fullBackupSets: [],
        diffBackupSets: [],
        logBackupSets: [],
      },
    };
  }

  private async complete(res: ServerResponse, name: string, body: Record<string, unknown> | undefined): Promise<void> {
    this.count(name, 'completes');
    const d = this.existing(name);
    const job = d.job;
    if (!job || job.completed) throw new Refusal(400, 'RestoreNotInProgress', `database ${name} has no restore to complete`); // EMULATOR-CODE
    if (job.autoComplete) throw new Refusal(400, 'RestoreIsAutoComplete', `database ${name} completes by itself (autoCompleteRestore)`); // EMULATOR-CODE
    const last = String(body?.lastBackupName ?? '');
    if (!last) throw new Refusal(400, 'LastBackupNameRequired', 'completing a restore in continuous mode needs lastBackupName, the file name of the last backup file'); // EMULATOR-CODE
    // The service knows the folder as its last scan found it.
    if (!job.failure) await this.scan(job).catch((err: Error) => (job.failure = err.message));
    if (!job.files.some((f) => f.name === last)) throw new Refusal(400, 'LastBackupNotFound', `the last backup file ${last} is not in the folder ${job.folder}`); // EMULATOR-CODE
    const p = this.progressOf(job);
    if (p.gap) job.failure ??= p.gap;
    if (job.failure) throw new Refusal(400, 'RestoreFailed', `the restore of ${name} failed: ${job.failure}`); // EMULATOR-CODE
    if (p.restored.at(-1) !== last || p.queued || p.restoring)
      throw new Refusal(400, 'LastBackupNotRestored', `the last backup file ${last} has not been restored yet (last restored: ${p.restored.at(-1) ?? 'none'}); complete the restore once it has`); // EMULATOR-CODE
    this.online(d);
    this.accepted(res, 'complete', true);
  }

  /**
   * The restore completes: the database comes online as recovered from its backups. A SQLite snapshot
   * (the last full backup in the folder) is written to `sqlDirectory` as it is, carrying the source's
   * gate, capture triggers and change log; nothing of airlift's is changed in it (that is the restore
   * step's own work, through a SQL connection).
   */
  private online(d: EmulatedDatabase): void {
    const job = d.job!;
    if (job.completed) return;
    job.completed = true;
    const snapshot = job.files.filter((f) => f.bytes).at(-1);
    if (this.options.sqlDirectory && snapshot?.bytes) {
      mkdirSync(this.options.sqlDirectory, { recursive: true });
      writeFileSync(this.sqlFile(d.name)!, snapshot.bytes);
    }
  }

  /** The restored database's SQL side (with `sqlDirectory`): the file it answers from once online. */
  sqlFile(name: string): string | undefined {
    return this.options.sqlDirectory && join(this.options.sqlDirectory, `${name}.db`);
  }

  private removeSqlFiles(name: string): void {
    const file = this.sqlFile(name);
    if (file) for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
  }

  private newOperation(kind: 'create' | 'complete' | 'delete', done: boolean, error?: string): string {
    const id = randomUUID();
    this.operations.set(id, { kind, done, polls: 0, error });
    return id;
  }

  private accepted(res: ServerResponse, kind: 'complete' | 'delete', done: boolean): void {
    const id = this.newOperation(kind, done);
    json(res, 202, undefined, { location: `${this.origin}/operations/${id}`, 'retry-after': '0' });
  }

  /** Long-running operations: in progress on the first poll, then their outcome. */
  private operation(res: ServerResponse, id: string, style: string | null): void {
    const op = this.operations.get(id);
    if (!op) throw new Refusal(404, 'OperationNotFound', id);
    op.polls++;
    const finished = op.done && op.polls > 1;
    if (style === 'async')
      return json(res, 200, finished ? { name: id, status: op.error ? 'Failed' : 'Succeeded', ...(op.error ? { error: { code: 'LogReplayStartFailed', message: op.error } } : {}) } : { name: id, status: 'InProgress' });
    return finished ? json(res, 200, {}) : json(res, 202, undefined, { location: `${this.origin}/operations/${id}`, 'retry-after': '0' });
  }
}

const cmpLsn = (a: string, b: string) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0);

function json(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-ms-request-id': randomUUID(), ...headers });
  res.end(body === undefined ? '' : JSON.stringify(body));
}
