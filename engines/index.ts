// Chooses the engine for an endpoint of the fleet file. Passwords are read here, on the worker, from
// the environment variable the fleet names.
import { MissingSecretError } from '../protocol/errors';
import type { Engine, RestoreTarget } from './engine';
import { MssqlEngine } from './mssql';
import { SqliteEngine } from './sqlite';

interface SqlLogin {
  server: string;
  port: number;
  user?: string;
  passwordEnv?: string;
  encrypt: boolean;
  trustServerCertificate: boolean;
}

export type EndpointConfig =
  | { engine: 'sqlite'; directory: string }
  | ({ engine: 'mssql'; backupDirectory?: string; backupShare?: string; compression: boolean } & SqlLogin)
  | ({ engine: 'azure-sql-mi' } & SqlLogin);

export { MissingSecretError };

function password(endpoint: SqlLogin, env: NodeJS.ProcessEnv): string | undefined {
  if (!endpoint.passwordEnv) return undefined;
  const value = env[endpoint.passwordEnv];
  if (!value) throw new MissingSecretError(`passwordEnv: environment variable ${endpoint.passwordEnv} is not set on this worker; export the password of ${endpoint.user ?? 'the login'} for ${endpoint.server} in it`);
  return value;
}

export function createEngine(endpoint: EndpointConfig, env: NodeJS.ProcessEnv = process.env): Engine {
  switch (endpoint.engine) {
    case 'sqlite':
      return new SqliteEngine(endpoint.directory);
    // The password is read when a connection is made, so a plan of what would run needs none.
    case 'mssql':
      return new MssqlEngine({ ...endpoint, get password() { return password(endpoint, env); } });
    case 'azure-sql-mi':
      // Verification and the dual-write talk T-SQL to the instance; the restore itself goes through ARM.
      return new MssqlEngine({ ...endpoint, get password() { return password(endpoint, env); }, compression: false });
  }
}

/** How a target endpoint restores: a downloaded file, RESTORE FROM URL, or a Managed Instance (LRS through ARM). */
export type RestoreKind = 'file' | 'restore-from-url' | 'managed-instance';

export function restoreKindOf(endpoint: EndpointConfig): RestoreKind {
  return endpoint.engine === 'sqlite' ? 'file' : endpoint.engine === 'mssql' ? 'restore-from-url' : 'managed-instance';
}

/**
 * The restorer for a target endpoint: the engine itself for a restored file or RESTORE FROM URL, and
 * for a Managed Instance the ARM restorer that the wiring builds (engines/ knows no Azure SDK).
 */
export function createRestoreTarget<E extends EndpointConfig>(endpoint: E, engine: Engine, managedInstance: (endpoint: Extract<E, { engine: 'azure-sql-mi' }>) => RestoreTarget): RestoreTarget {
  return restoreKindOf(endpoint) === 'managed-instance' ? managedInstance(endpoint as Extract<E, { engine: 'azure-sql-mi' }>) : engine;
}

export * from './engine';
