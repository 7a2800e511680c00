// SQLite as the fleet file names it: a folder holding one `<database>.db` file per tenant.
import { access, constants } from 'node:fs/promises';
import { z } from 'zod';
import { FleetConfigError } from '../protocol/errors';
import { engineKind } from './engine-kind';
import { path } from './endpoint-fields';
import { SqliteEngine } from './sqlite';

export const sqliteKind = engineKind({
  kind: 'sqlite',
  endpoint: z.strictObject({
    engine: z.literal('sqlite'),
    /** Folder holding one `<database>.db` file per tenant. */
    directory: path,
  }),
  sides: { source: true, target: true },
  restoreKind: 'file',
  resolvePaths: (e, abs) => ({ ...e, directory: abs(e.directory) }),
  create: (e) => new SqliteEngine(e.directory),
  plan: {
    // A source folder must be readable; a target folder writable, or made by the first restore.
    checkEndpoint: async (name, e, role) =>
      [await access(e.directory, role === 'source' ? constants.R_OK : constants.W_OK).then(
        () => ({ what: `${role} ${name} (${e.directory})`, ok: true, detail: role === 'source' ? 'readable' : 'writable' }),
        (err: NodeJS.ErrnoException) => ({ what: `${role} ${name} (${e.directory})`, ok: role === 'target' && err.code === 'ENOENT', detail: err.code === 'ENOENT' && role === 'target' ? 'will be created' : `${err.code}` }),
      )],
  },
});

/** The folder of a SQLite endpoint (the embedded default, the demo and the tests work with files). */
export function sqliteDirectory(e: { engine: string; directory?: string }): string {
  if (e.engine !== sqliteKind.kind || !e.directory) throw new FleetConfigError(`this needs a sqlite endpoint, not ${e.engine}`);
  return e.directory;
}
