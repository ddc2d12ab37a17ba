/**
 * Packet's (Equinix Metal's) network (the `metadata` document's `network`) into the network model,
 * as coreos-cloudinit's `--convert-netconf=packet` reads it: every interface (`name`, found by its
 * `mac`) a member of bond0, which has the first interface's MAC address, the `bonding.mode`
 * (802.3ad when none is given; with fast LACP) and MII monitoring, up and down delays of 200 ms;
 * bond0 has every address of `addresses` (`address` with `cidr` or `netmask`), the default routes
 * through the public addresses' gateways, 10.0.0.0/8 through a private IPv4 one's, and the `dns`
 * servers (8.8.8.8 and 8.8.4.4 when none are given). Each value is parsed into its type or
 * refused naming its field.
 */
import { jsonField } from './metadata-values';
import type { JsonKind } from './metadata-values';
import {
  addOnce, addressValue, bondModeValue, checkedNetworkConfig, emptyLink, interfaceNameValue, macAddressValue, netmaskPrefix, networkLimits, prefixValue, refuseNetwork,
} from '../system/network-config';
import type { InterfaceName, Link, NetworkConfig } from '../system/network-config';
import type { IpAddress } from '../cloudconfig/values';

const document = 'metadata';
/** How the report and the files name it. */
const origin = 'Packet metadata';

/** The network configuration in a `metadata` document; `where` names the source in errors. */
export function packetNetwork(doc: Record<string, unknown>, where: string): NetworkConfig {
  const field = <K extends JsonKind>(path: string, value: unknown, kind: K) => jsonField(where, `${document} ${path}`, value, kind);
  const refuse = (path: string, why: string, value?: unknown): never => refuseNetwork(where, `${document} ${path}`, why, value);
  const text = (path: string, value: unknown) => field(path, value, 'string') ?? refuse(path, 'missing');
  const network = field('network', doc.network, 'object') ?? {};
  const interfaces = field('network.interfaces', network.interfaces, 'list') ?? [];
  if (interfaces.length === 0) return { origin, links: [] };
  if (interfaces.length > networkLimits.links - 1) refuse('network.interfaces', `more than ${networkLimits.links - 1} interfaces`);
  const members: Link[] = interfaces.map((entry, i) => {
    const path = `network.interfaces[${i}]`;
    const iface = field(path, entry, 'object') ?? refuse(path, 'not an object', entry);
    const name = interfaceNameValue(where, `${document} ${path}.name`, text(`${path}.name`, iface.name));
    return { ...emptyLink(name), kind: 'physical', mac: macAddressValue(where, `${document} ${path}.mac`, text(`${path}.mac`, iface.mac)) };
  });
  const bonding = field('network.bonding', network.bonding, 'object');
  const mode = bonding?.mode === undefined || bonding.mode === null ? '802.3ad' : bondModeValue(where, `${document} network.bonding.mode`, bonding.mode);
  const bond: Link = {
    ...emptyLink('bond0' as InterfaceName),
    mac: members[0]!.mac!,
    kind: 'bond',
    bond: { mode, members: members.map((m) => m.name), miimonMs: 200, upDelayMs: 200, downDelayMs: 200, ...(mode === '802.3ad' ? { lacpRate: 'fast' as const } : {}) },
  };
  (field('network.addresses', network.addresses, 'list') ?? []).forEach((entry, i) => {
    const path = `network.addresses[${i}]`;
    const block = field(path, entry, 'object') ?? refuse(path, 'not an object', entry);
    const given = field(`${path}.address_family`, block.address_family, 'number');
    const family = given === 4 || given === 6 ? given : refuse(`${path}.address_family`, 'not 4 or 6', given ?? null);
    const address = addressValue(where, `${document} ${path}.address`, text(`${path}.address`, block.address), family);
    const cidr = field(`${path}.cidr`, block.cidr, 'number');
    const prefix =
      cidr !== undefined
        ? prefixValue(where, `${document} ${path}.cidr`, cidr, family)
        : netmaskPrefix(where, `${document} ${path}.netmask`, field(`${path}.netmask`, block.netmask, 'string') ?? refuse(`${path}.cidr`, 'missing (and no netmask)'), family);
    addOnce(bond.addresses, { address, prefix }, where, `${document} ${path}`);
    const gatewayText = field(`${path}.gateway`, block.gateway, 'string');
    if (gatewayText === undefined) return; // an elastic address: routed to the machine, no gateway of its own
    const gateway = addressValue(where, `${document} ${path}.gateway`, gatewayText, family);
    if (field(`${path}.public`, block.public, 'boolean')) addOnce(bond.gateways, gateway, where, `${document} ${path}`);
    else if (family === 4) addOnce(bond.routes, { destination: '10.0.0.0' as IpAddress, prefix: 8, gateway }, where, `${document} ${path}`);
  });
  const dns = field('network.dns', network.dns, 'list');
  const servers = dns === undefined ? ['8.8.8.8', '8.8.4.4'] : dns.map((s, i) => text(`network.dns[${i}]`, s));
  servers.forEach((s, i) => addOnce(bond.nameservers, addressValue(where, `${document} network.dns[${i}]`, s), where, `${document} network.dns`));
  return checkedNetworkConfig({ origin, links: [...members, bond] }, `${where}: ${document}`);
}
