/**
 * EC2's instance metadata service (and EC2-compatible clouds): IMDSv2 first (PUT a session token,
 * send it with every request, renew it on 401), IMDSv1 when the token endpoint is absent (404) or
 * refused (403, 405). Reads user data and meta-data under the 2009-04-04 API version, as
 * coreos-cloudinit does.
 */
import { FetchError, fetchWithRetry } from './http';
import { userDataOf } from './simple';
import type { HttpResult, RetryPolicy } from './http';
import { hostnameValue, instanceIdValue, ipAddressValue, maxPublicKeys, sshPublicKeyValue } from './metadata-values';
import type { Datasource, Metadata, SshPublicKey } from './types';

const version = '2009-04-04';
/** Session token lifetime asked for, in seconds (6 hours, as cloud-init and Ignition ask). */
const tokenTtl = '21600';
/** How errors name this source. */
const where = 'ec2 metadata service';

class Imds {
  /** undefined: not asked yet; null: IMDSv1 (no token). */
  private token: string | null | undefined;

  constructor(
    private readonly base: string,
    private readonly policy: RetryPolicy,
  ) {}

  private async sessionToken(): Promise<string | null> {
    if (this.token !== undefined) return this.token;
    try {
      const r = await fetchWithRetry({ url: `${this.base}latest/api/token`, method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': tokenTtl } }, this.policy);
      this.token = r.kind === 'ok' ? r.body.toString('utf8').trim() : null; // 404: no IMDSv2 here
    } catch (err) {
      if (err instanceof FetchError && (err.status === 403 || err.status === 405)) this.token = null;
      else throw err;
    }
    return this.token;
  }

  /** GET a path under the base, with the session token; a 401 means the token expired: renew it once. */
  async get(path: string): Promise<HttpResult> {
    for (let renewed = false; ; renewed = true) {
      const token = await this.sessionToken();
      const headers: Record<string, string> = token ? { 'X-aws-ec2-metadata-token': token } : {};
      try {
        return await fetchWithRetry({ url: `${this.base}${path}`, headers }, this.policy);
      } catch (err) {
        if (!(err instanceof FetchError) || err.status !== 401 || renewed) throw err;
        this.token = undefined;
      }
    }
  }

  /** A meta-data value as text, or undefined when the service does not have it. */
  async text(path: string): Promise<string | undefined> {
    const r = await this.get(`${version}/meta-data/${path}`);
    return r.kind === 'ok' ? r.body.toString('utf8').trim() || undefined : undefined;
  }
}

/** The keys under meta-data/public-keys/: lines `0=name`, each read from `public-keys/0/openssh-key`. */
async function publicKeys(imds: Imds): Promise<SshPublicKey[]> {
  const list = await imds.text('public-keys/');
  if (!list) return [];
  const keys: SshPublicKey[] = [];
  const indexes = list.split('\n').map((line) => line.split('=', 1)[0]!.trim()).filter((index) => /^\d+$/.test(index));
  if (indexes.length > maxPublicKeys) throw new Error(`${where}: meta-data/public-keys/ lists ${indexes.length} keys, more than ${maxPublicKeys}`);
  for (const index of indexes) {
    const path = `public-keys/${index}/openssh-key`;
    const key = await imds.text(path);
    if (key) keys.push(sshPublicKeyValue(where, `meta-data/${path}`, key));
  }
  return keys;
}

export function ec2Source(base: string, policy: RetryPolicy): Datasource {
  const root = base.endsWith('/') ? base : `${base}/`;
  return {
    name: 'ec2',
    location: root,
    async fetch() {
      const imds = new Imds(root, policy);
      const userData = await imds.get(`${version}/user-data`);
      const metadata: Metadata = { sshPublicKeys: await publicKeys(imds) };
      // Each value is parsed into its type here, or the fetch fails naming it (metadata-values.ts).
      const read = async <T>(path: string, parse: (field: string, text: string) => T): Promise<T | undefined> => {
        const text = await imds.text(path);
        return text === undefined ? undefined : parse(`meta-data/${path}`, text);
      };
      const ipv4 = (field: string, text: string) => ipAddressValue(where, field, text, 4);
      const instanceId = await read('instance-id', (f, t) => instanceIdValue(where, f, t));
      // "hostname" can list several names; the first is the machine's.
      const hostname = await read('hostname', (f, t) => hostnameValue(where, f, t.split(/\s+/)[0]!));
      const privateIpv4 = await read('local-ipv4', ipv4);
      const publicIpv4 = await read('public-ipv4', ipv4);
      // EC2 IPv6 addresses are global: the instance's one address serves as private and public.
      const ipv6 = await read('ipv6', (f, t) => ipAddressValue(where, f, t, 6));
      if (instanceId !== undefined) metadata.instanceId = instanceId;
      if (hostname !== undefined) metadata.hostname = hostname;
      if (privateIpv4 !== undefined) metadata.privateIpv4 = privateIpv4;
      if (publicIpv4 !== undefined) metadata.publicIpv4 = publicIpv4;
      if (ipv6 !== undefined) {
        metadata.privateIpv6 = ipv6;
        metadata.publicIpv6 = ipv6;
      }
      return { source: 'ec2', location: `${root}${version}/user-data`, ...userDataOf(userData), metadata };
    },
  };
}
