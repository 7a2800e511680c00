// The tracking gateway: beacons and pixels in, each event written to its tenant's primary with its
// outbox row in one transaction, then acknowledged. The admin API moves fences and primaries.
import { Hono, type Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { serve, type ServerType } from '@hono/node-server';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { LoadedFleet } from '../config/fleet';
import { Catalog } from './catalog';
import { BadEventError, MAX_BODY_BYTES, parseEventBody, parsePixelQuery } from './events';
import { GatewayMetrics } from './metrics';
import { HeldTooLongError, StaleRouteChangeError, TenantRouter, UnknownTenantError } from './router';
import { MissingSecretError } from '../protocol/errors';
import { fleetEngines, type FleetEngines } from '../engines';

/** The 1x1 transparent GIF. */
const PIXEL = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
const NO_CACHE = { 'Cache-Control': 'no-store, no-cache, must-revalidate, max-age=0', Pragma: 'no-cache', Expires: '0' };

export interface GatewayOptions {
  fleet: LoadedFleet;
  /** The bearer token of the admin API (read by the caller from the env var the fleet names). */
  adminToken: string;
  holdTimeoutMs?: number;
  /** How long a fence holds unless raised again or lifted (router.ts `DEFAULT_FENCE_LEASE_MS`). */
  fenceLeaseMs?: number;
  /** The engines of the fleet's endpoints; built here, from this node's environment, when not given. */
  engines?: FleetEngines;
}

export interface Gateway {
  app: Hono;
  router: TenantRouter;
  metrics: GatewayMetrics;
  close(): void;
}

/** Compares a secret someone gave with the real one in constant time. */
export function secretMatches(given: string, secret: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

function tokenMatches(header: string | undefined, token: string): 'ok' | 'missing' | 'wrong' {
  const given = /^Bearer (.+)$/.exec(header ?? '')?.[1];
  if (!given) return 'missing';
  return secretMatches(given, token) ? 'ok' : 'wrong';
}

export function createGateway(options: GatewayOptions): Gateway {
  if (options.adminToken.length < 16) throw new MissingSecretError(`admin token: ${options.adminToken.length} characters; at least 16 are needed (e.g. \`openssl rand -hex 16\`)`);
  const metrics = new GatewayMetrics();
  const catalog = new Catalog(options.fleet.catalog.path);
  // A gateway writes events only: no target is restored through it, so no restorer needs signing in.
  const engines = options.engines ?? fleetEngines(options.fleet, process.env, { managedInstance: () => { throw new Error('a gateway restores nothing'); } });
  const router = new TenantRouter(options.fleet, catalog, metrics, engines, options.holdTimeoutMs, options.fenceLeaseMs);
  const app = new Hono();

  const fail = (status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 503, reason: string, message: string): never => {
    metrics.reject(reason);
    throw new HTTPException(status, { message });
  };

  const write = async (c: Context, events: ReturnType<typeof parseEventBody>) => {
    const started = process.hrtime.bigint();
    try {
      const result = await router.write(c.req.param('tenant')!, events);
      metrics.observeWrite(Number(process.hrtime.bigint() - started) / 1e9);
      return result;
    } catch (err) {
      if (err instanceof UnknownTenantError) return fail(404, 'unknown_tenant', err.message);
      if (err instanceof HeldTooLongError) return fail(503, 'held_too_long', err.message);
      throw err;
    }
  };

  app.post('/t/:tenant/events', async (c) => {
    const type = (c.req.header('content-type') ?? 'text/plain').split(';')[0].trim();
    if (type !== 'application/json' && type !== 'text/plain') fail(415, 'content_type', `content-type ${type} is not accepted; send application/json or text/plain (sendBeacon)`);
    if (Number(c.req.header('content-length') ?? 0) > MAX_BODY_BYTES) fail(413, 'too_large', `body larger than ${MAX_BODY_BYTES} bytes; send smaller batches`);
    const text = await c.req.text();
    let events;
    try {
      events = parseEventBody(text, c.req.header('user-agent') ?? null);
    } catch (err) {
      if (err instanceof BadEventError) return fail(err.message.includes('larger than') ? 413 : 400, 'bad_event', err.message);
      throw err;
    }
    const result = await write(c, events);
    return c.json({ accepted: events.length, new: result.fresh, duplicates: result.duplicates, ids: events.map((e) => e.event_id) });
  });

  app.get('/t/:tenant/pixel.gif', async (c) => {
    let event;
    try {
      event = parsePixelQuery(c.req.query(), c.req.header('user-agent') ?? null);
    } catch (err) {
      if (err instanceof BadEventError) return fail(400, 'bad_event', err.message);
      throw err;
    }
    await write(c, [event]);
    return c.body(new Uint8Array(PIXEL), 200, { 'Content-Type': 'image/gif', ...NO_CACHE });
  });

  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/metrics', (c) => c.text(metrics.render(), 200, { 'Content-Type': 'text/plain; version=0.0.4' }));

  app.use('/admin/*', async (c, next) => {
    const check = tokenMatches(c.req.header('authorization'), options.adminToken);
    if (check === 'missing') fail(401, 'admin_auth', 'admin API: send Authorization: Bearer <token>');
    if (check === 'wrong') fail(403, 'admin_auth', 'admin API: token refused');
    await next();
  });
  const admin = (handler: (tenant: string, body: Record<string, unknown>) => unknown | Promise<unknown>) => async (c: Context) => {
    const body = c.req.method === 'POST' ? ((await c.req.json().catch(() => ({}))) as Record<string, unknown>) : {};
    try {
      return c.json(await handler(c.req.param('tenant')!, body));
    } catch (err) {
      if (err instanceof UnknownTenantError) return fail(404, 'unknown_tenant', err.message);
      if (err instanceof StaleRouteChangeError) return fail(409, 'stale_admin', err.message);
      throw err;
    }
  };
  const epochOf = (body: Record<string, unknown>): number | undefined => {
    if (body.epoch !== undefined && !Number.isSafeInteger(body.epoch)) fail(400, 'bad_admin', 'epoch: a whole number (the catalog epoch of the change), or left out');
    return body.epoch as number | undefined;
  };
  app.get('/admin/tenants/:tenant', admin((t) => router.view(t)));
  app.post('/admin/tenants/:tenant/fence', admin((t, body) => {
    if (body.leaseMs !== undefined && !(Number.isSafeInteger(body.leaseMs) && (body.leaseMs as number) > 0))
      fail(400, 'bad_admin', 'leaseMs: a whole number of milliseconds above 0 (how long the fence holds unless lifted), or left out');
    return router.fence(t, body.leaseMs as number | undefined);
  }));
  app.post('/admin/tenants/:tenant/unfence', admin((t) => router.unfence(t)));
  app.post('/admin/tenants/:tenant/mode', admin((t, body) => {
    if (body.writeMode !== undefined && body.writeMode !== 'read_write' && body.writeMode !== 'read_only') fail(400, 'bad_admin', 'writeMode: "read_write" or "read_only"');
    if (body.outbox !== undefined && typeof body.outbox !== 'boolean') fail(400, 'bad_admin', 'outbox: true or false');
    return router.setMode(t, { writeMode: body.writeMode as never, outbox: body.outbox as boolean | undefined }, epochOf(body));
  }));
  app.post('/admin/tenants/:tenant/primary', admin((t, body) => {
    if (body.side !== 'source' && body.side !== 'target') fail(400, 'bad_admin', 'side: "source" or "target"');
    return router.setPrimary(t, body.side as 'source' | 'target', body.outbox !== false, epochOf(body));
  }));

  // One error handler, which never leaks internals to a client.
  app.onError((err, c) => {
    if (err instanceof HTTPException) return c.json({ error: err.message }, err.status);
    console.error('gateway: internal error', err);
    return c.json({ error: 'internal error; the event was not acknowledged, retry it' }, 500);
  });
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));

  return {
    app, router, metrics,
    close: () => {
      router.close();
      catalog.close();
      if (!options.engines) void engines.close();
    },
  };
}

/** Serves a gateway (or another airlift Hono app, such as the war room) on `port` (0: a free one); returns its base URL. */
export async function listenGateway(gateway: Pick<Gateway, 'app' | 'close'>, port = 0, host = '127.0.0.1'): Promise<{ url: string; server: ServerType; stop: () => Promise<void> }> {
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: gateway.app.fetch, port, hostname: host }, () => resolve(s));
    s.once('error', reject);
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${bound}`,
    server,
    stop: () => new Promise<void>((resolve) => {
      gateway.close();
      server.close(() => resolve());
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
    }),
  };
}
