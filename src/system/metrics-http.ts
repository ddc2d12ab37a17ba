/**
 * /metrics (Prometheus text) and /healthz over HTTP: a route for a daemon's own listener
 * (fleetlockd, bootsmith-update-server), and a listener of its own for the daemons that have none
 * (locksmithd, update_engine with --metrics-listen).
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { serverOptions } from './http-server';

/**
 * Answers GET /metrics and GET /healthz (alive: `ok`), and with `notReady` GET /readyz: 200
 * `ready`, or 503 and why not (what notReady says), for a load balancer to send requests
 * elsewhere meanwhile. False for any other request (left to the caller).
 */
export function metricsRoute(registry: Registry, notReady?: () => Promise<string | undefined>): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' && path !== '/healthz' && !(path === '/readyz' && notReady)) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return true;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return true;
    }
    if (path === '/readyz') {
      notReady!().then(
        (why) => res.writeHead(why === undefined ? 200 : 503, { 'content-type': 'text/plain' }).end(why === undefined ? 'ready\n' : `not ready: ${why}\n`),
        (err: Error) => res.writeHead(503, { 'content-type': 'text/plain' }).end(`not ready: ${err.message}\n`),
      );
      return true;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
    );
    return true;
  };
}

/**
 * A readiness check for {@link metricsRoute} that asks its peer (etcd) at most once a second
 * however often it is probed: one check at a time, its answer kept `keepMs` after it settles.
 * A check that throws is not ready, for the reason its error gives.
 */
export function sharedReadiness(check: () => Promise<string | undefined>, keepMs = 1000): () => Promise<string | undefined> {
  let answer: Promise<string | undefined> | undefined;
  return () =>
    (answer ??= check()
      .catch((err: Error) => err.message)
      .finally(() => setTimeout(() => (answer = undefined), keepMs).unref()));
}

/** A listener serving only /metrics and /healthz; resolves once listening, with its URL. */
export function serveMetrics(registry: Registry, host: string, port: number): Promise<{ url: string; server: Server }> {
  const route = metricsRoute(registry);
  const server = createServer(serverOptions(10_000), (req, res) => {
    if (!route(req, res)) res.writeHead(404, { 'content-type': 'text/plain' }).end('try /metrics or /healthz\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address() as { port: number };
      resolve({ url: `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`, server });
    });
  });
}
