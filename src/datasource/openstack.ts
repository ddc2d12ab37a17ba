/**
 * OpenStack: the metadata service (openstack/latest/meta_data.json, user_data, network_data.json)
 * and config drives, which hold the same files under openstack/latest/.
 */
import { stat } from 'node:fs/promises';
import { looksLikeFat, withFatImage } from './fat';
import { withIsoImage } from './iso9660';
import { join } from 'node:path';
import { fetchWithRetry } from './http';
import type { RetryPolicy } from './http';
import { readSourceFile } from './local-file';
import { hostnameValue, instanceIdValue, ipAddressValue, sshPublicKeyValue } from './metadata-values';
import type { Datasource, Fetched, Metadata } from './types';

interface OpenstackFiles {
  metaData: Buffer;
  userData: Buffer | undefined;
  networkData: Buffer | undefined;
}

function parseJson(bytes: Buffer, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${what} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  throw new Error(`${what} is not a JSON object`);
}

/** How errors name each source: "openstack config drive: network_data.json networks[0].ip_address: ...". */
const sourceNames: Record<string, string> = { openstack: 'openstack metadata service', configdrive: 'openstack config drive' };

/**
 * Metadata from meta_data.json (uuid, hostname, public_keys) and network_data.json (addresses),
 * each value parsed into its type or refused naming the file and field (metadata-values.ts).
 */
export function openstackMetadata(files: OpenstackFiles, source: string, location?: string): Fetched {
  const where = sourceNames[source] ?? source;
  const meta = parseJson(files.metaData, 'meta_data.json');
  const metadata: Metadata = { sshPublicKeys: [] };
  if (typeof meta.uuid === 'string' && meta.uuid) metadata.instanceId = instanceIdValue(where, 'meta_data.json uuid', meta.uuid);
  if (typeof meta.hostname === 'string' && meta.hostname) metadata.hostname = hostnameValue(where, 'meta_data.json hostname', meta.hostname);
  const keys = meta.public_keys;
  if (keys && typeof keys === 'object') {
    for (const name of Object.keys(keys).sort()) {
      const key = (keys as Record<string, unknown>)[name];
      if (typeof key === 'string' && key.trim()) metadata.sshPublicKeys.push(sshPublicKeyValue(where, `meta_data.json public_keys.${name}`, key.trim()));
    }
  }
  if (files.networkData) {
    const net = parseJson(files.networkData, 'network_data.json');
    const networks = Array.isArray(net.networks) ? (net.networks as unknown[]) : [];
    networks.forEach((n, i) => {
      if (typeof n !== 'object' || n === null) return;
      const { ip_address: text, type } = n as Record<string, unknown>;
      if (text === undefined || text === null || text === '') return; // a DHCP network names no address
      const field = `network_data.json networks[${i}].ip_address`;
      if (typeof text !== 'string') throw new Error(`${where}: ${field}: not an IP address: a ${typeof text}`);
      // The type says the family ("ipv4", "ipv6", "ipv6_slaac" ...); the address must agree with it.
      const family = String(type ?? '').includes('ipv6') || text.includes(':') ? 6 : 4;
      const ip = ipAddressValue(where, field, text, family);
      if (family === 6 && metadata.privateIpv6 === undefined) metadata.privateIpv6 = ip;
      if (family === 4 && metadata.privateIpv4 === undefined) metadata.privateIpv4 = ip;
    });
  }
  if (files.userData && files.userData.length > 0) return { source, location, userData: files.userData, metadata };
  return { source, location, userData: undefined, noUserData: files.userData ? 'it is empty' : 'there is none', metadata };
}

/** The metadata service. Not there (meta_data.json 404) means this is no OpenStack. */
export function openstackSource(base: string, policy: RetryPolicy): Datasource {
  const root = `${base.endsWith('/') ? base : `${base}/`}openstack/latest/`;
  const get = async (name: string) => {
    const r = await fetchWithRetry({ url: `${root}${name}` }, policy);
    return r.kind === 'ok' ? r.body : undefined;
  };
  return {
    name: 'openstack',
    location: root,
    async fetch() {
      const metaData = await get('meta_data.json');
      if (!metaData) return undefined;
      return openstackMetadata({ metaData, userData: await get('user_data'), networkData: await get('network_data.json') }, 'openstack', `${root}user_data`);
    },
  };
}

/** Largest file read from a config drive directory, as from a metadata service (http.ts): 16 MiB. */
export const maxConfigDriveFile = 16 * 1024 * 1024;

/** The labels a config drive has (Nova writes config-2; some tools upper-case it). */
const configDriveLabels = ['config-2', 'CONFIG-2'];

/**
 * A config drive: a directory where it is mounted, or the image itself (ISO 9660 or vfat; a file or
 * a device such as /dev/sr0), read without mounting, since not every kernel can mount it. Missing files are not
 * errors; a missing drive is no source.
 */
export function configDriveSource(path: string): Datasource {
  let image: boolean | undefined;
  const read = async (name: string) => {
    if (image === undefined) image = !(await stat(path)).isDirectory();
    if (image) {
      const open = looksLikeFat(path) ? withFatImage : withIsoImage;
      return open(path, (volume) => {
        if (!configDriveLabels.includes(volume.label)) throw new Error(`${path} is labelled "${volume.label}", not config-2`);
        return volume.read(`openstack/latest/${name}`);
      });
    }
    return readSourceFile(join(path, 'openstack/latest', name), 'openstack config drive', `openstack/latest/${name}`, maxConfigDriveFile);
  };
  return {
    name: 'configdrive',
    location: path,
    async fetch() {
      if (!(await stat(path).catch(() => undefined))) return undefined;
      const metaData = await read('meta_data.json');
      const userData = await read('user_data');
      if (!metaData && !userData) return undefined;
      const location = image ? `${path} (openstack/latest/user_data)` : join(path, 'openstack/latest/user_data');
      return openstackMetadata({ metaData: metaData ?? Buffer.from('{}'), userData, networkData: await read('network_data.json') }, 'configdrive', location);
    },
  };
}
