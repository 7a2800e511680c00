// An HTTP proxy in front of Azurite that counts the requests that really go over the wire,
// so a test checks what was sent rather than what the uploader says it sent.
import { createServer, request, type Server } from 'node:http';

export interface CountingProxy {
  connectionString: string;
  /** Requests seen, as "METHOD comp" (e.g. "PUT block", "PUT blocklist"). */
  seen: string[];
  close(): Promise<void>;
}

export async function startCountingProxy(azuriteConnectionString: string): Promise<CountingProxy> {
  const upstream = new URL(/BlobEndpoint=([^;]+)/.exec(azuriteConnectionString)![1]);
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://proxy');
    seen.push(`${req.method} ${url.searchParams.get('comp') ?? ''}`.trim());
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
      (up) => {
        res.writeHead(up.statusCode!, up.headers);
        up.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    seen,
    connectionString: azuriteConnectionString.replace(/BlobEndpoint=[^;]+/, `BlobEndpoint=http://127.0.0.1:${port}${upstream.pathname}`),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
