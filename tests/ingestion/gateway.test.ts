// The tracking gateway over real HTTP and real SQLite files.
import { sqliteDirectory } from '../../engines/sqlite-kind';
import Database from 'better-sqlite3';
import { basename, dirname, join } from 'node:path';
import { createGateway, listenGateway } from '../../ingestion/gateway';
import { SqliteEngine } from '../../engines/sqlite';
import { countRows, makeFleet, waitFor } from '../helpers/stack';

const TOKEN = 'test-admin-token-0123456789';
let url: string;
let stop: () => Promise<void>;
let cleanup: () => void;
let tenantId: string;
let sourceFile: string;

beforeAll(async () => {
  const made = makeFleet({ tenants: 1, rows: 10 });
  cleanup = made.cleanup;
  tenantId = made.fleet.tenants[0].id;
  sourceFile = join(sqliteDirectory(made.fleet.sources.onprem), `${made.fleet.tenants[0].database}.db`);
  const served = await listenGateway(createGateway({ fleet: made.fleet, adminToken: TOKEN, holdTimeoutMs: 3000 }));
  url = served.url;
  stop = served.stop;
});
afterAll(async () => {
  await stop?.();
  cleanup?.();
});

const rows = () => countRows(sourceFile, 'tracking_events');
const capturedRows = () => countRows(sourceFile, 'airlift_changes');

const post = (body: string, type = 'application/json', tenant = tenantId) =>
  fetch(`${url}/t/${tenant}/events`, { method: 'POST', headers: { 'content-type': type }, body });
const admin = (path: string, token: string | null = TOKEN, body?: object) =>
  fetch(`${url}/admin/tenants/${tenantId}${path}`, {
    method: body ? 'POST' : 'GET',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });

test('one event, a batch, and a sendBeacon text/plain body are stored and acknowledged; a resent id is stored once', async () => {
  const before = rows();
  const one = await post(JSON.stringify({ event_id: 'e-1', kind: 'click', ad_id: 3 }));
  expect(one.status).toBe(200);
  expect(await one.json()).toMatchObject({ accepted: 1, new: 1, ids: ['e-1'] });
  const batch = await post(JSON.stringify([{ kind: 'view' }, { kind: 'view', payload: { page: '/x' } }]), 'text/plain;charset=UTF-8');
  const ids = ((await batch.json()) as { ids: string[] }).ids;
  expect(ids).toHaveLength(2);
  expect(ids[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/); // UUIDv7
  const again = await post(JSON.stringify({ event_id: 'e-1', kind: 'click', ad_id: 3 }));
  expect(await again.json()).toMatchObject({ accepted: 1, new: 0, duplicates: 1 });
  expect(rows()).toBe(before + 3);
});

test('the pixel answers a 1x1 GIF that no cache keeps, and stores the hit', async () => {
  const before = rows();
  const res = await fetch(`${url}/t/${tenantId}/pixel.gif?kind=view&ad_id=5&event_id=px-1&utm_source=mail`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('image/gif');
  expect(res.headers.get('cache-control')).toContain('no-store');
  const gif = Buffer.from(await res.arrayBuffer());
  expect(gif.subarray(0, 6).toString()).toBe('GIF89a');
  expect(gif.readUInt16LE(6)).toBe(1);
  expect(gif.readUInt16LE(8)).toBe(1);
  expect(rows()).toBe(before + 1);
  const db = new Database(sourceFile, { readonly: true });
  const row = db.prepare("SELECT ad_id, kind, payload FROM tracking_events WHERE event_id = 'px-1'").get();
  db.close();
  expect(row).toEqual({ ad_id: 5, kind: 'view', payload: '{"utm_source":"mail"}' });
});

test.each([
  ['malformed JSON', () => post('{"kind": '), 400, 'body: not valid JSON'],
  ['missing kind', () => post('{"ad_id": 1}'), 400, 'event.kind: required'],
  ['ad_id of the wrong type', () => post('{"kind":"click","ad_id":"seven"}'), 400, 'event.ad_id: must be a non-negative integer or null'],
  ['unknown field', () => post('{"kind":"click","colour":"red"}'), 400, 'unknown field "colour"'],
  ['bad timestamp', () => post('{"kind":"click","occurred_at":"yesterday"}'), 400, 'event.occurred_at: must be an ISO-8601 timestamp'],
  ['bad event id', () => post('{"kind":"click","event_id":"a b"}'), 400, 'event.event_id: must be a string'],
  ['empty batch', () => post('[]'), 400, 'body: an empty batch'],
  ['oversized batch', () => post(JSON.stringify(Array.from({ length: 501 }, () => ({ kind: 'v' })))), 400, 'at most 500'],
  ['oversized body', () => post(JSON.stringify([{ kind: 'view', payload: 'x'.repeat(70_000) }])), 413, 'larger than 65536 bytes'],
  ['one bad event in a batch', () => post('[{"kind":"view"},{"kind":7}]'), 400, 'events[1].kind: required'],
  ['form content type', () => post('kind=click', 'application/x-www-form-urlencoded'), 415, 'is not accepted'],
  ['unknown tenant', () => post('{"kind":"click"}', 'application/json', 'nobody'), 404, 'unknown tenant "nobody"'],
  ['pixel with a bad ad_id', () => fetch(`${url}/t/${tenantId}/pixel.gif?ad_id=x1`), 400, 'query.ad_id'],
] as const)('%s gets its 4xx with a reason and writes nothing', async (_name, send, status, reason) => {
  const before = rows();
  const res = await send();
  expect(res.status).toBe(status);
  expect(((await res.json()) as { error: string }).error).toContain(reason);
  expect(rows()).toBe(before);
});

test('the admin API refuses a missing or wrong token, and answers with the tenant state to the right one', async () => {
  expect((await admin('', null)).status).toBe(401);
  expect((await admin('', 'wrong-token-wrong-token-xx')).status).toBe(403);
  expect((await admin('/fence', 'wrong-token-wrong-token-xx', {})).status).toBe(403);
  const view = await admin('');
  expect(view.status).toBe(200);
  expect(await view.json()).toMatchObject({ tenantId, primary: 'source', fenced: false });
});

test('with change capture installed, each event is captured in its own write; a fenced tenant holds events until unfenced', async () => {
  await new SqliteEngine(dirname(sourceFile)).startCapture(basename(sourceFile, '.db'));
  expect((await admin('/mode', TOKEN, { outbox: true })).status).toBe(200);
  const journaled = capturedRows();
  await post(JSON.stringify({ kind: 'click' }));
  expect(capturedRows()).toBe(journaled + 1);

  const fence = await admin('/fence', TOKEN, {});
  expect(await fence.json()).toHaveProperty('fencedAt');
  const before = rows();
  let answered = false;
  const held = post(JSON.stringify({ kind: 'view', event_id: 'held-1' })).then((r) => {
    answered = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 300));
  expect(answered).toBe(false);
  expect(rows()).toBe(before);
  const unfence = (await (await admin("/unfence", TOKEN, {})).json()) as { held: number; pauseMs: number };
  expect(unfence.held).toBe(1);
  expect(unfence.pauseMs).toBeGreaterThanOrEqual(300);
  expect((await held).status).toBe(200);
  expect(rows()).toBe(before + 1);

  const metrics = await (await fetch(`${url}/metrics`)).text();
  expect(metrics).toMatch(/airlift_events_held_total 1/);
  expect(metrics).toMatch(/airlift_requests_rejected_total\{reason="bad_event"\} \d+/);
  expect(metrics).toContain('airlift_write_seconds_bucket{le="+Inf"}');
  await admin('/mode', TOKEN, { outbox: false });
});

test('a fence held past the hold limit answers 503 and the event is not written', async () => {
  await admin('/fence', TOKEN, {});
  const before = rows();
  const res = await post(JSON.stringify({ kind: 'view', event_id: 'too-long' }));
  expect(res.status).toBe(503);
  expect(((await res.json()) as { error: string }).error).toContain('retry shortly');
  await admin('/unfence', TOKEN, {});
  expect(rows()).toBe(before);
});

test('a fence nobody lifts (its switch died, or the unfence never reached this node) lifts by itself when its lease runs out; a fence raised again starts the lease over', async () => {
  const made = makeFleet({ tenants: 1, rows: 10 });
  const node = await listenGateway(createGateway({ fleet: made.fleet, adminToken: TOKEN, holdTimeoutMs: 300, fenceLeaseMs: 2000 }));
  const tenant = made.fleet.tenants[0].id;
  const call = (path: string, body?: object) =>
    fetch(`${node.url}/admin/tenants/${tenant}${path}`, { method: body ? 'POST' : 'GET', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  const send = (id: string) => fetch(`${node.url}/t/${tenant}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'view', event_id: id }) });
  try {
    const raised = Date.now();
    await call('/fence', {});
    await new Promise((r) => setTimeout(r, 1200));
    await call('/fence', {}); // raised again by a retry: the lease starts over
    // Past the first raise's lease (2 s), within the second's: still fenced. (800 ms either way for a loaded machine.)
    await new Promise((r) => setTimeout(r, Math.max(0, raised + 2400 - Date.now())));
    expect(await (await call('')).json()).toMatchObject({ fenced: true });
    expect((await send('still-fenced')).status).toBe(503);
    await waitFor('the lease to run out', async () => (((await (await call('')).json()) as { fenced: boolean }).fenced ? undefined : true), 5000);
    expect((await send('after-lease')).status).toBe(200);
  } finally {
    await node.stop();
    made.cleanup();
  }
});

test('a payload nested too deep, a body of brackets or a pixel with too many parameters gets a 4xx naming the field; nothing is written and the next good event is stored', async () => {
  const nested = (levels: number) => `${'['.repeat(levels)}1${']'.repeat(levels)}`;
  const chunked = (body: string) =>
    fetch(`${url}/t/${tenantId}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new Blob([body]).stream(), // no content-length: only the parser's own bound applies
      duplex: 'half',
    } as RequestInit);
  const before = rows();
  const cases: [string, () => Promise<Response>, number, string][] = [
    ['5,000 levels in one event', () => post(`{"kind":"view","payload":${nested(5000)}}`), 400, 'event.payload: nested deeper than 32 levels'],
    ['60 KiB of nesting in a batch', () => post(`[{"kind":"view","payload":${nested(30_000)}}]`), 400, 'events[0].payload: nested deeper than 32 levels'],
    ['33 levels in the second event', () => post(`[{"kind":"view"},{"kind":"view","payload":{"a":${nested(32)}}}]`), 400, 'events[1].payload: nested deeper than 32 levels'],
    ['60,000 [ characters', () => post('['.repeat(60_000)), 400, 'nested deeper than 32 levels'],
    ['100,000 [ characters', () => post('['.repeat(100_000)), 413, 'larger than 65536 bytes'],
    ['100,000 [ characters without a content-length', () => chunked('['.repeat(100_000)), 413, 'larger than 65536 bytes'],
    ['a payload over 8 KiB', () => post(JSON.stringify({ kind: 'view', payload: { note: 'é'.repeat(4200) } })), 413, 'event.payload: larger than 8 KiB'],
    ['a pixel with 2,000 parameters', () => fetch(`${url}/t/${tenantId}/pixel.gif?${Array.from({ length: 2000 }, (_, i) => `k${i}=1`).join('&')}`), 400, 'query: 2000 parameters; at most 50'],
    ['a pixel with 8 KiB in its parameters', () => fetch(`${url}/t/${tenantId}/pixel.gif?note=${'x'.repeat(9000)}`), 400, 'query.payload: larger than 8 KiB'],
  ];
  for (const [name, send, status, reason] of cases) {
    const res = await send();
    expect({ name, status: res.status, error: ((await res.json()) as { error: string }).error }).toEqual({ name, status, error: expect.stringContaining(reason) });
  }
  expect(rows()).toBe(before);

  const deepestAllowed = await post(JSON.stringify({ kind: 'view', event_id: 'deep-32', payload: { a: JSON.parse(nested(31)) } }));
  expect(deepestAllowed.status).toBe(200);
  const good = await post(JSON.stringify({ kind: 'click', event_id: 'after-poison' }));
  expect(await good.json()).toMatchObject({ accepted: 1, new: 1, ids: ['after-poison'] });
  expect(rows()).toBe(before + 2);
});
