/**
 * VMware's network (the guestinfo keys `interface.N.*`, `dns.server.N` and `dns.domain.N`, already
 * parsed by vmware-network.ts) into the network model, as coreos-cloudinit's
 * `--convert-netconf=vmware` reads it. Each interface is a physical link, matched by its MAC address
 * when `interface.N.mac` is set (its files named by `interface.N.name`, else `vmwareN`), else by its
 * name; `dhcp` yes is DHCP for IPv4 and IPv6; each `ip.M.address` is an address; a route without a
 * destination, or to a /0, is a default route through its gateway, and a route without a gateway
 * is a route to a destination on the link.
 *
 * The DNS servers and search domains are global in VMware's keys, and per link in networkd (and
 * in the model, which is what networkd takes; a global place would be resolved.conf, another
 * daemon's file): they go on every link the keys configure (DHCP, an address or a route), which
 * resolved merges into one list. A link with nothing else is given none: a file with only DNS in
 * it would match the interface before the image's own file does and leave it without an address.
 *
 * What the keys say that cannot be configured is refused naming the key: an interface with neither
 * a name nor a MAC address, two interfaces with the same name or MAC address.
 */
import { addOnce, checkedNetworkConfig, emptyLink, parseInterfaceName, refuseNetwork } from '../system/network-config';
import type { InterfaceName, Link, NetworkConfig } from '../system/network-config';
import { guestinfoKey } from './vmware-network';
import type { VmwareNetwork } from './vmware-network';

/** How the report and the files name it: the keys are guestinfo's, in an OVF environment too. */
const origin = 'VMware guestinfo';

/** The network configuration the keys describe; `where` names the source in errors. */
export function vmwareNetconf(network: VmwareNetwork, where: string): NetworkConfig {
  const refuse = (key: string, why: string, value?: string): never => refuseNetwork(where, guestinfoKey(key), why, value);
  /** Which interface has each link name, and each MAC address, so far. */
  const names = new Map<string, number>();
  const macs = new Map<string, number>();
  const links: Link[] = network.interfaces.map((iface) => {
    const at = `interface.${iface.index}`;
    if (iface.name === undefined && iface.mac === undefined) refuse(at, `neither ${guestinfoKey(`${at}.name`)} nor ${guestinfoKey(`${at}.mac`)} is set: nothing to match the interface by`);
    if (iface.mac !== undefined) {
      const other = macs.get(iface.mac);
      if (other !== undefined) refuse(`${at}.mac`, `interface ${other} has that MAC address too`, iface.mac);
      macs.set(iface.mac, iface.index);
    }
    // Always a name: interface names are at most 15 characters, and `vmware` and an index under maxEntries are fewer.
    const name = iface.name ?? (parseInterfaceName(`vmware${iface.index}`) as InterfaceName);
    const other = names.get(name);
    if (other !== undefined) {
      if (iface.name !== undefined) refuse(`${at}.name`, `interface ${other}'s files have that name too`, name);
      refuse(at, `no name is set, and the one its files would have, ${name}, is interface ${other}'s`);
    }
    names.set(name, iface.index);
    const link: Link = { ...emptyLink(name), kind: 'physical', ...(iface.mac === undefined ? {} : { mac: iface.mac }) };
    link.dhcp4 = link.dhcp6 = iface.dhcp === true;
    iface.addresses.forEach((a, m) => addOnce(link.addresses, { address: a.address, prefix: a.prefix }, where, guestinfoKey(`${at}.ip.${m}.address`)));
    iface.routes.forEach(({ destination, gateway }, l) => {
      const key = guestinfoKey(`${at}.route.${l}`);
      if (destination === undefined || (destination.prefix === 0 && gateway !== undefined)) {
        // The reader gives a route one of the two at least (and a gateway of the destination's family).
        addOnce(link.gateways, gateway ?? refuse(`${at}.route.${l}.gateway`, 'not set, and neither is the destination'), where, key);
        return;
      }
      addOnce(link.routes, { destination: destination.address, prefix: destination.prefix, ...(gateway === undefined ? {} : { gateway }) }, where, key);
    });
    if (link.dhcp4 || link.addresses.length > 0 || link.gateways.length > 0 || link.routes.length > 0) {
      network.dnsServers.forEach((server, i) => addOnce(link.nameservers, server, where, guestinfoKey(`dns.server.${i}`)));
      network.dnsDomains.forEach((domain, i) => addOnce(link.domains, domain, where, guestinfoKey(`dns.domain.${i}`)));
    }
    return link;
  });
  return checkedNetworkConfig({ origin, links }, where);
}
