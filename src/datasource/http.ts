/**
 * HTTP for datasources: a per-request timeout, bounded retries with exponential backoff and full
 * jitter, and a total deadline. Both are wall-clock bounds on everything, the body included, and
 * a body is capped in size: time and memory never depend on what the peer sends. Every answer is one of: the body, "not found" (404: no user data),
 * or an error that says whether it was worth retrying (5xx, reset, timeout, truncated body) or
 * final (other 4xx).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { defaultRetryPolicy } from './defaults';
import type { RetryPolicy } from './defaults';

export type { Retry, RetryPolicy } from './defaults';
export { defaultRetryPolicy } from './defaults';

export interface HttpRequest {
  url: string;
  method?: 'GET' | 'PUT' | 'POST';
  headers?: Record<string, string>;
  body?: string;
}

export type HttpResult = { kind: 'ok'; status: number; body: Buffer; headers: http.IncomingHttpHeaders } | { kind: 'not-found' };

/** An HTTP failure: `retryable` when trying again may help (5xx, network errors, timeouts, truncated bodies). */
export class FetchError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Largest body accepted, so a hostile server cannot fill memory. 16 MiB. */
export const maxBody = 16 * 1024 * 1024;

/**
 * One request, no retry. `timeoutMs` bounds the whole exchange by the clock, from connecting to
 * the body's last byte: a socket idle timeout would not, since a server that sends a byte a
 * second is never idle. The body is capped at maxBody (refused at once when Content-Length says
 * more). Omaha requests (update/attempter.ts) come through here too, so they get the same bounds.
 */
export function request(req: HttpRequest, timeoutMs: number): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      reject(new FetchError(`${req.url} is not a URL`, false));
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      reject(new FetchError(`${req.url}: only http and https URLs are fetched`, false));
      return;
    }
    // The first outcome wins: a timeout, an oversized body or the end; later events are ignored.
    let settled = false;
    const fail = (err: FetchError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(err);
      r.destroy();
    };
    const succeed = (result: HttpResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const client = url.protocol === 'https:' ? https : http;
    const r = client.request(url, { method: req.method ?? 'GET', headers: req.headers ?? {} }, (res) => {
      const status = res.statusCode ?? 0;
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > maxBody) {
        fail(new FetchError(`${req.url}: body of ${declared} bytes, more than the ${maxBody} accepted`, false, status));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBody) fail(new FetchError(`${req.url}: body larger than ${maxBody} bytes`, false, status));
        else chunks.push(chunk);
      });
      // An error while the body streams in is the connection closing early: a truncated body.
      res.on('error', (err) => fail(new FetchError(`${req.url}: the connection closed before the whole body arrived (${err.message})`, true, status)));
      res.on('end', () => {
        if (!res.complete) {
          fail(new FetchError(`${req.url}: the connection closed before the whole body arrived`, true, status));
          return;
        }
        const body = Buffer.concat(chunks);
        const expected = res.headers['content-length'];
        if (expected !== undefined && Number(expected) !== body.length) {
          fail(new FetchError(`${req.url}: got ${body.length} of ${expected} bytes`, true, status));
          return;
        }
        if (status === 404) succeed({ kind: 'not-found' });
        else if (status >= 200 && status < 300) succeed({ kind: 'ok', status, body, headers: res.headers });
        else fail(new FetchError(`${req.url}: HTTP ${status}`, status >= 500 || status === 429, status));
      });
    });
    const timer = setTimeout(() => fail(new FetchError(`${req.url}: no complete answer within ${timeoutMs} ms`, true)), timeoutMs);
    r.on('error', (err) => fail(err instanceof FetchError ? err : new FetchError(`${req.url}: ${err.message}`, true)));
    r.end(req.body);
  });
}

/** The wait before retry number `attempt` (1-based): full jitter over an exponential backoff. */
export function backoff(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const cap = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** (attempt - 1));
  return Math.round(random() * cap);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Tries `attempt` until it succeeds, a failure is final, or the policy's attempts or deadline run
 * out, waiting `backoff` between tries; each try is given the time left, at most the policy's
 * timeout. `failure` turns what a try threw into the error kept, and says whether it may be tried
 * again (it rethrows what is neither); `gaveUp` is the error when the tries run out, given the
 * last failure of a full try (one shortened by the deadline counts only when it was the first).
 * Every fetch from a peer with retries goes through here: HTTP (fetchWithRetry) and CloudSigma's
 * serial port.
 */
export async function withRetries<T, E extends Error & { retryable: boolean }>(
  what: string,
  policy: RetryPolicy,
  attempt: (timeoutMs: number) => Promise<T>,
  failure: (err: unknown) => E,
  gaveUp: (last: E | undefined) => Error,
): Promise<T> {
  const deadline = Date.now() + policy.deadlineMs;
  let last: E | undefined;
  for (let n = 1; n <= policy.attempts; n++) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    const clipped = left < policy.timeoutMs;
    let failed: E;
    try {
      return await attempt(clipped ? left : policy.timeoutMs);
    } catch (err) {
      failed = failure(err);
      if (!failed.retryable) throw failed;
    }
    // A try cut short by the deadline says little ("no answer within 3 ms"): the failure of an
    // earlier full try is the one worth reporting.
    if (!clipped || !last) last = failed;
    if (n === policy.attempts) break;
    const wait = backoff(n, policy);
    if (Date.now() + wait >= deadline) break;
    policy.onRetry?.({ url: what, attempt: n + 1, attempts: policy.attempts, cause: failed.message, waitMs: wait });
    await sleep(wait);
  }
  throw gaveUp(last);
}

/** A request with retries: retryable failures are tried again until the attempts or the deadline run out. */
export function fetchWithRetry(req: HttpRequest, policy: RetryPolicy = defaultRetryPolicy): Promise<HttpResult> {
  return withRetries(
    req.url,
    policy,
    (timeoutMs) => request(req, timeoutMs),
    (err) => (err instanceof FetchError ? err : new FetchError(String(err), true)),
    (last) => new FetchError(`${last?.message ?? req.url} (gave up after retrying)`, false, last?.status),
  );
}
