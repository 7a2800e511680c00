// The fleet file: which tenants live where, where they go, and how. Secrets appear only as the
// names of environment variables that the worker resolves.
import { FleetConfigError } from '../protocol/errors';
import type { TrackingMapping } from '../engines/engine';
import { envName, path } from '../engines/endpoint-fields';
import { endpointSchema, kindOf, resolveEndpointPaths } from '../engines/registry';
import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** Ids, database names and env-var names share one rule so they are safe in paths, T-SQL and blob names. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const NAME_HINT = 'letters, digits, _ and - only, starting with a letter or digit, at most 63 characters';
const PHASE_NAMES = [
  'preflight', 'journaling', 'snapshotting', 'copying', 'restoring',
  'catching_up', 'verifying', 'awaiting_cutover', 'cutting_over', 'rollback_window', 'completed',
] as const;

const name = (what: string) =>
  z.string({ error: `must be a string (${what})` }).regex(NAME, { error: (i) => `${JSON.stringify(i.input)} is not a valid ${what} (${NAME_HINT})` });

const endpoint = endpointSchema;

const storage = z
  .strictObject({
    container: z.string().regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, {
      error: (i) => `${JSON.stringify(i.input)} is not a valid blob container name (3-63 lowercase letters, digits and single hyphens)`,
    }),
    connectionStringEnv: envName.optional(),
    accountUrl: z.url({ error: 'must be an https URL such as https://myaccount.blob.core.windows.net' }).optional(),
    /**
     * How a restoring server reads the container, one choice for every restore into it (LRS takes a SAS
     * or the instance's managed identity on one storage account, never both): `managed-identity`, or
     * one read+list `sas` for the whole container, made once and shared by parallel restores.
     */
    restoreAccess: z.enum(['managed-identity', 'sas']).default('managed-identity'),
  })
  .refine((s) => (s.connectionStringEnv ? 1 : 0) + (s.accountUrl ? 1 : 0) === 1, {
    error: 'give exactly one of connectionStringEnv (an env var holding a connection string) or accountUrl (signs in with DefaultAzureCredential)',
  });

const policy = z.strictObject({
  concurrency: z.int().min(1).max(1000).default(4),
  verifyChunkRows: z.int().min(10).max(1_000_000).default(2000),
  blockSizeMiB: z.number().min(0.0625).max(4000).default(8),
  uploadConcurrency: z.int().min(1).max(64).default(4),
  /** Upload bandwidth cap per tenant in MiB/s; absent means no cap. */
  maxUploadMiBps: z.number().positive().optional(),
  cutover: z.enum(['auto', 'manual']).default('auto'),
  pauseBefore: z.array(z.enum(PHASE_NAMES)).default([]),
  activityTimeoutMinutes: z.number().min(1).max(7 * 24 * 60).default(120),
  /** Longest time a tenant's events may be held at cut-over; past it the cut-over aborts. */
  cutoverPauseBudgetMs: z.int().min(1).max(600_000).default(2000),
  /** A cut-over called off (a gateway node unreachable, over the pause budget) is tried again, up to this many attempts in all. */
  cutoverAttempts: z.int().min(1).max(100).default(5),
  /** Seconds between cut-over attempts, while replication keeps catching up. */
  cutoverRetrySeconds: z.number().min(0).max(3600).default(30),
  /**
   * Log shipping to a Managed Instance (LRS in continuous mode): the pause budget of a cut-over, whose
   * fence holds while the tail-log backup is taken, uploaded, restored and the restore completed (a
   * completion alone takes minutes on the service). Past it, before the completion is sent, the
   * cut-over is called off and tried again; once it is sent, the switch goes on to the flip.
   */
  lrsCutoverPauseBudgetMs: z.int().min(1000, { error: 'must be at least 1000 ms: the tail-log backup, its upload, its restore and the completion all happen inside it' }).max(3_600_000).default(300_000),
  /** Log shipping: a log backup is taken and shipped this often while the tenant writes. */
  logBackupSeconds: z.number().min(1).max(3600).default(60),
  /** The dual-write must be within this many events of the source before verifying. */
  catchUpLagEvents: z.int().min(0).default(200),
  /** How long the source is kept current after cut-over so a rollback loses nothing. */
  rollbackWindowSeconds: z.number().min(0).default(3600),
  tenantsPerRun: z.int().min(1).max(10_000).default(500),
});

/** A table or column name from the tenant's own schema: quoted wherever it is used, so only its length and NUL are checked. */
const sqlName = (what: string) =>
  z.string({ error: `must be the name of a ${what} (a string)` }).min(1, { error: `must name a ${what}` }).max(128).regex(/^[^\u0000]*$/, { error: `a ${what} name cannot hold NUL` });
const column = sqlName('column');

/**
 * Where the tenant's own tracking table keeps each field of an event. `event_id` must be a column
 * with a unique index (an event sent twice is stored once); a field mapped to null is not stored.
 */
const tracking = z.strictObject({
  table: sqlName('table').default('tracking_events'),
  columns: z
    .strictObject({
      event_id: column.default('event_id'),
      kind: column.default('kind'),
      occurred_at: column.default('occurred_at'),
      ad_id: column.nullable().default('ad_id'),
      user_agent: column.nullable().default('user_agent'),
      payload: column.nullable().default('payload'),
    })
    .default({ event_id: 'event_id', kind: 'kind', occurred_at: 'occurred_at', ad_id: 'ad_id', user_agent: 'user_agent', payload: 'payload' }),
});

/** The demo schema's `tracking_events`, every field in the column of its own name. */
export const DEFAULT_TRACKING = tracking.parse({});

const tenant = z.strictObject({
  id: name('tenant id'),
  /** How people call the tenant (free text, shown on the war-room page); the id stays the key. */
  name: z.string({ error: 'must be text (the display name)' }).min(1).max(200).optional(),
  database: name('SQL identifier'),
  source: name('source name'),
  target: name('target name'),
  /** This tenant's tracking table, when it differs from the fleet's `tracking`. */
  tracking: tracking.optional(),
  /** This tenant's cut-over, when it differs from `policy.cutover` (`manual`: it waits for `airlift approve`). */
  cutover: z.enum(['auto', 'manual'], { error: 'must be auto or manual' }).optional(),
});

export const fleetSchema = z
  .strictObject({
    sources: z.record(name('source name'), endpoint),
    targets: z.record(name('target name'), endpoint),
    storage,
    catalog: z.strictObject({ path }).default({ path: 'catalog.db' }),
    workDirectory: path.default('.airlift/work'),
    /** Live tracking ingestion: the gateway nodes whose admin API fences and flips tenants. */
    ingestion: z
      .strictObject({
        gateways: z.array(z.url({ error: 'must be the base URL of a gateway, such as http://10.0.0.5:8080' })).min(1, { error: 'list at least one gateway URL' }),
        adminTokenEnv: envName,
      })
      .optional(),
    policy: policy.default(policy.parse({})),
    /** The tracking table of every tenant that names none of its own. */
    tracking: tracking.default(DEFAULT_TRACKING),
    tenants: z.array(tenant).min(1, { error: 'list at least one tenant' }),
  })
  .superRefine((fleet, ctx) => {
    for (const [name, e] of Object.entries(fleet.sources)) {
      const kind = kindOf(e);
      if (!kind.sides.source) ctx.addIssue({ code: 'custom', path: ['sources', name, 'engine'], message: `${e.engine} is a target, not a source` });
      for (const issue of kind.sourceIssues?.(e) ?? []) ctx.addIssue({ code: 'custom', path: ['sources', name, ...issue.path], message: issue.message });
    }
    for (const [name, e] of Object.entries(fleet.targets))
      if (!kindOf(e).sides.target) ctx.addIssue({ code: 'custom', path: ['targets', name, 'engine'], message: `${e.engine} is a source, not a target` });
    // Each tenant's artifacts go to a folder named after its id, in the fleet's one container.
    const reservedBy = (target: string) => (fleet.targets[target] ? kindOf(fleet.targets[target]).reservedFolderWord : undefined);
    for (const reserved of new Set(Object.keys(fleet.targets).map(reservedBy)))
      if (reserved?.pattern.test(fleet.storage.container))
        ctx.addIssue({ code: 'custom', path: ['storage', 'container'], message: `"${fleet.storage.container}" contains "${fleet.storage.container.match(reserved.pattern)![0]}", which ${reserved.reason} in a container name; choose another container name` });
    const seen = new Map<string, number>();
    fleet.tenants.forEach((t, i) => {
      const reserved = reservedBy(t.target);
      if (reserved?.pattern.test(t.id))
        ctx.addIssue({ code: 'custom', path: ['tenants', i, 'id'], message: `"${t.id}" contains "${t.id.match(reserved.pattern)![0]}", which ${reserved.reason} in a folder name (each tenant's backups go to a folder named after its id); give this tenant another id (its database name can stay)` });
      if (!(t.source in fleet.sources))
        ctx.addIssue({ code: 'custom', path: ['tenants', i, 'source'], message: `"${t.source}" is not defined under sources (defined: ${Object.keys(fleet.sources).join(', ') || 'none'})` });
      if (!(t.target in fleet.targets))
        ctx.addIssue({ code: 'custom', path: ['tenants', i, 'target'], message: `"${t.target}" is not defined under targets (defined: ${Object.keys(fleet.targets).join(', ') || 'none'})` });
      const first = seen.get(t.id);
      if (first !== undefined)
        ctx.addIssue({ code: 'custom', path: ['tenants', i, 'id'], message: `"${t.id}" is listed twice (also tenants[${first}]); each tenant migrates once` });
      else seen.set(t.id, i);
    });
  });

export type Fleet = z.infer<typeof fleetSchema>;
export type Endpoint = z.infer<typeof endpoint>;
export type Tenant = z.infer<typeof tenant>;
export type FleetPolicy = z.infer<typeof policy>;

/** A fleet that was read from a file: relative paths are resolved against the file's folder. */
export interface LoadedFleet extends Fleet {
  file: string;
}

export { FleetConfigError };

function renderPath(path: PropertyKey[]): string {
  return path.reduce<string>((out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${String(part)}` : String(part)), '');
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys')
    return issue.keys.map((k) => `unknown key "${k}"; remove it or check its spelling`).join('; ');
  if (issue.code === 'invalid_type' && issue.input === undefined) return `is missing; add ${issue.expected === 'object' ? 'this section' : `a ${issue.expected}`}`;
  return issue.message;
}

/** Checks a parsed document; every problem is reported at once, each with its place in the file. */
export function parseFleet(doc: unknown, file: string): LoadedFleet {
  const result = fleetSchema.safeParse(doc);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const at = renderPath(issue.path);
      return `${file}: ${at ? `${at}: ` : ''}${describeIssue(issue)}`;
    });
    throw new FleetConfigError(lines.join('\n'));
  }
  const base = dirname(resolve(file));
  const fleet = result.data;
  const abs = (p: string) => resolve(base, p);
  const mapEndpoints = (all: Record<string, Endpoint>) => Object.fromEntries(Object.entries(all).map(([k, e]) => [k, resolveEndpointPaths(e, abs)]));
  return {
    ...fleet,
    file: resolve(file),
    sources: mapEndpoints(fleet.sources),
    targets: mapEndpoints(fleet.targets),
    catalog: { path: abs(fleet.catalog.path) },
    workDirectory: abs(fleet.workDirectory),
  };
}

export function loadFleet(file: string): LoadedFleet {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FleetConfigError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}); check the path given with -f`);
  }
  let doc: unknown;
  try {
    doc = extname(file) === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new FleetConfigError(`${file}: is not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  return parseFleet(doc, file);
}

/** Where a tenant's tracking events go: its own mapping, or the fleet's. */
export function trackingOf(fleet: Fleet, tenant: Tenant): TrackingMapping {
  return tenant.tracking ?? fleet.tracking;
}

export function findTenant(fleet: Fleet, tenantId: string): Tenant {
  const t = fleet.tenants.find((x) => x.id === tenantId);
  if (!t) throw new FleetConfigError(`tenant "${tenantId}" is not in the fleet file; add it under tenants`);
  return t;
}
