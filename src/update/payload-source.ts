/**
 * Where a payload's bytes come from: a file, or HTTP(S) streamed and resumed with a Range request
 * where the connection dropped. `PayloadReader` hands out exact byte counts and feeds every byte
 * to the hashes as it passes.
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
  /** The bytes from `offset` on, and the whole payload's size when known. */
  open(offset: number): Promise<{ size?: number; chunks: AsyncIterable<Buffer> }>;
}

const chunkSize = 1 << 20;

export function fileSource(path: string): PayloadSource {
  return {
    name: path,
    resumable: false,
    async open(offset) {
      const size = statSync(path).size;
      return { size, chunks: createReadStream(path, { start: offset, highWaterMark: chunkSize }) };
    },
  };
}

/** GET `url` from `offset`: a 206 must start there; a server that ignores Range (200) is skipped ahead. */
function get(url: URL, offset: number, idleMs: number): Promise<{ size?: number; chunks: AsyncIterable<Buffer> }> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const req = client.get(url, { headers }, (res) => {
      const status = res.statusCode ?? 0;
      if (status !== 200 && status !== 206) {
        res.resume();
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
    req.setTimeout(idleMs, () => req.destroy(new FetchError(`${url.href}: no data for ${idleMs} ms`, true)));
    req.on('error', (err) => reject(err instanceof FetchError ? err : new FetchError(`${url.href}: ${err.message}`, true)));
  });
}

export function httpSource(href: string, idleMs = 30_000): PayloadSource {
  const url = new URL(href);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${href}: only http and https URLs are fetched`);
  return { name: href, resumable: true, open: (offset) => get(url, offset, idleMs) };
}

export function sourceFor(where: string): PayloadSource {
  return /^https?:\/\//i.test(where) ? httpSource(where) : fileSource(where);
}

export const defaultResumePolicy: RetryPolicy = { attempts: 8, backoffMs: 500, maxBackoffMs: 10_000, timeoutMs: 30_000, deadlineMs: 10 * 60_000 };

/**
 * Exact reads over a source. A resumable source that fails mid-way is reopened from the first byte
 * not yet received, with backoff, up to the policy's attempts in a row.
 */
export class PayloadReader {
  /** Bytes handed out so far. */
  position = 0;
  /** Total size, once the source says it. */
  size: number | undefined;
  /** How many times the source was reopened to resume. */
  resumes = 0;
  private received = 0;
  private iterator: AsyncIterator<Buffer> | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly source: PayloadSource,
    private readonly onBytes: (chunk: Buffer) => void,
    private readonly policy: RetryPolicy = defaultResumePolicy,
  ) {}

  private async next(): Promise<Buffer | undefined> {
    let failures = 0;
    for (;;) {
      try {
        if (!this.iterator) {
          const opened = await this.source.open(this.received);
          this.size ??= opened.size;
          this.iterator = opened.chunks[Symbol.asyncIterator]();
        }
        const r = await this.iterator.next();
        if (r.done) return undefined;
        this.received += r.value.length;
        return r.value;
      } catch (err) {
        this.iterator = undefined;
        const retryable = this.source.resumable && (!(err instanceof FetchError) || err.retryable);
        failures++;
        if (!retryable || failures >= this.policy.attempts) {
          throw new PayloadError('download', `reading ${this.source.name} at byte ${this.received}: ${(err as Error).message}${failures > 1 ? ` (after ${failures} tries)` : ''}`);
        }
        this.resumes++;
        await new Promise((r) => setTimeout(r, backoff(failures, this.policy)));
      }
    }
  }

  /** Exactly `n` bytes, or a 'truncated' error naming what was asked for. */
  async read(n: number, what: string): Promise<Buffer> {
    while (this.pendingBytes < n) {
      const chunk = await this.next();
      if (!chunk) throw new PayloadError('truncated', `the payload ends at byte ${this.position + this.pendingBytes}, inside ${what} (bytes ${this.position}-${this.position + n - 1})`);
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    this.position += n;
    this.onBytes(out);
    return out;
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
