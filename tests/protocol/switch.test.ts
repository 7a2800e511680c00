// The fenced switch of primary (protocol/switch.ts) over real SQLite files, without Temporal.
import { join } from 'node:path';
import { Catalog } from '../../ingestion/catalog';
import { catalogRoutes } from '../../ingestion/routes';
import { SqliteEngine } from '../../engines/sqlite';
import { DEFAULT_TRACKING } from '../../config/fleet';
import { sqliteDirectory } from '../../engines/sqlite-kind';
import Database from 'better-sqlite3';
import { endSwitchAttempt, switchPrimary, type SwitchContext } from '../../protocol/switch';
import { applyRange, streamName } from '../../protocol/replicator';
import { compareAfterFlip, rebaseline } from '../../protocol/changed-rows';
import { FencedWriteError, PauseBudgetExceededError, ReplicationConflictError, TargetInUseError, VerificationMismatchError } from '../../protocol/errors';
import type { Engine } from '../../engines/engine';
import { makeFleet } from '../helpers/stack';
import { stallBeforeFlip, stallGate } from '../helpers/stall';

const event = (event_id: string) => ({ event_id, kind: 'view', ad_id: 1, occurred_at: '2026-11-27T00:00:00Z', user_agent: null, payload: null });

async function restoredTenant(migrationId = 'm1') {
  const made = makeFleet({ tenants: 1, rows: 50 });
  const catalog = new Catalog(made.fleet.catalog.path);
  const tenant = made.fleet.tenants[0];
  const source = new SqliteEngine(sqliteDirectory(made.fleet.sources.onprem));
  const target = new SqliteEngine(sqliteDirectory(made.fleet.targets.cloud));
  await source.startCapture(tenant.database);
  await source.setWriteGate(tenant.database, { state: 'open', migrationId });
  catalog.setMode(tenant.id, { outbox: true });
  await target.restore(tenant.database, await source.snapshot(tenant.database, join(made.dir, 'work', `${migrationId}.sqlite`)), migrationId);
  const ctx: SwitchContext = { tenantId: tenant.id, migrationId, database: tenant.database, engines: { source, target }, catalog, routes: catalogRoutes(catalog) };
  return { ...made, catalog, tenant, source, target, ctx, close: () => { catalog.close(); made.cleanup(); } };
}

test('a switch retried after its release keeps the first watermark, so events written since still flow back', async () => {
  const t = await restoredTenant();
  try {
    const first = await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100 });
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('target');

    // Released: the new primary takes events (with its outbox) before the activity could report back.
    const writer = t.target.openEventWriter(t.tenant.database, DEFAULT_TRACKING);
    await writer.write(['after-1', 'after-2', 'after-3'].map(event));
    await writer.close();

    const retried = await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100 });
    expect(retried.reverseFrom).toBe(first.reverseFrom);

    // The switch back (a rollback) drains exactly those events to the source, from that watermark.
    await switchPrimary(t.ctx, 'source', { chunkRows: 100 });
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('source');
    const table = (await t.source.listTables(t.tenant.database)).find((x) => x.name === 'tracking_events')!;
    const rows = await t.source.rowDigests(t.tenant.database, table, { lower: [50], upper: null });
    expect(rows.map((r) => r.key)).toEqual(['seq=51', 'seq=52', 'seq=53']);
  } finally {
    t.close();
  }
});

test('the write gate holds for every writer: a writer with a stale route is refused inside the database, on either side', async () => {
  const t = await restoredTenant();
  // Opened before the switch, as a gateway node that cached the route would have.
  const staleSource = t.source.openEventWriter(t.tenant.database, DEFAULT_TRACKING);
  const earlyTarget = t.target.openEventWriter(t.tenant.database, DEFAULT_TRACKING);
  try {
    // A restored target is on standby: nothing may write there before the flip.
    await expect(earlyTarget.write([event('too-early')])).rejects.toThrow(FencedWriteError);
    await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100 });
    // The demoted source refuses the stale writer; nothing was written there.
    await expect(staleSource.write([event('stale-1')])).rejects.toThrow(FencedWriteError);
    expect(await earlyTarget.write([event('on-target')])).toBe(1);
    const table = (await t.source.listTables(t.tenant.database)).find((x) => x.name === 'tracking_events')!;
    expect((await t.source.rowDigests(t.tenant.database, table, { lower: [50], upper: null })).length).toBe(0);
    expect(await t.source.writeGate(t.tenant.database)).toMatchObject({ state: 'fenced' });
    expect(await t.target.writeGate(t.tenant.database)).toMatchObject({ state: 'open' });
  } finally {
    staleSource.close();
    earlyTarget.close();
    t.close();
  }
});

test('item 3: a second migration of the same tenant replicates from its own cursor, not the first one\'s', async () => {
  const first = await restoredTenant('m-first');
  try {
    // Migration 1 cuts over, takes events on the target, and rolls back: its reverse cursor on the source is high.
    await switchPrimary(first.ctx, 'target', { fromSeq: 0, chunkRows: 100 });
    const w = first.target.openEventWriter(first.tenant.database, DEFAULT_TRACKING);
    for (let i = 0; i < 20; i++) await w.write([event(`m1-${i}`)]);
    await w.close();
    await switchPrimary(first.ctx, 'source', { chunkRows: 100 });
    await first.target.dropRestored(first.tenant.database, 'm-first');
    const reverseCursorOfFirst = await first.source.appliedCursor(first.tenant.database, 'm-first:target');
    expect(reverseCursorOfFirst).toBeGreaterThan(0);

    // Migration 2 of the same tenant: a fresh restore, cut-over, 5 events on the target, rollback.
    const ctx = { ...first.ctx, migrationId: 'm-second' };
    await first.source.setWriteGate(first.tenant.database, { state: 'open', migrationId: 'm-second' });
    const fromSeq = await first.source.changeHead(first.tenant.database);
    await first.target.restore(first.tenant.database, await first.source.snapshot(first.tenant.database, join(first.dir, 'work', 'second.sqlite')), 'm-second');
    await switchPrimary(ctx, 'target', { fromSeq, chunkRows: 100 });
    const w2 = first.target.openEventWriter(first.tenant.database, DEFAULT_TRACKING);
    const acked = ['m2-a', 'm2-b', 'm2-c', 'm2-d', 'm2-e'];
    for (const id of acked) await w2.write([event(id)]);
    await w2.close();
    await switchPrimary(ctx, 'source', { chunkRows: 100 });

    const table = (await first.source.listTables(first.tenant.database)).find((x) => x.name === 'tracking_events')!;
    const onSource = (await first.source.rowDigests(first.tenant.database, table, { lower: null, upper: null })).length;
    expect(onSource).toBe(50 + 20 + 5);
  } finally {
    first.close();
  }
});

test('a stale switch attempt that wakes up after a later attempt and a rollback can neither reopen the target nor flip the catalog', async () => {
  const t = await restoredTenant();
  try {
    // Attempt 1 stalls (a worker whose event loop is blocked) right before its flip.
    const stalled = stallBeforeFlip(t.source, 'before');
    const zombie = switchPrimary({ ...t.ctx, engines: { source: stalled.engine, target: t.target } }, 'target', { fromSeq: 0, chunkRows: 100 });
    await stalled.reached;
    // Attempt 2 cuts over, the target takes events, and the operator rolls back.
    await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100 });
    const w = t.target.openEventWriter(t.tenant.database, DEFAULT_TRACKING);
    await w.write([event('in-window')]);
    await w.close();
    await switchPrimary(t.ctx, 'source', { chunkRows: 100 });
    stalled.wake();
    await expect(zombie).rejects.toThrow(/lapsed .* or was taken over/);

    expect(t.catalog.get(t.tenant.id)?.primary).toBe('source');
    expect(await t.target.writeGate(t.tenant.database)).toMatchObject({ state: 'fenced' });
    expect(await t.source.writeGate(t.tenant.database)).toMatchObject({ state: 'open' });
    // And the target can be dropped: it takes no writes.
    expect(await t.target.dropRestored(t.tenant.database, 'm1')).toBe(true);
  } finally {
    t.close();
  }
});

test('a called-off switch reopens the source and puts the target back on standby; an open target is never dropped nor restored over', async () => {
  const t = await restoredTenant();
  try {
    await expect(switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: -1 })).rejects.toThrow(/called off/);
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('source');
    expect(await t.source.writeGate(t.tenant.database)).toMatchObject({ state: 'open' });
    expect(await t.target.writeGate(t.tenant.database)).toMatchObject({ state: 'standby' });

    await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100 });
    await expect(t.target.dropRestored(t.tenant.database, 'm1')).rejects.toThrow(TargetInUseError);
    // A workflow reset to before the restore must not restore over the tenant's primary either.
    const again = await t.source.snapshot(t.tenant.database, join(t.dir, 'work', 'again.sqlite'));
    await expect(t.target.restore(t.tenant.database, again, 'm1')).rejects.toThrow(TargetInUseError);
  } finally {
    t.close();
  }
});

test('a stale attempt that stalls right before its flip cannot flip after the rollback routed the tenant back (the epoch moved), and never opened the target', async () => {
  const t = await restoredTenant();
  try {
    // Stalls right after its fence was made to hold: the next thing it would do is flip the catalog.
    const stalled = stallBeforeFlip(t.source, 'after');
    const zombie = switchPrimary({ ...t.ctx, engines: { source: stalled.engine, target: t.target } }, 'target', { fromSeq: 0, chunkRows: 100 });
    await stalled.reached;
    // The target opens only after the flip: a writer with a stale route cannot commit there now.
    expect(await t.target.writeGate(t.tenant.database)).toMatchObject({ state: 'standby' });
    // The workflow gave up on it and rolled back: the tenant never left its source, so the route back only settles.
    await switchPrimary(t.ctx, 'source', { chunkRows: 100 });
    expect(await t.target.dropRestored(t.tenant.database, 'm1')).toBe(true);
    stalled.wake();
    await expect(zombie).rejects.toThrow(/moved on|later switch attempt/);
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('source');
    expect(await t.source.writeGate(t.tenant.database)).toMatchObject({ state: 'open' });
  } finally {
    t.close();
  }
});

/** What a writer of the tenant sees on the source: a write goes through, or is refused by the gate. */
async function sourceTakesWrites(t: Awaited<ReturnType<typeof restoredTenant>>, id: string): Promise<boolean> {
  const writer = t.source.openEventWriter(t.tenant.database, DEFAULT_TRACKING);
  try {
    return (await writer.write([event(id)])) === 1;
  } catch (err) {
    if (err instanceof FencedWriteError) return false;
    throw err;
  } finally {
    await writer.close();
  }
}

test('item 1: an attempt whose worker died holding the fence is ended (called off) at once: the source takes writes again and the attempt can no longer flip', async () => {
  const t = await restoredTenant();
  try {
    // The attempt has fenced and drained; its worker stops dead right before its flip.
    const stalled = stallBeforeFlip(t.source, 'before');
    const dead = switchPrimary({ ...t.ctx, engines: { source: stalled.engine, target: t.target } }, 'target', { fromSeq: 0, chunkRows: 100 });
    await stalled.reached;
    expect(await sourceTakesWrites(t, 'while-fenced')).toBe(false);

    // What the workflow now runs before it waits between attempts; twice, as a retry would.
    expect(await endSwitchAttempt(t.ctx, 'target')).toEqual({ outcome: 'called_off' });
    expect(await endSwitchAttempt(t.ctx, 'target')).toEqual({ outcome: 'called_off' });
    expect(await sourceTakesWrites(t, 'after-call-off')).toBe(true);
    expect(await t.source.writeGate(t.tenant.database)).toMatchObject({ state: 'open' });

    // The attempt wakes (a worker that was only stalled): it cannot flip, and leaves the target on standby.
    stalled.wake();
    await expect(dead).rejects.toThrow(/moved on|later switch attempt|taken over/);
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('source');
    expect(await t.target.writeGate(t.tenant.database)).toMatchObject({ state: 'standby' });
    expect(await sourceTakesWrites(t, 'after-wake')).toBe(true);
  } finally {
    t.close();
  }
});

test('item 3: a retry of the same cut-over attempt counts the pause budget from the first fence, so the pause cannot restart', async () => {
  const t = await restoredTenant();
  try {
    // The first try of the attempt fences and hangs (its worker lost); the budget is 1.5 s.
    const stalled = stallBeforeFlip(t.source, 'before');
    const first = switchPrimary({ ...t.ctx, engines: { source: stalled.engine, target: t.target } }, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 1500, attemptKey: 'run-1:activity-7' });
    await stalled.reached;
    await new Promise((r) => setTimeout(r, 1700));
    // Its retry (same attempt) finds writes held for longer than the budget already: called off.
    await expect(switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 1500, attemptKey: 'run-1:activity-7' })).rejects.toThrow(PauseBudgetExceededError);
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('source');
    expect(await sourceTakesWrites(t, 'after-budget')).toBe(true);
    stalled.wake();
    await expect(first).rejects.toThrow(/moved on|later switch attempt|taken over/);
    // A new attempt (a new key) has a budget of its own and goes through.
    await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 60_000, attemptKey: 'run-1:activity-9' });
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('target');
  } finally {
    t.close();
  }
});

test('a switch frozen after its drain lets writers back in when its fence lapses (budget plus margin, by the database clock), and can then neither flip nor open the target', async () => {
  const t = await restoredTenant();
  try {
    // Budget 800 ms: the fence's lease is 800 ms plus the 1 s margin.
    const frozen = stallBeforeFlip(t.source, 'before');
    const attempt = switchPrimary({ ...t.ctx, engines: { source: frozen.engine, target: t.target } }, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 800 });
    await frozen.reached;
    expect(await sourceTakesWrites(t, 'inside-the-lease')).toBe(false);
    await new Promise((r) => setTimeout(r, 2000));
    // No worker lifted it: the lease did. The application writes again, with the tenant's own triggers in place.
    expect(await sourceTakesWrites(t, 'after-the-lease')).toBe(true);
    expect(await t.source.writeGate(t.tenant.database)).toMatchObject({ state: 'fenced', lapsed: true });
    frozen.wake();
    await expect(attempt).rejects.toThrow(/fence on the source lapsed/);
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('source');
    expect(await t.target.writeGate(t.tenant.database)).toMatchObject({ state: 'standby' });
    expect(await t.source.writeGate(t.tenant.database)).toMatchObject({ state: 'open' });
    // The next attempt carries the write made while the fence had lapsed.
    await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 60_000 });
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('target');
    const ids = new Database(join(sqliteDirectory(t.fleet.targets.cloud), `${t.tenant.database}.db`), { readonly: true });
    try {
      expect(ids.prepare('SELECT count(*) FROM tracking_events WHERE event_id = ?').pluck().get('after-the-lease')).toBe(1);
    } finally {
      ids.close();
    }
  } finally {
    t.close();
  }
});

test('the pause a retry reports counts from the first fence of its attempt, as writers saw it', async () => {
  const t = await restoredTenant();
  try {
    const frozen = stallBeforeFlip(t.source, 'before');
    const first = switchPrimary({ ...t.ctx, engines: { source: frozen.engine, target: t.target } }, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 5000, attemptKey: 'run-1:activity-3' });
    await frozen.reached;
    await new Promise((r) => setTimeout(r, 1200));
    // The retry of the same attempt (its worker was lost) finishes the cut-over.
    const retry = await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 5000, attemptKey: 'run-1:activity-3' });
    expect(retry.pauseMs).toBeGreaterThanOrEqual(1200);
    frozen.wake();
    await expect(first).rejects.toThrow(/lapsed .* or was taken over|moved on/);
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('target');
  } finally {
    t.close();
  }
});

test('item 4: a zombie of a rolled-back migration can neither apply into nor switch the next migration\'s sides', async () => {
  const t = await restoredTenant('m-old');
  try {
    // m-old is rolled back before its cut-over: target dropped, capture off the source.
    await switchPrimary(t.ctx, 'source', { chunkRows: 100 });
    expect(await t.target.dropRestored(t.tenant.database, 'm-old')).toBe(true);
    await t.source.stopCapture(t.tenant.database, { keepFence: false });

    // A stale cut-over attempt of m-old wakes now: no gate on the source, and it must not put one there.
    await expect(switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100 })).rejects.toThrow(/no longer a side this switch can fence/);
    expect(await t.source.writeGate(t.tenant.database)).toBeNull();
    expect(await sourceTakesWrites(t, 'between-migrations')).toBe(true);

    // m-new journals and restores a fresh target (standby, its own gate).
    await t.source.startCapture(t.tenant.database);
    await t.source.setWriteGate(t.tenant.database, { state: 'open', migrationId: 'm-new' });
    const fromSeq = await t.source.changeHead(t.tenant.database);
    await t.target.restore(t.tenant.database, await t.source.snapshot(t.tenant.database, join(t.dir, 'work', 'm-new.sqlite')), 'm-new');
    const writer = new Database(t.source.fileOf(t.tenant.database));
    writer.prepare("UPDATE tracking_events SET kind = 'changed-under-m-new' WHERE seq = 3").run();
    writer.close();

    // m-old's applier wakes with its own stream: refused, nothing written, no cursor of its own.
    const stale = { database: t.tenant.database, from: t.source as Engine, to: t.target as Engine, origin: 'source' as const, name: streamName('m-old', 'source') };
    await expect(applyRange(stale, fromSeq, await t.source.changeHead(t.tenant.database))).rejects.toThrow(ReplicationConflictError);
    expect(await t.target.appliedCursor(t.tenant.database, stale.name)).toBe(0);
    const table = (await t.target.listTables(t.tenant.database)).find((x) => x.name === 'tracking_events')!;
    expect((await t.target.readRows(t.tenant.database, table, [[3]]))[0]).not.toContain('changed-under-m-new');
    // m-old's stale switch cannot fence m-new's source either.
    await expect(switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100 })).rejects.toThrow(/no longer a side this switch can fence/);
    expect(await t.source.writeGate(t.tenant.database)).toMatchObject({ state: 'open', migrationId: 'm-new' });
    expect(await t.target.writeGate(t.tenant.database)).toMatchObject({ state: 'standby', migrationId: 'm-new' });
    // m-new itself replicates and switches.
    const own = { ...stale, name: streamName('m-new', 'source') };
    expect((await applyRange(own, fromSeq, await t.source.changeHead(t.tenant.database))).applied).toBe(1);
    await switchPrimary({ ...t.ctx, migrationId: 'm-new' }, 'target', { fromSeq, chunkRows: 100 });
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('target');
  } finally {
    t.close();
  }
});

/** Counts the rows the target reads (a fenced compare reads each row it compares on both sides). */
function countingReads(engine: SqliteEngine): { engine: Engine; reads: () => number; reset: () => void } {
  let n = 0;
  const counted = Object.assign(Object.create(engine) as Engine, {
    readRows: async (database: string, table: Parameters<Engine['readRows']>[1], keys: Parameters<Engine['readRows']>[2]) => {
      n += keys.length;
      return engine.readRows(database, table, keys);
    },
  });
  return { engine: counted, reads: () => n, reset: () => (n = 0) };
}

test('item 5: after a long wait the rows changed meanwhile are compared online, and the fenced compare covers only what changed since', async () => {
  const t = await restoredTenant();
  try {
    const side = (engine: Engine) => ({ engine, database: t.tenant.database });
    const stream = { database: t.tenant.database, from: t.source as Engine, to: t.target as Engine, origin: 'source' as const, name: streamName('m1', 'source') };
    const verifiedFrom = await t.source.changeHead(t.tenant.database);
    // Waiting for approval: 400 events, replicated as they come.
    const writer = t.source.openEventWriter(t.tenant.database, DEFAULT_TRACKING);
    for (let i = 0; i < 400; i++) await writer.write([event(`waiting-${i}`)]);
    const replicated = (await applyRange(stream, verifiedFrom, await t.source.changeHead(t.tenant.database))).cursor;

    const moved = await rebaseline(side(t.source), side(t.target), verifiedFrom, replicated);
    expect(moved).toBe(replicated);
    // Three more events right before the cut-over: only those are compared under the fence.
    for (let i = 0; i < 3; i++) await writer.write([event(`late-${i}`)]);
    await writer.close();
    const target = countingReads(t.target);
    await switchPrimary({ ...t.ctx, engines: { source: t.source, target: target.engine } }, 'target', { fromSeq: 0, chunkRows: 100, verifyChangesAfter: moved });
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('target');
    // The drain reads nothing from the target; the compare reads the 3 late rows, not the 403.
    expect(target.reads()).toBe(3);
  } finally {
    t.close();
  }
});

test('item 5: a row that differs although replication passed it stops the re-baseline; one still changing is left to the fence', async () => {
  const t = await restoredTenant();
  try {
    const side = (engine: Engine) => ({ engine, database: t.tenant.database });
    const stream = { database: t.tenant.database, from: t.source as Engine, to: t.target as Engine, origin: 'source' as const, name: streamName('m1', 'source') };
    const writer = new Database(t.source.fileOf(t.tenant.database));
    writer.prepare("UPDATE tracking_events SET kind = 'edited' WHERE seq IN (5, 6)").run();
    const replicated = (await applyRange(stream, 0, await t.source.changeHead(t.tenant.database))).cursor;
    // Row 6 changes again (not replicated yet: in flux); row 5 is damaged on the target behind airlift's back.
    writer.prepare("UPDATE tracking_events SET kind = 'again' WHERE seq = 6").run();
    writer.close();
    const damage = new Database(t.target.fileOf(t.tenant.database));
    damage.transaction(() => {
      damage.prepare('INSERT INTO airlift_applying (id) VALUES (1)').run();
      damage.prepare("UPDATE tracking_events SET kind = 'damaged' WHERE seq = 5").run();
      damage.prepare('DELETE FROM airlift_applying').run();
    })();
    damage.close();
    await expect(rebaseline(side(t.source), side(t.target), 0, replicated)).rejects.toThrow(VerificationMismatchError);
    await expect(rebaseline(side(t.source), side(t.target), 0, replicated)).rejects.toThrow(/tracking_events: seq=5 changed$/);
  } finally {
    t.close();
  }
});

test('item 7: an id the source issued is never issued again by the target: AUTOINCREMENT counters follow the switch', async () => {
  const made = makeFleet({ tenants: 1, rows: 10 });
  const tenant = made.fleet.tenants[0];
  const source = new SqliteEngine(sqliteDirectory(made.fleet.sources.onprem));
  const target = new SqliteEngine(sqliteDirectory(made.fleet.targets.cloud));
  const catalog = new Catalog(made.fleet.catalog.path);
  const app = (engine: SqliteEngine) => new Database(engine.fileOf(tenant.database));
  try {
    const setup = app(source);
    setup.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)');
    setup.close();
    await source.startCapture(tenant.database);
    await source.setWriteGate(tenant.database, { state: 'open', migrationId: 'm1' });
    await target.restore(tenant.database, await source.snapshot(tenant.database, join(made.dir, 'work', 'm1.sqlite')), 'm1');
    // Five notes; the last two deleted before replication copied them: only the source's counter saw 4 and 5.
    const writer = app(source);
    for (let i = 1; i <= 5; i++) writer.prepare('INSERT INTO notes (body) VALUES (?)').run(`note ${i}`);
    writer.prepare('DELETE FROM notes WHERE id > 3').run();
    writer.close();
    const ctx: SwitchContext = { tenantId: tenant.id, migrationId: 'm1', database: tenant.database, engines: { source, target }, catalog, routes: catalogRoutes(catalog) };
    await switchPrimary(ctx, 'target', { fromSeq: 0, chunkRows: 100 });
    const onTarget = app(target);
    expect(Number(onTarget.prepare("INSERT INTO notes (body) VALUES ('first on target')").run().lastInsertRowid)).toBe(6);
    onTarget.close();
    // And back: the source does not reissue what the target issued in the window.
    const more = app(target);
    more.prepare("INSERT INTO notes (body) VALUES ('second on target')").run();
    more.prepare('DELETE FROM notes WHERE id = 7').run();
    more.close();
    await switchPrimary(ctx, 'source', { chunkRows: 100 });
    const back = app(source);
    expect(Number(back.prepare("INSERT INTO notes (body) VALUES ('back on source')").run().lastInsertRowid)).toBe(8);
    back.close();
  } finally {
    catalog.close();
    made.cleanup();
  }
});

describe('a VACUUM on the source mid-migration renumbers the rows of a table without a primary key (keyed by rowid)', () => {
  /**
   * A restored tenant whose audit_log (no primary key) has gaps in its rowids, so a VACUUM renumbers it;
   * then writes replicated as the dual-write does, and `vacuum` where the test says.
   */
  async function migrating(vacuum: 'before re-baseline' | 'after re-baseline' | 'never') {
    const t = await restoredTenant();
    const file = t.source.fileOf(t.tenant.database);
    const side = (engine: Engine) => ({ engine, database: t.tenant.database });
    const stream = { database: t.tenant.database, from: t.source as Engine, to: t.target as Engine, origin: 'source' as const, name: streamName('m1', 'source') };
    const app = new Database(file);
    // Gaps, captured and replicated: rows deleted while the migration runs.
    app.exec('DELETE FROM audit_log WHERE rowid % 3 = 0');
    let cursor = (await applyRange(stream, 0, await t.source.changeHead(t.tenant.database))).cursor;
    const verifiedFrom = cursor;
    const renumber = () => {
      const before = app.prepare('SELECT max(rowid) FROM audit_log').pluck().get();
      app.exec('VACUUM');
      // The premise: SQLite renumbered the table (its highest rowid went down), and logged nothing.
      expect(app.prepare('SELECT max(rowid) FROM audit_log').pluck().get()).toBeLessThan(before as number);
    };
    if (vacuum === 'before re-baseline') renumber();
    // The tenant goes on writing to audit_log by rowid; the changes are replicated.
    app.exec("UPDATE audit_log SET detail = 'edited' WHERE rowid = 2");
    app.exec("INSERT INTO audit_log (at, actor, action) VALUES ('2026-11-28', 'ops', 'late')");
    cursor = (await applyRange(stream, cursor, await t.source.changeHead(t.tenant.database))).cursor;
    const rebaselined = rebaseline(side(t.source), side(t.target), verifiedFrom, cursor);
    return { t, app, rebaselined, renumber, verifiedFrom, cursor };
  }

  test('caught by the online re-baseline, which compares such tables in full and names the table', async () => {
    const m = await migrating('before re-baseline');
    try {
      await expect(m.rebaselined).rejects.toThrow(VerificationMismatchError);
      await expect(rebaseline({ engine: m.t.source, database: m.t.tenant.database }, { engine: m.t.target, database: m.t.tenant.database }, m.verifiedFrom, m.cursor)).rejects.toThrow(
        /table "audit_log" \(no primary key, keyed by rowid\) differs between the sides .*a VACUUM \(or another rowid change\) on the source since journaling is the likely cause/,
      );
    } finally {
      m.app.close();
      m.t.close();
    }
  });

  test('caught under the fence when it comes after the re-baseline: the cut-over refuses to flip, naming the table, and the tenant stays on its source', async () => {
    const m = await migrating('after re-baseline');
    try {
      const moved = await m.rebaselined;
      m.renumber();
      const attempt = switchPrimary(m.t.ctx, 'target', { fromSeq: 0, chunkRows: 100, verifyChangesAfter: moved });
      await expect(attempt).rejects.toThrow(VerificationMismatchError);
      await expect(attempt).rejects.toThrow(/table "audit_log" \(no primary key, keyed by rowid\) differs between the sides .*a VACUUM \(or another rowid change\) on the source/);
      expect(m.t.catalog.get(m.t.tenant.id)?.primary).toBe('source');
      expect(await m.t.source.writeGate(m.t.tenant.database)).toMatchObject({ state: 'open' });
      expect(await m.t.target.writeGate(m.t.tenant.database)).toMatchObject({ state: 'standby' });
    } finally {
      m.app.close();
      m.t.close();
    }
  });

  test('without the VACUUM the same flow passes the re-baseline and the fenced compare, and cuts over', async () => {
    const m = await migrating('never');
    try {
      const moved = await m.rebaselined;
      expect(moved).toBe(m.cursor);
      await switchPrimary(m.t.ctx, 'target', { fromSeq: 0, chunkRows: 100, verifyChangesAfter: moved });
      expect(m.t.catalog.get(m.t.tenant.id)?.primary).toBe('target');
    } finally {
      m.app.close();
      m.t.close();
    }
  });
});

test('review: a stale route-back that wakes after capture was removed from the source puts no gate back there (the next migration could not start)', async () => {
  const t = await restoredTenant();
  try {
    // The rollback's route-back ran, then journaling was stopped: the source has no gate any more.
    await switchPrimary(t.ctx, 'source', { chunkRows: 100 });
    await t.source.stopCapture(t.tenant.database, { keepFence: false });
    expect(await t.source.writeGate(t.tenant.database)).toBeNull();
    // A zombie of that route-back wakes now: the tenant is on its source, so it only settles there.
    await switchPrimary(t.ctx, 'source', { chunkRows: 100 });
    expect(await t.source.writeGate(t.tenant.database)).toBeNull();
    // The next migration journals as if the first had never been.
    await t.source.startCapture(t.tenant.database);
    expect(await t.source.setWriteGate(t.tenant.database, { state: 'open', migrationId: 'm2' }, { states: ['none'] })).toBe(true);
  } finally {
    t.close();
  }
});

test('log shipping: once the restore is completed nothing is compared under the fence; the rows changed since journaling are compared after the flip, rows written in the window set aside', async () => {
  const t = await restoredTenant();
  try {
    const file = (dir: string) => join(dir, `${t.tenant.database}.db`);
    const sourceDb = new Database(file(sqliteDirectory(t.fleet.sources.onprem)));
    const targetFile = file(sqliteDirectory(t.fleet.targets.cloud));
    // Changes since journaling, carried to the target before the fence (standing in for the log backups).
    sourceDb.exec("UPDATE ads SET headline = 'shipped' WHERE id <= 20");
    const stream = { database: t.tenant.database, from: t.source as Engine, to: t.target as Engine, origin: 'source' as const, name: streamName('m1', 'source') };
    await applyRange(stream, 0, await t.source.changeHead(t.tenant.database));
    // The tail-log backup carries the source's gate as this attempt fenced it.
    const shipping = {
      completed: async () => false,
      shipTail: async () => {
        await t.target.setWriteGate(t.tenant.database, (await t.source.writeGate(t.tenant.database))!);
        return 'tail.trn';
      },
      untilRestored: async () => undefined,
      complete: async () => undefined,
    };
    const compared: string[] = [];
    const watched = Object.assign(Object.create(t.target) as Engine, {
      readRows: async (...args: Parameters<Engine['readRows']>) => {
        compared.push(args[1].name);
        return t.target.readRows(...args);
      },
    });
    const result = await switchPrimary({ ...t.ctx, engines: { source: t.source, target: watched }, logShipping: shipping }, 'target', {
      chunkRows: 100, budgetMs: 60_000, verifyChangesAfter: 0, catchUp: 'log-shipping',
    });
    expect(compared).toEqual([]); // nothing read row by row under the fence
    expect(result.deferredCompare).toEqual({ after: 0, until: await t.source.changeHead(t.tenant.database) });
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('target');

    const side = (engine: Engine) => ({ engine, database: t.tenant.database });
    expect(await compareAfterFlip(side(t.source), side(t.target), result.deferredCompare!, result.reverseFrom)).toEqual([]);
    // A row written on the target in the window differs for a reason: set aside.
    const writer = new Database(targetFile);
    writer.exec("UPDATE ads SET headline = 'edited in the window' WHERE id = 3");
    writer.close();
    // A row the shipped log did not carry (standing in for a restore that lost it) is named.
    sourceDb.exec('DELETE FROM airlift_gate'); // let the test write the fenced source directly
    sourceDb.exec("UPDATE ads SET headline = 'lost on the way' WHERE id = 4");
    const differences = await compareAfterFlip(side(t.source), side(t.target), { after: 0, until: await t.source.changeHead(t.tenant.database) }, result.reverseFrom);
    expect(differences).toEqual([{ table: 'ads', key: 'id=4', kind: 'changed' }]);
    sourceDb.close();
  } finally {
    t.close();
  }
});

test('ending an attempt that freezes after it moved the epoch and wakes after the next attempt flipped touches none of that attempt\'s gates', async () => {
  const t = await restoredTenant();
  try {
    const frozenA = stallBeforeFlip(t.source, 'before');
    const a = switchPrimary({ ...t.ctx, engines: { source: frozenA.engine, target: t.target } }, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 60_000 });
    await frozenA.reached;
    // E1: the workflow ends attempt A; its worker freezes right after the call-off moved the epoch.
    const e1Source = stallGate(t.source, 'before', (gate) => gate.state === 'open');
    const e1 = endSwitchAttempt({ ...t.ctx, engines: { source: e1Source.engine, target: t.target } }, 'target');
    await e1Source.reached;
    // E2 (Temporal's retry of E1) calls A off; later attempt B cuts over.
    expect(await endSwitchAttempt(t.ctx, 'target')).toEqual({ outcome: 'called_off' });
    await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 60_000 });
    e1Source.wake();
    await e1.catch(() => undefined);
    frozenA.wake();
    await a.catch(() => undefined);
    expect(t.catalog.get(t.tenant.id)?.primary).toBe('target');
    expect(await t.source.writeGate(t.tenant.database)).toMatchObject({ state: 'fenced' });
    expect(await t.target.writeGate(t.tenant.database)).toMatchObject({ state: 'open' });
    expect(await sourceTakesWrites(t, 'stale-writer-on-the-old-source')).toBe(false);
  } finally {
    t.close();
  }
});

test('a source journaled before fences had leases keeps a working fence when capture comes off (its gate gets the lease column)', async () => {
  const t = await restoredTenant();
  try {
    const file = t.source.fileOf(t.tenant.database);
    let db = new Database(file);
    db.exec('DROP TABLE airlift_gate; CREATE TABLE airlift_gate (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL, migration_id TEXT, token TEXT, updated_at TEXT NOT NULL)');
    db.prepare("INSERT INTO airlift_gate VALUES (1, 'fenced', 'm1', 'x', 'now')").run();
    db.close();
    await t.source.stopCapture(t.tenant.database, { keepFence: true });
    db = new Database(file);
    try {
      expect(() => db.prepare("UPDATE ads SET headline = 'x' WHERE id = 1").run()).toThrow(/writes to this database are fenced/);
    } finally {
      db.close();
    }
  } finally {
    t.close();
  }
});
