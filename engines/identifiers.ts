// SQL identifiers are validated and quoted here and nowhere else.
import { InvalidIdentifierError } from '../protocol/errors';

/** Names airlift itself chooses or takes from the fleet file (databases, tenants). */
const DATABASE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

export { InvalidIdentifierError };

export function checkDatabaseName(name: string, where = 'database'): string {
  if (!DATABASE_NAME.test(name))
    throw new InvalidIdentifierError(`${where}: ${JSON.stringify(name)} is not a valid SQL identifier (letters, digits, _ and - only, at most 63 characters)`);
  return name;
}

function checkAny(name: string): string {
  if (name.length === 0 || name.length > 128 || name.includes('\u0000'))
    throw new InvalidIdentifierError(`${JSON.stringify(name)} cannot be used as an identifier (empty, longer than 128 characters, or holds NUL)`);
  return name;
}

/** ANSI quoting for SQLite and PostgreSQL: "a""b". Names found in a database's own catalog may hold anything. */
export const quoteDoubled = (name: string): string => `"${checkAny(name).replace(/"/g, '""')}"`;

/** SQL Server quoting: [a]]b]. */
export const quoteBracketed = (name: string): string => `[${checkAny(name).replace(/]/g, ']]')}]`;
