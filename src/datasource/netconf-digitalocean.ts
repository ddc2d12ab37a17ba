/**
 * DigitalOcean's interfaces (metadata/v1.json) into the network model, as coreos-cloudinit's
 * `--convert-netconf=digitalocean` reads them: each public and private interface, found by its
 * `mac`, gets its `ipv4` (ip_address/netmask), `ipv6` (ip_address/cidr) and `anchor_ipv4`
 * addresses; public interfaces also get the default routes through their gateways and the
 * `dns.nameservers`. Each value is parsed into its type or refused naming its field.
 */
import { jsonField } from './metadata-values';
import type { JsonKind } from './metadata-values';
import { addOnce, addressValue, checkedNetworkConfig, emptyLink, macAddressValue, netmaskPrefix, networkLimits, prefixValue, refuseNetwork } from '../system/network-config';
import type { InterfaceName, Link, NetworkConfig } from '../system/network-config';

const document = 'metadata/v1.json';

/** The network configuration in a metadata/v1.json document; `where` names the source in errors. */
export function digitaloceanNetwork(doc: Record<string, unknown>, where: string): NetworkConfig {
  const field = <K extends JsonKind>(path: string, value: unknown, kind: K) => jsonField(where, `${document} ${path}`, value, kind);
  const refuse = (path: string, why: string, value?: unknown): never => refuseNetwork(where, `${document} ${path}`, why, value);
  const text = (path: string, value: unknown) => field(path, value, 'string') ?? refuse(path, 'missing');
  const dns = field('dns', doc.dns, 'object');
  const nameservers = (field('dns.nameservers', dns?.nameservers, 'list') ?? []).map((n, i) => addressValue(where, `${document} dns.nameservers[${i}]`, text(`dns.nameservers[${i}]`, n)));
  const interfaces = field('interfaces', doc.interfaces, 'object') ?? {};
  const links: Link[] = [];
  for (const kind of ['public', 'private'] as const) {
    (field(`interfaces.${kind}`, interfaces[kind], 'list') ?? []).forEach((entry, i) => {
      const path = `interfaces.${kind}[${i}]`;
      if (links.length >= networkLimits.links) refuse(`interfaces.${kind}`, `more than ${networkLimits.links} interfaces`);
      const iface = field(path, entry, 'object') ?? refuse(path, 'not an object', entry);
      const link: Link = { ...emptyLink(`${kind}${i}` as InterfaceName), kind: 'physical', mac: macAddressValue(where, `${document} ${path}.mac`, text(`${path}.mac`, iface.mac)) };
      for (const [key, family] of [['ipv4', 4], ['anchor_ipv4', 4], ['ipv6', 6]] as const) {
        const at = `${path}.${key}`;
        const block = field(at, iface[key], 'object');
        if (!block) continue;
        const address = addressValue(where, `${document} ${at}.ip_address`, text(`${at}.ip_address`, block.ip_address), family);
        const prefix =
          family === 4
            ? netmaskPrefix(where, `${document} ${at}.netmask`, text(`${at}.netmask`, block.netmask), 4)
            : prefixValue(where, `${document} ${at}.cidr`, field(`${at}.cidr`, block.cidr, 'number') ?? refuse(`${at}.cidr`, 'missing'), 6);
        addOnce(link.addresses, { address, prefix }, where, `${document} ${at}`);
        // The anchor address is for floating IPs: its gateway is not the droplet's default route.
        if (kind === 'public' && key !== 'anchor_ipv4') link.gateways.push(addressValue(where, `${document} ${at}.gateway`, text(`${at}.gateway`, block.gateway), family));
      }
      if (kind === 'public') for (const server of nameservers) addOnce(link.nameservers, server, where, `${document} dns.nameservers`);
      links.push(link);
    });
  }
  return checkedNetworkConfig({ origin: document, links }, `${where}: ${document}`);
}
