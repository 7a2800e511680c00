// Bundles the workflows once for every test file, and checks that the Temporal CLI is there.
import { bundleWorkflowCode } from '@temporalio/worker';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTemporalCli } from '../../cli/temporal-cli';
import { workflowsPath } from '../../workers/worker';

export default async function globalSetup(): Promise<void> {
  const cli = findTemporalCli();
  if (!cli) throw new Error('No Temporal CLI found: run `npm run setup` (builds it with Go) or set TEMPORAL_CLI_PATH');
  process.env.TEMPORAL_CLI_PATH = cli;
  const { code } = await bundleWorkflowCode({ workflowsPath, logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} } as never });
  const file = join(tmpdir(), `airlift-workflow-bundle-${process.pid}.js`);
  writeFileSync(file, code);
  process.env.AIRLIFT_TEST_WORKFLOW_BUNDLE = file;
}
