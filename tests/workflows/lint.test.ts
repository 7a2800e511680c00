// The lint rule that keeps workflows deterministic really refuses what it should.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

test('workflow code may not import Node built-ins or adapters, nor leave a promise floating', () => {
  const root = join(__dirname, '../..');
  const code = [
    "import { readFileSync } from 'node:fs';",
    "import { SqliteEngine } from '../engines/sqlite';",
    "import { sleep } from '@temporalio/workflow';",
    'export async function bad(): Promise<unknown> { sleep(1); return [readFileSync, SqliteEngine]; }',
  ].join('\n');
  const run = spawnSync(process.execPath, [join(root, 'node_modules/eslint/bin/eslint.js'), '--stdin', '--stdin-filename', 'workflows/lint-probe.ts', '--format', 'json'], {
    cwd: root, input: code, encoding: 'utf8',
  });
  const [result] = JSON.parse(run.stdout) as { messages: { ruleId: string }[] }[];
  expect(result.messages.map((m) => m.ruleId).sort()).toEqual(['@typescript-eslint/no-floating-promises', 'no-restricted-imports', 'no-restricted-imports']);
});
