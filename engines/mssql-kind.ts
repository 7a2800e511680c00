// SQL Server and Azure SQL Managed Instance as the fleet file names them. Both speak T-SQL through
// MssqlEngine; a Managed Instance restores through ARM (Log Replay Service), whose restorer the
// wiring builds (engines/ knows no Azure SDK).
import { z } from 'zod';
import { engineKind } from './engine-kind';
import { envName, path, secretFromEnv } from './endpoint-fields';
import { MssqlEngine } from './mssql';
import { managedInstancePlan, mssqlPlan } from './mssql-plan';

/** SQL Server connection fields shared by a SQL Server endpoint and a Managed Instance. */
const sqlLogin = {
  server: z.string({ error: 'must be the host name of the SQL Server' }).min(1),
  port: z.int().min(1).max(65535).default(1433),
  user: z.string().min(1).optional(),
  passwordEnv: envName.optional(),
  encrypt: z.boolean().default(true),
  trustServerCertificate: z.boolean().default(false),
};

type SqlLogin = { server: string; user?: string; passwordEnv?: string };
const passwordOf = (e: SqlLogin, env: NodeJS.ProcessEnv) => secretFromEnv(e.passwordEnv, env, `the password of ${e.user ?? 'the login'} for ${e.server}`);

export const mssqlKind = engineKind({
  kind: 'mssql',
  endpoint: z.strictObject({
    engine: z.literal('mssql'),
    ...sqlLogin,
    /** Where the server writes backups, as the server sees it (source only). */
    backupDirectory: z.string().min(1).optional(),
    /** The same folder as the worker sees it (source only). */
    backupShare: path.optional(),
    compression: z.boolean().default(true),
  }),
  sides: { source: true, target: true },
  restoreKind: 'restore-from-url',
  sourceIssues: (e) =>
    !e.backupDirectory || !e.backupShare
      ? [{ path: [], message: 'a SQL Server source needs backupDirectory (the folder the server writes backups to) and backupShare (the same folder as the worker reads it)' }]
      : [],
  resolvePaths: (e, abs) => (e.backupShare ? { ...e, backupShare: abs(e.backupShare) } : e),
  // The password is read when a connection is made, so a plan of what would run needs none.
  create: (e, env) => new MssqlEngine({ ...e, get password() { return passwordOf(e, env); } }),
  plan: mssqlPlan,
});

export const managedInstanceKind = engineKind({
  kind: 'azure-sql-mi',
  endpoint: z.strictObject({
    engine: z.literal('azure-sql-mi'),
    ...sqlLogin,
    subscriptionId: z.uuid({ error: 'must be the subscription id (a GUID)' }),
    resourceGroup: z.string().min(1).max(90),
    managedInstance: z.string().regex(/^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$/, { error: 'must be the Managed Instance name (lowercase letters, digits, hyphens)' }),
    collation: z.string().regex(/^[A-Za-z0-9_]+$/).default('SQL_Latin1_General_CP1_CI_AS'),
    autoCompleteRestore: z.boolean().default(true),
    /** Azure Resource Manager for a sovereign cloud (e.g. https://management.usgovcloudapi.net); Azure public by default. */
    resourceManagerUrl: z.url({ error: 'must be the https URL of Azure Resource Manager, such as https://management.azure.com' }).optional(),
    /** How often the restore's progress (restoreDetails) is read. */
    restorePollSeconds: z.number().min(0.1).max(600).default(15),
  }),
  sides: { source: false, target: true },
  restoreKind: 'managed-instance',
  // Log Replay Service: "The backup URI path should not have the container name or the folder name as
  // keywords backup or backups" (Overview of Log Replay Service, Limitations).
  reservedFolderWord: { pattern: /backup/i, reason: 'the Managed Instance Log Replay Service refuses' },
  resolvePaths: (e) => e,
  // Verification and the dual-write talk T-SQL to the instance; the restore itself goes through ARM.
  create: (e, env) => new MssqlEngine({ ...e, get password() { return passwordOf(e, env); }, compression: false }),
  plan: managedInstancePlan,
  restorer: (e, _engine, deps) => (deps.managedInstance as (endpoint: typeof e) => ReturnType<typeof deps.managedInstance>)(e),
});
