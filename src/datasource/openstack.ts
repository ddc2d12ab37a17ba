/**
 * OpenStack: the metadata service (openstack/latest/meta_data.json, user_data, network_data.json)
 * and config drives, which hold the same files under openstack/latest/. network_data.json gives
 * the network configuration too; on a config drive with `--convert-netconf debian` (Rackspace
 * OnMetal) the Debian interfaces file meta_data.json's network_config.content_path names does.
 */
import { stat } from 'node:fs/promises';
import { looksLikeFat, withFatImage } from './fat';
import { withIsoImage } from './iso9660';
import { join } from 'node:path';
import { fetchWithRetry } from './http';
import type { RetryPolicy } from './http';
import { readSourceFile } from './local-file';
import { hostnameValue, instanceIdValue, ipAddressValue, networkOf, sshPublicKeyValue } from './metadata-values';
import { debianNetwork } from './netconf-debian';
import { openstackNetwork } from './netconf-openstack';
import type { Datasource, Fetched, Metadata } from './types';

interface OpenstackFiles {
  metaData: Buffer;
  userData: Buffer | undefined;
  networkData: Buffer | undefined;
  /** With --convert-netconf debian: the interfaces file (its path on the drive and bytes), or why it could not be read. */
  interfaces?: { path: string; bytes: Buffer } | { problem: string };
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
  let network: Pick<Fetched, 'network' | 'networkProblem'> = {};
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
    network = networkOf(() => openstackNetwork(net, where));
  }
  const interfaces = files.interfaces;
  if (interfaces) network = 'problem' in interfaces ? { networkProblem: interfaces.problem } : networkOf(() => debianNetwork(interfaces.bytes.toString('utf8'), `${where}: ${interfaces.path}`));
  if (files.userData && files.userData.length > 0) return { source, location, userData: files.userData, metadata, ...network };
  return { source, location, userData: undefined, noUserData: files.userData ? 'it is empty' : 'there is none', metadata, ...network };
}

/** A path on a config drive, as meta_data.json gives one: names of letters, digits, `_`, `.` and `-`, none `.` or `..`. */
const drivePath = /^\/?(?!\.\.?(\/|$))[A-Za-z0-9_.-]+(\/(?!\.\.?(\/|$))[A-Za-z0-9_.-]+){0,7}$/;

/**
 * The Debian interfaces file meta_data.json's network_config.content_path names (`/content/0000`,
 * relative to the drive's openstack/ directory), read with `read`; undefined when none is named.
 */
async function interfacesFile(metaData: Buffer, read: (path: string) => Promise<Buffer | undefined>): Promise<OpenstackFiles['interfaces']> {
  const field = 'openstack config drive: meta_data.json network_config.content_path';
  const config = parseJson(metaData, 'meta_data.json').network_config;
  const given = typeof config === 'object' && config !== null ? (config as Record<string, unknown>).content_path : undefined;
  if (given === undefined || given === null) return undefined;
  if (typeof given !== 'string' || !drivePath.test(given)) return { problem: `${field}: not a path on the drive: ${JSON.stringify(given).slice(0, 80)}` };
  const path = `openstack/${given.replace(/^\//, '')}`;
  const bytes = await read(path);
  return bytes ? { path, bytes } : { problem: `${field}: no such file on the drive: ${path}` };
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
export function configDriveSource(path: string, netconf?: 'debian'): Datasource {
  let image: boolean | undefined;
  /** A file by its path on the drive. */
  const readPath = async (file: string) => {
    if (image === undefined) image = !(await stat(path)).isDirectory();
    if (image) {
      const open = looksLikeFat(path) ? withFatImage : withIsoImage;
      return open(path, (volume) => {
        if (!configDriveLabels.includes(volume.label)) throw new Error(`${path} is labelled "${volume.label}", not config-2`);
        return volume.read(file);
      });
    }
    return readSourceFile(join(path, file), 'openstack config drive', file, maxConfigDriveFile);
  };
  const read = (name: string) => readPath(`openstack/latest/${name}`);
  return {
    name: 'configdrive',
    location: path,
    async fetch() {
      if (!(await stat(path).catch(() => undefined))) return undefined;
      const metaData = await read('meta_data.json');
      const userData = await read('user_data');
      if (!metaData && !userData) return undefined;
      const location = image ? `${path} (openstack/latest/user_data)` : join(path, 'openstack/latest/user_data');
      const interfaces = netconf === 'debian' && metaData ? await interfacesFile(metaData, readPath) : undefined;
      return openstackMetadata({ metaData: metaData ?? Buffer.from('{}'), userData, networkData: await read('network_data.json'), interfaces }, 'configdrive', location);
    },
  };
}
