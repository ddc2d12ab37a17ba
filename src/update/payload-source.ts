/**
 * Where a payload's bytes come from: a file, or HTTP(S) streamed and resumed with a Range request
 * where the connection dropped or stalled. `PayloadReader` hands out exact byte counts, feeds every
 * byte to the hashes as it passes, and bounds what a server can make it take: never more bytes
 * than announced, never longer than the policy's deadline.
 */
import { createReadStream, statSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { backoff, FetchError } from '../datasource/http';
import type { RetryPolicy } from '../datasource/http';
import { PayloadError } from './payload-format';

export interface PayloadSource {
  /** For messages: the path or URL. */
  name: string;
  /** Whether a failed read may be resumed where it stopped. */
  resumable: boolean;
  /**
   * The bytes from `offset` on, and the whole payload's size when known. `signal` aborts the
   * request and its stream: the reader uses it for stalls, its deadline and when it is done.
   */
  open(offset: number, signal: AbortSignal): Promise<{ size?: number; chunks: AsyncIterable<Buffer> }>;
}

const chunkSize = 1 << 20;

export function fileSource(path: string): PayloadSource {
  return {
    name: path,
    resumable: false,
    async open(offset, signal) {
      const size = statSync(path).size;
      return { size, chunks: createReadStream(path, { start: offset, highWaterMark: chunkSize, signal }) };
    },
  };
}

/** Connection errors that say nothing listens at the URL: a download that never began is not retried for them. */
const unreachable = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_NONAME']);

/** GET `url` from `offset`: a 206 must start there; a server that ignores Range (200) is skipped ahead. */
function get(url: URL, offset: number, signal: AbortSignal): Promise<{ size?: number; chunks: AsyncIterable<Buffer> }> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    // A connection of its own (no agent): a payload is one long response, and an abort after it is
    // complete must not reach a socket the agent's pool has handed on.
    const req = client.get(url, { headers, signal, agent: false }, (res) => {
      const status = res.statusCode ?? 0;
      if (status !== 200 && status !== 206) {
        res.destroy();
        reject(new FetchError(`${url.href}: HTTP ${status}`, status >= 500 || status === 429, status));
        return;
      }
      let size: number | undefined;
      let skip = 0;
      if (status === 206) {
        const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
        if (!m || Number(m[1]) !== offset) {
          res.destroy();
          reject(new FetchError(`${url.href}: asked for bytes from ${offset}, got Content-Range ${res.headers['content-range'] ?? '(none)'}`, false, status));
          return;
        }
        if (m[2] !== '*') size = Number(m[2]);
      } else {
        skip = offset;
        if (res.headers['content-length'] !== undefined) size = Number(res.headers['content-length']);
      }
      async function* chunks(): AsyncIterable<Buffer> {
        for await (const chunk of res as AsyncIterable<Buffer>) {
          if (skip >= chunk.length) {
            skip -= chunk.length;
            continue;
          }
          yield skip > 0 ? chunk.subarray(skip) : chunk;
          skip = 0;
        }
        if (!res.complete) throw new FetchError(`${url.href}: the connection closed before the whole body arrived`, true);
      }
      resolve({ ...(size !== undefined ? { size } : {}), chunks: chunks() });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof FetchError) reject(err);
      // Nothing listens there: a typo in the URL, not a server restarting mid-download.
      else reject(new FetchError(`${url.href}: ${err.message}`, !(offset === 0 && unreachable.has(err.code ?? ''))));
    });
  });
}

export function httpSource(href: string): PayloadSource {
  const url = new URL(href);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${href}: only http and https URLs are fetched`);
  return { name: href, resumable: true, open: (offset, signal) => get(url, offset, signal) };
}

export function sourceFor(where: string): PayloadSource {
  return /^https?:\/\//i.test(where) ? httpSource(where) : fileSource(where);
}

/**
 * How a download is resumed and bounded: `timeoutMs` is the stall timeout (no byte for that long:
 * the request is dropped and resumed), `attempts` the most tries in a row without a byte,
 * `deadlineMs` the whole download's bound, resumes and backoff included. Default: a 30 s stall
 * timeout, 8 tries, backoff from 0.5 s up to 10 s, and 60 minutes in all (a 1 GiB payload at
 * 0.3 MB/s).
 */
/** What limits a reader: the size the update server announced, or the end the manifest gives. */
export type Bound = 'announced' | 'manifest';

export const defaultResumePolicy: RetryPolicy = { attempts: 8, backoffMs: 500, maxBackoffMs: 10_000, timeoutMs: 30_000, deadlineMs: 60 * 60_000 };

/**
 * Exact reads over a source. A resumable source that fails or stalls mid-way is reopened from the
 * first byte not yet received, with backoff, up to the policy's attempts in a row and within its
 * deadline. No more bytes are taken than `limit` (the announced size, then the end the manifest
 * gives): a source that sends more is refused at the chunk that passes it, so neither memory nor
 * time depends on what the server sends.
 */
export class PayloadReader {
  /** Bytes handed out (read or skipped) so far. */
  position = 0;
  /** Total size, once the source says it. */
  size: number | undefined;
  /** How many times the source was reopened to resume. */
  resumes = 0;
  private received = 0;
  private iterator: AsyncIterator<Buffer> | undefined;
  private controller: AbortController | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private deadline: number | undefined;
  private limit = Number.POSITIVE_INFINITY;
  private bound: Bound = 'announced';

  constructor(
    private readonly source: PayloadSource,
    private readonly onBytes: (chunk: Buffer) => void,
    private readonly policy: RetryPolicy = defaultResumePolicy,
  ) {}

  /** At most `bytes` are accepted from now on: the announced size, then where the manifest says the payload ends. */
  limitTo(bytes: number, bound: Bound): void {
    if (bytes >= this.limit) return;
    this.limit = bytes;
    this.bound = bound;
    if (this.received > bytes) throw this.pastLimit();
    if (this.size !== undefined && this.size > bytes) throw this.tooLarge(this.size);
  }

  private pastLimit(): PayloadError {
    return new PayloadError('size', `more data follows byte ${this.limit}, where the payload ends by ${this.bound === 'announced' ? 'its announced size' : 'its manifest'}`);
  }

  private tooLarge(size: number): PayloadError {
    return new PayloadError('size', `the payload is ${size} bytes, more than the ${this.limit} ${this.bound === 'announced' ? 'announced' : 'its manifest accounts for'}`);
  }

  /** Drops the current request and stream, if any. */
  private drop(): void {
    this.controller?.abort();
    this.controller = undefined;
    this.iterator = undefined;
  }

  /** Stops reading: the request is dropped, so a server still sending costs nothing more. */
  close(): void {
    this.drop();
  }

  /** `p`, unless no byte comes within the stall timeout or the deadline passes first: then the request is dropped. */
  private async timed<T>(p: Promise<T>): Promise<T> {
    const left = this.deadline! - Date.now();
    const stall = Math.min(this.policy.timeoutMs, left);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.drop();
        reject(
          stall < this.policy.timeoutMs
            ? new PayloadError('download', `reading ${this.source.name}: not done within ${this.policy.deadlineMs / 1000} s (byte ${this.received} reached)`)
            : new FetchError(`${this.source.name}: no data for ${stall} ms`, true),
        );
      }, Math.max(0, stall));
    });
    try {
      return await Promise.race([p, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async next(): Promise<Buffer | undefined> {
    this.deadline ??= Date.now() + this.policy.deadlineMs;
    let failures = 0;
    for (;;) {
      try {
        if (!this.iterator) {
          this.controller = new AbortController();
          const opened = await this.timed(this.source.open(this.received, this.controller.signal));
          if (opened.size !== undefined && opened.size > this.limit) throw this.tooLarge(opened.size);
          this.size ??= opened.size;
          this.iterator = opened.chunks[Symbol.asyncIterator]();
        }
        const r = await this.timed(this.iterator.next());
        if (r.done) return undefined;
        if (this.received + r.value.length > this.limit) throw this.pastLimit();
        this.received += r.value.length;
        return r.value;
      } catch (err) {
        this.drop();
        if (err instanceof PayloadError) throw err;
        failures++;
        const retryable = this.source.resumable && (!(err instanceof FetchError) || err.retryable);
        const wait = backoff(failures, this.policy);
        if (!retryable || failures >= this.policy.attempts || Date.now() + wait >= this.deadline) {
          throw new PayloadError('download', `reading ${this.source.name} at byte ${this.received}: ${(err as Error).message}${failures > 1 ? ` (after ${failures} tries)` : ''}`);
        }
        this.resumes++;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** The next at most `max` bytes held or received, taken off the front. */
  private async take(max: number, what: string, wanted: number, from: number): Promise<Buffer> {
    if (this.pendingBytes === 0) {
      const chunk = await this.next();
      if (!chunk) throw new PayloadError('truncated', `the payload ends at byte ${this.position}, inside ${what} (bytes ${from}-${from + wanted - 1})`);
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
    const head = this.pending[0]!;
    const out = head.length <= max ? head : head.subarray(0, max);
    if (out === head) this.pending.shift();
    else this.pending[0] = head.subarray(max);
    this.pendingBytes -= out.length;
    this.position += out.length;
    this.onBytes(out);
    return out;
  }

  /** Exactly `n` bytes, or a 'truncated' error naming what was asked for. */
  async read(n: number, what: string): Promise<Buffer> {
    const from = this.position;
    const parts: Buffer[] = [];
    for (let got = 0; got < n; ) {
      const part = await this.take(n - got, what, n, from);
      parts.push(part);
      got += part.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  /** Passes over `n` bytes (hashing them) without keeping them: a gap costs no memory, however long. */
  async skip(n: number, what: string): Promise<void> {
    const from = this.position;
    for (let got = 0; got < n; ) got += (await this.take(n - got, what, n, from)).length;
  }

  /** Whether anything follows the bytes read so far. */
  async atEnd(): Promise<boolean> {
    if (this.pendingBytes > 0) return false;
    const chunk = await this.next();
    if (!chunk) return true;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    return false;
  }
}
