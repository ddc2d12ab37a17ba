/**
 * Azure, read as coreos-cloudinit reads it: the files the Azure agent (waagent) leaves in its
 * directory (/var/lib/waagent) once it has provisioned the machine. The source is there when
 * DIR/provisioned is; the user data is DIR/CustomData; the metadata comes from DIR/SharedConfig.xml:
 * this instance's address (private IPv4) and the host of its first load-balanced endpoint (public
 * IPv4). Beyond the reference: the host name Azure gave in DIR/ovf-env.xml, and for the instance
 * record the VM's unique id, which the agent writes into `provisioned` (older agents leave it empty).
 *
 * The agent provisions while the machine boots, so the source waits for `provisioned` to appear,
 * as the reference polls for it, up to a limit (5 minutes, the reference's limit for any source).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { readSourceFile } from './local-file';
import { maxBody } from './http';
import { hostnameValue, instanceIdValue, ipAddressValue, metadataOf } from './metadata-values';
import type { IpAddress } from '../cloudconfig/values';
import type { Datasource, Metadata } from './types';

/** How errors name this source. */
const where = 'azure agent';

/** How long the source waits for the agent to provision the machine, by default: 5 minutes. */
export const provisioningWaitMs = 5 * 60_000;

/** Largest XML document read (SharedConfig.xml and ovf-env.xml are a few KiB): 1 MiB. */
export const maxXmlFile = 1024 * 1024;

/** The largest `provisioned` read: it holds an id, or nothing. */
const maxProvisionedFile = 4096;

/**
 * Without entity expansion: no value read here has an entity in it, and a DOCTYPE's entities
 * must not make a small document large. Attributes keep their names, namespaces are dropped.
 */
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  removeNSPrefix: true,
  processEntities: false,
  parseAttributeValue: false,
  parseTagValue: false,
  isArray: (name) => name === 'Instance' || name === 'Endpoint',
});

type XmlNode = Record<string, unknown>;
const node = (value: unknown): XmlNode | undefined => (value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as XmlNode) : undefined);
const nodes = (value: unknown): XmlNode[] => (Array.isArray(value) ? value.map(node).filter((n): n is XmlNode => n !== undefined) : []);
const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** A load-balanced endpoint's `HOST:PORT` (`[HOST]:PORT` for IPv6): its host. */
function endpointHost(address: string): string | undefined {
  const m = /^\[?([^\]]*)\]?:\d+$/.exec(address);
  return m?.[1];
}

/**
 * The metadata in SharedConfig.xml: the Instance whose id is the Incarnation's instance, its
 * address (private IPv4) and its first endpoint with a load-balanced public address (public
 * IPv4). Each value is parsed into its type or refused, naming the field.
 */
export function sharedConfigMetadata(bytes: Buffer): Pick<Metadata, 'privateIpv4' | 'publicIpv4'> {
  const doc = node(readXml(bytes, 'SharedConfig.xml').SharedConfig) ?? {};
  const id = text(node(doc.Incarnation)?.instance);
  const instance = nodes(node(doc.Instances)?.Instance).find((i) => id !== undefined && text(i.id) === id);
  if (!instance) return {};
  const field = 'SharedConfig.xml Instance';
  const address = text(instance.address);
  let publicIpv4: IpAddress | undefined;
  for (const endpoint of nodes(node(instance.InputEndpoints)?.Endpoint)) {
    const lb = text(endpoint.loadBalancedPublicAddress);
    if (!lb) continue;
    const host = endpointHost(lb);
    publicIpv4 = ipAddressValue(where, `${field} Endpoint loadBalancedPublicAddress`, host ?? lb, 4);
    break;
  }
  return metadataOf({ privateIpv4: address ? ipAddressValue(where, `${field} address`, address, 4) : undefined, publicIpv4 });
}

/** The host name Azure gave the machine: LinuxProvisioningConfigurationSet's HostName in ovf-env.xml. */
export function ovfEnvHostname(bytes: Buffer): Metadata['hostname'] {
  const env = node(readXml(bytes, 'ovf-env.xml').Environment);
  const set = node(node(env?.ProvisioningSection)?.LinuxProvisioningConfigurationSet);
  const name = text(set?.HostName)?.trim();
  return name ? hostnameValue(where, 'ovf-env.xml HostName', name) : undefined;
}

/** An XML document, or an error naming the file: fast-xml-parser's validator says what is wrong and where. */
function readXml(bytes: Buffer, file: string): XmlNode {
  let doc: unknown;
  try {
    doc = parser.parse(bytes.toString('utf8'), true);
  } catch (err) {
    throw new Error(`${where}: ${file}: not XML: ${(err as Error).message}`, { cause: err });
  }
  return node(doc) ?? {};
}

/**
 * Custom data as the agent leaves it: base64, as Azure sends it, which is the agent's default; or
 * decoded, under Provisioning.DecodeCustomData=y. User data is never base64 text itself (a
 * cloud-config and a script start with `#`, Ignition with `{`, gzip with bytes outside base64), so
 * a file that is wholly base64 is decoded.
 */
export function customData(bytes: Buffer): Buffer {
  const compact = bytes.toString('latin1').replace(/[\t\n\r ]/g, '');
  return compact.length > 0 && compact.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(compact) ? Buffer.from(compact, 'base64') : bytes;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `path` exists, checking at growing intervals (100 ms doubling to 2 s); false when `waitMs` passed first. */
async function appears(path: string, waitMs: number): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  for (let interval = 100; ; interval = Math.min(interval * 2, 2_000)) {
    if (await stat(path).then(() => true, () => false)) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await sleep(Math.min(interval, left));
  }
}

/** `--from-waagent DIR`: the Azure agent's directory. `waitMs`: how long to wait for it to provision the machine. */
export function waagentSource(dir: string, waitMs = provisioningWaitMs): Datasource {
  const file = (name: string, limit: number) => readSourceFile(join(dir, name), where, name, limit);
  return {
    name: 'waagent',
    location: dir,
    async fetch() {
      if (!(await appears(join(dir, 'provisioned'), waitMs))) {
        throw new Error(`${where}: ${join(dir, 'provisioned')} did not appear within ${waitMs} ms: the agent has not provisioned this machine`);
      }
      const id = (await file('provisioned', maxProvisionedFile))?.toString('utf8').trim();
      const shared = await file('SharedConfig.xml', maxXmlFile);
      const ovfEnv = await file('ovf-env.xml', maxXmlFile);
      const metadata = metadataOf({
        instanceId: id ? instanceIdValue(where, 'provisioned', id) : undefined,
        hostname: ovfEnv ? ovfEnvHostname(ovfEnv) : undefined,
        ...(shared ? sharedConfigMetadata(shared) : {}),
      });
      const location = join(dir, 'CustomData');
      const bytes = await file('CustomData', maxBody);
      if (!bytes || bytes.length === 0) return { source: 'waagent', location, userData: undefined, noUserData: bytes ? 'the file is empty' : 'there is none', metadata };
      return { source: 'waagent', location, userData: customData(bytes), metadata };
    },
  };
}
