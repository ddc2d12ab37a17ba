/**
 * Google Compute Engine's metadata server, read as coreos-cloudinit reads it: every request
 * carries `Metadata-Flavor: Google` (the server refuses any without it, 403). The service is there
 * when computeMetadata/v1/ answers; the user data is the instance attribute `user-data`; the
 * metadata is the instance's hostname, the first interface's internal address and its first
 * access config's external address, and (beyond the reference, for the instance record) its id.
 */
import { fetchWithRetry } from './http';
import type { RetryPolicy } from './http';
import { userDataOf } from './simple';
import { hostnameValue, instanceIdValue, ipAddressValue, metadataOf } from './metadata-values';
import type { Datasource } from './types';

const api = 'computeMetadata/v1/';
/** How errors name this source. */
const where = 'gce metadata service';

export function gceSource(base: string, policy: RetryPolicy): Datasource {
  const root = `${base.endsWith('/') ? base : `${base}/`}${api}`;
  const get = (path: string) => fetchWithRetry({ url: `${root}${path}`, headers: { 'Metadata-Flavor': 'Google' } }, policy);
  /** An instance value, parsed; undefined when the server has none (404, or empty: an instance without an external address). */
  const read = async <T>(path: string, parse: (field: string, text: string) => T): Promise<T | undefined> => {
    const r = await get(`instance/${path}`);
    const text = r.kind === 'ok' ? r.body.toString('utf8').trim() : '';
    return text ? parse(`instance/${path}`, text) : undefined;
  };
  const ipv4 = (field: string, text: string) => ipAddressValue(where, field, text, 4);
  return {
    name: 'gce',
    location: root,
    async fetch() {
      if ((await get('')).kind === 'not-found') return undefined;
      const userData = await get('instance/attributes/user-data');
      const metadata = metadataOf({
        instanceId: await read('id', (f, t) => instanceIdValue(where, f, t)),
        hostname: await read('hostname', (f, t) => hostnameValue(where, f, t)),
        privateIpv4: await read('network-interfaces/0/ip', ipv4),
        publicIpv4: await read('network-interfaces/0/access-configs/0/external-ip', ipv4),
      });
      return { source: 'gce', location: `${root}instance/attributes/user-data`, ...userDataOf(userData), metadata };
    },
  };
}
