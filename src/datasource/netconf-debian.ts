/**
 * A Debian interfaces file (ifupdown's format; Rackspace OnMetal's config drive names one in
 * meta_data.json's network_config.content_path) into the network model, as coreos-cloudinit's
 * `--convert-netconf=debian` reads it: `iface NAME inet|inet6 static|dhcp|manual|auto|loopback`
 * stanzas with `address` (with `/prefix` or a `netmask`), `gateway`, `dns-nameservers`,
 * `dns-search`, `mtu`, `hwaddress`, the bonding options (`bond-slaves` or `bond-master`,
 * `bond-mode`, `bond-miimon`, `bond-xmit-hash-policy`, `bond-lacp-rate`), VLANs (`NAME.ID`, or
 * `vlan-raw-device`) and `post-up route add ...` routes. The loopback is left alone; other
 * commands and unknown options are ignored, as ifupdown's hooks would run them. Errors name the line.
 */
import {
  addOnce, addressValue, bondModeValue, checkedNetworkConfig, domainValue, emptyLink, hashPolicyValue, interfaceNameValue, macAddressValue, millisecondsValue, mtuValue,
  netmaskPrefix, networkLimits, prefixValue, refuseNetwork, vlanIdValue,
} from '../system/network-config';
import type { Bond, InterfaceName, Link, NetworkConfig, Route } from '../system/network-config';
import { ipFamily } from '../cloudconfig/values';
import type { IpAddress } from '../cloudconfig/values';

interface Option {
  key: string;
  args: string[];
  line: number;
}

interface Stanza {
  name: InterfaceName;
  family: 4 | 6;
  method: 'static' | 'dhcp' | 'manual' | 'auto';
  line: number;
  options: Option[];
}

const methods: Record<string, ReadonlyArray<Stanza['method']>> = { inet: ['static', 'dhcp', 'manual'], inet6: ['static', 'dhcp', 'manual', 'auto'] };
const otherStanzas = new Set(['auto', 'no-auto-down', 'no-scripts']);
/** bond-lacp-rate's values, by name or number. */
const lacpRates = new Map<string, 'slow' | 'fast'>([['0', 'slow'], ['1', 'fast'], ['slow', 'slow'], ['fast', 'fast']]);

/** The logical lines (continuations joined), each with the number of its first line; comments and blank lines dropped. */
function logicalLines(text: string): Array<{ line: number; fields: string[] }> {
  const out: Array<{ line: number; fields: string[] }> = [];
  const physical = text.split('\n');
  for (let i = 0; i < physical.length; i++) {
    const line = i + 1;
    let joined = physical[i]!;
    while (joined.endsWith('\\') && i + 1 < physical.length) joined = joined.slice(0, -1) + physical[++i]!;
    const trimmed = joined.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    out.push({ line, fields: trimmed.split(/\s+/) });
  }
  return out;
}

function stanzas(text: string, where: string): Stanza[] {
  const out: Stanza[] = [];
  let current: Stanza | 'ignored' | undefined;
  for (const { line, fields } of logicalLines(text)) {
    const at = `line ${line}`;
    const [word, ...args] = fields as [string, ...string[]];
    if (word === 'iface') {
      if (args.length < 3) refuseNetwork(where, at, 'want "iface NAME inet|inet6 METHOD"', fields.join(' '));
      const [name, familyWord, method] = args as [string, string, string];
      if (name === 'lo' || method === 'loopback') {
        current = 'ignored'; // the loopback is the system's
        continue;
      }
      const allowed = (Object.hasOwn(methods, familyWord) ? methods[familyWord] : undefined) ?? refuseNetwork(where, at, 'not an address family this reads (inet, inet6)', familyWord);
      if (!allowed.includes(method as Stanza['method'])) refuseNetwork(where, at, `not a method this reads for ${familyWord} (${allowed.join(', ')})`, method);
      if (out.length >= networkLimits.links * 2) refuseNetwork(where, at, `more than ${networkLimits.links * 2} iface stanzas`);
      current = { name: interfaceNameValue(where, at, name), family: familyWord === 'inet' ? 4 : 6, method: method as Stanza['method'], line, options: [] };
      out.push(current);
    } else if (otherStanzas.has(word) || word.startsWith('allow-')) {
      current = undefined;
    } else if (word === 'mapping' || word === 'source' || word === 'source-directory') {
      refuseNetwork(where, at, `"${word}" stanzas are not read: the configuration must be in this one file`);
    } else if (current === undefined) {
      refuseNetwork(where, at, 'an option outside any iface stanza', word);
    } else if (current !== 'ignored') {
      if (current.options.length >= networkLimits.perLink * 4) refuseNetwork(where, at, 'too many options for one iface stanza');
      current.options.push({ key: word.replace(/_/g, '-'), args, line });
    }
  }
  return out;
}

interface Pending {
  settings: ReturnType<typeof emptyLink>;
  /** hwaddress: the MAC address a bond or VLAN is given, and its line. */
  mac?: { text: string; line: number };
  members: InterfaceName[];
  bondOptions: Partial<Omit<Bond, 'members'>>;
  rawDevice?: InterfaceName;
  line: number;
}

/** The network configuration in an interfaces file; `where` names the file in errors (`rackspace-onmetal config drive: openstack/content/0000`). */
export function debianNetwork(text: string, where: string): NetworkConfig {
  const pending = new Map<string, Pending>();
  const entry = (name: InterfaceName, line: number) => {
    let p = pending.get(name);
    if (!p) pending.set(name, (p = { settings: emptyLink(name), members: [], bondOptions: {}, line }));
    return p;
  };
  for (const stanza of stanzas(text, where)) {
    const p = entry(stanza.name, stanza.line);
    const s = p.settings;
    if (stanza.method === 'dhcp') s[stanza.family === 4 ? 'dhcp4' : 'dhcp6'] = true;
    if (stanza.method === 'auto') s.acceptRa = true;
    let address: IpAddress | undefined;
    let prefix: number | undefined;
    let netmask: Option | undefined;
    for (const option of stanza.options) {
      const at = `line ${option.line}`;
      const first = (): string => option.args[0] ?? refuseNetwork(where, at, `${option.key} wants a value`);
      switch (option.key) {
        case 'address': {
          const [ip, bits] = first().split('/', 2) as [string, string | undefined];
          address = addressValue(where, at, ip, stanza.family);
          if (bits !== undefined) prefix = prefixValue(where, at, /^\d{1,3}$/.test(bits) ? Number(bits) : NaN, stanza.family);
          break;
        }
        case 'netmask':
          netmask = option;
          break;
        case 'gateway':
          addOnce(s.gateways, addressValue(where, at, first(), stanza.family), where, at);
          break;
        case 'dns-nameservers':
          for (const server of option.args) addOnce(s.nameservers, addressValue(where, at, server), where, at);
          break;
        case 'dns-search':
        case 'dns-domain':
          for (const domain of option.args) addOnce(s.domains, domainValue(where, at, domain), where, at);
          break;
        case 'mtu':
          s.mtu = mtuValue(where, at, /^\d+$/.test(first()) ? Number(first()) : first());
          break;
        case 'hwaddress':
          p.mac = { text: (option.args[0] === 'ether' ? option.args[1] : undefined) ?? first(), line: option.line };
          break;
        case 'bond-slaves':
          for (const member of option.args) if (member !== 'none') p.members.push(interfaceNameValue(where, at, member));
          break;
        case 'bond-master':
          entry(interfaceNameValue(where, at, first()), option.line).members.push(stanza.name);
          break;
        case 'bond-mode':
          p.bondOptions.mode = bondModeValue(where, at, first());
          break;
        case 'bond-miimon':
          p.bondOptions.miimonMs = millisecondsValue(where, at, first());
          break;
        case 'bond-xmit-hash-policy':
          p.bondOptions.transmitHashPolicy = hashPolicyValue(where, at, first());
          break;
        case 'bond-lacp-rate': {
          p.bondOptions.lacpRate = lacpRates.get(first()) ?? refuseNetwork(where, at, 'not an LACP rate (slow, fast, 0 or 1)', first());
          break;
        }
        case 'vlan-raw-device':
          p.rawDevice = interfaceNameValue(where, at, first());
          break;
        case 'post-up':
        case 'up': {
          const route = routeCommand(option.args, where, at);
          if (route) {
            if (route.prefix === 0) addOnce(s.gateways, route.gateway, where, at);
            else addOnce(s.routes, route, where, at);
          }
          break;
        }
        default:
          break; // another tool's option (pre-up hooks, wireless, bridge ports ...)
      }
    }
    if (netmask) {
      const text = netmask.args[0] ?? refuseNetwork(where, `line ${netmask.line}`, 'netmask wants a value');
      prefix = /^\d{1,3}$/.test(text) ? prefixValue(where, `line ${netmask.line}`, Number(text), stanza.family) : netmaskPrefix(where, `line ${netmask.line}`, text, stanza.family);
    }
    if (stanza.method === 'static') {
      if (address === undefined) refuseNetwork(where, `line ${stanza.line}`, `static iface ${stanza.name} has no address`);
      if (prefix === undefined) refuseNetwork(where, `line ${stanza.line}`, `static iface ${stanza.name} has no netmask (or /prefix on its address)`);
      addOnce(s.addresses, { address, prefix }, where, `line ${stanza.line}`);
    }
  }

  // Bonds' members and VLANs' parents that have no stanza of their own are physical links with nothing else to configure.
  for (const [name, p] of [...pending]) {
    for (const member of p.members) entry(member, p.line);
    const parent = vlanParent(name as InterfaceName, p, where);
    if (parent) entry(parent.parent, p.line);
  }
  const links: Link[] = [...pending].map(([name, p]) => {
    const vlan = vlanParent(name as InterfaceName, p, where);
    const mac = p.mac === undefined ? undefined : macAddressValue(where, `line ${p.mac.line}`, p.mac.text);
    if (vlan) return { ...p.settings, ...(mac ? { mac } : {}), kind: 'vlan', vlan };
    if (p.members.length > 0) {
      const { mode = 'balance-rr', ...rest } = p.bondOptions;
      return { ...p.settings, ...(mac ? { mac } : {}), kind: 'bond', bond: { mode, members: [...new Set(p.members)], ...rest } };
    }
    return { ...p.settings, kind: 'physical' }; // matched by name: hwaddress sets a MAC address, it does not find the link
  });
  return checkedNetworkConfig({ origin: 'a Debian interfaces file', links }, where);
}

/** A VLAN's id and parent: `NAME.ID` (parent NAME), or `vlanID` with a vlan-raw-device; undefined for another link. */
function vlanParent(name: InterfaceName, p: Pending, where: string): { id: number; parent: InterfaceName } | undefined {
  const at = `line ${p.line}`;
  const dotted = /^(.+)\.(\d+)$/.exec(name);
  if (dotted) return { id: vlanIdValue(where, at, Number(dotted[2])), parent: p.rawDevice ?? interfaceNameValue(where, at, dotted[1]!) };
  if (p.rawDevice === undefined) return undefined;
  const numbered = /^vlan(\d+)$/.exec(name) ?? refuseNetwork(where, at, 'a VLAN with vlan-raw-device is named NAME.ID or vlanID', name);
  return { id: vlanIdValue(where, at, Number(numbered[1])), parent: p.rawDevice };
}

/**
 * A route from a `post-up` command: `route add [-net|-host] DEST[/PREFIX] [netmask MASK] gw GATEWAY ...`,
 * `route add default gw GATEWAY`, or `ip route add DEST[/PREFIX]|default via GATEWAY ...`; undefined
 * for any other command. A route command that does not say all that is refused.
 */
function routeCommand(args: string[], where: string, at: string): Route | undefined {
  const words = args.join(' ').split('||')[0]!.trim().split(/\s+/);
  const ip = words[0] === 'ip' && words[1] === 'route' && words[2] === 'add';
  if (!ip && !(words[0] === 'route' && words[1] === 'add')) return undefined;
  const rest = words.slice(ip ? 3 : 2).filter((w) => w !== '-net' && w !== '-host' && w !== '-A' && w !== 'inet' && w !== 'inet6');
  const valueOf = (key: string) => {
    const i = rest.indexOf(key);
    return i === -1 ? undefined : rest[i + 1];
  };
  const gatewayText = valueOf(ip ? 'via' : 'gw') ?? refuseNetwork(where, at, `a route without a gateway ("${ip ? 'via' : 'gw'}") is not read`, words.join(' '));
  const gateway = addressValue(where, at, gatewayText);
  const family = ipFamily(gateway);
  const target = rest[0] ?? refuseNetwork(where, at, 'a route without a destination', words.join(' '));
  if (target === 'default') return { destination: (family === 4 ? '0.0.0.0' : '::') as IpAddress, prefix: 0, gateway };
  const [dest, bits] = target.split('/', 2) as [string, string | undefined];
  const destination = addressValue(where, at, dest, family);
  const mask = valueOf('netmask');
  let prefix: number;
  if (bits !== undefined) prefix = prefixValue(where, at, /^\d{1,3}$/.test(bits) ? Number(bits) : NaN, family);
  else if (mask !== undefined) prefix = netmaskPrefix(where, at, mask, family);
  else prefix = args.includes('-net') ? refuseNetwork(where, at, 'a -net route without a netmask or /prefix', words.join(' ')) : family === 4 ? 32 : 128;
  return { destination, prefix, gateway };
}
