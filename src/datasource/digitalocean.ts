/**
 * DigitalOcean's metadata service, read as coreos-cloudinit reads it: user data from
 * metadata/v1/user-data, metadata from the document metadata/v1.json (hostname, public_keys, the
 * first public and the first private interface's IPv4 and IPv6 addresses, and beyond the
 * reference, for the instance record, droplet_id). The service is there when the document is
 * (a 404 means this is no DigitalOcean), as with OpenStack's meta_data.json. With
 * `--convert-netconf digitalocean`, the document's interfaces are the network configuration too.
 */
import { fetchWithRetry } from './http';
import type { RetryPolicy } from './http';
import { userDataOf } from './simple';
import { MetadataError, hostnameValue, instanceIdValue, ipAddressValue, jsonField, jsonObjectValue, metadataOf, networkOf, sshPublicKeyList } from './metadata-values';
import { digitaloceanNetwork } from './netconf-digitalocean';
import type { JsonKind } from './metadata-values';
import type { IpAddress } from '../cloudconfig/values';
import type { Datasource, Metadata } from './types';

/** How errors name this source. */
const where = 'digitalocean metadata service';
const document = 'metadata/v1.json';

/** The metadata in a metadata/v1.json document, each value parsed into its type or refused naming its field. */
export function digitaloceanMetadata(bytes: Buffer): Metadata {
  const doc = jsonObjectValue(where, document, bytes);
  const field = <K extends JsonKind>(path: string, value: unknown, kind: K) => jsonField(where, `${document} ${path}`, value, kind);
  const interfaces = field('interfaces', doc.interfaces, 'object') ?? {};
  /** The first interface of a kind's address of a family: `interfaces.public[0].ipv4.ip_address`. */
  const address = (kind: 'public' | 'private', family: 4 | 6): IpAddress | undefined => {
    const first = field(`interfaces.${kind}[0]`, field(`interfaces.${kind}`, interfaces[kind], 'list')?.[0], 'object');
    const path = `interfaces.${kind}[0].ipv${family}`;
    const text = field(`${path}.ip_address`, field(path, first?.[`ipv${family}`], 'object')?.ip_address, 'string');
    return text ? ipAddressValue(where, `${document} ${path}.ip_address`, text, family) : undefined;
  };
  const id = field('droplet_id', doc.droplet_id, 'number');
  if (id !== undefined && !(Number.isSafeInteger(id) && id > 0)) throw new MetadataError(`${where}: ${document} droplet_id: not a droplet id: ${id}`);
  const hostname = field('hostname', doc.hostname, 'string');
  return metadataOf({
    instanceId: id === undefined ? undefined : instanceIdValue(where, `${document} droplet_id`, String(id)),
    hostname: hostname ? hostnameValue(where, `${document} hostname`, hostname) : undefined,
    publicIpv4: address('public', 4),
    publicIpv6: address('public', 6),
    privateIpv4: address('private', 4),
    privateIpv6: address('private', 6),
    sshPublicKeys: sshPublicKeyList(where, `${document} public_keys`, doc.public_keys),
  });
}

export function digitaloceanSource(base: string, policy: RetryPolicy, netconf?: 'digitalocean'): Datasource {
  const root = base.endsWith('/') ? base : `${base}/`;
  return {
    name: 'digitalocean',
    location: `${root}${document}`,
    async fetch() {
      const doc = await fetchWithRetry({ url: `${root}${document}` }, policy);
      if (doc.kind === 'not-found') return undefined;
      const userData = await fetchWithRetry({ url: `${root}metadata/v1/user-data` }, policy);
      const metadata = digitaloceanMetadata(doc.body);
      const network = netconf === 'digitalocean' ? networkOf(() => digitaloceanNetwork(jsonObjectValue(where, document, doc.body), where)) : {};
      return { source: 'digitalocean', location: `${root}metadata/v1/user-data`, ...userDataOf(userData), metadata, ...network };
    },
  };
}
