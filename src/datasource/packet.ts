/**
 * Packet's (Equinix Metal's) metadata service, read as coreos-cloudinit reads it: user data from
 * `userdata`, metadata from the JSON document `metadata`: hostname, ssh_keys, and the addresses in
 * network.addresses by family and public flag (IPv4 public, IPv4 private, IPv6), and beyond the
 * reference, for the instance record, id. The service is there when the document is (a 404 means
 * this is no Packet). With `--convert-netconf packet`, the document's network is the network configuration too.
 *
 * Of several addresses of one kind the first is taken (the reference let the last win): Packet lists
 * the machine's own (management) addresses first and elastic addresses added later after them.
 */
import { fetchWithRetry } from './http';
import type { RetryPolicy } from './http';
import { userDataOf } from './simple';
import { MetadataError, hostnameValue, instanceIdValue, ipAddressValue, jsonField, jsonObjectValue, metadataOf, networkOf, sshPublicKeyList } from './metadata-values';
import { packetNetwork } from './netconf-packet';
import type { JsonKind } from './metadata-values';
import type { IpAddress } from '../cloudconfig/values';
import type { Datasource, Metadata } from './types';

/** How errors name this source. */
const where = 'packet metadata service';

/** The metadata in a `metadata` document, each value parsed into its type or refused naming its field. */
export function packetMetadata(bytes: Buffer): Metadata {
  const doc = jsonObjectValue(where, 'metadata', bytes);
  const field = <K extends JsonKind>(path: string, value: unknown, kind: K) => jsonField(where, `metadata ${path}`, value, kind);
  const addresses = field('network.addresses', field('network', doc.network, 'object')?.addresses, 'list') ?? [];
  const found: { publicIpv4?: IpAddress; privateIpv4?: IpAddress; publicIpv6?: IpAddress } = {};
  addresses.forEach((entry, i) => {
    const path = `network.addresses[${i}]`;
    const block = field(path, entry, 'object');
    const text = field(`${path}.address`, block?.address, 'string');
    if (!block || !text) return;
    const family = field(`${path}.address_family`, block.address_family, 'number');
    if (family !== 4 && family !== 6) throw new MetadataError(`${where}: metadata ${path}.address_family: not 4 or 6: ${JSON.stringify(family ?? null)}`);
    const ip = ipAddressValue(where, `metadata ${path}.address`, text, family);
    // As the reference: IPv4 by the public flag; every IPv6 address is public.
    const kind = family === 6 ? 'publicIpv6' : field(`${path}.public`, block.public, 'boolean') ? 'publicIpv4' : 'privateIpv4';
    found[kind] ??= ip;
  });
  const id = field('id', doc.id, 'string');
  const hostname = field('hostname', doc.hostname, 'string');
  return metadataOf({
    instanceId: id ? instanceIdValue(where, 'metadata id', id) : undefined,
    hostname: hostname ? hostnameValue(where, 'metadata hostname', hostname) : undefined,
    ...found,
    sshPublicKeys: sshPublicKeyList(where, 'metadata ssh_keys', doc.ssh_keys),
  });
}

export function packetSource(base: string, policy: RetryPolicy, netconf?: 'packet'): Datasource {
  const root = base.endsWith('/') ? base : `${base}/`;
  return {
    name: 'packet',
    location: `${root}metadata`,
    async fetch() {
      const doc = await fetchWithRetry({ url: `${root}metadata` }, policy);
      if (doc.kind === 'not-found') return undefined;
      const userData = await fetchWithRetry({ url: `${root}userdata` }, policy);
      const metadata = packetMetadata(doc.body);
      const network = netconf === 'packet' ? networkOf(() => packetNetwork(jsonObjectValue(where, 'metadata', doc.body), where)) : {};
      return { source: 'packet', location: `${root}userdata`, ...userDataOf(userData), metadata, ...network };
    },
  };
}
