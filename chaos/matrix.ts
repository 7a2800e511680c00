// The fault matrix: every phase of a tenant's migration against every fault, and how the harness
// holds a tenant inside a phase long enough for the fault to land there.
import { PHASES, type Phase } from '../workflows/contract';

/** Every phase a tenant can be caught in: the contract's phases but the end state. */
export const CASE_PHASES = PHASES.filter((p): p is Exclude<Phase, 'completed'> => p !== 'completed');
export type CasePhase = Exclude<Phase, 'completed'>;

export const FAULTS = ['rollback', 'worker-kill', 'gateway-kill', 'gateway-admin-fail', 'temporal-restart', 'stack-kill'] as const;
export type Fault = (typeof FAULTS)[number];

export const FAULT_TITLES: Record<Fault, string> = {
  rollback: 'rollback during the step',
  'worker-kill': 'worker SIGKILL + restart',
  'gateway-kill': 'gateway node SIGKILL + restart',
  'gateway-admin-fail': 'gateway node admin calls fail 5 s',
  'temporal-restart': 'Temporal dev server restart',
  'stack-kill': 'airlift dev SIGKILL + restart',
};

/**
 * How a tenant is held in its phase. Every tenant first waits at a breakpoint (`policy.pauseBefore`)
 * so all tenants of a round reach their windows together; then:
 * - `step`: the first activity the workflow runs in the phase is held by the worker's interceptor;
 * - `flip`: the flip (`POST /admin/tenants/:t/primary`) is held at node B's proxy, after node A
 *   flipped: the switch sits between fence and release;
 * - `approval`: manual cut-over, waiting for `approveCutover`;
 * - `window`: a long rollback window, ended by `complete`.
 */
export interface PhaseHold {
  breakpoint: CasePhase;
  kind: 'step' | 'flip' | 'approval' | 'window';
}

export function phaseHold(phase: CasePhase): PhaseHold {
  switch (phase) {
    case 'awaiting_cutover':
      return { breakpoint: phase, kind: 'approval' };
    case 'cutting_over':
      return { breakpoint: phase, kind: 'flip' };
    case 'rollback_window':
      return { breakpoint: phase, kind: 'window' };
    case 'finalizing':
      // Entered straight from the window (no breakpoint of its own): wait before a zero-length window.
      return { breakpoint: 'rollback_window', kind: 'step' };
    default:
      return { breakpoint: phase, kind: 'step' };
  }
}

/**
 * Where the interceptor holds a step: before it runs, so its effect lands late (a rollback or a sick
 * node meets the step still to come), or after it, so its effect is done and unreported (a process
 * that dies then must be followed by a retry that is safe to repeat).
 */
export function holdAt(fault: Fault): 'before' | 'after' {
  return fault === 'worker-kill' || fault === 'temporal-restart' || fault === 'stack-kill' ? 'after' : 'before';
}

/** What the tenant must end as: a rollback is honoured until the point of no return, refused from there. */
export function expectedOutcome(phase: CasePhase, fault: Fault): 'completed' | 'rolled_back' {
  return fault === 'rollback' && phase !== 'finalizing' ? 'rolled_back' : 'completed';
}

export interface CaseSpec {
  phase: CasePhase;
  fault: Fault;
}

/** The cases of a run, grouped in rounds: one round per fault, one tenant per phase. */
export function plan(options: { quick?: boolean; faults?: Fault[]; phases?: CasePhase[] }): CaseSpec[][] {
  if (options.quick) return QUICK.map((c) => [c]).filter((r) => (!options.faults || options.faults.includes(r[0].fault)) && (!options.phases || options.phases.includes(r[0].phase)));
  const faults = options.faults ?? [...FAULTS];
  const phases = options.phases ?? [...CASE_PHASES];
  return faults.map((fault) => phases.map((phase) => ({ phase, fault })));
}

/** The nastiest cases, each in its own round so one fault does not hit the others' tenants. */
export const QUICK: CaseSpec[] = [
  { phase: 'cutting_over', fault: 'rollback' },
  { phase: 'copying', fault: 'worker-kill' },
  { phase: 'cutting_over', fault: 'gateway-kill' },
  { phase: 'cutting_over', fault: 'gateway-admin-fail' },
];
