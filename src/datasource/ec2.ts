/**
 * EC2's instance metadata service (and EC2-compatible clouds): IMDSv2 first (PUT a session token,
 * send it with every request, renew it on 401), IMDSv1 when the token endpoint is absent (404) or
 * refused (403, 405). Reads user data and meta-data under the 2009-04-04 API version, as
 * coreos-cloudinit does.
 */
import { FetchError, fetchWithRetry } from './http';
import type { HttpResult, RetryPolicy } from './http';
import type { Datasource, Metadata } from './types';

const version = '2009-04-04';
/** Session token lifetime asked for, in seconds (6 hours, as cloud-init and Ignition ask). */
const tokenTtl = '21600';

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
async function publicKeys(imds: Imds): Promise<string[]> {
  const list = await imds.text('public-keys/');
  if (!list) return [];
  const keys: string[] = [];
  for (const line of list.split('\n')) {
    const index = line.split('=', 1)[0]!.trim();
    if (!/^\d+$/.test(index)) continue;
    const key = await imds.text(`public-keys/${index}/openssh-key`);
    if (key) keys.push(key);
  }
  return keys;
}

export function ec2Source(base: string, policy: RetryPolicy): Datasource {
  const root = base.endsWith('/') ? base : `${base}/`;
  return {
    name: 'ec2',
    async fetch() {
      const imds = new Imds(root, policy);
      const userData = await imds.get(`${version}/user-data`);
      const ipv6 = await imds.text('ipv6');
      const metadata: Metadata = { sshPublicKeys: await publicKeys(imds) };
      const set = (key: keyof Omit<Metadata, 'sshPublicKeys'>, value: string | undefined) => {
        if (value !== undefined) metadata[key] = value;
      };
      set('instanceId', await imds.text('instance-id'));
      // "hostname" can list several names; the first is the machine's.
      set('hostname', (await imds.text('hostname'))?.split(/\s+/)[0]);
      set('privateIpv4', await imds.text('local-ipv4'));
      set('publicIpv4', await imds.text('public-ipv4'));
      // EC2 IPv6 addresses are global: the instance's one address serves as private and public.
      set('privateIpv6', ipv6);
      set('publicIpv6', ipv6);
      return { source: 'ec2', userData: userData.kind === 'ok' && userData.body.length > 0 ? userData.body : undefined, metadata };
    },
  };
}
