// Chooses the engine for an endpoint of the fleet file. Passwords are read here, on the worker, from
// the environment variable the fleet names.
import { MissingSecretError } from '../protocol/errors';
import type { Engine } from './engine';
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
    case 'mssql':
      return new MssqlEngine({ ...endpoint, password: password(endpoint, env) });
    case 'azure-sql-mi':
      // Verification and the dual-write talk T-SQL to the instance; the restore itself goes through ARM.
      return new MssqlEngine({ ...endpoint, password: password(endpoint, env), compression: false });
  }
}

export * from './engine';
