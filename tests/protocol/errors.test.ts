// Item 17 of issue 7: one error model. Every domain error is declared in protocol/errors.ts with its
// retryability, and the activity presets take their non-retryable list from there and nowhere else.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import * as errors from '../../protocol/errors';

const ROOT = join(__dirname, '../..');
/** Errors that never cross an activity boundary: HTTP answers of the gateway, CLI usage and setup errors. */
const LOCAL_ERRORS = new Set(['BadEventError', 'UnknownTenantError', 'HeldTooLongError', 'StaleRouteChangeError', 'OperatorError', 'SetupError', 'PostgresClusterError']);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (['node_modules', 'tests', '.git', 'chaos', 'bench'].includes(name)) return [];
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

test('no domain error class is declared outside protocol/errors.ts', () => {
  const stray = sources(ROOT).flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/class (\w+) extends Error\b/g)].map((m) => m[1]).filter((name) => !LOCAL_ERRORS.has(name)).map((name) => `${relative(ROOT, file)}: ${name}`),
  );
  expect(stray).toEqual([]);
});

test('transient faults are retried; configuration, permission and integrity faults are not', () => {
  expect(errors.nonRetryableErrorTypes).toEqual(expect.arrayContaining([
    'FleetConfigError', 'MissingSecretError', 'PermissionError', 'DatabaseMissingError', 'PreflightError', 'TargetExistsError',
    'IntegrityCheckError', 'ArtifactChecksumError', 'BlobNotOursError', 'VerificationMismatchError', 'ReplicationConflictError',
  ]));
  for (const transient of ['ConnectionError', 'GatewayAdminError', 'FencedWriteError', 'BlobChecksumError'])
    expect(errors.nonRetryableErrorTypes).not.toContain(transient);
  expect(new errors.ConnectionError('reset').retryable).toBe(true);
  expect(errors.isRetryable(new errors.PermissionError('denied'))).toBe(false);
});

test('the activity presets use that list and no other', () => {
  const presets = readFileSync(join(ROOT, 'workflows/presets.ts'), 'utf8');
  expect(presets).toContain("import { nonRetryableErrorTypes } from '../protocol/errors'");
  expect(presets).not.toMatch(/'[A-Za-z]+Error'/);
});
