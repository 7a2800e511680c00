// What an operator does by hand on a migration night, as the fault matrix does it: `airlift
// reconcile` (as its own process, exactly as typed) and a workflow reset through the Temporal CLI.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './processes';

export interface ReconcileRun {
  /** The command's exit code (1 when a tenant still needs a repair). */
  code: number;
  /** Per tenant, in words: what was repaired, what failed, what still needs a person. */
  byTenant: Map<string, string>;
  /** The command's own words when its JSON could not be read. */
  error?: string;
}

interface ReconcileJson {
  tenants: { tenantId: string; repairs: { step: string }[]; problems: string[]; applied?: string[]; failed?: string[] }[];
  needingRepair: string[];
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: REPO, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** `airlift reconcile -f <fleet> [--apply] --json` against the Temporal server at `address`. */
export async function reconcile(fleetFile: string, address: string, env: NodeJS.ProcessEnv, apply: boolean): Promise<ReconcileRun> {
  const args = [join(REPO, 'bin/airlift.js'), 'reconcile', '-f', fleetFile, '--json', ...(apply ? ['--apply'] : [])];
  const out = await run(process.execPath, args, { ...process.env, ...env, TEMPORAL_ADDRESS: address }, 180_000);
  const byTenant = new Map<string, string>();
  try {
    const result = JSON.parse(out.stdout) as ReconcileJson;
    for (const t of result.tenants) {
      const words = [
        ...(t.applied?.length ? [`done: ${t.applied.join('; ')}`] : []),
        ...(t.failed?.length ? [`FAILED: ${t.failed.join('; ')}`] : []),
        ...(t.problems.length ? [`problems: ${t.problems.join('; ')}`] : []),
        ...(!apply && t.repairs.length ? [`would still do: ${t.repairs.map((r) => r.step).join(', ')}`] : []),
      ];
      byTenant.set(t.tenantId, words.length ? words.join(' | ') : 'nothing to do');
    }
    return { code: out.code, byTenant };
  } catch {
    return { code: out.code, byTenant, error: `${out.stderr.trim() || out.stdout.trim()}`.split('\n').slice(-3).join(' | ') };
  }
}

/** `temporal workflow reset --type FirstWorkflowTask`: the workflow starts over as a new run, the old run terminated. */
export async function resetToFirstWorkflowTask(temporalCli: string, address: string, workflowId: string, reason: string): Promise<string> {
  const out = await run(temporalCli, ['workflow', 'reset', '--workflow-id', workflowId, '--type', 'FirstWorkflowTask', '--reason', reason, '--address', address], process.env, 60_000);
  if (out.code !== 0) throw new Error(`temporal workflow reset ${workflowId}: ${(out.stderr || out.stdout).trim().split('\n').slice(-2).join(' | ')}`);
  return out.stdout.trim().split('\n').pop() ?? '';
}
