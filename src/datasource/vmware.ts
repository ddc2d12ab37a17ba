/**
 * VMware, read as coreos-cloudinit reads it: guestinfo keys (`--from-vmware-guestinfo`, through
 * open-vm-tools' vmware-rpctool: system/guestinfo.ts), or the same keys as the properties of an OVF
 * environment document (`--from-vmware-ovf-env PATH`: `<Property oe:key="guestinfo.KEY"
 * oe:value="..."/>` in its PropertySection).
 *
 * The user data is `coreos.config.data`, decoded as `coreos.config.data.encoding` says (any
 * write_files encoding); when that is not set, what `coreos.config.url` gives (fetched with the
 * HTTP rules of http.ts; the encoding applies to it too, as in the reference). The metadata is
 * `hostname` and the network the `interface.N.*` and `dns.*` keys describe (vmware-network.ts),
 * whose public and private interfaces' addresses fill `$public_ipv4` and the like; with
 * `--convert-netconf vmware`, that network is the network configuration too (netconf-vmware.ts).
 * Every value is parsed into its type or refused, naming its key.
 *
 * Guestinfo is there when vmware-rpctool is installed and this is a VMware virtual machine; as in
 * the reference, an OVF environment in guestinfo (`guestinfo.ovfEnv`, which vSphere sets for a
 * vApp) is read in place of the plain keys. An OVF environment file is there when it exists.
 */
import { XMLParser } from 'fast-xml-parser';
import { decodeContent } from '../cloudconfig/encoding';
import { quoteValue } from '../cloudconfig/values';
import { defaultRpctoolLimits, readGuestinfo } from '../system/guestinfo';
import type { RpctoolOptions } from '../system/guestinfo';
import { fetchWithRetry } from './http';
import type { RetryPolicy } from './http';
import { readSourceFile } from './local-file';
import { MetadataError, hostnameValue, metadataOf, networkOf } from './metadata-values';
import { vmwareNetconf } from './netconf-vmware';
import { userDataOf } from './simple';
import type { Datasource, Fetched } from './types';
import { guestinfoKey, readVmwareNetwork, roleAddresses } from './vmware-network';
import type { KeyReader } from './vmware-network';

/** How errors name each source. */
const guestinfoWhere = 'vmware guestinfo';
const ovfWhere = 'vmware ovf environment';

/** The encodings `coreos.config.data.encoding` may name: write_files' (schemas/cloud-config.schema.json). */
export const configDataEncodings = ['base64', 'b64', 'gz', 'gzip', 'gz+base64', 'gzip+base64', 'gz+b64', 'gzip+b64'];

/**
 * Time allowed for reading all the guestinfo keys, in ms: each call has its own limit, and this
 * bounds the whole, however many keys there are and however slowly each is answered.
 */
export const guestinfoDeadlineMs = 60_000;

/** Largest OVF environment read, as a document from a metadata service (http.ts): 16 MiB. */
export const maxOvfEnvironment = 16 * 1024 * 1024;

/**
 * The user data and metadata the keys give. `container` names where the keys are when that is not
 * plain guestinfo (the OVF environment's path, or `guestinfo.ovfEnv`), for the location.
 */
async function vmwareFetched(source: string, where: string, container: string | undefined, read: KeyReader, policy: RetryPolicy, netconf: 'vmware' | undefined): Promise<Fetched> {
  const locate = (key: string) => (container === undefined ? guestinfoKey(key) : `${container} (${guestinfoKey(key)})`);
  const encoding = await read('coreos.config.data.encoding');
  if (encoding !== undefined && !configDataEncodings.includes(encoding)) {
    throw new MetadataError(`${where}: ${guestinfoKey('coreos.config.data.encoding')}: not a write_files encoding (${configDataEncodings.join(', ')}): ${quoteValue(encoding)}`);
  }
  const data = await read('coreos.config.data');
  const url = data === undefined ? await read('coreos.config.url') : undefined;
  // Every key is read before the URL is fetched: a slow server takes no time from guestinfo's deadline.
  const hostname = await read('hostname');
  const network = await readVmwareNetwork(where, read);
  const described = network.interfaces.length + network.dnsServers.length + network.dnsDomains.length > 0;
  const metadata = metadataOf({
    hostname: hostname === undefined ? undefined : hostnameValue(where, guestinfoKey('hostname'), hostname),
    ...roleAddresses(network),
    vmwareNetwork: described ? network : undefined,
  });
  let got: Pick<Fetched, 'location' | 'userData' | 'noUserData'>;
  if (data !== undefined) got = { location: locate('coreos.config.data'), userData: Buffer.from(data) };
  else if (url !== undefined) {
    try {
      got = { location: url, ...userDataOf(await fetchWithRetry({ url }, policy)) };
    } catch (err) {
      throw new Error(`${where}: ${guestinfoKey('coreos.config.url')}: ${(err as Error).message}`, { cause: err });
    }
  } else {
    got = { location: locate('coreos.config.data'), userData: undefined, noUserData: `neither ${guestinfoKey('coreos.config.data')} nor ${guestinfoKey('coreos.config.url')} is set` };
  }
  if (got.userData && encoding !== undefined) {
    const decoded = decodeContent(got.userData, encoding);
    const what = data !== undefined ? guestinfoKey('coreos.config.data') : `the user data from ${guestinfoKey('coreos.config.url')}`;
    if (typeof decoded === 'string') throw new MetadataError(`${where}: ${what}: cannot be decoded as ${encoding}: ${decoded}`);
    got = decoded.length > 0 ? { ...got, userData: decoded } : { ...got, userData: undefined, noUserData: `it is empty once decoded (${encoding})` };
  }
  const converted = netconf === 'vmware' ? networkOf(() => vmwareNetconf(network, where)) : {};
  return { source, ...got, metadata, ...converted };
}

/** A reader of the properties of an OVF environment. */
const propertyReader =
  (properties: Map<string, string>): KeyReader =>
  async (key) =>
    properties.get(key) || undefined;

const ovfParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  // oe:key and key alike: the prefix is the document's choice, the names are the OVF standard's.
  removeNSPrefix: true,
  isArray: (name) => name === 'PropertySection' || name === 'Property',
  processEntities: true,
  // Character references too (`&#10;`, a line break in a value); the library counts them as HTML's.
  htmlEntities: true,
  // A value is the document's, spaces and line breaks included.
  trimValues: false,
  parseAttributeValue: false,
  parseTagValue: false,
});

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The guestinfo properties of an OVF environment document, by key without `guestinfo.` (the
 * reference reads only those). A document that is not well-formed XML, has no Environment element,
 * declares a document type, or sets a key twice is refused.
 */
export function ovfProperties(where: string, bytes: Buffer): Map<string, string> {
  if (bytes.length > maxOvfEnvironment) throw new MetadataError(`${where}: ${bytes.length} bytes, more than the ${maxOvfEnvironment} accepted`);
  const text = bytes.toString('utf8');
  // An OVF environment has none; a document type could declare entities that expand without bound.
  if (/<!DOCTYPE/i.test(text)) throw new MetadataError(`${where}: a document type declaration (<!DOCTYPE) is not accepted in an OVF environment`);
  let doc: unknown;
  try {
    doc = ovfParser.parse(text, true);
  } catch (err) {
    throw new MetadataError(`${where}: not well-formed XML: ${(err as Error).message}`, { cause: err });
  }
  const environment = isObject(doc) ? doc.Environment : undefined;
  if (environment === undefined) throw new MetadataError(`${where}: not an OVF environment (no Environment element)`);
  const properties = new Map<string, string>();
  const sections = isObject(environment) && Array.isArray(environment.PropertySection) ? environment.PropertySection : [];
  for (const section of sections) {
    for (const property of isObject(section) && Array.isArray(section.Property) ? section.Property : []) {
      const key = isObject(property) ? property.key : undefined;
      if (typeof key !== 'string') throw new MetadataError(`${where}: a Property without oe:key`);
      if (!key.startsWith('guestinfo.')) continue;
      if (properties.has(key.slice('guestinfo.'.length))) throw new MetadataError(`${where}: ${key}: set twice`);
      const value = (property as Record<string, unknown>).value;
      properties.set(key.slice('guestinfo.'.length), typeof value === 'string' ? value : '');
    }
  }
  return properties;
}

/**
 * `--from-vmware-guestinfo`: the keys through vmware-rpctool (`rpctool`: a call's limits and
 * environment and the deadline of all calls, for tests; by default defaultRpctoolLimits, this
 * process's environment and guestinfoDeadlineMs). Not there without vmware-rpctool or outside VMware.
 * With `netconf` (`--convert-netconf vmware`), the network the keys describe is the network configuration.
 */
export function vmwareGuestinfoSource(policy: RetryPolicy, rpctool: Partial<RpctoolOptions> & { deadlineMs?: number } = {}, netconf?: 'vmware'): Datasource {
  const { deadlineMs = guestinfoDeadlineMs, ...given } = rpctool;
  const options: RpctoolOptions = { ...defaultRpctoolLimits, ...given };
  let deadline = 0;
  /** One call, within what is left of the deadline. */
  const call = (key: string) => {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`${guestinfoWhere}: reading the keys took more than ${deadlineMs} ms`);
    return readGuestinfo(key, { ...options, timeoutMs: Math.min(options.timeoutMs, left) });
  };
  const read: KeyReader = async (key) => {
    const answer = await call(key);
    if (answer.kind === 'value') return answer.text || undefined;
    if (answer.kind === 'unset') return undefined;
    throw new Error(`${guestinfoWhere}: ${guestinfoKey(key)}: ${answer.kind === 'no-tool' ? 'vmware-rpctool is gone' : 'vmware-rpctool says this is no VMware virtual machine'}`);
  };
  return {
    name: 'vmware-guestinfo',
    location: guestinfoWhere,
    async fetch() {
      deadline = Date.now() + deadlineMs;
      const ovfEnv = await call('ovfEnv');
      if (ovfEnv.kind === 'no-tool' || ovfEnv.kind === 'not-vmware') return undefined;
      if (ovfEnv.kind === 'value' && ovfEnv.text !== '') {
        const where = `${guestinfoWhere}: ${guestinfoKey('ovfEnv')}`;
        return vmwareFetched('vmware-guestinfo', where, guestinfoKey('ovfEnv'), propertyReader(ovfProperties(where, Buffer.from(ovfEnv.text))), policy, netconf);
      }
      return vmwareFetched('vmware-guestinfo', guestinfoWhere, undefined, read, policy, netconf);
    },
  };
}

/** `--from-vmware-ovf-env PATH`: the keys as an OVF environment's properties. Not there when the file is not. `netconf` as for guestinfo. */
export function vmwareOvfSource(path: string, policy: RetryPolicy, netconf?: 'vmware'): Datasource {
  return {
    name: 'vmware-ovf-env',
    location: path,
    async fetch() {
      const bytes = await readSourceFile(path, ovfWhere, path, maxOvfEnvironment);
      if (bytes === undefined) return undefined;
      return vmwareFetched('vmware-ovf-env', ovfWhere, path, propertyReader(ovfProperties(ovfWhere, bytes)), policy, netconf);
    },
  };
}

