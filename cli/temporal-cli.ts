// Finds the Temporal CLI (the embedded dev server), building it with Go when it is absent.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  return (env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name)).find(executable);
}

function goBinDir(env: NodeJS.ProcessEnv): string | undefined {
  const go = onPath('go', env) ?? (executable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!go) return undefined;
  const out = spawnSync(go, ['env', 'GOBIN', 'GOPATH'], { encoding: 'utf8', env });
  if (out.status !== 0) return undefined;
  const [gobin, gopath] = out.stdout.split('\n');
  return gobin || (gopath ? join(gopath.split(delimiter)[0], 'bin') : undefined);
}

/** An existing binary: $TEMPORAL_CLI_PATH, `temporal` on PATH, or one Go built before. */
export function findTemporalCli(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.TEMPORAL_CLI_PATH) {
    if (!executable(env.TEMPORAL_CLI_PATH)) throw new Error(`TEMPORAL_CLI_PATH: ${env.TEMPORAL_CLI_PATH} is not an executable file; unset it or point it at the temporal binary`);
    return env.TEMPORAL_CLI_PATH;
  }
  const found = onPath('temporal', env);
  if (found) return found;
  const dir = goBinDir(env);
  return dir && executable(join(dir, 'temporal')) ? join(dir, 'temporal') : undefined;
}

/**
 * Returns the path of a Temporal CLI, building it with `go install` when Go is present.
 * Returns undefined when neither is possible: the SDK then downloads the dev server itself.
 */
export function ensureTemporalCli(log: (line: string) => void = () => {}, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const found = findTemporalCli(env);
  if (found) return found;
  const go = onPath('go', env) ?? (executable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!go) {
    log('No Temporal CLI and no Go found: the Temporal SDK will download the dev server (needs internet).');
    return undefined;
  }
  log(`Building the Temporal CLI once with: go install ${TEMPORAL_CLI_MODULE} (a few minutes)…`);
  const built = spawnSync(go, ['install', TEMPORAL_CLI_MODULE], { stdio: ['ignore', 'inherit', 'inherit'], env });
  if (built.status !== 0) throw new Error(`go install ${TEMPORAL_CLI_MODULE} failed with exit code ${built.status}; install the Temporal CLI and set TEMPORAL_CLI_PATH`);
  const path = join(goBinDir(env)!, 'temporal');
  if (!executable(path)) throw new Error(`go install reported success but ${path} is missing; set TEMPORAL_CLI_PATH to the temporal binary`);
  log(`Temporal CLI built: ${path}`);
  return path;
}
