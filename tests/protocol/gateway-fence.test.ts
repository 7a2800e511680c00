// Item 4 of issue 7 on two real gateway nodes over HTTP: a flip that reaches only some nodes, and a
// node restarted during a cut-over, must not let one acknowledged event land where nothing replicates it.
import Database from 'better-sqlite3';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../../azure/azurite';
import { sqliteDirectory } from '../../engines/sqlite-kind';
import { SqliteEngine } from '../../engines/sqlite';
import { Catalog } from '../../ingestion/catalog';
import { createGateway, listenGateway } from '../../ingestion/gateway';
import { gatewayRoutes, type RouteControl } from '../../ingestion/routes';
import { endSwitchAttempt, switchPrimary } from '../../protocol/switch';
import { GatewayAdminError } from '../../protocol/errors';
import { makeFleet } from '../helpers/stack';
import { stallBeforeFlip } from '../helpers/stall';

const TOKEN = 'test-admin-token-for-two-nodes';

async function twoNodes() {
  const [portA, portB] = [await freePort(), await freePort()];
  const made = makeFleet({ tenants: 1, rows: 40, gatewayUrl: `http://127.0.0.1:${portA}` });
  const tenant = made.fleet.tenants[0];
  const serve = (port: number) => listenGateway(createGateway({ fleet: made.fleet, adminToken: TOKEN, holdTimeoutMs: 8000 }), port);
  const nodes = { a: await serve(portA), b: await serve(portB) };
  const source = new SqliteEngine(sqliteDirectory(made.fleet.sources.onprem));
  const target = new SqliteEngine(sqliteDirectory(made.fleet.targets.cloud));
  const catalog = new Catalog(made.fleet.catalog.path);
  const routes = gatewayRoutes([nodes.a.url, nodes.b.url], TOKEN, catalog);
  await source.startCapture(tenant.database);
  await source.setWriteGate(tenant.database, { state: 'open', migrationId: 'm1' });
  await routes.setMode(tenant.id, { outbox: true });
  await target.restore(tenant.database, await source.snapshot(tenant.database, join(made.dir, 'work', 'm1.sqlite')), 'm1');
  const ctx = { tenantId: tenant.id, migrationId: 'm1', database: tenant.database, engines: { source, target }, catalog, routes };
  /** Routes whose flip reaches node A only: node B's admin call fails (a reset connection). */
  const flipOnlyA: RouteControl = {
    ...routes,
    setPrimary: async (tenantId, side, outbox) => {
      await gatewayRoutes([nodes.a.url], TOKEN, catalog).setPrimary(tenantId, side, outbox);
      throw new GatewayAdminError(`gateway ${nodes.b.url}: primary ${tenantId} failed: connection reset`);
    },
  };
  const post = (url: string, id: string) =>
    fetch(`${url}/t/${tenant.id}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'click', event_id: id }) });
  const where = (id: string) =>
    (['source', 'target'] as const).filter((side) => {
      const db = new Database(join(sqliteDirectory(side === 'source' ? made.fleet.sources.onprem : made.fleet.targets.cloud), `${tenant.database}.db`), { readonly: true });
      try {
        return db.prepare('SELECT 1 FROM tracking_events WHERE event_id = ?').get(id) !== undefined;
      } finally {
        db.close();
      }
    });
  const close = async () => {
    await Promise.allSettled([nodes.a.stop(), nodes.b.stop()]);
    catalog.close();
    made.cleanup();
  };
  return { ...made, tenant, nodes, serve, portB, ctx, routes, flipOnlyA, post, where, close };
}

test('a flip that fails on one node: that node, still routing to the source, is refused there and its event lands on the target', async () => {
  const t = await twoNodes();
  try {
    // Node B never hears of the flip (its admin call fails); the switch reports it.
    await expect(switchPrimary({ ...t.ctx, routes: t.flipOnlyA }, 'target', { fromSeq: 0, chunkRows: 100 })).rejects.toThrow(GatewayAdminError);
    await t.routes.unfence(t.tenant.id); // as the retry would, before it re-sends the flip
    const answer = await t.post(t.nodes.b.url, 'via-stale-node');
    expect(answer.status).toBe(200);
    expect(t.where('via-stale-node')).toEqual(['target']);
  } finally {
    await t.close();
  }
});

test('item 2: a node unreachable after the flip: the fences still lift, and ending the attempt goes forward and reports it switched', async () => {
  const t = await twoNodes();
  try {
    const ctx = { ...t.ctx, routes: t.flipOnlyA };
    await expect(switchPrimary(ctx, 'target', { fromSeq: 0, chunkRows: 100 })).rejects.toThrow(GatewayAdminError);
    const fenced = async (url: string) => ((await (await fetch(`${url}/admin/tenants/${t.tenant.id}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { fenced: boolean }).fenced;
    // Past the flip nothing waits for a retry: no node holds the tenant's events.
    expect(await fenced(t.nodes.a.url)).toBe(false);
    expect(await fenced(t.nodes.b.url)).toBe(false);
    // What the workflow runs when the switch activity gave up: the flip stands, the attempt is not called off.
    const ended = await endSwitchAttempt(ctx, 'target');
    expect(ended).toMatchObject({ outcome: 'switched', unconfirmed: expect.stringMatching(/connection reset/) });
    expect(t.ctx.catalog.ensure(t.tenant.id).primary).toBe('target');
    expect(await t.ctx.engines.target.writeGate(t.tenant.database)).toMatchObject({ state: 'open' });
    expect(await t.ctx.engines.source.writeGate(t.tenant.database)).toMatchObject({ state: 'fenced' });
    expect(await fenced(t.nodes.a.url)).toBe(false);
    expect(await fenced(t.nodes.b.url)).toBe(false);
    // Node B, which missed the flip, is refused at the source and lands its event on the target.
    expect((await t.post(t.nodes.b.url, 'via-unconfirmed-node')).status).toBe(200);
    expect(t.where('via-unconfirmed-node')).toEqual(['target']);
    // Once B answers again, ending the attempt once more confirms the flip everywhere.
    expect(await endSwitchAttempt(t.ctx, 'target')).toMatchObject({ outcome: 'switched' });
    expect(await endSwitchAttempt(t.ctx, 'target')).not.toHaveProperty('unconfirmed');
  } finally {
    await t.close();
  }
});

test('a node restarted during a cut-over comes up unfenced, but its writes wait for the flip and land on the target', async () => {
  const t = await twoNodes();
  try {
    // The window between the drain and the flip, held open: the source is drained and gated, the
    // catalog still names it.
    const flip = stallBeforeFlip(t.ctx.engines.source, 'before');
    const switching = switchPrimary({ ...t.ctx, engines: { source: flip.engine, target: t.ctx.engines.target } }, 'target', { fromSeq: 0, chunkRows: 100 });
    await flip.reached;
    await t.nodes.b.stop();
    t.nodes.b = await t.serve(t.portB); // restarted: no fence in its memory
    const view = (await (await fetch(`${t.nodes.b.url}/admin/tenants/${t.tenant.id}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { fenced: boolean };
    expect(view.fenced).toBe(false);
    const answer = t.post(t.nodes.b.url, 'via-restarted-node');
    await new Promise((r) => setTimeout(r, 500));
    expect(t.where('via-restarted-node')).toEqual([]); // held: not written to the drained source
    flip.wake();
    await switching;
    expect((await answer).status).toBe(200);
    expect(t.where('via-restarted-node')).toEqual(['target']);
  } finally {
    await t.close();
  }
});

test('a flip delivered to a node late, after a later flip back, is refused (409) and does not rewrite the catalog', async () => {
  const t = await twoNodes();
  try {
    const before = t.ctx.catalog.ensure(t.tenant.id).epoch;
    await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100 });
    const flippedAt = t.ctx.catalog.ensure(t.tenant.id).epoch;
    await switchPrimary(t.ctx, 'source', { chunkRows: 100 });
    expect(flippedAt).toBeGreaterThan(before);
    // The request the first switch sent to node B, arriving only now.
    const late = await fetch(`${t.nodes.b.url}/admin/tenants/${t.tenant.id}/primary`, {
      method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ side: 'target', outbox: true, epoch: flippedAt }),
    });
    expect(late.status).toBe(409);
    expect(((await late.json()) as { error: string }).error).toMatch(/a later change has replaced it/);
    expect(t.ctx.catalog.ensure(t.tenant.id).primary).toBe('source');
    expect((await t.post(t.nodes.b.url, 'after-late-flip')).status).toBe(200);
    expect(t.where('after-late-flip')).toEqual(['source']);
  } finally {
    await t.close();
  }
});

test('a gateway node down for the whole cut-over and the rollback after it: both go through, name the node, and the node serves the current route when it comes back', async () => {
  const t = await twoNodes();
  try {
    await t.nodes.b.stop(); // down, its port closed, longer than any budget or retry
    const cutOver = await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 5000 });
    expect(cutOver.unreachable).toEqual([expect.stringMatching(new RegExp(`^${t.nodes.b.url.replace(/[.:/]/g, '\\$&')} \\(unreachable`))]);
    expect(t.ctx.catalog.ensure(t.tenant.id).primary).toBe('target');
    expect((await t.post(t.nodes.a.url, 'via-a-after-cut-over')).status).toBe(200);
    expect(t.where('via-a-after-cut-over')).toEqual(['target']);
    // The rollback (the route back) does not wait for the node either: no hour in cutting_over.
    const back = await switchPrimary(t.ctx, 'source', { chunkRows: 100 });
    expect(back.unreachable).toHaveLength(1);
    expect(t.ctx.catalog.ensure(t.tenant.id).primary).toBe('source');
    expect(t.where('via-a-after-cut-over')).toEqual(['source', 'target']);
    // Back up: the node loads its routes from the catalog before it serves.
    t.nodes.b = await t.serve(t.portB);
    expect((await t.post(t.nodes.b.url, 'via-b-back-up')).status).toBe(200);
    expect(t.where('via-b-back-up')).toEqual(['source']);
  } finally {
    await t.close();
  }
});

test('a gateway node that takes connections but never answers (a frozen process) is named, each call waiting at most a quarter of the fence lease or 3 s, and the cut-over goes through', async () => {
  const t = await twoNodes();
  const sockets: Socket[] = [];
  await t.nodes.b.stop();
  const hung = createServer((s) => sockets.push(s)).listen(t.portB, '127.0.0.1');
  try {
    const started = Date.now();
    const cutOver = await switchPrimary(t.ctx, 'target', { fromSeq: 0, chunkRows: 100, budgetMs: 5000 });
    // Fence (a quarter of the 6 s lease), flip and release (3 s each) on the frozen node: not the 30 s admin timeout, twice.
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(cutOver.unreachable).toEqual([expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+ \((no answer within \d+ ms|unreachable)/)]);
    expect(t.ctx.catalog.ensure(t.tenant.id).primary).toBe('target');
    expect((await t.post(t.nodes.a.url, 'via-a')).status).toBe(200);
    expect(t.where('via-a')).toEqual(['target']);
  } finally {
    sockets.forEach((s) => s.destroy());
    hung.close();
    await t.close();
  }
});
