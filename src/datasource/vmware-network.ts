/**
 * The network VMware's guestinfo keys describe (coreos-cloudinit's `interface.N.*`, `dns.server.N`
 * and `dns.domain.N`), as a typed model: each value parsed into its type, or refused naming its
 * key. With `--convert-netconf vmware` it becomes the network configuration (netconf-vmware.ts);
 * nothing here writes any file. Interface names and MAC addresses are the network model's types,
 * checked by its rules (system/network-config.ts).
 *
 * The keys are read as the reference reads them: interfaces N = 0, 1, ... while one has a name, a
 * MAC, a dhcp value, an address or a route; each list (addresses, routes, DNS servers and domains)
 * from 0 until an entry is not set. Lists are bounded (maxEntries): the keys are outside us.
 */
import { ipFamily, parseIpAddress, quoteValue } from '../cloudconfig/values';
import type { Hostname, IpAddress } from '../cloudconfig/values';
import { interfaceNameValue, macAddressValue } from '../system/network-config';
import type { InterfaceName, MacAddress } from '../system/network-config';
import { MetadataError, hostnameValue, ipAddressValue } from './metadata-values';
import type { Metadata } from './types';

/** An address with its prefix length: `10.0.0.5/24` is `{ address: '10.0.0.5', prefix: 24 }`. */
export interface IpPrefix {
  address: IpAddress;
  /** 0 to 32 for IPv4, 0 to 128 for IPv6. */
  prefix: number;
}

/** A route of an interface: `interface.N.route.L.destination` and `.gateway`, at least one of them. */
export interface VmwareRoute {
  /** Where the route leads; absent: the default route. */
  destination?: IpPrefix;
  /** The next hop, of the destination's family; absent: the destination is on the link. */
  gateway?: IpAddress;
}

/** One `interface.N.*`: how to find the interface (name or MAC) and how to configure it. */
export interface VmwareInterface {
  /** N in `interface.N`: it names nothing outside the keys. */
  index: number;
  name?: InterfaceName;
  mac?: MacAddress;
  /** `interface.N.dhcp`: yes (true) or no (false); absent when not set. */
  dhcp?: boolean;
  /** `interface.N.role`: which of `$public_ipv4`, `$private_ipv4` (and IPv6) its addresses fill. */
  role?: 'public' | 'private';
  /** `interface.N.ip.M.address`, each an address with its prefix length. */
  addresses: IpPrefix[];
  routes: VmwareRoute[];
}

/** The network the keys describe. */
export interface VmwareNetwork {
  interfaces: VmwareInterface[];
  /** `dns.server.N`: name servers. */
  dnsServers: IpAddress[];
  /** `dns.domain.N`: search domains. */
  dnsDomains: Hostname[];
}

/** Most entries of one list: interfaces, an interface's addresses or routes, DNS servers, DNS domains. */
export const maxEntries = 64;

/** Reads one key, named without `guestinfo.`; undefined when it is not set (or set to nothing). */
export type KeyReader = (key: string) => Promise<string | undefined>;

/** The key as users set it (in the VMX file, or as an OVF property): `guestinfo.hostname`. */
export const guestinfoKey = (key: string) => `guestinfo.${key}`;

function refuse(where: string, key: string, why: string, text: string): never {
  throw new MetadataError(`${where}: ${guestinfoKey(key)}: ${why}: ${quoteValue(text)}`);
}

/** An address with a prefix length: `10.0.0.5/24`, `2001:db8::5/64`. */
export function ipPrefixValue(where: string, key: string, text: string): IpPrefix {
  const slash = text.lastIndexOf('/');
  const address = slash === -1 ? undefined : parseIpAddress(text.slice(0, slash));
  if (address === undefined) refuse(where, key, 'not an IP address with a prefix length (ADDRESS/PREFIX)', text);
  const max = ipFamily(address) === 4 ? 32 : 128;
  const digits = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(digits) || Number(digits) > max) refuse(where, key, `the prefix length is not 0 to ${max}`, text);
  return { address, prefix: Number(digits) };
}

function dhcpValue(where: string, key: string, text: string): boolean {
  if (text !== 'yes' && text !== 'no') refuse(where, key, 'not "yes" or "no"', text);
  return text === 'yes';
}

function roleValue(where: string, key: string, text: string): 'public' | 'private' {
  if (text !== 'public' && text !== 'private') refuse(where, key, 'not "public" or "private"', text);
  return text;
}

/**
 * Reads and parses the network keys; rejects with a MetadataError (a NetworkConfigError for an
 * interface's name or MAC address) naming the first key that does not parse.
 */
export async function readVmwareNetwork(where: string, read: KeyReader): Promise<VmwareNetwork> {
  const get = async <T>(key: string, parse: (where: string, key: string, text: string) => T): Promise<T | undefined> => {
    const text = await read(key);
    return text === undefined ? undefined : parse(where, key, text);
  };
  const tooMany = (key: string, what: string): never => {
    throw new MetadataError(`${where}: ${guestinfoKey(key)}: more than ${maxEntries} ${what}`);
  };
  /** `key(0)`, `key(1)` ... until one is not set. */
  const list = async <T>(key: (i: number) => string, what: string, parse: (where: string, key: string, text: string) => T): Promise<T[]> => {
    const out: T[] = [];
    for (let i = 0; ; i++) {
      const value = await get(key(i), parse);
      if (value === undefined) return out;
      if (i === maxEntries) tooMany(key(i), what);
      out.push(value);
    }
  };
  const address = (w: string, k: string, t: string) => ipAddressValue(w, guestinfoKey(k), t);
  const dnsServers = await list((i) => `dns.server.${i}`, 'DNS servers', address);
  const dnsDomains = await list((i) => `dns.domain.${i}`, 'DNS domains', (w, k, t) => hostnameValue(w, guestinfoKey(k), t));
  const interfaces: VmwareInterface[] = [];
  for (let n = 0; ; n++) {
    const at = `interface.${n}`;
    const name = await get(`${at}.name`, (w, k, t) => interfaceNameValue(w, guestinfoKey(k), t));
    const mac = await get(`${at}.mac`, (w, k, t) => macAddressValue(w, guestinfoKey(k), t));
    const dhcp = await get(`${at}.dhcp`, dhcpValue);
    const role = await get(`${at}.role`, roleValue);
    const addresses = await list((m) => `${at}.ip.${m}.address`, 'addresses', ipPrefixValue);
    const routes: VmwareRoute[] = [];
    for (let l = 0; ; l++) {
      const destination = await get(`${at}.route.${l}.destination`, ipPrefixValue);
      const gateway = await get(`${at}.route.${l}.gateway`, address);
      if (destination === undefined && gateway === undefined) break;
      if (l === maxEntries) tooMany(`${at}.route.${l}`, 'routes');
      if (destination && gateway && ipFamily(destination.address) !== ipFamily(gateway)) {
        refuse(where, `${at}.route.${l}.gateway`, `not an IPv${ipFamily(destination.address)} address, as the destination is`, gateway);
      }
      const route: VmwareRoute = {};
      if (destination) route.destination = destination;
      if (gateway) route.gateway = gateway;
      routes.push(route);
    }
    if (name === undefined && mac === undefined && dhcp === undefined && addresses.length === 0 && routes.length === 0) break;
    if (n === maxEntries) tooMany(at, 'interfaces');
    const entry: VmwareInterface = { index: n, addresses, routes };
    if (name !== undefined) entry.name = name;
    if (mac !== undefined) entry.mac = mac;
    if (dhcp !== undefined) entry.dhcp = dhcp;
    if (role !== undefined) entry.role = role;
    interfaces.push(entry);
  }
  return { interfaces, dnsServers, dnsDomains };
}

/**
 * The variables' addresses the roles give: the first address of the first interface of each role
 * and family (`$public_ipv4` from a public interface's IPv4 address, and so on). The reference let
 * the last one win; the first is the interface's primary address.
 */
export function roleAddresses(network: VmwareNetwork): Pick<Metadata, 'publicIpv4' | 'privateIpv4' | 'publicIpv6' | 'privateIpv6'> {
  const found: Pick<Metadata, 'publicIpv4' | 'privateIpv4' | 'publicIpv6' | 'privateIpv6'> = {};
  for (const { role, addresses } of network.interfaces) {
    if (role === undefined) continue;
    for (const { address } of addresses) found[`${role}Ipv${ipFamily(address)}` as const] ??= address;
  }
  return found;
}
