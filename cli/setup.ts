// `airlift setup`: what the demo and the tests need on this machine. The Temporal CLI (built with Go
// when missing, see temporal-cli.ts) and Debian's Chromium for the war-room page's browser tests and
// `demo --screenshot`: installed with apt-get where it can be (root, apt-get present), and where it
// cannot, the exact command to run is said instead.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { chromiumPath, DEBIAN_CHROMIUM } from './browser';
import { postgresBinDirectory } from '../engines/postgres-bin';

/** What setup will do about Chromium, decided from the machine's facts alone (so a test can ask). */
export type ChromiumDecision =
  | { kind: 'present'; path: string }
  | { kind: 'install'; path: string; commands: string[][]; env: Record<string, string> }
  | { kind: 'cannot'; message: string };

export interface MachineFacts {
  /** Where Chromium is expected: $AIRLIFT_CHROMIUM, else /usr/bin/chromium. */
  path: string;
  /** Whether $AIRLIFT_CHROMIUM chose that path. */
  chosenByEnv: boolean;
  executable: (file: string) => boolean;
  /** The effective user id; undefined where there is none (Windows). */
  uid: number | undefined;
  /** apt-get's path, when there is one. */
  aptGet: string | undefined;
}

export function decideChromium(facts: MachineFacts): ChromiumDecision {
  if (facts.executable(facts.path)) return { kind: 'present', path: facts.path };
  if (facts.chosenByEnv && facts.path !== DEBIAN_CHROMIUM)
    return { kind: 'cannot', message: `AIRLIFT_CHROMIUM: ${facts.path} is not an executable file; point it at a Chromium binary, or unset it to use Debian's (${DEBIAN_CHROMIUM})` };
  const apt = 'apt-get update && apt-get install -y chromium';
  if (!facts.aptGet)
    return { kind: 'cannot', message: `Chromium not found at ${facts.path} and there is no apt-get here to install it: install Chromium with this system's package manager and set AIRLIFT_CHROMIUM to its path (the war-room browser tests and demo --screenshot need it)` };
  if (facts.uid !== 0)
    return { kind: 'cannot', message: `Chromium not found at ${facts.path} (the war-room browser tests and demo --screenshot need it); installing it needs root: run \`sudo sh -c '${apt}'\`, then run this again` };
  return {
    kind: 'install',
    path: facts.path,
    commands: [[facts.aptGet, 'update', '-qq'], [facts.aptGet, 'install', '-y', '-qq', 'chromium']],
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  };
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function machineFacts(env: NodeJS.ProcessEnv = process.env): MachineFacts {
  const onPath = (name: string) => (env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name)).find(executable);
  return { path: chromiumPath(env), chosenByEnv: Boolean(env.AIRLIFT_CHROMIUM), executable, uid: process.getuid?.(), aptGet: onPath('apt-get') };
}

export class SetupError extends Error {
  override name = 'SetupError';
}

/**
 * Makes sure Chromium is there: installs it when the decision says so, and throws a SetupError with
 * the command to run when it cannot. With `dryRun`, says what it would run and runs nothing.
 */
export function ensureChromium(log: (line: string) => void, options: { dryRun?: boolean; facts?: MachineFacts } = {}): string | undefined {
  const facts = options.facts ?? machineFacts();
  const decision = decideChromium(facts);
  if (decision.kind === 'present') return decision.path;
  if (decision.kind === 'cannot') throw new SetupError(decision.message);
  const shown = decision.commands.map((c) => c.join(' ')).join(' && ');
  if (options.dryRun) {
    log(`would install Debian's Chromium (for the war-room browser tests): ${Object.entries(decision.env).map(([k, v]) => `${k}=${v} `).join('')}${shown}`);
    return undefined;
  }
  log(`Installing Debian's Chromium for the war-room browser tests: ${shown}`);
  for (const command of decision.commands) {
    const ran = spawnSync(command[0], command.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...decision.env } });
    if (ran.status !== 0)
      throw new SetupError(`\`${command.join(' ')}\` failed (exit code ${ran.status ?? ran.signal}); install Chromium yourself (apt-get install chromium) or set AIRLIFT_CHROMIUM to a Chromium binary, then run this again`);
  }
  if (!facts.executable(decision.path)) throw new SetupError(`apt-get installed chromium but ${decision.path} is missing; set AIRLIFT_CHROMIUM to the Chromium binary`);
  log(`Chromium installed: ${decision.path}`);
  return decision.path;
}

/**
 * Makes sure PostgreSQL's programs are there (initdb, pg_ctl, pg_dump, pg_restore: the private
 * clusters of the tests and `demo --engine postgres`): installs Debian's `postgresql` package when it
 * can (root, apt-get), and otherwise says the command to run. PGHOST naming a server needs them too,
 * for pg_dump and pg_restore.
 */
export function ensurePostgres(log: (line: string) => void, options: { dryRun?: boolean; facts?: MachineFacts } = {}): string | undefined {
  const found = postgresBinDirectory(['initdb', 'pg_ctl', 'pg_dump', 'pg_restore']);
  if (found) return found;
  const facts = options.facts ?? machineFacts();
  const apt = 'apt-get update && apt-get install -y postgresql';
  if (!facts.aptGet || facts.uid !== 0)
    throw new SetupError(`PostgreSQL's programs (initdb, pg_ctl, pg_dump, pg_restore) are not installed; the PostgreSQL tests start private clusters with them: run \`${facts.aptGet ? `sudo sh -c '${apt}'` : 'your package manager\'s postgresql install'}\`, or set AIRLIFT_PG_BIN to their folder`);
  if (options.dryRun) {
    log(`would install Debian's PostgreSQL (for the private clusters of the PostgreSQL tests): ${apt}`);
    return undefined;
  }
  log(`Installing Debian's PostgreSQL for the private clusters of the PostgreSQL tests: ${apt}`);
  for (const command of [[facts.aptGet, 'update', '-qq'], [facts.aptGet, 'install', '-y', '-qq', 'postgresql']]) {
    const ran = spawnSync(command[0], command.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (ran.status !== 0) throw new SetupError(`\`${command.join(' ')}\` failed (exit code ${ran.status ?? ran.signal}); install PostgreSQL yourself, or set AIRLIFT_PG_BIN`);
  }
  return postgresBinDirectory(['initdb', 'pg_ctl', 'pg_dump', 'pg_restore']);
}
