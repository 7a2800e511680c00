// An HTTP proxy in front of one gateway node. Workers reach the node's admin API only through it, so
// the fault matrix can hold one admin call (the flip, between fence and release) or fail every admin
// call for a while, exactly as a slow or sick node would, without touching the gateway's code.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface HeldCall {
  method: string;
  path: string;
  /** Resolves when the call is let through (or failed, if admin calls fail by then). */
  release(): void;
}

export interface AdminProxy {
  url: string;
  /** Admin calls answered 503 until this moment (epoch ms). */
  failAdminUntil(untilMs: number): void;
  /** Holds the first admin call matching `match`; resolves with it once it has arrived. */
  holdNext(match: (method: string, path: string) => boolean): Promise<HeldCall>;
  /** Calls seen, as "METHOD path status", for the report of a failed case. */
  readonly log: string[];
  close(): Promise<void>;
}

interface Hold {
  match: (method: string, path: string) => boolean;
  arrived: (call: HeldCall) => void;
}

export async function startAdminProxy(upstreamPort: number, port = 0): Promise<AdminProxy> {
  let failUntil = 0;
  const holds: Hold[] = [];
  const log: string[] = [];

  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse) => {
    const up = request(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${upstreamPort}` } },
      (answer) => {
        log.push(`${req.method} ${req.url} ${answer.statusCode}`);
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      },
    );
    up.on('error', (err) => {
      log.push(`${req.method} ${req.url} 502 (${err.message})`);
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `chaos proxy: gateway node unreachable (${err.message})` }));
    });
    up.end(body);
  };

  const failIfSick = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (Date.now() >= failUntil) return false;
    log.push(`${req.method} ${req.url} 503 (failing on purpose)`);
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'chaos proxy: this gateway node fails its admin calls for a while' }));
    return true;
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = req.url ?? '/';
      if (!path.startsWith('/admin/')) return forward(req, body, res);
      if (failIfSick(req, res)) return;
      const at = holds.findIndex((h) => h.match(req.method ?? 'GET', path));
      if (at < 0) return forward(req, body, res);
      const [hold] = holds.splice(at, 1);
      log.push(`${req.method} ${path} held`);
      hold.arrived({
        method: req.method ?? 'GET',
        path,
        release: () => {
          if (!failIfSick(req, res)) forward(req, body, res);
        },
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    log,
    failAdminUntil: (until) => {
      failUntil = until;
    },
    holdNext: (match) => new Promise<HeldCall>((arrived) => holds.push({ match, arrived })),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
