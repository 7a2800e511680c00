// Fleet-file fields that every engine's endpoint is built from: environment-variable names (secrets
// are never written in the fleet file, only the variable that holds them) and paths.
import { z } from 'zod';
import { MissingSecretError } from '../protocol/errors';

const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

export const envName = z
  .string({ error: 'must be the name of an environment variable' })
  .regex(ENV_NAME, { error: (i) => `${JSON.stringify(i.input)} is not an environment variable name; give the NAME of the variable that holds the secret (A-Z, 0-9, _), never the secret itself` });

export const path = z.string({ error: 'must be a path (string)' }).min(1, { error: 'must not be empty' });

/** The secret in `variable` on this worker, or a one-line error naming the variable and what to put in it. */
export function secretFromEnv(variable: string | undefined, env: NodeJS.ProcessEnv, what: string): string | undefined {
  if (!variable) return undefined;
  const value = env[variable];
  if (!value) throw new MissingSecretError(`passwordEnv: environment variable ${variable} is not set on this worker; export ${what} in it`);
  return value;
}
