/**
 * Connecting to etcd as locksmith's tools do: endpoints (repeatable, comma-separated), TLS files
 * and basic auth. A CA file alone is enough (server-authenticated TLS); a client certificate
 * needs its key. Only the endpoints given are used: no defaults are added to them.
 *
 * The etcd3 client (gRPC and its protocol files) takes 150 to 250 ms to load, most of a short
 * command's time: it is loaded when a client is made, not when this module is, and `reachEtcd`
 * finds an etcd that is not there without loading it at all.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Etcd3, IOptions } from 'etcd3';

export interface EtcdSettings {
  /** Default http://127.0.0.1:2379. */
  endpoints: string[];
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  /** Time allowed to connect, in ms. Default 5,000. */
  dialTimeoutMs?: number;
}

export const defaultEndpoints = ['http://127.0.0.1:2379'];

/** Splits repeated and comma-separated endpoint values into one list. */
export function splitEndpoints(values: string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}

/** The client's options from `settings`; an error when they do not fit together or a file cannot be read. */
function clientOptions(settings: EtcdSettings): IOptions {
  const options: IOptions = { hosts: settings.endpoints.length > 0 ? settings.endpoints : defaultEndpoints, dialTimeout: settings.dialTimeoutMs ?? 5_000 };
  if (Boolean(settings.certFile) !== Boolean(settings.keyFile)) throw new Error('a client certificate needs its key: give both --etcd-certfile and --etcd-keyfile');
  if (settings.caFile || settings.certFile) {
    const read = (file: string, what: string) => {
      try {
        return readFileSync(file);
      } catch (err) {
        throw new Error(`cannot read the ${what} ${file}: ${(err as Error).message}`, { cause: err });
      }
    };
    options.credentials = {
      // No CA file: grpc's own roots (null), so a client certificate alone still verifies the server.
      rootCertificate: settings.caFile ? read(settings.caFile, 'CA file') : (null as unknown as Buffer),
      ...(settings.certFile ? { certChain: read(settings.certFile, 'certificate'), privateKey: read(settings.keyFile!, 'key') } : {}),
    };
  }
  if (settings.username) options.auth = { username: settings.username, password: settings.password ?? '' };
  return options;
}

function newClient(options: IOptions): Etcd3 {
  // Loaded here, on first use (see the top of this file).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Etcd3: Client } = require('etcd3') as typeof import('etcd3');
  return new Client(options);
}

/** A client for `settings`. It connects on its first call. */
export function connectEtcd(settings: EtcdSettings): Etcd3 {
  return newClient(clientOptions(settings));
}

/**
 * A client for `settings` once one endpoint accepts connections (see reachEtcd): a bad setting,
 * then an etcd that is not there, fail before the client is loaded.
 */
export async function openEtcd(settings: EtcdSettings): Promise<Etcd3> {
  const options = clientOptions(settings);
  await reachEtcd(([] as string[]).concat(options.hosts), options.dialTimeout);
  return newClient(options);
}

/** What an endpoint's TCP connection failed with, in words. */
function connectFailure(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    default:
      return err.message;
  }
}

/** An endpoint's host and port when it names both (`http://host:port`, `host:port`), else undefined. */
function hostAndPort(endpoint: string): { host: string; port: number } | undefined {
  const m = /^(?:[a-z][a-z0-9+.-]*:\/\/)?(\[[^\]]+\]|[^:/[\]]+):(\d{1,5})\/?$/i.exec(endpoint);
  if (!m) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** Tries a TCP connection to `endpoint`: undefined when it opens (or cannot be tried), else why not. */
function probe(endpoint: string, timeoutMs: number): Promise<string | undefined> {
  const target = hostAndPort(endpoint);
  if (!target) return Promise.resolve(undefined); // no port to try: leave it to the client
  return new Promise((resolve) => {
    const socket = connect(target);
    const done = (why: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (err) => done(connectFailure(err)));
  });
}

/** The words etcd's failures start with, as locksmith's client says them. */
const unavailable = 'etcd cluster is unavailable or misconfigured';

/**
 * Resolves as soon as one endpoint accepts a TCP connection; rejects when none does, naming each
 * endpoint and why (such as `http://127.0.0.1:2379: connection refused`). A refused connection
 * fails in a few milliseconds, without loading the etcd client.
 */
export async function reachEtcd(endpoints: readonly string[], timeoutMs = 5_000): Promise<void> {
  const hosts = endpoints.length > 0 ? endpoints : defaultEndpoints;
  const failures: string[] = new Array(hosts.length);
  await new Promise<void>((resolve, reject) => {
    let pending = hosts.length;
    hosts.forEach((endpoint, i) => {
      void probe(endpoint, timeoutMs).then((why) => {
        if (why === undefined) return resolve();
        failures[i] = `${endpoint}: ${why}`; // in the order given, whichever answers first
        if (--pending === 0) reject(new Error(`${unavailable}: ${failures.join('; ')}`));
      });
    });
  });
}

/**
 * One line for a failure of an etcd call: gRPC's status code, "No connection established. Last
 * error:" and its empty "Resolution note:" are left out; the endpoints are named.
 */
export function describeEtcdError(err: unknown, endpoints: readonly string[]): string {
  const message = err instanceof Error ? err.message : String(err);
  const cause = message
    .replace(/^\d+ [A-Z_]+: /, '')
    .replace(/^No connection established\. Last error: (?:Error: )?/, '')
    .replace(/\.?\s*Resolution note:[\s\S]*$/, '')
    .replace(/\s+/g, ' ')
    .trim();
  return `${unavailable}: ${(endpoints.length > 0 ? endpoints : defaultEndpoints).join(', ')}: ${cause || 'no reason given'}`;
}
