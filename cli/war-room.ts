// The war-room page's server: the page and its script (no build step), uPlot from node_modules, a
// snapshot and a stream of changes by server-sent events, and the operator's controls behind an
// admin login. The browser never talks to Temporal; it reads what the feed collected here.
import { Hono, type Context } from 'hono';
import { getCookie, setCookie, deleteCookie } from 'hono/cookie';
import { streamSSE } from 'hono/streaming';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import type { LoadedFleet } from '../config/fleet';
import { redactSecrets } from '../azure/blob-store';
import { SAFE_NAME } from '../workflows/contract';
import { listenGateway, secretMatches } from '../ingestion/gateway';
import { abortWave, commandTenant, TENANT_COMMANDS, type TenantCommand } from './operator';
import { TemporalFeed, type FeedSnapshot, type FeedSource, type TenantRow, type WaveRow } from './war-room-feed';
import { OperatorError } from './waves';

export interface WarRoomCommands {
  tenant(tenantId: string, command: TenantCommand, reason?: string): Promise<string>;
  abortWave(waveId: string): Promise<string>;
}

export interface WarRoomOptions {
  source: FeedSource;
  /** Where the controls go; without them (or without an admin token) the page is read-only. */
  commands?: WarRoomCommands;
  /** The admin token a login must present; never sent to the browser. */
  adminToken?: string;
  /** The Temporal Web UI, for a link to each tenant's workflow. */
  temporalUiUrl?: string;
  namespace?: string;
  intervalMs?: number;
  /** Points kept for the events-per-second chart. */
  historyPoints?: number;
}

export interface WarRoom {
  app: Hono;
  /** Reads the feed now (the page gets the changes); resolves when done. */
  refresh(): Promise<void>;
  /** Stops reading; resolves once no read is under way. */
  close(): Promise<void>;
}

interface WaveView extends WaveRow {
  counts: Record<string, number>;
  totals: Totals;
}

/** N of M tenants served from Azure, from their source, in flight, failed; bytes moved and to move; the ETA at the current rate. */
export interface Totals {
  tenants: number;
  onTarget: number;
  onSource: number;
  inFlight: number;
  failed: number;
  terminated: number;
  pending: number;
  bytesDone: number;
  bytesTotal: number;
  /** Seconds until the bytes still to move are moved at the rate of the transfers running now; absent when nothing moves. */
  etaSeconds?: number;
}

/** A tenant that needs the operator now, and the one action it needs (absent when it needs a look, not a button). */
export interface NeedsYou {
  tenantId: string;
  name?: string;
  why: string;
  action?: TenantCommand;
  /** For the countdown of a rollback window. */
  endsAt?: string;
}

/** A rollback window that closes within this time is in the needs-you lane. */
export const WINDOW_CLOSING_SOON_MS = 15 * 60_000;

interface PausePoint {
  at: string;
  tenantId: string;
  ms: number;
}

const SESSION_COOKIE = 'airlift_war_room';
const SESSION_HOURS = 12;
const ASSETS = join(__dirname, 'war-room');
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: join(ASSETS, 'index.html'), type: 'text/html; charset=utf-8' },
  '/assets/war-room.js': { file: join(ASSETS, 'war-room.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/war-room.css': { file: join(ASSETS, 'war-room.css'), type: 'text/css; charset=utf-8' },
  '/assets/uPlot.js': { file: require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/assets/uPlot.css': { file: require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};
const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

/** The commands over a Temporal client, through the one operator module. */
export function temporalCommands(client: Client): WarRoomCommands {
  return { tenant: (id, command, reason) => commandTenant(client, id, command, reason), abortWave: (id) => abortWave(client, id) };
}

/** A war room over a Temporal namespace and, with a fleet, its catalog and gateways. */
export function temporalWarRoom(client: Client, options: Omit<WarRoomOptions, 'source' | 'commands'> & { fleet?: LoadedFleet }): WarRoom {
  return createWarRoom({ ...options, source: new TemporalFeed({ client, fleet: options.fleet }), commands: temporalCommands(client), namespace: options.namespace ?? client.options.namespace });
}

export function createWarRoom(options: WarRoomOptions): WarRoom {
  const intervalMs = options.intervalMs ?? 1000;
  const historyPoints = options.historyPoints ?? 600;
  const controls = Boolean(options.commands && options.adminToken);
  const sessions = new Map<string, number>();
  const listeners = new Set<(event: string, data: unknown) => void>();
  const sent = new Map<string, string>();
  let rows: TenantRow[] = [];
  let waves: WaveView[] = [];
  let totals: Totals = totalsOf([]);
  let needsYou: NeedsYou[] = [];
  const series: { t: number[]; eventsPerSecond: (number | null)[] } = { t: [], eventsPerSecond: [] };
  let pauses: PausePoint[] = [];
  let feedError: string | undefined;
  let lastAt = new Date().toISOString();

  const publish = (event: string, data: unknown) => {
    for (const listener of listeners) listener(event, data);
  };

  const absorb = (snapshot: FeedSnapshot) => {
    const at = Date.now();
    lastAt = new Date(at).toISOString();
    const changed: TenantRow[] = [];
    const seen = new Set<string>();
    for (const row of snapshot.tenants) {
      seen.add(row.tenantId);
      const json = JSON.stringify(row);
      if (sent.get(row.tenantId) !== json) {
        sent.set(row.tenantId, json);
        changed.push(row);
      }
    }
    const removed = [...sent.keys()].filter((id) => !seen.has(id));
    for (const id of removed) sent.delete(id);
    rows = snapshot.tenants;
    waves = snapshot.waves.map((w) => {
      const own = rows.filter((r) => r.waveId === w.waveId);
      return { ...w, counts: countPhases(own), totals: totalsOf(own) };
    });
    totals = totalsOf(rows);
    needsYou = needsYouOf(rows, at);
    series.t.push(at / 1000);
    series.eventsPerSecond.push(snapshot.eventsPerSecond ?? null);
    if (series.t.length > historyPoints) {
      series.t.shift();
      series.eventsPerSecond.shift();
    }
    const nextPauses = rows
      .filter((r) => r.cutoverPauseMs !== undefined && r.cutoverAt)
      .map((r) => ({ at: r.cutoverAt!, tenantId: r.tenantId, ms: r.cutoverPauseMs! }))
      .sort((a, b) => a.at.localeCompare(b.at));
    const pausesChanged = JSON.stringify(nextPauses) !== JSON.stringify(pauses);
    pauses = nextPauses;
    const hadError = feedError;
    feedError = undefined;
    publish('update', {
      at: lastAt,
      waves,
      totals,
      needsYou,
      tenants: changed,
      removed,
      point: [series.t[series.t.length - 1], series.eventsPerSecond[series.eventsPerSecond.length - 1]],
      pauses: pausesChanged ? pauses : undefined,
      feedError: hadError ? null : undefined,
    });
  };

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;
  const tick = (): Promise<void> => {
    if (running) return running;
    running = (async () => {
      try {
        absorb(await options.source.collect());
      } catch (err) {
        feedError = `cannot read the migrations: ${redactSecrets((err as Error).message).split('\n')[0]}`;
        publish('update', { at: new Date().toISOString(), feedError });
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  const loop = async () => {
    await tick();
    if (!closed) timer = setTimeout(() => void loop(), intervalMs);
  };
  void loop();

  const initial = () => ({
    at: lastAt,
    waves,
    totals,
    needsYou,
    tenants: rows,
    series,
    pauses,
    feedError,
    temporalUiUrl: options.temporalUiUrl,
    namespace: options.namespace ?? 'default',
  });

  const sessionOf = (c: Context): boolean => {
    const id = getCookie(c, SESSION_COOKIE);
    const expires = id ? sessions.get(id) : undefined;
    if (!id || expires === undefined) return false;
    if (expires < Date.now()) {
      sessions.delete(id);
      return false;
    }
    return true;
  };

  const app = new Hono();
  app.use('*', async (c, next) => {
    await next();
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.header(k, v);
  });

  for (const [path, asset] of Object.entries(STATIC)) {
    const body = readFileSync(asset.file);
    app.get(path, (c) => c.body(new Uint8Array(body), 200, { 'Content-Type': asset.type, 'Cache-Control': 'no-cache' }));
  }

  app.get('/favicon.ico', (c) => c.body(null, 204));
  app.get('/api/snapshot', (c) => c.json(initial()));
  app.get('/api/session', (c) => c.json({ admin: controls && sessionOf(c), controls }));
  app.get('/api/events', (c) =>
    streamSSE(c, async (stream) => {
      const queue: { event: string; data: string }[] = [];
      let wake: (() => void) | undefined;
      const listener = (event: string, data: unknown) => {
        queue.push({ event, data: JSON.stringify(data) });
        wake?.();
      };
      listeners.add(listener);
      stream.onAbort(() => {
        listeners.delete(listener);
        wake?.();
      });
      await stream.writeSSE({ event: 'init', data: JSON.stringify(initial()) });
      while (!stream.aborted && !closed) {
        while (queue.length) await stream.writeSSE(queue.shift()!);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 15000).unref();
        });
        wake = undefined;
        if (!queue.length && !stream.aborted) await stream.write(': keep-alive\n\n');
      }
      listeners.delete(listener);
    }),
  );

  // Every state-changing request: a POST from this page's own origin, with a JSON body.
  app.use('/api/*', async (c, next) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    if (c.req.method !== 'POST') return c.json({ error: `${c.req.method} is not accepted; the controls are POSTs` }, 405);
    const origin = c.req.header('origin');
    let sameOrigin = false;
    try {
      sameOrigin = Boolean(origin) && new URL(origin!).host === c.req.header('host');
    } catch {
      sameOrigin = false;
    }
    if (!sameOrigin) return c.json({ error: 'refused: the request does not come from the war-room page itself (Origin header)' }, 403);
    if (!(c.req.header('content-type') ?? '').startsWith('application/json')) return c.json({ error: 'send the request as application/json' }, 415);
    if (c.req.path !== '/api/login' && !sessionOf(c)) return c.json({ error: 'read-only: log in with the admin token to use the controls' }, 401);
    return next();
  });

  app.post('/api/login', async (c) => {
    if (!controls) return c.json({ error: 'the controls are off: this war room was started without an admin token (set the variable the fleet names in ingestion.adminTokenEnv, or AIRLIFT_ADMIN_TOKEN)' }, 403);
    const body = (await c.req.json().catch(() => ({}))) as { token?: unknown };
    if (typeof body.token !== 'string' || !secretMatches(body.token, options.adminToken!)) {
      await new Promise((r) => setTimeout(r, 300));
      return c.json({ error: 'token refused' }, 401);
    }
    const id = randomBytes(32).toString('base64url');
    sessions.set(id, Date.now() + SESSION_HOURS * 3600_000);
    setCookie(c, SESSION_COOKIE, id, { httpOnly: true, sameSite: 'Strict', path: '/', maxAge: SESSION_HOURS * 3600, secure: new URL(c.req.url).protocol === 'https:' });
    return c.json({ admin: true });
  });
  app.post('/api/logout', (c) => {
    const id = getCookie(c, SESSION_COOKIE);
    if (id) sessions.delete(id);
    deleteCookie(c, SESSION_COOKIE, { path: '/' });
    return c.json({ admin: false });
  });

  const answer = async (c: Context, send: () => Promise<string>) => {
    try {
      const message = await send();
      void tick();
      return c.json({ message: redactSecrets(message) });
    } catch (err) {
      if (err instanceof OperatorError) return c.json({ error: redactSecrets(err.message) }, 409);
      return c.json({ error: redactSecrets(`${(err as Error).message}`.split('\n')[0]) }, 502);
    }
  };
  app.post('/api/tenants/:tenant/:command', async (c) => {
    const tenant = c.req.param('tenant');
    const command = c.req.param('command') as TenantCommand;
    if (!SAFE_NAME.test(tenant)) return c.json({ error: 'tenant: not a tenant id' }, 400);
    if (!TENANT_COMMANDS.includes(command)) return c.json({ error: `command: one of ${TENANT_COMMANDS.join(', ')}` }, 404);
    const body = (await c.req.json().catch(() => ({}))) as { reason?: unknown };
    const reason = typeof body.reason === 'string' ? body.reason.slice(0, 500) : undefined;
    return answer(c, () => options.commands!.tenant(tenant, command, reason));
  });
  app.post('/api/waves/:wave/abort', async (c) => {
    const wave = c.req.param('wave');
    if (!SAFE_NAME.test(wave)) return c.json({ error: 'wave: not a wave id' }, 400);
    return answer(c, () => options.commands!.abortWave(wave));
  });

  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    console.error(`war room: ${redactSecrets(err.message)}`);
    return c.json({ error: 'internal error' }, 500);
  });

  return {
    app,
    refresh: tick,
    close: async () => {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const listener of listeners) listener('bye', {});
      listeners.clear();
      // A read under way finishes first: a Temporal call retrying after its connection closed would
      // throw from its timer.
      await running?.catch(() => undefined);
      options.source.close?.();
    },
  };
}

/** Tenants per phase (or end state), for a wave's header; a hold says before what, and by whom. */
function countPhases(rows: TenantRow[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of rows) {
    const key = r.state === 'running' ? (r.heldBefore ? `held before ${r.heldBefore}` : r.phase) : r.state === 'pending' ? 'pending' : r.state;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

export function totalsOf(rows: TenantRow[]): Totals {
  const count = (test: (r: TenantRow) => boolean) => rows.filter(test).length;
  const bytesDone = rows.reduce((n, r) => n + (r.state === 'running' || r.state === 'completed' ? r.bytesDone : 0), 0);
  const bytesTotal = rows.reduce((n, r) => n + (r.state === 'running' || r.state === 'completed' || r.state === 'pending' ? r.bytesTotal : 0), 0);
  const rate = rows.reduce((n, r) => n + (r.state === 'running' ? (r.throughputBytesPerSecond ?? 0) : 0), 0);
  return {
    tenants: rows.length,
    onTarget: count((r) => r.servedFrom === 'target'),
    onSource: count((r) => r.servedFrom === 'source'),
    inFlight: count((r) => r.state === 'running'),
    failed: count((r) => r.state === 'failed'),
    terminated: count((r) => r.state === 'terminated'),
    pending: count((r) => r.state === 'pending'),
    bytesDone,
    bytesTotal,
    etaSeconds: rate > 0 && bytesTotal > bytesDone ? Math.round((bytesTotal - bytesDone) / rate) : undefined,
  };
}

/** The tenants that need the operator, most urgent first: terminated, failed, held, awaiting approval, a window closing. */
export function needsYouOf(rows: TenantRow[], now: number): NeedsYou[] {
  const lane: (NeedsYou & { rank: number })[] = [];
  for (const r of rows) {
    const base = { tenantId: r.tenantId, name: r.name };
    if (r.state === 'terminated') lane.push({ ...base, rank: 0, why: r.lastError ?? 'workflow terminated' });
    else if (r.state === 'failed') lane.push({ ...base, rank: 1, why: `failed: ${r.lastError ?? 'see its detail'}` });
    else if (r.state !== 'running') continue;
    else if (r.heldBefore) lane.push({ ...base, rank: 2, why: `held before ${r.heldBefore.replace(/_/g, ' ')} by ${r.pausedBy === 'policy' ? "the policy's pauseBefore breakpoint" : 'an operator'}`, action: 'resume' });
    else if (r.phase === 'awaiting_cutover') lane.push({ ...base, rank: 3, why: 'verified and awaiting your approval of its cut-over', action: 'approve' });
    else if (r.rollbackWindowEndsAt && Date.parse(r.rollbackWindowEndsAt) - now < WINDOW_CLOSING_SOON_MS)
      lane.push({ ...base, rank: 4, why: 'rollback window closing: then the point of no return', action: 'complete', endsAt: r.rollbackWindowEndsAt });
  }
  return lane.sort((a, b) => a.rank - b.rank || a.tenantId.localeCompare(b.tenantId)).map(({ rank: _rank, ...item }) => item);
}

/** The admin token the controls need: the gateways' own (the fleet's ingestion.adminTokenEnv), else AIRLIFT_ADMIN_TOKEN; none means read-only. */
export function warRoomToken(fleet: LoadedFleet | undefined, env: NodeJS.ProcessEnv = process.env): { token?: string; variable: string } {
  const variable = fleet?.ingestion?.adminTokenEnv ?? 'AIRLIFT_ADMIN_TOKEN';
  const token = env[variable] || undefined;
  if (token !== undefined && token.length < 16) throw new OperatorError(`${variable}: the admin token must have at least 16 characters; set a longer one`);
  return { token, variable };
}

/** Serves the war room over a Temporal client on `port` (0: a free one). */
export async function serveWarRoom(
  client: Client,
  options: { fleet?: LoadedFleet; temporalUiUrl?: string; namespace?: string; port?: number; host?: string; intervalMs?: number; env?: NodeJS.ProcessEnv; portOption?: string },
): Promise<{ url: string; warRoom: WarRoom; readOnlyBecause?: string; stop: () => Promise<void> }> {
  const { token, variable } = warRoomToken(options.fleet, options.env);
  const warRoom = temporalWarRoom(client, { fleet: options.fleet, adminToken: token, temporalUiUrl: options.temporalUiUrl, namespace: options.namespace, intervalMs: options.intervalMs });
  const served = await listenGateway(warRoom, options.port ?? 0, options.host ?? '127.0.0.1').catch((err: NodeJS.ErrnoException) => {
    void warRoom.close();
    throw err.code === 'EADDRINUSE' ? new OperatorError(`${options.portOption ?? '--port'} ${options.port}: the port is taken on ${options.host ?? '127.0.0.1'}; choose another with ${options.portOption ?? '--port'}`) : err;
  });
  const stop = async () => {
    await warRoom.close();
    await served.stop();
  };
  return { url: served.url, warRoom, readOnlyBecause: token ? undefined : `no admin token in $${variable}`, stop };
}
