/**
 * Connecting to etcd as locksmith's tools do: endpoints (repeatable, comma-separated), TLS files
 * and basic auth. A CA file alone is enough (server-authenticated TLS); a client certificate
 * needs its key. Only the endpoints given are used: no defaults are added to them.
 */
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import type { IOptions } from 'etcd3';

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

export function connectEtcd(settings: EtcdSettings): Etcd3 {
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
  return new Etcd3(options);
}
