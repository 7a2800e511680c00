// Bad fleet files: each gives an error that names the file, the place in it and the fix.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetConfigError, loadFleet } from '../../config/fleet';
import { sqliteDirectory } from '../../engines/sqlite-kind';

const dir = mkdtempSync(join(tmpdir(), 'airlift-fleet-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = `
sources:
  onprem: { engine: sqlite, directory: ./source }
targets:
  cloud: { engine: sqlite, directory: ./cloud }
storage:
  container: artifacts
  connectionStringEnv: AIRLIFT_STORAGE
tenants:
  - { id: acme, database: acme_db, source: onprem, target: cloud }
  - { id: globex, database: globex, source: onprem, target: cloud }
`;

/** The same tenants restored into a Managed Instance through the Log Replay Service. */
const MI = GOOD.replace(
  '  cloud: { engine: sqlite, directory: ./cloud }',
  '  mi:\n    engine: azure-sql-mi\n    subscriptionId: 00000000-0000-0000-0000-000000000000\n    resourceGroup: rg\n    managedInstance: mi-prod\n    server: mi-prod.example\n    autoCompleteRestore: false',
).replace(/target: cloud/g, 'target: mi');

test('a Managed Instance fleet loads: the instance reads the container with its managed identity unless told otherwise', () => {
  const fleet = loadFleet(write('mi.yaml', MI));
  expect(fleet.storage.restoreAccess).toBe('managed-identity');
  expect(fleet.targets.mi).toMatchObject({ engine: 'azure-sql-mi', restorePollSeconds: 15, autoCompleteRestore: false });
});

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function errorOf(file: string): string {
  try {
    loadFleet(file);
  } catch (err) {
    expect(err).toBeInstanceOf(FleetConfigError);
    return (err as Error).message;
  }
  throw new Error(`${file} was accepted`);
}

test('a good fleet file loads, with defaults filled in and paths resolved against the file', () => {
  const fleet = loadFleet(write('good.yaml', GOOD));
  expect(fleet.tenants.map((t) => t.id)).toEqual(['acme', 'globex']);
  expect(sqliteDirectory(fleet.sources.onprem)).toBe(join(dir, 'source'));
  expect(fleet.catalog.path).toBe(join(dir, 'catalog.db'));
  expect(fleet.policy).toMatchObject({ concurrency: 4, cutover: 'auto', verifyChunkRows: 2000 });
});

test('the same fleet as JSON loads too', () => {
  const fleet = loadFleet(write('good.json', JSON.stringify({
    sources: { a: { engine: 'sqlite', directory: 's' } }, targets: { b: { engine: 'sqlite', directory: 't' } },
    storage: { container: 'c01', accountUrl: 'https://acct.blob.core.windows.net' },
    tenants: [{ id: 'x', database: 'x', source: 'a', target: 'b' }], policy: { concurrency: 2 },
  })));
  expect(fleet.policy.concurrency).toBe(2);
  expect(fleet.storage.accountUrl).toBe('https://acct.blob.core.windows.net');
});

const BAD: [string, string, string][] = [
  ['hostile database name', GOOD.replace('database: acme_db', 'database: "a]b"'),
    'tenants[0].database: "a]b" is not a valid SQL identifier (letters, digits, _ and - only, starting with a letter or digit, at most 63 characters)'],
  ['injection in a database name', GOOD.replace('database: acme_db', `database: "x'; DROP DATABASE y --"`),
    `tenants[0].database: "x'; DROP DATABASE y --" is not a valid SQL identifier`],
  ['unknown key', GOOD.replace('  container: artifacts', '  container: artifacts\n  contianer: typo'),
    'storage: unknown key "contianer"; remove it or check its spelling'],
  ['tenant pointing at a source that does not exist', GOOD.replace('source: onprem, target: cloud }\n  - { id: globex', 'source: dc2, target: cloud }\n  - { id: globex'),
    'tenants[0].source: "dc2" is not defined under sources (defined: onprem)'],
  ['tenant pointing at a target that does not exist', GOOD.replace('target: cloud }\n  - { id: globex', 'target: azure }\n  - { id: globex'),
    'tenants[0].target: "azure" is not defined under targets (defined: cloud)'],
  ['tenant listed twice', GOOD.replace('id: globex', 'id: acme'),
    'tenants[1].id: "acme" is listed twice (also tenants[0]); each tenant migrates once'],
  ['secret written where an env var name belongs', GOOD.replace('connectionStringEnv: AIRLIFT_STORAGE', 'connectionStringEnv: "DefaultEndpointsProtocol=https;AccountKey=abc"'),
    'storage.connectionStringEnv: "DefaultEndpointsProtocol=https;AccountKey=abc" is not an environment variable name; give the NAME of the variable that holds the secret'],
  ['both storage credentials', GOOD.replace('  connectionStringEnv: AIRLIFT_STORAGE', '  connectionStringEnv: AIRLIFT_STORAGE\n  accountUrl: https://a.blob.core.windows.net'),
    'storage: give exactly one of connectionStringEnv (an env var holding a connection string) or accountUrl'],
  ['bad container name', GOOD.replace('container: artifacts', 'container: Artifacts_2026'),
    'storage.container: "Artifacts_2026" is not a valid blob container name (3-63 lowercase letters, digits and single hyphens)'],
  ['unsupported engine', GOOD.replace('onprem: { engine: sqlite', 'onprem: { engine: oracle'),
    'sources.onprem.engine: "oracle" is not a supported engine; use "sqlite"'],
  ['missing storage section', GOOD.replace(/storage:\n.*\n.*\n/, ''),
    'storage: is missing; add this section'],
  ['no tenants', GOOD.replace(/tenants:\n[\s\S]*$/, 'tenants: []\n'),
    'tenants: list at least one tenant'],
  ['concurrency zero', `${GOOD}policy:\n  concurrency: 0\n`,
    'policy.concurrency: Too small: expected number to be >=1'],
  ['unknown phase to pause before', `${GOOD}policy:\n  pauseBefore: [verify]\n`,
    'policy.pauseBefore[0]: Invalid option: expected one of "preflight"|'],
  ['YAML that does not parse', 'sources: [unclosed\n', 'is not valid YAML'],
  // "The backup URI path should not have the container name or the folder name as keywords backup or backups" (Overview of Log Replay Service, Limitations).
  ['a container named backups for a Managed Instance', MI.replace('container: artifacts', 'container: sql-backups'),
    'storage.container: "sql-backups" contains "backup", which the Managed Instance Log Replay Service refuses in a container name; choose another container name'],
  ['a tenant id with backup for a Managed Instance (its folder is named after it)', MI.replace('id: globex', 'id: backup-co'),
    'tenants[1].id: "backup-co" contains "backup", which the Managed Instance Log Replay Service refuses in a folder name'],
  ['the credential choice set per target instead of per container', MI.replace('    autoCompleteRestore: false', '    autoCompleteRestore: false\n    storageAccess: sas'),
    'targets.mi: unknown key "storageAccess"; remove it or check its spelling'],
  ['a restore credential that is neither choice', MI.replace('  connectionStringEnv: AIRLIFT_STORAGE', '  connectionStringEnv: AIRLIFT_STORAGE\n  restoreAccess: password'),
    'storage.restoreAccess: Invalid option: expected one of "managed-identity"|"sas"'],
];

test.each(BAD)('%s gives a clear error', (name, text, expected) => {
  const file = write(`${name.replace(/\W+/g, '-')}.yaml`, text);
  const message = errorOf(file);
  expect(message).toContain(`${file}: `);
  expect(message).toContain(expected);
});

test('a file that does not exist says so and how to fix it', () => {
  expect(errorOf(join(dir, 'nope.yaml'))).toBe(`${join(dir, 'nope.yaml')}: cannot be read (ENOENT); check the path given with -f`);
});

test('every problem in a file is reported at once, one per line', () => {
  const text = GOOD.replace('database: acme_db', 'database: "a b"').replace('id: globex', 'id: "bad id!"');
  expect(errorOf(write('two.yaml', text)).split('\n')).toHaveLength(2);
});

test('the example fleet files in examples/ load', () => {
  const examples = join(__dirname, '../../examples');
  for (const name of ['fleet.sqlite.yaml', 'fleet.azure-storage.json']) expect(loadFleet(join(examples, name)).tenants.length).toBeGreaterThan(0);
});
