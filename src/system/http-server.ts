/**
 * The options every HTTP server of ours is made with (fleetlockd, bootsmith-update-server, the
 * daemons' metrics listeners): a request's headers within 10 s and all of it within
 * `requestTimeoutMs`, so a slow or silent peer cannot hold a connection; and an idle connection
 * kept longer than clients keep theirs (Zincati's HTTP client, reqwest: 90 s; Node's fetch: 4 s),
 * so a client never sends on a connection the server has just closed, which it would report as
 * the other side closing (Node's default closed idle connections after 5 s).
 */
export function serverOptions(requestTimeoutMs: number): { requestTimeout: number; headersTimeout: number; keepAliveTimeout: number } {
  return { requestTimeout: requestTimeoutMs, headersTimeout: Math.min(requestTimeoutMs, 10_000), keepAliveTimeout: 95_000 };
}
