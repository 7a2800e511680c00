// An HTTP proxy in front of Azurite that counts the requests that really go over the wire,
// so a test checks what was sent rather than what the uploader says it sent.
import { createServer, request, type Server } from 'node:http';

export interface CountingProxy {
  connectionString: string;
  /** Requests seen, as "METHOD comp" (e.g. "PUT block", "PUT blocklist"). */
  seen: string[];
  /** Every request's headers, in the order they arrived. */
  headers: Record<string, string | string[] | undefined>[];
  /** When set, a request is forwarded only after this many milliseconds (0: at once). */
  delay?: (method: string, headers: Record<string, string | string[] | undefined>) => number;
  /** When set, the response to a request it picks loses these headers on the way back. */
  dropResponseHeaders?: (method: string, comp: string) => string[];
  close(): Promise<void>;
}

export async function startCountingProxy(azuriteConnectionString: string): Promise<CountingProxy> {
  const upstream = new URL(/BlobEndpoint=([^;]+)/.exec(azuriteConnectionString)![1]);
  const seen: string[] = [];
  const headers: CountingProxy['headers'] = [];
  const proxy: CountingProxy = {
    seen,
    headers,
    connectionString: '',
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url!, 'http://proxy');
    seen.push(`${req.method} ${url.searchParams.get('comp') ?? ''}`.trim());
    headers.push(req.headers);
    const wait = proxy.delay?.(req.method!, req.headers) ?? 0;
    if (wait > 0) {
      req.pause();
      await new Promise((r) => setTimeout(r, wait));
    }
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
      (up) => {
        const upHeaders = { ...up.headers };
        for (const name of proxy.dropResponseHeaders?.(req.method!, url.searchParams.get('comp') ?? '') ?? []) delete upHeaders[name.toLowerCase()];
        res.writeHead(up.statusCode!, upHeaders);
        up.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  proxy.connectionString = azuriteConnectionString.replace(/BlobEndpoint=[^;]+/, `BlobEndpoint=http://127.0.0.1:${port}${upstream.pathname}`);
  return proxy;
}
