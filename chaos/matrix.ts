// The fault matrix: every phase of a tenant's migration against every fault, and how the harness
// holds a tenant inside a phase long enough for the fault to land there.
import { PHASES, type Phase } from '../workflows/contract';
import type { Expectation } from './checker';

/** Every phase a tenant can be caught in: the contract's phases but the end state. */
export const CASE_PHASES = PHASES.filter((p): p is Exclude<Phase, 'completed'> => p !== 'completed');
export type CasePhase = Exclude<Phase, 'completed'>;

export const FAULTS = [
  'rollback', 'worker-kill', 'gateway-kill', 'gateway-admin-fail', 'temporal-restart', 'stack-kill',
  'terminate-reconcile', 'gateway-down', 'schema-change', 'workflow-reset', 'stall', 'big-tenant',
] as const;
export type Fault = (typeof FAULTS)[number];

/** Where a fault applies, when not in every phase. */
const FAULT_PHASES: Partial<Record<Fault, CasePhase[]>> = {
  // A deploy while the source is primary and replicated, and while the target is (the rollback window).
  'schema-change': ['catching_up', 'verifying', 'rollback_window'],
  // The phases whose steps a reset run does again (and a zombie of the old run may still be doing).
  'workflow-reset': ['journaling', 'snapshotting', 'copying', 'restoring', 'catching_up', 'verifying'],
  // Where a switch holds a fence: the cut-over, and the route back of a rollback in the window.
  stall: ['cutting_over', 'rollback_window'],
  // One tenant migrated whole: its cut-over under load is the case.
  'big-tenant': ['cutting_over'],
};

export function phasesOf(fault: Fault): CasePhase[] {
  return FAULT_PHASES[fault] ?? [...CASE_PHASES];
}

export const FAULT_TITLES: Record<Fault, string> = {
  rollback: 'rollback during the step',
  'worker-kill': 'worker SIGKILL + restart',
  'gateway-kill': 'gateway node SIGKILL + restart',
  'gateway-admin-fail': 'gateway node admin calls fail 5 s',
  'temporal-restart': 'Temporal dev server restart',
  'stack-kill': 'airlift dev SIGKILL + restart',
  'terminate-reconcile': 'workflow terminated (Temporal API) + airlift reconcile --apply',
  'gateway-down': 'gateway node down past the cut-over budget and its retries',
  'schema-change': 'a table and a nullable column added on the primary',
  'workflow-reset': 'workflow reset to its first workflow task',
  stall: "the switch's worker frozen (SIGSTOP) past its heartbeat timeout while holding the fence",
  'big-tenant': 'a 1 M-row tenant cut over under 300+ application writes/s',
};

/**
 * How a tenant is held in its phase. Every tenant first waits at a breakpoint (`policy.pauseBefore`)
 * so all tenants of a round reach their windows together; then:
 * - `step`: the first activity the workflow runs in the phase is held by the worker's interceptor;
 * - `flip`: the flip (`POST /admin/tenants/:t/primary`) is held at node B's proxy, after node A
 *   flipped: the switch sits between fence and release;
 * - `approval`: manual cut-over, waiting for `approveCutover`;
 * - `window`: a long rollback window, ended by `complete`;
 * - `stall`: the worker's engine stops right before the switch makes its fence hold for good (the
 *   last step before the flip), until the harness has frozen and thawed that worker;
 * - `none`: nothing is held; the tenant goes on from its breakpoint (the big tenant's cut-over).
 */
export interface PhaseHold {
  breakpoint: CasePhase;
  kind: 'step' | 'flip' | 'approval' | 'window' | 'stall' | 'none';
}

export function phaseHold(phase: CasePhase, fault?: Fault): PhaseHold {
  if (fault === 'big-tenant') return { breakpoint: phase, kind: 'none' };
  if (fault === 'stall' && phase === 'cutting_over') return { breakpoint: phase, kind: 'stall' };
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

/**
 * What the tenant must end as: a rollback is honoured until the point of no return, refused from
 * there; a terminated workflow's tenant is judged where reconcile left it; a deploy may be carried,
 * or refuse the cut-over with the schema as its reason (the tenant whole on its source), or, in the
 * rollback window, refuse the rollback (the tenant stays on its target).
 */
export function expectedOutcome(phase: CasePhase, fault: Fault): Expectation[] {
  switch (fault) {
    case 'rollback':
      return [{ outcome: phase !== 'finalizing' ? 'rolled_back' : 'completed' }];
    case 'terminate-reconcile':
      return [{ outcome: 'terminated' }];
    case 'schema-change':
      return phase === 'rollback_window'
        ? [{ outcome: 'completed' }, { outcome: 'rolled_back' }]
        : [{ outcome: 'completed' }, { outcome: 'failed', reason: SCHEMA_REFUSAL }];
    case 'stall':
      return [{ outcome: phase === 'rollback_window' ? 'rolled_back' : 'completed' }];
    default:
      return [{ outcome: 'completed' }];
  }
}

/** The words of a cut-over refused for the schema (protocol/switch.ts, the verifier): the documented refusal. */
export const SCHEMA_REFUSAL = /changed on the \w+ since journaling|the schema changed since journaling|verification found differences/;

export interface CaseSpec {
  phase: CasePhase;
  fault: Fault;
}

/** The cases of a run, grouped in rounds: one round per fault, one tenant per phase where the fault applies. */
export function plan(options: { quick?: boolean; faults?: Fault[]; phases?: CasePhase[] }): CaseSpec[][] {
  if (options.quick) return QUICK.map((c) => [c]).filter((r) => (!options.faults || options.faults.includes(r[0].fault)) && (!options.phases || options.phases.includes(r[0].phase)));
  const faults = options.faults ?? [...FAULTS];
  return faults
    .map((fault) => phasesOf(fault).filter((p) => !options.phases || options.phases.includes(p)).map((phase) => ({ phase, fault })))
    .filter((round) => round.length > 0);
}

/** The nastiest cases, each in its own round so one fault does not hit the others' tenants. */
export const QUICK: CaseSpec[] = [
  { phase: 'cutting_over', fault: 'rollback' },
  { phase: 'copying', fault: 'worker-kill' },
  { phase: 'cutting_over', fault: 'gateway-kill' },
  { phase: 'cutting_over', fault: 'gateway-admin-fail' },
  // A journaling step of the run a reset replaced, waking after the new run has completed.
  { phase: 'journaling', fault: 'workflow-reset' },
];
