// Where PostgreSQL's programs are: `pg_dump` and `pg_restore` for the engine, `initdb` and `pg_ctl`
// for a private cluster. The newest Debian server folder first, since a client must be at least as
// new as the server it dumps.
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The folder holding all of `programs`: $AIRLIFT_PG_BIN, Debian's newest /usr/lib/postgresql/<n>/bin, or PATH. */
export function postgresBinDirectory(programs: string[] = ['pg_dump', 'pg_restore'], env: NodeJS.ProcessEnv = process.env): string | undefined {
  const has = (dir: string) =>
    programs.every((p) => {
      try {
        accessSync(join(dir, p), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  if (env.AIRLIFT_PG_BIN) return has(env.AIRLIFT_PG_BIN) ? env.AIRLIFT_PG_BIN : undefined;
  const debian = '/usr/lib/postgresql';
  const versions = existsSync(debian) ? readdirSync(debian).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  return [...versions.map((v) => join(debian, v, 'bin')), ...(env.PATH ?? '').split(delimiter).filter(Boolean)].find(has);
}
