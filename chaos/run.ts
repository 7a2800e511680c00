// `npm run chaos`: the fault matrix. Every phase of a tenant's migration against every fault, under
// live tracking load through two gateway nodes; after each round the checker reads the databases and
// judges each tenant. Prints a phase-by-fault table, then one JSON line; exits 1 if any case failed.
//   npm run chaos -- [--quick] [--faults a,b] [--fault <name>]... [--phase <name>]... [--keep] [--verbose]
import { bundleWorkflowCode } from '@temporalio/worker';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTemporalCli } from '../cli/temporal-cli';
import { workflowsPath } from '../workers/worker';
import { CASE_PHASES, FAULTS, FAULT_TITLES, plan, type CasePhase, type Fault } from './matrix';
import { killAllStarted } from './processes';
import { percentile } from '../cli/waves';
import { runRound, type CaseResult } from './round';

export interface MatrixOptions {
  quick?: boolean;
  faults?: Fault[];
  phases?: CasePhase[];
  eventsPerSecond?: number;
  trackingRows?: number;
  boundMs?: number;
  /** Rows of the big tenant's tracking table (default 1 M). */
  bigTenantRows?: number;
  /** A prebuilt workflow bundle (jest's global setup makes one). */
  bundle?: string;
  keep?: boolean;
  /** Print what happened to every tenant, not only to the failed ones. */
  verbose?: boolean;
  log?: (line: string) => void;
}

export interface MatrixSummary {
  cases: number;
  failed: number;
  eventsAccepted: number;
  eventsLost: number;
  eventsDuplicated: number;
  strandedTenants: number;
  /** The faults run, in the order they ran. */
  faults: Fault[];
  /** The 99th percentile over cases of the application's longest write wait (its pause at the cut-over), as the application measured it. */
  pauseMsP99: number | null;
}

/** The same figures for the cases of one fault. */
export function summarize(results: CaseResult[]): MatrixSummary {
  return {
    cases: results.length,
    failed: results.filter((r) => !r.verdict.ok).length,
    eventsAccepted: results.reduce((n, r) => n + r.verdict.eventsAccepted, 0),
    eventsLost: results.reduce((n, r) => n + r.verdict.eventsLost, 0),
    eventsDuplicated: results.reduce((n, r) => n + r.verdict.eventsDuplicated, 0),
    strandedTenants: results.filter((r) => r.verdict.stranded).length,
    faults: [...new Set(results.map((r) => r.fault))],
    pauseMsP99: percentile(results.map((r) => r.pauseMs).filter((p): p is number => p !== undefined), 99),
  };
}

export async function runMatrix(options: MatrixOptions): Promise<{ results: CaseResult[]; summary: MatrixSummary; dir: string }> {
  const log = options.log ?? ((line: string) => console.log(line));
  const temporalCli = findTemporalCli();
  if (!temporalCli) throw new Error('no Temporal CLI found: run `npm run setup` (builds it with Go) or set TEMPORAL_CLI_PATH');
  const dir = mkdtempSync(join(tmpdir(), 'airlift-chaos-'));
  let bundle = options.bundle;
  if (!bundle) {
    const silent = { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} };
    const { code } = await bundleWorkflowCode({ workflowsPath, logger: silent as never });
    bundle = join(dir, 'workflows.bundle.js');
    writeFileSync(bundle, code);
  }
  const rounds = plan(options);
  const results: CaseResult[] = [];
  try {
    for (const [i, cases] of rounds.entries()) {
      const roundDir = join(dir, `round-${i + 1}-${cases[0].fault}`);
      mkdirSync(roundDir, { recursive: true });
      log(`round ${i + 1}/${rounds.length}: ${FAULT_TITLES[cases[0].fault]} x ${cases.map((c) => c.phase).join(', ')}  (${roundDir})`);
      const started = Date.now();
      const round = await runRound({
        cases,
        dir: roundDir,
        bundle,
        temporalCli,
        eventsPerSecond: options.eventsPerSecond ?? (options.quick ? 200 : 1200),
        trackingRows: options.trackingRows ?? 3000,
        boundMs: options.boundMs ?? 360_000,
        bigTenantRows: options.bigTenantRows,
        log,
      });
      for (const r of round) {
        log(`  ${r.verdict.ok ? 'pass' : 'FAIL'} ${r.phase} x ${r.fault}: ${r.verdict.eventsAccepted} events, application's longest write wait ${r.pauseMs ?? '-'} ms${r.verdict.ok ? '' : `; ${r.verdict.broken.map((b) => `[${b.invariant}] ${b.detail}`).join('; ')}`}`);
        if (!r.verdict.ok || options.verbose) for (const n of r.notes) log(`      ${n}`);
      }
      log(`  round took ${Math.round((Date.now() - started) / 1000)} s`);
      results.push(...round);
    }
  } finally {
    killAllStarted();
    if (!options.keep && results.every((r) => r.verdict.ok)) rmSync(dir, { recursive: true, force: true });
  }
  return { results, summary: summarize(results), dir };
}

/** The phase-by-fault table: pass, FAIL (with the first broken invariant), or blank when not run. */
export function renderTable(results: CaseResult[]): string {
  const faults = FAULTS.filter((f) => results.some((r) => r.fault === f));
  const phases = CASE_PHASES.filter((p) => results.some((r) => r.phase === p));
  const cell = (p: CasePhase, f: Fault) => {
    const r = results.find((x) => x.phase === p && x.fault === f);
    return !r ? '' : r.verdict.ok ? 'pass' : `FAIL ${r.verdict.broken[0].invariant}`;
  };
  const widths = [Math.max(5, ...phases.map((p) => p.length)), ...faults.map((f) => Math.max(f.length, ...phases.map((p) => cell(p, f).length)))];
  const row = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join(' | ');
  return [row(['phase', ...faults]), widths.map((w) => '-'.repeat(w)).join('-|-'), ...phases.map((p) => row([p, ...faults.map((f) => cell(p, f))]))].join('\n');
}

function parseArgs(argv: string[]): MatrixOptions {
  const options: MatrixOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg}: give a value`);
      return v;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--keep') options.keep = true;
    else if (arg === '--verbose') options.verbose = true;
    else if (arg === '--fault' || arg === '--faults') {
      for (const f of value().split(',').map((x) => x.trim()).filter(Boolean)) {
        if (!(FAULTS as readonly string[]).includes(f)) throw new Error(`${arg}: "${f}" is not a fault; use one or more of ${FAULTS.join(', ')}`);
        (options.faults ??= []).push(f as Fault);
      }
    } else if (arg === '--phase') {
      const p = value();
      if (!(CASE_PHASES as readonly string[]).includes(p)) throw new Error(`--phase: "${p}" is not a phase; use one of ${CASE_PHASES.join(', ')}`);
      (options.phases ??= []).push(p as CasePhase);
    } else if (arg === '--events-per-second') options.eventsPerSecond = Number(value());
    else if (arg === '--bound-seconds') options.boundMs = Number(value()) * 1000;
    else if (arg === '--big-tenant-rows') options.bigTenantRows = Number(value());
    else throw new Error(`unknown option ${arg}; use --quick, --faults a,b, --fault <name>, --phase <name>, --keep, --verbose, --events-per-second <n>, --bound-seconds <n>, --big-tenant-rows <n>`);
  }
  return options;
}

async function main(): Promise<void> {
  let options: MatrixOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      killAllStarted();
      process.exit(130);
    });
  const { results, summary, dir } = await runMatrix(options);
  console.log('');
  console.log(renderTable(results));
  console.log('');
  for (const fault of summary.faults) {
    const s = summarize(results.filter((r) => r.fault === fault));
    console.log(`${fault}: ${s.cases} cases, ${s.failed} failed, ${s.eventsAccepted} events, ${s.eventsLost} lost, ${s.eventsDuplicated} duplicated, ${s.strandedTenants} stranded, pause p99 ${s.pauseMsP99 ?? '-'} ms`);
  }
  if (summary.failed) console.log(`\nfailed cases keep their files (databases, fleet, logs) in ${dir}`);
  console.log(JSON.stringify(summary));
  process.exitCode = summary.failed || summary.eventsLost || summary.eventsDuplicated || summary.strandedTenants ? 1 : 0;
}

if (require.main === module) {
  main().catch((err) => {
    killAllStarted();
    console.error(`chaos: ${(err as Error).message}`);
    process.exit(1);
  });
}
