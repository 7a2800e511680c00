// The admin client against real gateway nodes: calls go on without nodes that do not answer and name
// them; a node that refuses fails the call, and a refused fence is lifted everywhere.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { sqliteDirectory } from '../../engines/sqlite-kind';
import { GatewayAdmin, GatewayAdminError, GatewayAdminRefusedError } from '../../ingestion/admin-client';
import { createGateway, listenGateway } from '../../ingestion/gateway';
import { isRetryable } from '../../protocol/errors';
import { countRows, makeFleet } from '../helpers/stack';

const TOKEN = 'test-admin-token-0123456789';
let cleanup: () => void;
let tenantId: string;
let sourceFile: string;
/** The node that works; it holds a fenced tenant's events for 2 s, then answers 503. */
let live: { url: string; stop: () => Promise<void> };
/** A gateway node that was started and stopped: its port is really closed. */
let stoppedUrl: string;
/** A gateway node of the same fleet that knows another admin token. */
let otherToken: { url: string; stop: () => Promise<void> };
const servers: Server[] = [];

/** A tiny real HTTP server: answers every request with `status`, or never answers (null). */
async function fakeNode(status: number | null): Promise<string> {
  const server = createServer((_req, res) => {
    if (status !== null) res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'node is restarting' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  const made = makeFleet({ tenants: 1, rows: 10 });
  cleanup = made.cleanup;
  tenantId = made.fleet.tenants[0].id;
  sourceFile = join(sqliteDirectory(made.fleet.sources.onprem), `${made.fleet.tenants[0].database}.db`);
  live = await listenGateway(createGateway({ fleet: made.fleet, adminToken: TOKEN, holdTimeoutMs: 2000 }));
  const second = await listenGateway(createGateway({ fleet: made.fleet, adminToken: TOKEN }));
  stoppedUrl = second.url;
  await second.stop();
  otherToken = await listenGateway(createGateway({ fleet: made.fleet, adminToken: 'another-admin-token-9876543210' }));
});
afterAll(async () => {
  await live?.stop();
  await otherToken?.stop();
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  cleanup?.();
});

const rows = () => countRows(sourceFile, 'tracking_events');

async function liveView(): Promise<{ fenced: boolean }> {
  const res = await fetch(`${live.url}/admin/tenants/${tenantId}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return (await res.json()) as { fenced: boolean };
}

/** A tracking event sent to the working node: acknowledged, or held until its 2 s limit and refused. */
async function track(eventId: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${live.url}/t/${tenantId}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'click', event_id: eventId }) });
  return { status: res.status, body: await res.json() };
}

async function failureOf(call: Promise<unknown>): Promise<Error & { retryable?: boolean }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (!err) throw new Error('the call was expected to fail and succeeded');
  return err;
}

test.each([
  ['stopped (its port closed)', () => Promise.resolve(stoppedUrl), 'unreachable'],
  ['answering 503', () => fakeNode(503), 'answered 503: node is restarting'],
  ['never answering (timeout shortened to 500 ms)', () => fakeNode(null), 'no answer within 500 ms'],
] as const)('a fence goes on without a node %s: the node that answers holds events, the other is named', async (_name, otherNode, reason) => {
  const other = await otherNode();
  const lines: string[] = [];
  const admin = new GatewayAdmin([live.url, other], TOKEN, { timeoutMs: 500, log: (line) => lines.push(line) });
  const fenced = await admin.fence(tenantId, 60_000);
  try {
    expect(fenced.unreachable).toEqual([expect.stringMatching(new RegExp(`^${other.replace(/[.:/]/g, '\\$&')} \\(${reason}`))]);
    expect(await liveView()).toMatchObject({ fenced: true });
    expect(lines).toEqual([expect.stringContaining(`fence of tenant ${tenantId}: ${other} did not answer (${reason}`)]);
  } finally {
    const lifted = await admin.unfence(tenantId);
    expect(lifted.unreachable).toEqual([expect.stringContaining(other)]);
  }
  // Lifted on the node that answered: it stores events at once.
  const before = rows();
  expect(await track(`after-fence-${other.split(':').pop()}`)).toMatchObject({ status: 200, body: { accepted: 1, new: 1 } });
  expect(rows()).toBe(before + 1);
  expect(lines.join(' ')).not.toContain(TOKEN);
});

test('a fence lifts by itself on a node after the lease it was raised with, when nobody lifts it', async () => {
  const admin = new GatewayAdmin([live.url], TOKEN);
  await admin.fence(tenantId, 400);
  expect(await liveView()).toMatchObject({ fenced: true });
  await new Promise((r) => setTimeout(r, 700));
  expect(await liveView()).toMatchObject({ fenced: false });
  expect((await track('after-lapsed-fence')).status).toBe(200);
});

test('setPrimary, setMode and unfence go on without nodes that do not answer and name each of them; view fails naming them', async () => {
  const unavailable = await fakeNode(503);
  const lines: string[] = [];
  const admin = new GatewayAdmin([live.url, stoppedUrl, unavailable], TOKEN, { timeoutMs: 2000, log: (line) => lines.push(line) });
  for (const call of [() => admin.setPrimary(tenantId, 'source', false), () => admin.setMode(tenantId, { writeMode: 'read_write' }), () => admin.unfence(tenantId)]) {
    const { unreachable } = await call();
    expect(unreachable).toEqual([expect.stringContaining(`${stoppedUrl} (unreachable`), `${unavailable} (answered 503: node is restarting)`]);
  }
  expect(lines.join('\n')).not.toContain(live.url);
  const err = await failureOf(admin.view(tenantId));
  expect(err).toBeInstanceOf(GatewayAdminError);
  expect(err.retryable).toBe(true);
  expect(err.message).toContain(`gateway admin: view of tenant ${tenantId} failed on 2 of 3 node(s)`);
  expect(err.message).toContain(`${stoppedUrl} (unreachable`);
  expect(err.message).toContain(`${unavailable} (answered 503: node is restarting)`);
  expect(err.message).not.toContain(live.url);
});

test('a node that refuses the token fails the fence without retry, and the fence is lifted on the other', async () => {
  const admin = new GatewayAdmin([live.url, otherToken.url], TOKEN, { log: () => undefined });
  const err = await failureOf(admin.fence(tenantId));
  expect(await liveView()).toMatchObject({ fenced: false });
  expect((await track('after-refused-fence')).status).toBe(200);
  expect(err).toBeInstanceOf(GatewayAdminRefusedError);
  expect(err.retryable).toBe(false);
  expect(isRetryable(err)).toBe(false);
  expect(err.message).toContain(`${otherToken.url} (answered 403: admin API: token refused)`);
});

test('a fence that every node raises holds events until it is lifted', async () => {
  const admin = new GatewayAdmin([live.url], TOKEN);
  const { fencedAt } = await admin.fence(tenantId);
  expect(fencedAt).toBeGreaterThan(0);
  expect(await liveView()).toMatchObject({ fenced: true });
  const held = track('held-by-fence');
  const lifted = await new Promise<{ held: number }>((resolve, reject) => setTimeout(() => admin.unfence(tenantId).then(resolve, reject), 300));
  expect(lifted.held).toBe(1);
  expect((await held).status).toBe(200);
});
