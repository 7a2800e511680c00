// The fenced switch of a tenant's primary: cut-over (source -> target) and rollback (target -> source).
//
//   fence every gateway node (events wait in memory: the pause)      -- all nodes or none
//   raise the write gate of the old primary in its own database       -- no writer, on any node, commits past it
//   drain the old primary's change log up to its head into the new one
//   compare every row changed since verification began (row by row)
//   raise the new primary's key counters (AUTOINCREMENT) to the old one's
//   record the reverse watermark (once), open the new primary's gate
//   flip the catalog, and have every listed node confirm the flip     -- from here the switch never calls off
//   lift the fences                                                  -- held events go to the new primary
//
// With log shipping (a Managed Instance restoring under LRS in continuous mode), the drain is the
// tail-log backup: taken under the fence (so it holds every committed write), shipped, restored, and
// the restore completed with its name; then the rows changed since journaling are compared and the
// restored gate (fenced by this very attempt, as the log carried it) is opened. The budget is checked
// up to the completion: once completeRestore is sent the target is online for good and takes no more
// log backups, so from there the switch goes on to the flip. An attempt that finds the target already
// online (an earlier attempt completed it, then failed before its flip and was called off, so the
// source took writes the target never saw) refuses: the tenant stays on its source and is migrated again.
//
// Before the flip, any failure or a pause over budget calls the switch off: the old primary's gate is
// reopened and the fences lifted, and the tenant stays where it was. After the flip, a failure only
// goes forward: the fences are lifted whatever happens, and a retry (or `endSwitchAttempt`), finding
// the catalog naming `to`, makes `to` the one open side and re-sends the flip to every node. Writers
// that reach a gated side (a restarted node, a stale route, a node that missed the flip) are refused
// inside the database and reload their route.
//
// Interleavings each piece must survive (tests/protocol/switch.test.ts, tests/workflows/protocol-races.test.ts):
// - the worker dies holding the fence (source gate `fenced`, gateway fences up): the workflow runs
//   `endSwitchAttempt` before it waits or gives up, so the tenant is never left fenced while nothing
//   switches; a retry of the same attempt counts the pause budget from the attempt's first fence
//   (kept in the catalog), so retries cannot pause writes longer than the budget in total;
// - a node unreachable after the flip: the tenant is on `to`; the fences still lift, and the attempt
//   ends switched (the node that missed the flip is refused at the old side's gate and reloads);
// - a VACUUM renumbers a rowid-keyed table with nothing in the log: before the online re-baseline, its
//   full comparison refuses; after it, the summary compared under the fence refuses the flip;
// - an attempt of an earlier migration (rolled back, its zombie still running) wakes: every gate it
//   touches must carry its migration id, so it can neither fence nor open the next migration's sides.
import type { ReplicaSide } from '../engines/engine';
import type { Catalog, Side } from '../ingestion/catalog';
import type { RouteControl } from '../ingestion/routes';
import { randomUUID } from 'node:crypto';
import { DatabaseMissingError, ManagedInstanceRestoreError, PauseBudgetExceededError, SwitchSupersededError, VerificationMismatchError } from './errors';
import { compareChangedRows, renumberedMessage, someDifferences } from './changed-rows';
import { applyRange, resumePoint, streamName, type ReplicationStream } from './replicator';

/** A drain of one side into the other, under the fence: both sides play every replica role. */
type SwitchStream = ReplicationStream<ReplicaSide, ReplicaSide>;

export interface SwitchContext {
  tenantId: string;
  migrationId: string;
  database: string;
  engines: Record<Side, ReplicaSide>;
  catalog: Catalog;
  routes: RouteControl;
  /** Called during the drain and verification: keeps a heartbeat going. */
  beat?: () => void;
  /** For `catchUp: 'log-shipping'`: brings the target up to the fence by the tail-log backup, restored and completed. */
  logShipping?: TailLogShipping;
}

/** The cut-over's part of log shipping (built by the activity over the source's log backups and the target's continuous restore). */
export interface TailLogShipping {
  /** Whether the target's restore was completed already (it is online). */
  completed(): Promise<boolean>;
  /** Takes and ships the tail-log backup; returns its file name. */
  shipTail(): Promise<string>;
  /** Waits until `name` is restored with nothing queued; `check` is called on every look (it throws past the budget). */
  untilRestored(name: string, check: () => void): Promise<void>;
  /** completeRestore with `name`, until the database is online. */
  complete(name: string): Promise<void>;
}

export interface SwitchOptions {
  /** The change seq the drain starts from (the journal watermark w0); absent for a switch back. */
  fromSeq?: number;
  /** Call the switch off, unharmed, if writes would be held longer than this; absent for a rollback. */
  budgetMs?: number;
  /** Compare every row the change log names after this seq (the rows changed since verification began). */
  verifyChangesAfter?: number;
  chunkRows: number;
  /** How the target catches up under the fence: the change log (default) or the tail-log backup (`ctx.logShipping`). */
  catchUp?: CatchUpMode;
  /**
   * Names one cut-over attempt across the retries of its activity (the same key each retry): the
   * pause budget counts from the first fence this attempt raised, wherever it ran.
   */
  attemptKey?: string;
}

/** How the target catches up with the source's writes until the cut-over: the dual-write, or log backups a Managed Instance restores (LRS continuous mode). */
export type CatchUpMode = 'change-log' | 'log-shipping';

export interface SwitchResult {
  pauseMs: number;
  held: number;
  /** The new primary's change head at the flip: replication back to the old side starts here. */
  reverseFrom: number;
  /** Log shipping: the steps under the fence, in milliseconds. */
  steps?: { tailBackupMs: number; restoreMs: number; completeMs: number };
  /**
   * Gateway nodes that did not answer the fence, the flip or the release, with why. The database's
   * write gate holds for them (their writes to the old side are refused, and they reload their route).
   */
  unreachable?: string[];
  /**
   * Log shipping: the rows the old primary's log names in (after, until] were not compared under the
   * fence; the workflow compares them in the rollback window (`compareAfterFlip`).
   */
  deferredCompare?: { after: number; until: number };
}

const other = (side: Side): Side => (side === 'source' ? 'target' : 'source');
const watermarkName = (migrationId: string, to: Side) => `${migrationId}:to-${to}`;

export async function switchPrimary(ctx: SwitchContext, to: Side, options: SwitchOptions): Promise<SwitchResult> {
  const { tenantId, migrationId, database, catalog, routes } = ctx;
  const from = other(to);
  // Each attempt moves the catalog's epoch on as it begins and flips only if it is still its own;
  // every gate it closes carries its token. So a stale attempt (a zombie on a worker that lost its
  // heartbeat) can neither flip after a later attempt began, nor reopen a side another one closed.
  const attempt: Attempt = { token: randomUUID(), epoch: catalog.bumpEpoch(tenantId)!.epoch };
  // The budget is measured on the workers' clocks, never against a gateway's, from the first fence of
  // this attempt: a retry after a worker died holding the fence goes on counting from there.
  const fencedAt = options.attemptKey === undefined ? Date.now() : catalog.firstFencedAt(tenantId, `${migrationId}:to-${to}:${options.attemptKey}`, Date.now());
  // The fence's lease, by the database's clock: what is left of the budget and a margin. A switch that
  // freezes holding it (a paused worker, a partition) does not keep the tenant's writes refused.
  const leaseMs = fenceLeaseMs(options.budgetMs, fencedAt);
  const fenced = await routes.fence(tenantId, leaseMs);

  // A retry after the flip, or a rollback of a tenant that never left its source.
  if (catalog.ensure(tenantId).primary === to) return settleForward(ctx, to, attempt, fencedAt);

  // Once a Managed Instance's restore is completed it takes no more log backups: from there the
  // switch only goes on to the flip, whatever the time.
  let completed = false;
  const checkBudget = (step: string) => {
    ctx.beat?.();
    if (completed) return;
    const held = Date.now() - fencedAt;
    if (options.budgetMs !== undefined && held > options.budgetMs)
      throw new PauseBudgetExceededError(`cut-over called off while ${step}: events held ${held} ms, over the pause budget of ${options.budgetMs} ms; the tenant stays on its ${from}, unharmed`);
  };
  let flipped = false;
  let reverseFrom: number;
  let steps: SwitchResult['steps'];
  let deferredCompare: SwitchResult['deferredCompare'];
  const holdFence = async () => {
    if (!(await ctx.engines[from].setWriteGate(database, { state: 'fenced', migrationId, token: attempt.token }, { states: ['fenced'], token: attempt.token, migrationId, unexpired: true })))
      throw new SwitchSupersededError(`${tenantId}: this attempt's fence on the ${from} lapsed (it held longer than its lease of ${leaseMs} ms) or was taken over; writers were let through there, so nothing is flipped`);
  };
  try {
    // Only a gate this migration holds (no `none`: a side without a gate is one whose capture a
    // rollback removed, and a stale attempt must not put a fence back there).
    if (!(await ctx.engines[from].setWriteGate(database, { state: 'fenced', migrationId, token: attempt.token, leaseMs }, { states: ['open', 'fenced'], migrationId })))
      throw new SwitchSupersededError(`${tenantId}: the ${from} is no longer a side this switch can fence (its gate is gone or held by another migration); a later step has taken over`);
    assertCurrent(ctx, attempt);
    checkBudget('fencing');
    const stream: SwitchStream = { database, from: ctx.engines[from], to: ctx.engines[to], origin: from, name: streamName(migrationId, from) };
    const fenceSeq = await stream.from.changeHead(database);
    if (options.catchUp === 'log-shipping' && to === 'target') {
      steps = await shipTailLog(ctx, checkBudget, () => assertCurrent(ctx, attempt), holdFence);
      completed = true;
      // The restored gate is the source's as the tail-log backup carried it: fenced by this attempt.
      if (!(await ctx.engines.target.setWriteGate(database, { state: 'standby', migrationId }, { states: ['fenced', 'standby'], token: attempt.token })))
        throw new SwitchSupersededError(`${tenantId}: the restored target's write gate was not fenced by this attempt; a later step has taken over`);
    } else {
      // Without an explicit start, drain from where the old primary began journaling for this switch.
      const fromSeq = options.fromSeq ?? catalog.watermark(tenantId, watermarkName(migrationId, from)) ?? fenceSeq;
      await applyRange(stream, await resumePoint(stream, fromSeq), fenceSeq, () => checkBudget('draining the change log'));
      checkBudget('draining the change log');
    }
    // Both ways: a table the tenant created or rebuilt on either side since journaling was never
    // captured, so a flip (a rollback's too) would leave its writes behind.
    await verifySchemaUnchanged(stream);
    await verifyRowidsUnmoved(stream);
    checkBudget('comparing the tables keyed by rowid');
    // With log shipping, once the restore is completed nothing can call the switch off, and the rows
    // changed since journaling may be weeks of changes: they are compared after the flip, in the
    // rollback window (`compareAfterFlip`), never under the fence. LRS restored checksummed backups.
    if (options.verifyChangesAfter !== undefined && completed) deferredCompare = { after: options.verifyChangesAfter, until: fenceSeq };
    else if (options.verifyChangesAfter !== undefined) {
      await verifyChangedRows(stream, options.verifyChangesAfter, fenceSeq);
      checkBudget('comparing the rows changed since verification');
    }
    // Under the fence the old primary's key counters are final: the new one never issues an id again
    // that the old one issued (a row inserted and deleted before replication copied it moved only the old one's).
    await carryKeyCounters(stream);
    // Recorded once, before the flip: a retry after the release must not move it past events written since.
    reverseFrom = catalog.rememberWatermark(tenantId, watermarkName(migrationId, to), await ctx.engines[to].changeHead(database));
    // The fence must still be this attempt's and unlapsed: then no writer has committed on the old
    // primary since the drain. From here it holds without a lease: after the flip the old side is
    // closed for good, and a lapse would let a writer with a stale route commit where nobody reads.
    await holdFence();
    // And, whatever the clocks did: once the fence holds for good, the old primary's log must not
    // have grown since the drain (every write there adds to it).
    if ((await ctx.engines[from].changeHead(database)) !== fenceSeq)
      throw new SwitchSupersededError(`${tenantId}: writes reached the ${from} after the drain (its fence lapsed while this attempt ran); nothing is flipped`);
    // The catalog flips before the new primary opens: a writer with a stale route meets a side that
    // is not open yet and reloads, and no write lands on a side that a superseded attempt leaves behind.
    if (!catalog.flipPrimary(tenantId, to, true, attempt.epoch))
      throw new SwitchSupersededError(`${tenantId}: the catalog moved on while this switch ran (a call-off, a later attempt, or reconcile); this attempt flips nothing`);
    flipped = true;
  } catch (err) {
    // Before the flip the switch is called off; after it, a retry finishes it.
    if (!flipped) await callOff(ctx, from, to, attempt.token);
    throw err;
  }
  // From here only forward: the fences lift even when the new side cannot be opened yet or a node
  // does not confirm the flip (a retry, or endSwitchAttempt, finishes it).
  let released: { pauseMs: number; held: number; unreachable?: string[] };
  let unreachable: string[] = [...(fenced.unreachable ?? [])];
  try {
    await openAfterFlip(ctx, to, attempt);
    unreachable = [...unreachable, ...((await routes.setPrimary(tenantId, to, true)).unreachable ?? [])];
  } finally {
    released = await routes.unfence(tenantId);
  }
  return { ...writePause(released, fencedAt), reverseFrom, ...nodesAway(unreachable, released.unreachable ?? []), ...(steps ? { steps } : {}), ...(deferredCompare ? { deferredCompare } : {}) };
}

/**
 * After the flip no side takes writes until the new primary opens: a passing failure (a dropped
 * connection) is tried again at once, a few times, before the attempt is left to be finished forward.
 */
async function openAfterFlip(ctx: SwitchContext, to: Side, attempt: Attempt): Promise<void> {
  for (let tries = 1; ; tries++) {
    try {
      return await openSide(ctx, to, attempt);
    } catch (err) {
      if (err instanceof SwitchSupersededError || tries >= 3) throw err;
      await new Promise((r) => setTimeout(r, 100 * tries));
    }
  }
}

/** What is left of the budget when the fence is raised, plus a margin; a switch without a budget (a rollback) gets a fixed lease. */
function fenceLeaseMs(budgetMs: number | undefined, fencedAt: number): number {
  if (budgetMs === undefined) return UNBUDGETED_FENCE_LEASE_MS;
  return Math.max(0, budgetMs - (Date.now() - fencedAt)) + FENCE_LEASE_MARGIN_MS;
}

/** Past the budget, the margin a fence's lease keeps for the last check and the call-off. */
export const FENCE_LEASE_MARGIN_MS = 1000;
/** The lease of a switch back's fence, which has no pause budget: long enough for its drain. */
export const UNBUDGETED_FENCE_LEASE_MS = 60_000;

/**
 * The pause as writers saw it: from the attempt's first fence (a retry goes on counting from there)
 * to the release, and never less than what any gateway node held its events.
 */
function writePause(released: { pauseMs: number; held: number }, fencedAt: number): { pauseMs: number; held: number } {
  return { pauseMs: Math.max(released.pauseMs, Date.now() - fencedAt), held: released.held };
}

/** The gateway nodes that did not answer a fence, flip or release, once each, with the first reason seen. */
function nodesAway(...calls: string[][]): { unreachable?: string[] } {
  const byNode = new Map<string, string>();
  for (const entry of calls.flat()) {
    const node = entry.split(' (')[0];
    if (!byNode.has(node)) byNode.set(node, entry);
  }
  const names = [...byNode.values()];
  return names.length ? { unreachable: names } : {};
}

/**
 * Under the fence: the tail-log backup, shipped and restored within the budget, then the completion
 * (past the point where a call-off leaves the target able to catch up again).
 */
async function shipTailLog(ctx: SwitchContext, checkBudget: (step: string) => void, assertStillCurrent: () => void, holdFence: () => Promise<void>): Promise<NonNullable<SwitchResult['steps']>> {
  const shipping = ctx.logShipping;
  if (!shipping) throw new Error('a log-shipping cut-over needs the tail-log shipping of its activity');
  if (await shipping.completed())
    throw new ManagedInstanceRestoreError(
      `${ctx.tenantId}: the target's restore was completed by an earlier cut-over attempt that did not flip; the source has taken writes since that no log backup can bring to it. Roll back (the target is dropped) and migrate again`,
    );
  let at = Date.now();
  const tail = await shipping.shipTail();
  const tailBackupMs = Date.now() - at;
  checkBudget('taking and shipping the tail-log backup');
  at = Date.now();
  await shipping.untilRestored(tail, () => checkBudget('restoring the tail-log backup'));
  const restoreMs = Date.now() - at;
  checkBudget('restoring the tail-log backup');
  // A timed-out attempt still running on its worker must not complete what a later attempt is shipping.
  assertStillCurrent();
  // The completion is the point from which nothing calls this switch off: from here its fence holds
  // without a lease (only if still its own and unlapsed), since the compare and the flip may follow
  // after the budget is spent.
  await holdFence();
  at = Date.now();
  await shipping.complete(tail);
  return { tailBackupMs, restoreMs, completeMs: Date.now() - at };
}

export type SwitchEnd = { outcome: 'switched'; result: SwitchResult; unconfirmed?: string } | { outcome: 'called_off' };

/**
 * Ends a switch attempt that failed or whose worker died, whatever it left behind; idempotent. If
 * the catalog was not flipped, the attempt is called off: the epoch moves on (no attempt begun
 * earlier can flip any more), the old primary's gate reopens, `to` goes back to what it was, every
 * fence lifts. If it was flipped, it goes forward: the flip is sent again and the fences lift; a node
 * that still does not confirm is named in `unconfirmed` (its writes are refused at the old side's
 * gate until it reloads its route), and the tenant is reported switched.
 */
export async function endSwitchAttempt(ctx: SwitchContext, to: Side): Promise<SwitchEnd> {
  const from = other(to);
  if (await callOff(ctx, from, to)) return { outcome: 'called_off' };
  // Only forward from a flip that was made: never a fresh switch (no drain, no compare) here.
  if (ctx.catalog.ensure(ctx.tenantId).primary !== to)
    throw new SwitchSupersededError(`${ctx.tenantId}: the catalog names the ${from} again (changed while this attempt was ended); nothing is switched here`);
  const attempt: Attempt = { token: randomUUID(), epoch: ctx.catalog.bumpEpoch(ctx.tenantId)!.epoch };
  try {
    const result = await settleForward(ctx, to, attempt);
    return { outcome: 'switched', result, ...(result.unreachable ? { unconfirmed: `gateway node(s) did not answer: ${result.unreachable.join('; ')}` } : {}) };
  } catch (err) {
    if (ctx.catalog.ensure(ctx.tenantId).primary !== to) throw err;
    // settleForward lifted the fences already (it does so whatever happens).
    const reverseFrom = ctx.catalog.watermark(ctx.tenantId, watermarkName(ctx.migrationId, to)) ?? 0;
    return { outcome: 'switched', result: { pauseMs: 0, held: 0, reverseFrom }, unconfirmed: err instanceof Error ? err.message : String(err) };
  }
}

/** The catalog names `to` already: make it the one open side, re-send the flip, lift every fence whatever happens. */
async function settleForward(ctx: SwitchContext, to: Side, attempt: Attempt, fencedAt?: number): Promise<SwitchResult> {
  let released: { pauseMs: number; held: number; unreachable?: string[] } | undefined;
  let flip: { unreachable?: string[] } = {};
  try {
    flip = await settleOn(ctx, to, attempt);
  } finally {
    released = await ctx.routes.unfence(ctx.tenantId);
  }
  const reverseFrom = ctx.catalog.rememberWatermark(ctx.tenantId, watermarkName(ctx.migrationId, to), await ctx.engines[to].changeHead(ctx.database));
  return { ...(fencedAt === undefined ? { pauseMs: released.pauseMs, held: released.held } : writePause(released, fencedAt)), reverseFrom, ...nodesAway(flip.unreachable ?? [], released.unreachable ?? []) };
}

interface Attempt {
  token: string;
  epoch: number;
}

function assertCurrent(ctx: Pick<SwitchContext, 'catalog' | 'tenantId'>, attempt: Attempt): void {
  if (ctx.catalog.ensure(ctx.tenantId).epoch !== attempt.epoch)
    throw new SwitchSupersededError(`${ctx.tenantId}: a later switch attempt has begun; this one changes nothing more`);
}

/** Opens `side`'s gate: a target only from standby (never once a switch back has closed it for good). */
async function openSide(ctx: Pick<SwitchContext, 'engines' | 'database' | 'migrationId' | 'tenantId'>, side: Side, attempt: { token?: string }): Promise<void> {
  const from: ('open' | 'fenced' | 'standby')[] = side === 'target' ? ['standby', 'open'] : ['fenced', 'open'];
  if (await ctx.engines[side].setWriteGate(ctx.database, { state: 'open', migrationId: ctx.migrationId, token: attempt.token ?? null }, { states: from, migrationId: ctx.migrationId })) return;
  // A source without a gate takes writes already (capture never installed, or removed at the end):
  // nothing to open, and no gate is put back (a stale attempt would leave one the next migration trips on).
  if (side === 'source' && ((await ctx.engines.source.writeGate(ctx.database))?.state ?? 'none') === 'none') return;
  throw new SwitchSupersededError(`${ctx.tenantId}: the ${side} of migration ${ctx.migrationId} was closed for good (rolled back) or is held by another migration; it is not opened again`);
}

/**
 * Before the flip: the old primary takes writes again, the new side goes back to standby (or to its
 * fence, for a switch back), every fence lifts. Only while the catalog still names the old primary:
 * the epoch moves on first, so no attempt begun earlier can flip any more. With `token`, only that
 * attempt's own gates are touched; without it (endSwitchAttempt), any this migration closed or opened.
 * Returns false, changing nothing but the fences, when the catalog names `to` already (flipped).
 */
async function callOff(ctx: SwitchContext, from: Side, to: Side, token?: string): Promise<boolean> {
  const { database, migrationId, tenantId } = ctx;
  try {
    // Without a token (endSwitchAttempt), the gates as they are before the epoch moves are the ones
    // ended: a caller that freezes after moving the epoch and wakes after a later attempt fenced,
    // flipped and opened touches none of that attempt's gates (theirs carry its token).
    const [fromToken, toToken] = token !== undefined ? [token, token] : await Promise.all([gateTokenIn(ctx, from, 'fenced'), gateTokenIn(ctx, to, 'open')]);
    if (!ctx.catalog.bumpEpoch(tenantId, from)) return false; // flipped: only going forward finishes it
    if (fromToken !== null) await ctx.engines[from].setWriteGate(database, { state: 'open', migrationId }, { states: ['fenced'], token: fromToken, migrationId });
    const idle = to === 'target' ? 'standby' : 'fenced';
    if (toToken !== null) await ctx.engines[to].setWriteGate(database, { state: idle, migrationId }, { states: ['open'], token: toToken, migrationId }).catch(() => false);
    return true;
  } finally {
    await ctx.routes.unfence(tenantId);
  }
}

/** The token of `side`'s gate when it is in `state` (null when it is not, or has none: nothing to end there). */
async function gateTokenIn(ctx: SwitchContext, side: Side, state: 'open' | 'fenced'): Promise<string | null> {
  const gate = await ctx.engines[side].writeGate(ctx.database).catch(() => null);
  return gate?.state === state ? (gate.token ?? null) : null;
}

/**
 * Makes `side` the one side that takes writes: its gate open, the other side's fenced (when it
 * exists), the catalog and every gateway node routing to it. Idempotent; used by a switch that
 * finds the flip already made. If a later attempt took over meanwhile, its own fence is undone.
 */
async function settleOn(ctx: SwitchContext, side: Side, attempt: Attempt): Promise<{ unreachable?: string[] }> {
  const { database, migrationId, tenantId } = ctx;
  const otherSide = other(side);
  await openSide(ctx, side, attempt);
  assertCurrent(ctx, attempt);
  // Only a gate this migration holds (or none yet): another migration's side is not ours to close.
  await ctx.engines[otherSide].setWriteGate(database, { state: 'fenced', migrationId, token: attempt.token }, { migrationId }).catch((err: unknown) => {
    if (!(err instanceof DatabaseMissingError)) throw err;
  });
  if (!ctx.catalog.flipPrimary(tenantId, side, true, attempt.epoch)) {
    await ctx.engines[otherSide].setWriteGate(database, { state: 'open', migrationId }, { states: ['fenced'], token: attempt.token, migrationId }).catch(() => false);
    throw new SwitchSupersededError(`${tenantId}: the catalog moved on while settling on the ${side}`);
  }
  return ctx.routes.setPrimary(tenantId, side, true);
}

async function carryKeyCounters(stream: SwitchStream): Promise<void> {
  if (!stream.from.keyCounters || !stream.to.raiseKeyCounters) return;
  await stream.to.raiseKeyCounters(stream.database, await stream.from.keyCounters(stream.database));
}

/**
 * Under the fence, nobody writes: the schema both sides hold must still be the one capture covers.
 * A table created, renamed or rebuilt since journaling (its writes never reached the change log), or
 * one that exists on one side only, stops the cut-over: the tenant stays on its source.
 */
async function verifySchemaUnchanged(stream: SwitchStream): Promise<void> {
  const refusal = await schemaRefusal(stream);
  if (refusal) throw new VerificationMismatchError(`${refusal}; the tenant stays on its ${stream.origin}`);
}

/**
 * Why a switch from `stream.from` to `stream.to` would be refused for the schema (a table not
 * captured, or shaped differently on the two sides), or undefined. Read online too: a rollback asked
 * for in the rollback window is refused at once with this reason, and the window goes on.
 */
export async function schemaRefusal(stream: { database: string; origin: Side; from: Pick<ReplicaSide, 'captureGaps' | 'listTables'>; to: Pick<ReplicaSide, 'listTables'> }): Promise<string | undefined> {
  const gaps = await stream.from.captureGaps(stream.database);
  if (gaps.length)
    return `table(s) ${gaps.join(', ')} changed on the ${stream.origin} since journaling (created, renamed or rebuilt) and are not captured; their writes would not reach the other side`;
  const [mine, theirs] = await Promise.all([stream.from.listTables(stream.database), stream.to.listTables(stream.database)]);
  // Unique indexes too: one added since journaling makes REPLACE delete rows no trigger records.
  const shape = (t: { name: string; columns: string[]; uniqueKeys?: string[][] }) => `${t.name}\u0000${t.columns.join('\u0001')}\u0000${(t.uniqueKeys ?? []).map((k) => k.join('\u0001')).sort().join('\u0002')}`;
  const [a, b] = [new Set(mine.map(shape)), new Set(theirs.map(shape))];
  const differing = [...new Set([...mine.filter((t) => !b.has(shape(t))), ...theirs.filter((t) => !a.has(shape(t)))].map((t) => t.name))];
  if (differing.length) return `the schema changed since journaling (table(s) ${differing.join(', ')} differ between the sides in name or columns)`;
  return undefined;
}

/**
 * Under the fence: every table keyed by rowid holds the same rows under the same rowids on both
 * sides, by a cheap summary (engine `rowidSummary`; SQLite: count(*), max(rowid) and, below 10,000
 * rows, a digest). A VACUUM renumbers such a table without a change in the log, so the changes after
 * it land on the wrong rows of the other side; the online re-baseline before each attempt compares
 * these tables in full, this catches a VACUUM since then.
 */
async function verifyRowidsUnmoved(stream: SwitchStream): Promise<void> {
  const { from, to, database, origin } = stream;
  if (!from.rowidSummary || !to.rowidSummary) return;
  for (const table of (await from.listTables(database)).filter((t) => t.keyKind === 'rowid')) {
    const [mine, theirs] = await Promise.all([from.rowidSummary(database, table), to.rowidSummary(database, table)]);
    if (mine !== theirs) throw new VerificationMismatchError(renumberedMessage(table.name, origin, `${origin}: ${mine}; other side: ${theirs}`));
  }
}

/** Every row changed since verification began must be identical on both sides after the drain. */
async function verifyChangedRows(stream: SwitchStream, after: number, until: number): Promise<void> {
  const { differences } = await compareChangedRows({ engine: stream.from, database: stream.database }, { engine: stream.to, database: stream.database }, after, until);
  if (differences.length)
    throw new VerificationMismatchError(`rows changed since verification differ after the drain: ${someDifferences(differences)}`);
}
