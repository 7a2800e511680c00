// Lint rules. The strict part is workflows/: deterministic code that may import only the Temporal
// workflow API, the shared contract and activity *types*, and may not leave a promise floating.
const tseslint = require('typescript-eslint');
const { builtinModules } = require('node:module');

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

module.exports = tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**', '.airlift/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    files: ['workflows/**/*.ts'],
    // lint-probe.ts is the file name tests/workflows/lint.test.ts lints from stdin.
    languageOptions: { parserOptions: { projectService: { allowDefaultProject: ['workflows/lint-probe.ts'] }, tsconfigRootDir: __dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'workflows must be deterministic: no Node built-ins; do this in an activity' })),
          patterns: [
            { group: ['../activities', '../activities/*'], allowTypeImports: true, message: 'workflows import activities as types only (proxyActivities)' },
            { group: ['../engines/*', '../azure/*', '../ingestion/*', '../config/*', '../cli/*', '../workers/*'], message: 'workflows reach adapters only through activities' },
            { group: ['../protocol/*', '!../protocol/errors'], message: 'workflows reach the protocol only through activities (protocol/errors is shared)' },
            { group: ['uuid', 'crypto', 'better-sqlite3', 'mssql', '@azure/*', '@temporalio/client', '@temporalio/worker', '@temporalio/activity'], message: 'not deterministic or not allowed in workflow code' },
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'process', message: 'workflows must not read the environment' }, { name: 'require', message: 'use import' }],
      'no-restricted-syntax': ['error', { selector: "CallExpression[callee.name='setInterval']", message: 'use wf.sleep / wf.condition in workflows' }],
    },
  },
);
