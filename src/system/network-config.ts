/**
 * The network configuration a cloud gives a machine (OpenStack's network_data.json, DigitalOcean's
 * interfaces, a Debian interfaces file), as one validated model: links (physical, bond, VLAN) with
 * their addresses, routes, gateways and DNS. The datasources parse their formats into it (every
 * value into its type: addresses, prefixes, MAC addresses, names), and the networkd writer
 * (apply/netconf/networkd.ts) renders it; no text from the metadata reaches a file unparsed.
 * Pure: it reads nothing and changes nothing.
 */
import { hostnameProblem, ipFamily, parseIpAddress, quoteValue } from '../cloudconfig/values';
import type { Hostname, IpAddress } from '../cloudconfig/values';

declare const brand: unique symbol;

/** A network interface name as the kernel takes it: 1 to 15 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`. */
export type InterfaceName = string & { readonly [brand]: 'interface-name' };

/** An Ethernet MAC address, six colon-separated hex pairs, lower case. */
export type MacAddress = string & { readonly [brand]: 'mac-address' };

/** An address on a link, with its prefix length (0 to 32 for IPv4, 0 to 128 for IPv6). */
export interface InterfaceAddress {
  address: IpAddress;
  prefix: number;
}

/** A route to destination/prefix through a gateway of the same family, or without one: the destination is on the link. */
export interface Route {
  destination: IpAddress;
  prefix: number;
  gateway?: IpAddress;
}

/** The bonding modes, in the kernel's numbering (mode 4 is 802.3ad). */
export const bondModes = ['balance-rr', 'active-backup', 'balance-xor', 'broadcast', '802.3ad', 'balance-tlb', 'balance-alb'] as const;
export type BondMode = (typeof bondModes)[number];

/** The bonding transmit hash policies networkd knows. */
export const hashPolicies = ['layer2', 'layer3+4', 'layer2+3', 'encap2+3', 'encap3+4'] as const;
export type HashPolicy = (typeof hashPolicies)[number];

export interface Bond {
  mode: BondMode;
  /** The names of the physical links bonded. */
  members: InterfaceName[];
  /** MII link monitoring interval, in milliseconds; undefined: the kernel's default. */
  miimonMs?: number;
  /** How long a link must be up, and down, before the bond uses it or stops, in milliseconds. */
  upDelayMs?: number;
  downDelayMs?: number;
  transmitHashPolicy?: HashPolicy;
  /** 802.3ad's LACPDU rate. */
  lacpRate?: 'slow' | 'fast';
}

export interface Vlan {
  /** 1 to 4094. */
  id: number;
  /** The name of the physical link or bond it rides on. */
  parent: InterfaceName;
}

interface LinkSettings {
  /**
   * The link's name: the kernel's name of a bond or VLAN (and of a physical link matched by name);
   * for a physical link matched by its MAC address, only the name its files are given.
   */
  name: InterfaceName;
  /** A physical link is matched by it; a bond or VLAN is given it. Undefined: a physical link is matched by name. */
  mac?: MacAddress;
  /** Bytes, 68 to 65535; undefined: the default. */
  mtu?: number;
  dhcp4: boolean;
  dhcp6: boolean;
  /** IPv6 addresses from router advertisements (SLAAC). */
  acceptRa: boolean;
  addresses: InterfaceAddress[];
  /** Default routes' gateways. */
  gateways: IpAddress[];
  /** Routes other than the default one. */
  routes: Route[];
  nameservers: IpAddress[];
  /** DNS search domains. */
  domains: Hostname[];
}

export type Link = LinkSettings & ({ kind: 'physical' } | { kind: 'bond'; bond: Bond } | { kind: 'vlan'; vlan: Vlan });

export interface NetworkConfig {
  /** Where it comes from, for the report and the files' first line: `network_data.json`, `a Debian interfaces file`. */
  origin: string;
  links: Link[];
}

/** Most links one configuration may have (each becomes one or two files), and most addresses, routes or servers of one link. */
export const networkLimits = { links: 64, perLink: 64 };

/** A network configuration value that does not parse, or a configuration that does not hold together. */
export class NetworkConfigError extends Error {}

/** Throws a NetworkConfigError: `WHERE: FIELD: WHY: "VALUE"`. */
export function refuseNetwork(where: string, field: string, why: string, value?: unknown): never {
  const shown = value === undefined ? '' : `: ${typeof value === 'string' ? quoteValue(value) : String(JSON.stringify(value)).slice(0, 60)}`;
  throw new NetworkConfigError(`${where}: ${field}: ${why}${shown}`);
}

/** A link with no settings yet. */
export function emptyLink(name: InterfaceName): LinkSettings {
  return { name, dhcp4: false, dhcp6: false, acceptRa: false, addresses: [], gateways: [], routes: [], nameservers: [], domains: [] };
}

const interfaceName = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

/** `text` as an InterfaceName, or undefined. */
export function parseInterfaceName(text: string): InterfaceName | undefined {
  return interfaceName.test(text) ? (text as InterfaceName) : undefined;
}

export function interfaceNameValue(where: string, field: string, text: string): InterfaceName {
  return parseInterfaceName(text) ?? refuseNetwork(where, field, 'not an interface name (1 to 15 letters, digits, "_", "." and "-")', text);
}

export function macAddressValue(where: string, field: string, text: string): MacAddress {
  if (!/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(text)) refuseNetwork(where, field, 'not a MAC address (six hex pairs with ":")', text);
  return text.toLowerCase() as MacAddress;
}

export function addressValue(where: string, field: string, text: string, family?: 4 | 6): IpAddress {
  if (parseIpAddress(text) === undefined) refuseNetwork(where, field, 'not an IP address', text);
  return parseIpAddress(text, family) ?? refuseNetwork(where, field, `not an IPv${family} address`, text);
}

/** A prefix length for an address of `family`. */
export function prefixValue(where: string, field: string, value: number, family: 4 | 6): number {
  const most = family === 4 ? 32 : 128;
  if (!Number.isInteger(value) || value < 0 || value > most) refuseNetwork(where, field, `not a prefix length for IPv${family} (0 to ${most})`, value);
  return value;
}

/** The 4 or 16 bytes of an address already parsed. */
export function addressBytes(ip: IpAddress): number[] {
  if (ipFamily(ip) === 4) return ip.split('.').map(Number);
  const groups = (part: string) => (part === '' ? [] : part.split(':')).flatMap((g) => {
    if (!g.includes('.')) return [parseInt(g, 16)];
    const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
    return [(a << 8) | b, (c << 8) | d];
  });
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const front = groups(head!);
  const back = tail === undefined ? [] : groups(tail);
  const all = [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

/** The prefix length of a netmask (`255.255.255.0`, `ffff:ffff:ffff:ffff::`): its leading ones, which must be all its ones. */
export function netmaskPrefix(where: string, field: string, text: string, family: 4 | 6): number {
  const mask = parseIpAddress(text, family) ?? refuseNetwork(where, field, `not an IPv${family} netmask`, text);
  const bits = addressBytes(mask).map((b) => b.toString(2).padStart(8, '0')).join('');
  if (!/^1*0*$/.test(bits)) refuseNetwork(where, field, 'not a netmask (its ones are not contiguous)', text);
  return bits.indexOf('0') === -1 ? bits.length : bits.indexOf('0');
}

export function mtuValue(where: string, field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 68 || value > 65535) refuseNetwork(where, field, 'not an MTU (68 to 65535 bytes)', value);
  return value;
}

export function vlanIdValue(where: string, field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 4094) refuseNetwork(where, field, 'not a VLAN id (1 to 4094)', value);
  return value;
}

/** A bonding mode by name (`802.3ad`) or number (`4`). */
export function bondModeValue(where: string, field: string, value: unknown): BondMode {
  const text = String(value);
  const mode = /^[0-6]$/.test(text) ? bondModes[Number(text)] : bondModes.find((m) => m === text);
  return mode ?? refuseNetwork(where, field, `not a bonding mode (${bondModes.join(', ')}, or 0 to 6)`, value);
}

export function hashPolicyValue(where: string, field: string, value: unknown): HashPolicy {
  return hashPolicies.find((p) => p === value) ?? refuseNetwork(where, field, `not a transmit hash policy (${hashPolicies.join(', ')})`, value);
}

/** A count of milliseconds, 0 to one day. */
export function millisecondsValue(where: string, field: string, value: unknown): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 86_400_000) refuseNetwork(where, field, 'not a number of milliseconds', value);
  return n;
}

/** A DNS search domain. */
export function domainValue(where: string, field: string, text: string): Hostname {
  const problem = hostnameProblem(text);
  return problem === undefined ? (text as Hostname) : refuseNetwork(where, field, `not a domain name (${problem})`, text);
}

/** Adds `value` to `list` once, within networkLimits.perLink. */
export function addOnce<T>(list: T[], value: T, where: string, field: string): void {
  if (list.some((v) => JSON.stringify(v) === JSON.stringify(value))) return;
  if (list.length >= networkLimits.perLink) refuseNetwork(where, field, `more than ${networkLimits.perLink} entries for one link`);
  list.push(value);
}

/**
 * Why a configuration does not hold together, or undefined: names repeated, a bond's member or a
 * VLAN's parent that is no suitable link, prefixes or gateways of the wrong family, too many
 * links. The parsers check their fields; this checks the whole, and the writer checks again.
 */
export function networkConfigProblem(config: NetworkConfig): string | undefined {
  if (config.links.length > networkLimits.links) return `${config.links.length} links, more than ${networkLimits.links}`;
  const byName = new Map<string, Link>();
  for (const link of config.links) {
    if (parseInterfaceName(link.name) === undefined) return `link ${quoteValue(link.name)}: not an interface name`;
    if (byName.has(link.name)) return `link ${link.name}: the name is given to two links`;
    byName.set(link.name, link);
  }
  const bondOf = new Map<string, string>();
  for (const link of config.links) {
    const at = `${link.kind} ${link.name}`;
    if (link.kind === 'bond') {
      if (link.bond.members.length === 0) return `${at}: no members`;
      for (const member of link.bond.members) {
        if (byName.get(member)?.kind !== 'physical') return `${at}: member ${member} is not a physical link here`;
        if (bondOf.has(member)) return `${at}: member ${member} is a member of bond ${bondOf.get(member)} already`;
        bondOf.set(member, link.name);
      }
    }
    if (link.kind === 'vlan') {
      const parent = byName.get(link.vlan.parent);
      if (!parent || parent.kind === 'vlan') return `${at}: parent ${link.vlan.parent} is not a physical link or bond here`;
      if (link.vlan.id < 1 || link.vlan.id > 4094) return `${at}: VLAN id ${link.vlan.id} is not 1 to 4094`;
    }
    for (const a of link.addresses) {
      const most = ipFamily(a.address) === 4 ? 32 : 128;
      if (!Number.isInteger(a.prefix) || a.prefix < 0 || a.prefix > most) return `${at}: address ${a.address}/${a.prefix}: the prefix is not 0 to ${most}`;
    }
    for (const r of link.routes) {
      const family = ipFamily(r.destination);
      if (r.gateway !== undefined && ipFamily(r.gateway) !== family) return `${at}: route to ${r.destination}/${r.prefix}: gateway ${r.gateway} is of another family`;
      if (!Number.isInteger(r.prefix) || r.prefix < 0 || r.prefix > (family === 4 ? 32 : 128)) return `${at}: route to ${r.destination}/${r.prefix}: the prefix is out of range`;
    }
    if (link.mtu !== undefined && (!Number.isInteger(link.mtu) || link.mtu < 68 || link.mtu > 65535)) return `${at}: MTU ${link.mtu} is not 68 to 65535`;
  }
  return undefined;
}

/** The configuration, or a NetworkConfigError naming `where` when it does not hold together. */
export function checkedNetworkConfig(config: NetworkConfig, where: string): NetworkConfig {
  const problem = networkConfigProblem(config);
  if (problem) throw new NetworkConfigError(`${where}: ${problem}`);
  return config;
}
