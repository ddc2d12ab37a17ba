/**
 * The networkd writer: a validated network configuration (system/network-config.ts) rendered as
 * systemd-networkd files, `10-bootsmith-NAME.network` for each link and `10-bootsmith-NAME.netdev`
 * for each bond and VLAN. Every value written is one the model holds parsed (an address, a
 * prefix, a MAC address, an interface name, a mode from a fixed list), so no metadata text
 * reaches a file as it came. Pure.
 */
import { checkedNetworkConfig } from '../../system/network-config';
import type { Link, NetworkConfig, Route } from '../../system/network-config';
import { ipFamily } from '../../cloudconfig/values';

/** A file to write into networkd's directory. */
export interface NetworkdFile {
  /** The file name: `10-bootsmith-eth0.network`. */
  name: string;
  content: string;
}

/** The file names' prefix: before the image's catch-all files (networkd takes the first .network that matches, by name). */
export const networkdFilePrefix = '10-bootsmith-';

/** `[Section]` and its `Key=value` lines; nothing when there are no lines. */
function section(name: string, lines: Array<[string, string | number | undefined]>): string {
  const set = lines.filter(([, v]) => v !== undefined);
  return set.length === 0 ? '' : `\n[${name}]\n${set.map(([k, v]) => `${k}=${v}\n`).join('')}`;
}

/** Whether a physical link has anything to configure: otherwise no file is written, and it is left to whatever else matches it. */
function configures(link: Link, hasRole: boolean): boolean {
  return (
    hasRole || link.mtu !== undefined || link.dhcp4 || link.dhcp6 || link.acceptRa ||
    [link.addresses, link.gateways, link.routes, link.nameservers, link.domains].some((l) => l.length > 0)
  );
}

function dhcpValue(link: Link): string | undefined {
  if (link.dhcp4 && link.dhcp6) return 'yes';
  if (link.dhcp4) return 'ipv4';
  if (link.dhcp6) return 'ipv6';
  return undefined;
}

/**
 * `link` for an IPv4 route without a gateway: the destination is on the link. Recent networkd
 * takes that scope by default when there is no gateway; written out, the route does not depend on
 * the version's default. IPv6 routes have no scope.
 */
function onLinkScope(route: Route): string | undefined {
  return route.gateway === undefined && ipFamily(route.destination) === 4 ? 'link' : undefined;
}

function networkFile(link: Link, config: NetworkConfig, header: string): NetworkdFile | undefined {
  const bond = config.links.find((l) => l.kind === 'bond' && l.bond.members.includes(link.name));
  const vlans = config.links.filter((l) => l.kind === 'vlan' && l.vlan.parent === link.name).map((l) => l.name);
  if (link.kind === 'physical' && !configures(link, bond !== undefined || vlans.length > 0)) return undefined;
  // A bond or VLAN takes a member's or its parent's MAC address: Type=ether keeps a physical link's file from matching it too.
  const match = link.kind === 'physical' && link.mac !== undefined ? section('Match', [['MACAddress', link.mac], ['Type', 'ether']]) : section('Match', [['Name', link.name]]);
  const network: Array<[string, string | undefined]> = [
    ['DHCP', dhcpValue(link)],
    ['IPv6AcceptRA', link.acceptRa ? 'yes' : undefined],
    ...(bond ? [['Bond', bond.name] as [string, string]] : []),
    ...vlans.map((v) => ['VLAN', v] as [string, string]),
    ...link.addresses.map((a) => ['Address', `${a.address}/${a.prefix}`] as [string, string]),
    ...link.gateways.map((g) => ['Gateway', g] as [string, string]),
    ...link.nameservers.map((n) => ['DNS', n] as [string, string]),
    ...(link.domains.length > 0 ? [['Domains', link.domains.join(' ')] as [string, string]] : []),
  ];
  const content =
    header +
    match.slice(1) +
    // A bond's or VLAN's MTU is its netdev's; a physical link's is set here.
    (link.kind === 'physical' ? section('Link', [['MTUBytes', link.mtu]]) : '') +
    // [Network] even when empty: the link is brought up, as a bond member or VLAN parent must be.
    (section('Network', network) || '\n[Network]\n') +
    link.routes.map((r) => section('Route', [['Destination', `${r.destination}/${r.prefix}`], ['Gateway', r.gateway], ['Scope', onLinkScope(r)]])).join('');
  return { name: `${networkdFilePrefix}${link.name}.network`, content };
}

/** A time span in networkd's syntax. */
const ms = (n: number | undefined) => (n === undefined ? undefined : `${n}ms`);

function netdevFile(link: Link, header: string): NetworkdFile | undefined {
  if (link.kind === 'physical') return undefined;
  const netdev = section('NetDev', [['Name', link.name], ['Kind', link.kind], ['MTUBytes', link.mtu], ['MACAddress', link.mac]]);
  const kind =
    link.kind === 'bond'
      ? section('Bond', [
          ['Mode', link.bond.mode],
          ['MIIMonitorSec', ms(link.bond.miimonMs)],
          ['UpDelaySec', ms(link.bond.upDelayMs)],
          ['DownDelaySec', ms(link.bond.downDelayMs)],
          ['TransmitHashPolicy', link.bond.transmitHashPolicy],
          ['LACPTransmitRate', link.bond.lacpRate],
        ])
      : section('VLAN', [['Id', link.vlan.id]]);
  return { name: `${networkdFilePrefix}${link.name}.netdev`, content: header + netdev.slice(1) + kind };
}

/**
 * The networkd files for a configuration, netdevs first, in the order of its links. Throws a
 * NetworkConfigError when the configuration does not hold together (the datasource's parser has
 * checked it already; this holds whatever a caller passes).
 */
export function networkdFiles(config: NetworkConfig): NetworkdFile[] {
  checkedNetworkConfig(config, config.origin);
  const header = `# Written by coreos-cloudinit from ${config.origin}.\n`;
  const netdevs = config.links.flatMap((l) => netdevFile(l, header) ?? []);
  const networks = config.links.flatMap((l) => networkFile(l, config, header) ?? []);
  return [...netdevs, ...networks];
}
