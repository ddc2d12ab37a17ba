/**
 * A loopback metadata service for tests, answering as EC2's IMDS (v1 and v2) and OpenStack's do,
 * on the paths coreos-cloudinit reads. It can be told to fail: 500s, slow answers, connection
 * resets, truncated bodies, bodies that drip a byte a second; and it logs every request.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** `drip`: the headers at once, then the body (padded to at least 60 bytes) one byte a second, as a stalling peer would. */
export type Failure = '500' | 'slow' | 'reset' | 'truncate' | '403' | 'drip';

export interface Ec2Settings {
  userData?: string | Buffer;
  /** meta-data values by path: hostname, local-ipv4, public-ipv4, instance-id, ipv6 ... */
  metaData?: Record<string, string>;
  /** Public keys by name, listed as public-keys/N=name. */
  keys?: Record<string, string>;
  /** v2: tokens required; v1: no token endpoint (404); v2-optional: tokens accepted, not required; forbidden: token PUT 403. */
  imds?: 'v2' | 'v2-optional' | 'v1' | 'forbidden';
  /** A token stops working after this many requests with it (then 401). */
  tokenUses?: number;
  /** Tokens live for at most this many ms, whatever TTL was asked (then 401). */
  tokenLifetimeMs?: number;
}

export interface OpenstackSettings {
  metaData?: object;
  userData?: string;
  networkData?: object;
}

export interface Logged {
  method: string;
  path: string;
  /** The status answered (0 for a reset or a slow answer not given). */
  status: number;
  token: string | undefined;
  ttl: string | undefined;
}

export class FakeMetadata {
  readonly requests: Logged[] = [];
  /** Failures to answer with, one per request, before answering normally. */
  failures: Failure[] = [];
  /** Paths that always fail this way. */
  alwaysFail = new Map<string, Failure>();
  /** Paths that fail this way once, the next time they are asked for. */
  failOnce = new Map<string, Failure>();
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  /** Uses and expiry time of each token handed out. */
  private readonly tokens = new Map<string, { uses: number; expires: number }>();
  private nextToken = 1;

  constructor(
    public ec2: Ec2Settings = {},
    public openstack: OpenstackSettings | undefined = undefined,
  ) {}

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this.url;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private fail(failure: Failure, res: http.ServerResponse, body: string): void {
    if (failure === '500') {
      res.writeHead(500).end('internal error');
    } else if (failure === '403') {
      res.writeHead(403).end('forbidden');
    } else if (failure === 'slow') {
      setTimeout(() => res.writeHead(200).end(body), 3_000).unref();
    } else if (failure === 'drip') {
      const bytes = Buffer.from(body.padEnd(60, ' '));
      res.writeHead(200, { 'content-length': String(bytes.length) });
      let sent = 0;
      const tick = setInterval(() => {
        if (res.destroyed || sent >= bytes.length) {
          clearInterval(tick);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(bytes.subarray(sent, ++sent));
      }, 1_000);
      tick.unref();
      res.on('close', () => clearInterval(tick));
    } else if (failure === 'reset') {
      res.socket?.destroy();
    } else {
      res.writeHead(200, { 'content-length': String(body.length + 100) });
      res.write(body.slice(0, Math.ceil(body.length / 2)));
      res.socket?.end();
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').replace(/^\/+/, '');
    const token = req.headers['x-aws-ec2-metadata-token'] as string | undefined;
    const logged: Logged = { method: req.method ?? 'GET', path, status: 0, token, ttl: req.headers['x-aws-ec2-metadata-token-ttl-seconds'] as string | undefined };
    this.requests.push(logged);
    const answer = this.answer(req.method ?? 'GET', path, token, logged.ttl);
    const once = this.failOnce.get(path);
    if (once) this.failOnce.delete(path);
    const failure = this.failures.shift() ?? once ?? this.alwaysFail.get(path);
    if (failure && answer.status === 200) {
      logged.status = failure === '500' ? 500 : failure === '403' ? 403 : failure === 'truncate' || failure === 'drip' ? 200 : 0;
      this.fail(failure, res, answer.body.toString());
      return;
    }
    logged.status = answer.status;
    res.writeHead(answer.status, { 'content-length': String(answer.body.length), ...answer.headers }).end(answer.body);
  }

  private answer(method: string, path: string, token: string | undefined, ttl?: string): { status: number; body: Buffer; headers?: Record<string, string> } {
    const ok = (body: string | Buffer) => ({ status: 200, body: Buffer.from(body) });
    const none = { status: 404, body: Buffer.from('not found') };
    if (path.startsWith('openstack/')) {
      const os = this.openstack;
      if (!os) return none;
      if (path === 'openstack/latest/meta_data.json' && os.metaData) return ok(JSON.stringify(os.metaData));
      if (path === 'openstack/latest/user_data' && os.userData !== undefined) return ok(os.userData);
      if (path === 'openstack/latest/network_data.json' && os.networkData) return ok(JSON.stringify(os.networkData));
      return none;
    }
    const mode = this.ec2.imds ?? 'v2';
    if (path === 'latest/api/token') {
      if (mode === 'v1') return none;
      if (mode === 'forbidden') return { status: 403, body: Buffer.from('forbidden') };
      if (method !== 'PUT') return { status: 405, body: Buffer.from('method not allowed') };
      // As IMDS: a TTL of 1 to 21600 seconds must be asked for, and is echoed in the answer.
      const seconds = Number(ttl);
      if (!Number.isInteger(seconds) || seconds < 1 || seconds > 21600) return { status: 400, body: Buffer.from('bad ttl') };
      const t = `token-${this.nextToken++}`;
      this.tokens.set(t, { uses: 0, expires: Date.now() + Math.min(seconds * 1000, this.ec2.tokenLifetimeMs ?? Infinity) });
      return { ...ok(t), headers: { 'x-aws-ec2-metadata-token-ttl-seconds': String(seconds) } };
    }
    if (mode === 'v2' || (mode === 'v2-optional' && token)) {
      const state = token === undefined ? undefined : this.tokens.get(token);
      const expired = !state || Date.now() >= state.expires || (this.ec2.tokenUses !== undefined && state.uses >= this.ec2.tokenUses);
      if (expired) return { status: 401, body: Buffer.from('unauthorized') };
      state.uses++;
    }
    const prefix = '2009-04-04/';
    if (!path.startsWith(prefix)) return none;
    const rest = path.slice(prefix.length);
    if (rest === 'user-data') return this.ec2.userData === undefined ? none : ok(this.ec2.userData);
    if (!rest.startsWith('meta-data/')) return none;
    const key = rest.slice('meta-data/'.length);
    const keys = Object.entries(this.ec2.keys ?? {});
    if (key === 'public-keys/' || key === 'public-keys') return keys.length ? ok(keys.map(([name], i) => `${i}=${name}`).join('\n')) : none;
    const m = /^public-keys\/(\d+)\/openssh-key$/.exec(key);
    if (m) return keys[Number(m[1])] ? ok(keys[Number(m[1])]![1]) : none;
    const value = this.ec2.metaData?.[key];
    return value === undefined ? none : ok(value);
  }
}
