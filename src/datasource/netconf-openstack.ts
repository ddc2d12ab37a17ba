/**
 * OpenStack's network_data.json (config drive and metadata service) into the network model:
 * `links` (physical ones by `ethernet_mac_address`, bonds with `bond_links` and `bond_mode`,
 * VLANs with `vlan_id` and `vlan_link`, each with an `mtu`), `networks` on those links (`ipv4` and
 * `ipv6` with `ip_address`, `netmask` or a `/prefix`, `routes` and `services`; `ipv4_dhcp`,
 * `ipv6_dhcp`, `ipv6_slaac` ...) and the global `services` (DNS servers, given to every link with
 * an address or DHCP). Each value is parsed into its type or refused naming its field. A network
 * that names no link (some tools write only addresses) configures nothing: its address is still
 * the machine's, for $private_ipv4 (openstack.ts).
 */
import { jsonField } from './metadata-values';
import type { JsonKind } from './metadata-values';
import {
  addOnce, addressValue, bondModeValue, checkedNetworkConfig, emptyLink, hashPolicyValue, interfaceNameValue, macAddressValue, millisecondsValue, mtuValue,
  netmaskPrefix, networkLimits, parseInterfaceName, prefixValue, refuseNetwork, vlanIdValue,
} from '../system/network-config';
import type { InterfaceName, Link, NetworkConfig } from '../system/network-config';
import type { IpAddress } from '../cloudconfig/values';

const file = 'network_data.json';

/** The network types that ask for DHCP or router advertisements, and what each sets. */
const dynamicTypes: Record<string, 'dhcp4' | 'dhcp6' | 'acceptRa'> = {
  ipv4_dhcp: 'dhcp4',
  ipv6_dhcp: 'dhcp6',
  'ipv6_dhcpv6-stateful': 'dhcp6',
  'ipv6_dhcpv6-stateless': 'acceptRa',
  ipv6_slaac: 'acceptRa',
};

/** The network configuration in a network_data.json document; `where` names the source in errors. */
export function openstackNetwork(doc: Record<string, unknown>, where: string): NetworkConfig {
  const field = <K extends JsonKind>(path: string, value: unknown, kind: K) => jsonField(where, `${file} ${path}`, value, kind);
  const refuse = (path: string, why: string, value?: unknown): never => refuseNetwork(where, `${file} ${path}`, why, value);
  const rawLinks = field('links', doc.links, 'list') ?? [];
  if (rawLinks.length > networkLimits.links) refuse('links', `${rawLinks.length} links, more than ${networkLimits.links}`);

  // First the links, each under its kernel name (or, for a physical link matched by MAC address, a name for its file).
  const byId = new Map<string, InterfaceName>();
  const entries = rawLinks.map((entry, i) => {
    const path = `links[${i}]`;
    const link = field(path, entry, 'object') ?? refuse(path, 'not an object', entry);
    const id = field(`${path}.id`, link.id, 'string') ?? refuse(`${path}.id`, 'missing');
    if (byId.has(id)) refuse(`${path}.id`, 'two links have this id', id);
    const type = field(`${path}.type`, link.type, 'string') ?? refuse(`${path}.type`, 'missing');
    const kind = type === 'bond' ? 'bond' : type === 'vlan' ? 'vlan' : 'physical';
    const macField = kind === 'vlan' && link.vlan_mac_address !== undefined ? 'vlan_mac_address' : 'ethernet_mac_address';
    const macText = field(`${path}.${macField}`, link[macField], 'string');
    const mac = macText === undefined ? undefined : macAddressValue(where, `${file} ${path}.${macField}`, macText);
    if (kind === 'physical' && mac === undefined) refuse(`${path}.ethernet_mac_address`, 'missing: a physical link is found by its MAC address');
    const given = field(`${path}.name`, link.name, 'string');
    // A physical link's id is only its files' name: an id that is no interface name gives way to linkN.
    const name =
      kind === 'physical'
        ? parseInterfaceName(given ?? id) ?? (`link${i}` as InterfaceName)
        : interfaceNameValue(where, `${file} ${path}.${given === undefined ? 'id' : 'name'}`, given ?? id);
    byId.set(id, name);
    const mtu = link.mtu === undefined || link.mtu === null ? undefined : mtuValue(where, `${file} ${path}.mtu`, link.mtu);
    return { path, link, kind, settings: { ...emptyLink(name), ...(mac ? { mac } : {}), ...(mtu ? { mtu } : {}) } };
  });
  const linkNamed = (path: string, value: unknown): InterfaceName => {
    const id = field(path, value, 'string') ?? refuse(path, 'missing');
    return byId.get(id) ?? refuse(path, 'no link has this id', id);
  };
  const links: Link[] = entries.map(({ path, link, kind, settings }) => {
    if (kind === 'bond') {
      const members = (field(`${path}.bond_links`, link.bond_links, 'list') ?? refuse(`${path}.bond_links`, 'missing')).map((m, j) => linkNamed(`${path}.bond_links[${j}]`, m));
      const mode = bondModeValue(where, `${file} ${path}.bond_mode`, link.bond_mode ?? refuse(`${path}.bond_mode`, 'missing'));
      const miimonMs = link.bond_miimon === undefined || link.bond_miimon === null ? undefined : millisecondsValue(where, `${file} ${path}.bond_miimon`, link.bond_miimon);
      const policy = link.bond_xmit_hash_policy === undefined || link.bond_xmit_hash_policy === null ? undefined : hashPolicyValue(where, `${file} ${path}.bond_xmit_hash_policy`, link.bond_xmit_hash_policy);
      return { ...settings, kind, bond: { mode, members, ...(miimonMs === undefined ? {} : { miimonMs }), ...(policy ? { transmitHashPolicy: policy } : {}) } };
    }
    if (kind === 'vlan') {
      return { ...settings, kind, vlan: { id: vlanIdValue(where, `${file} ${path}.vlan_id`, link.vlan_id), parent: linkNamed(`${path}.vlan_link`, link.vlan_link) } };
    }
    return { ...settings, kind: 'physical' };
  });
  const linkOf = (name: InterfaceName) => links.find((l) => l.name === name)!;

  // Then the networks on them.
  const networks = field('networks', doc.networks, 'list') ?? [];
  networks.forEach((entry, i) => {
    const path = `networks[${i}]`;
    const net = field(path, entry, 'object') ?? refuse(path, 'not an object', entry);
    if (net.link === undefined || net.link === null) return; // on no link: nothing to configure
    const link = linkOf(linkNamed(`${path}.link`, net.link));
    const type = field(`${path}.type`, net.type, 'string') ?? refuse(`${path}.type`, 'missing');
    const dynamic = Object.hasOwn(dynamicTypes, type) ? dynamicTypes[type] : undefined;
    if (dynamic) {
      link[dynamic] = true;
    } else if (type === 'ipv4' || type === 'ipv6') {
      const family = type === 'ipv4' ? 4 : 6;
      const text = field(`${path}.ip_address`, net.ip_address, 'string') ?? refuse(`${path}.ip_address`, 'missing');
      const [addressText, prefixText] = text.split('/', 2) as [string, string | undefined];
      const address = addressValue(where, `${file} ${path}.ip_address`, addressText, family);
      const netmask = field(`${path}.netmask`, net.netmask, 'string');
      let prefix: number;
      if (netmask !== undefined) prefix = netmaskPrefix(where, `${file} ${path}.netmask`, netmask, family);
      else if (prefixText !== undefined && /^\d{1,3}$/.test(prefixText)) prefix = prefixValue(where, `${file} ${path}.ip_address`, Number(prefixText), family);
      else prefix = refuse(`${path}.netmask`, 'missing (and no /prefix on the address)');
      addOnce(link.addresses, { address, prefix }, where, `${file} ${path}`);
      (field(`${path}.routes`, net.routes, 'list') ?? []).forEach((r, j) => {
        const at = `${path}.routes[${j}]`;
        const route = field(at, r, 'object') ?? refuse(at, 'not an object', r);
        const destination = addressValue(where, `${file} ${at}.network`, field(`${at}.network`, route.network, 'string') ?? refuse(`${at}.network`, 'missing'), family);
        const routePrefix = netmaskPrefix(where, `${file} ${at}.netmask`, field(`${at}.netmask`, route.netmask, 'string') ?? refuse(`${at}.netmask`, 'missing'), family);
        const gateway = addressValue(where, `${file} ${at}.gateway`, field(`${at}.gateway`, route.gateway, 'string') ?? refuse(`${at}.gateway`, 'missing'), family);
        if (routePrefix === 0) addOnce(link.gateways, gateway, where, `${file} ${at}`);
        else addOnce(link.routes, { destination, prefix: routePrefix, gateway }, where, `${file} ${at}`);
      });
    } else {
      refuse(`${path}.type`, `not a network type this reads (ipv4, ipv6, ${Object.keys(dynamicTypes).join(', ')})`, type);
    }
    for (const server of dnsServers(net.services, `${path}.services`)) addOnce(link.nameservers, server, where, `${file} ${path}.services`);
  });

  function dnsServers(value: unknown, path: string): IpAddress[] {
    return (field(path, value, 'list') ?? []).flatMap((s, j) => {
      const service = field(`${path}[${j}]`, s, 'object') ?? refuse(`${path}[${j}]`, 'not an object', s);
      if (service.type !== 'dns') return [];
      return [addressValue(where, `${file} ${path}[${j}].address`, field(`${path}[${j}].address`, service.address, 'string') ?? refuse(`${path}[${j}].address`, 'missing'))];
    });
  }
  const global = dnsServers(doc.services, 'services');
  for (const link of links) {
    if (link.addresses.length === 0 && !link.dhcp4 && !link.dhcp6 && !link.acceptRa) continue;
    for (const server of global) addOnce(link.nameservers, server, where, `${file} services`);
  }
  return checkedNetworkConfig({ origin: file, links }, `${where}: ${file}`);
}
