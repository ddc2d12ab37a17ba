/** Network configuration from metadata: each format's parser (good and bad input) and the networkd writer's exact files. */
import fc from 'fast-check';
import { networkdFiles } from '../../src/apply/netconf/networkd';
import { plan } from '../../src/apply/plan';
import { toCloudConfig } from '../../src/cloudconfig/config';
import { validateUserData } from '../../src/cloudconfig/validate';
import { debianNetwork } from '../../src/datasource/netconf-debian';
import { digitaloceanNetwork } from '../../src/datasource/netconf-digitalocean';
import { openstackNetwork } from '../../src/datasource/netconf-openstack';
import { networkOf } from '../../src/datasource/metadata-values';
import { addressBytes, netmaskPrefix, networkConfigProblem } from '../../src/system/network-config';
import type { InterfaceName, Link, NetworkConfig } from '../../src/system/network-config';
import type { IpAddress } from '../../src/cloudconfig/values';
import { unitDirs } from '../../src/system/paths';
import { digitaloceanDocument, packetDocument } from '../support/fake-metadata';
import { packetNetwork } from '../../src/datasource/netconf-packet';

const where = 'openstack config drive';

/** The files as name → content. */
const filesOf = (config: NetworkConfig) => Object.fromEntries(networkdFiles(config).map((f) => [f.name, f.content]));

const networkData = {
  links: [
    { id: 'tap1a81968a-79', type: 'phy', ethernet_mac_address: 'FA:16:3E:00:00:01', mtu: 1500 },
    { id: 'eth1', type: 'phy', ethernet_mac_address: 'fa:16:3e:00:00:02' },
    { id: 'eth2', type: 'phy', ethernet_mac_address: 'fa:16:3e:00:00:03' },
    { id: 'bond0', type: 'bond', bond_links: ['eth1', 'eth2'], bond_mode: '802.3ad', bond_miimon: 100, bond_xmit_hash_policy: 'layer3+4', ethernet_mac_address: 'fa:16:3e:00:00:02', mtu: 9000 },
    { id: 'vlan101', type: 'vlan', vlan_link: 'bond0', vlan_id: 101, vlan_mac_address: 'fa:16:3e:00:00:04' },
    { id: 'unused-link-with-a-long-id', type: 'ovs', ethernet_mac_address: 'fa:16:3e:00:00:05' },
  ],
  networks: [
    {
      id: 'net0', type: 'ipv4', link: 'tap1a81968a-79', ip_address: '192.0.2.10', netmask: '255.255.255.0',
      routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '192.0.2.1' }, { network: '198.51.100.0', netmask: '255.255.255.0', gateway: '192.0.2.254' }],
      services: [{ type: 'dns', address: '192.0.2.53' }],
    },
    { id: 'net1', type: 'ipv6', link: 'tap1a81968a-79', ip_address: '2001:db8::10', netmask: 'ffff:ffff:ffff:ffff::', routes: [{ network: '::', netmask: '::', gateway: '2001:db8::1' }] },
    { id: 'net2', type: 'ipv4_dhcp', link: 'vlan101' },
    { id: 'net3', type: 'ipv4', ip_address: '10.0.0.9', netmask: '255.0.0.0' }, // on no link: configures nothing
  ],
  services: [{ type: 'dns', address: '8.8.8.8' }],
};

const header = (origin: string) => `# Written by coreos-cloudinit from ${origin}.\n`;

describe('network_data.json', () => {
  test('links, bonds, VLANs, static and DHCP networks, routes and DNS become these networkd files', () => {
    const files = filesOf(openstackNetwork(networkData, where));
    const h = header('network_data.json');
    expect(files).toEqual({
      '10-bootsmith-bond0.netdev': `${h}[NetDev]\nName=bond0\nKind=bond\nMTUBytes=9000\nMACAddress=fa:16:3e:00:00:02\n\n[Bond]\nMode=802.3ad\nMIIMonitorSec=100ms\nTransmitHashPolicy=layer3+4\n`,
      '10-bootsmith-vlan101.netdev': `${h}[NetDev]\nName=vlan101\nKind=vlan\nMACAddress=fa:16:3e:00:00:04\n\n[VLAN]\nId=101\n`,
      '10-bootsmith-tap1a81968a-79.network':
        `${h}[Match]\nMACAddress=fa:16:3e:00:00:01\nType=ether\n\n[Link]\nMTUBytes=1500\n\n[Network]\nAddress=192.0.2.10/24\nAddress=2001:db8::10/64\n` +
        'Gateway=192.0.2.1\nGateway=2001:db8::1\nDNS=192.0.2.53\nDNS=8.8.8.8\n\n[Route]\nDestination=198.51.100.0/24\nGateway=192.0.2.254\n',
      '10-bootsmith-eth1.network': `${h}[Match]\nMACAddress=fa:16:3e:00:00:02\nType=ether\n\n[Network]\nBond=bond0\n`,
      '10-bootsmith-eth2.network': `${h}[Match]\nMACAddress=fa:16:3e:00:00:03\nType=ether\n\n[Network]\nBond=bond0\n`,
      '10-bootsmith-bond0.network': `${h}[Match]\nName=bond0\n\n[Network]\nVLAN=vlan101\n`,
      '10-bootsmith-vlan101.network': `${h}[Match]\nName=vlan101\n\n[Network]\nDHCP=ipv4\nDNS=8.8.8.8\n`,
    });
    // Netdevs first: networkd must know a bond or VLAN before a .network names it.
    expect(networkdFiles(openstackNetwork(networkData, where)).map((f) => f.name.split('.').pop())).toEqual(['netdev', 'netdev', 'network', 'network', 'network', 'network', 'network']);
  });

  test('an address with a /prefix and no netmask; IPv6 by SLAAC and DHCPv6', () => {
    const doc = {
      links: [{ id: 'eth0', type: 'phy', ethernet_mac_address: '52:54:00:12:34:56' }],
      networks: [
        { type: 'ipv6', link: 'eth0', ip_address: 'fd00::5/56' },
        { type: 'ipv6_slaac', link: 'eth0' },
        { type: 'ipv6_dhcp', link: 'eth0' },
        { type: 'ipv4_dhcp', link: 'eth0' },
      ],
    };
    expect(filesOf(openstackNetwork(doc, where))['10-bootsmith-eth0.network']).toBe(
      `${header('network_data.json')}[Match]\nMACAddress=52:54:00:12:34:56\nType=ether\n\n[Network]\nDHCP=yes\nIPv6AcceptRA=yes\nAddress=fd00::5/56\n`,
    );
  });

  test('networks on no link, and no links at all, configure nothing', () => {
    expect(networkOf(() => openstackNetwork({ links: [], networks: [{ id: 'net0', type: 'ipv4', ip_address: '10.0.2.15', netmask: '255.255.255.0' }], services: [] }, where))).toEqual({});
    expect(networkOf(() => openstackNetwork({}, where))).toEqual({});
  });

  const phy = { id: 'eth0', type: 'phy', ethernet_mac_address: '52:54:00:12:34:56' };
  test.each([
    ['a netmask with a hole', { links: [phy], networks: [{ type: 'ipv4', link: 'eth0', ip_address: '10.0.0.2', netmask: '255.0.255.0' }] }, 'network_data.json networks[0].netmask: not a netmask (its ones are not contiguous): "255.0.255.0"'],
    ['an IPv6 address on an ipv4 network', { links: [phy], networks: [{ type: 'ipv4', link: 'eth0', ip_address: 'fd00::1', netmask: '255.0.0.0' }] }, 'network_data.json networks[0].ip_address: not an IPv4 address: "fd00::1"'],
    ['a prefix too long', { links: [phy], networks: [{ type: 'ipv4', link: 'eth0', ip_address: '10.0.0.2/33' }] }, 'network_data.json networks[0].ip_address: not a prefix length for IPv4 (0 to 32): 33'],
    ['no netmask', { links: [phy], networks: [{ type: 'ipv4', link: 'eth0', ip_address: '10.0.0.2' }] }, 'network_data.json networks[0].netmask: missing (and no /prefix on the address)'],
    ['an unknown link', { links: [phy], networks: [{ type: 'ipv4_dhcp', link: 'eth9' }] }, 'network_data.json networks[0].link: no link has this id: "eth9"'],
    ['an unknown bond member', { links: [phy, { id: 'bond0', type: 'bond', bond_links: ['eth0', 'eth3'], bond_mode: 'active-backup' }] }, 'network_data.json links[1].bond_links[1]: no link has this id: "eth3"'],
    ['a bond mode that is none', { links: [phy, { id: 'bond0', type: 'bond', bond_links: ['eth0'], bond_mode: 'fastest' }] }, 'network_data.json links[1].bond_mode: not a bonding mode (balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb, or 0 to 6): "fastest"'],
    ['a VLAN id out of range', { links: [phy, { id: 'v', type: 'vlan', vlan_link: 'eth0', vlan_id: 4095 }] }, 'network_data.json links[1].vlan_id: not a VLAN id (1 to 4094): 4095'],
    ['a VLAN on a VLAN', { links: [phy, { id: 'v1', type: 'vlan', vlan_link: 'eth0', vlan_id: 5 }, { id: 'v2', type: 'vlan', vlan_link: 'v1', vlan_id: 6 }] }, 'network_data.json: vlan v2: parent v1 is not a physical link or bond here'],
    ['a MAC address that is none', { links: [{ ...phy, ethernet_mac_address: '52:54:00:12:34' }] }, 'network_data.json links[0].ethernet_mac_address: not a MAC address (six hex pairs with ":"): "52:54:00:12:34"'],
    ['a physical link without a MAC address', { links: [{ id: 'eth0', type: 'phy' }] }, 'network_data.json links[0].ethernet_mac_address: missing: a physical link is found by its MAC address'],
    ['a bond named with a newline', { links: [phy, { id: 'bond0\n[Network]', type: 'bond', bond_links: ['eth0'], bond_mode: 1 }] }, 'network_data.json links[1].id: not an interface name (1 to 15 letters, digits, "_", "." and "-"): "bond0\\n[Network]"'],
    ['an MTU that is none', { links: [{ ...phy, mtu: 10 }] }, 'network_data.json links[0].mtu: not an MTU (68 to 65535 bytes): 10'],
    ['a DNS server that carries text', { links: [phy], networks: [{ type: 'ipv4_dhcp', link: 'eth0' }], services: [{ type: 'dns', address: '8.8.8.8\nDNS=1.1.1.1' }] }, 'network_data.json services[0].address: not an IP address: "8.8.8.8\\nDNS=1.1.1.1"'],
    ['a network type it does not read', { links: [phy], networks: [{ type: 'ipx', link: 'eth0' }] }, 'network_data.json networks[0].type: not a network type this reads'],
    ['a network type named like an Object property', { links: [phy], networks: [{ type: 'constructor', link: 'eth0' }] }, 'network_data.json networks[0].type: not a network type this reads'],
    ['links that are no list', { links: { eth0: phy } }, 'network_data.json links: not a list but an object'],
  ])('%s is refused, naming the field', (_, doc, message) => {
    expect(networkOf(() => openstackNetwork(doc, where))).toEqual({ networkProblem: expect.stringContaining(`${where}: ${message}`) });
  });
});

describe('DigitalOcean interfaces', () => {
  test('public interfaces get their addresses, default routes and DNS; private ones their address only', () => {
    const files = filesOf(digitaloceanNetwork(digitaloceanDocument, 'digitalocean metadata service'));
    const h = header('metadata/v1.json');
    expect(files).toEqual({
      '10-bootsmith-public0.network':
        `${h}[Match]\nMACAddress=04:01:2a:0f:2a:01\nType=ether\n\n[Network]\nAddress=203.0.113.20/18\nAddress=10.17.0.5/16\nAddress=2001:0DB8:0800:0010:0000:0000:017D:2001/64\n` +
        'Gateway=203.0.113.1\nGateway=2001:0DB8:0800:0010:0000:0000:0000:0001\nDNS=2001:4860:4860::8844\nDNS=8.8.8.8\n',
      '10-bootsmith-public1.network': `${h}[Match]\nMACAddress=04:01:2a:0f:2a:03\nType=ether\n\n[Network]\nAddress=198.51.100.99/24\nGateway=198.51.100.1\nDNS=2001:4860:4860::8844\nDNS=8.8.8.8\n`,
      '10-bootsmith-private0.network': `${h}[Match]\nMACAddress=04:01:2a:0f:2a:02\nType=ether\n\n[Network]\nAddress=10.132.255.113/16\n`,
    });
  });

  const only = (iface: object, dns?: object) => ({ interfaces: { public: [iface] }, ...(dns ? { dns } : {}) });
  const mac = '04:01:2a:0f:2a:01';
  test.each([
    ['no MAC address', only({ ipv4: { ip_address: '203.0.113.20', netmask: '255.255.255.0', gateway: '203.0.113.1' } }), 'metadata/v1.json interfaces.public[0].mac: missing'],
    ['a public IPv4 without a gateway', only({ mac, ipv4: { ip_address: '203.0.113.20', netmask: '255.255.255.0' } }), 'metadata/v1.json interfaces.public[0].ipv4.gateway: missing'],
    ['an IPv6 cidr out of range', only({ mac, ipv6: { ip_address: 'fd00::1', cidr: 129, gateway: 'fd00::' } }), 'metadata/v1.json interfaces.public[0].ipv6.cidr: not a prefix length for IPv6 (0 to 128): 129'],
    ['a netmask that is an address of the other family', only({ mac, ipv4: { ip_address: '203.0.113.20', netmask: 'ffff::', gateway: '203.0.113.1' } }), 'metadata/v1.json interfaces.public[0].ipv4.netmask: not an IPv4 netmask: "ffff::"'],
    ['a nameserver that is none', only({ mac }, { nameservers: ['dns.example'] }), 'metadata/v1.json dns.nameservers[0]: not an IP address: "dns.example"'],
  ])('%s is refused, naming the field', (_, doc, message) => {
    expect(networkOf(() => digitaloceanNetwork(doc, 'digitalocean metadata service'))).toEqual({ networkProblem: `digitalocean metadata service: ${message}` });
  });
});

describe('Packet network', () => {
  test('every interface in bond0, which has the addresses, the default routes, 10.0.0.0/8 through the private gateway, and default DNS', () => {
    const h = header('Packet metadata');
    expect(filesOf(packetNetwork(packetDocument, 'packet metadata service'))).toEqual({
      '10-bootsmith-bond0.netdev': `${h}[NetDev]\nName=bond0\nKind=bond\nMACAddress=0c:c4:7a:e5:43:fa\n\n[Bond]\nMode=802.3ad\nMIIMonitorSec=200ms\nUpDelaySec=200ms\nDownDelaySec=200ms\nLACPTransmitRate=fast\n`,
      '10-bootsmith-enp1s0f0.network': `${h}[Match]\nMACAddress=0c:c4:7a:e5:43:fa\nType=ether\n\n[Network]\nBond=bond0\n`,
      '10-bootsmith-bond0.network':
        `${h}[Match]\nName=bond0\n\n[Network]\nAddress=203.0.113.11/31\nAddress=2001:db8:1::3/127\nAddress=10.88.1.3/31\nAddress=198.51.100.9/32\n` +
        'Gateway=203.0.113.10\nGateway=2001:db8:1::2\nDNS=8.8.8.8\nDNS=8.8.4.4\n\n[Route]\nDestination=10.0.0.0/8\nGateway=10.88.1.2\n',
    });
  });

  const network = (n: object) => ({ network: { interfaces: [{ name: 'eth0', mac: '0c:c4:7a:e5:43:fa' }], ...n } });
  test.each([
    ['no interfaces: nothing', { network: { addresses: packetDocument.network.addresses } }, {}],
    ['an address family that is none', network({ addresses: [{ address_family: 5, address: '10.0.0.1', cidr: 8 }] }), { networkProblem: 'packet metadata service: metadata network.addresses[0].address_family: not 4 or 6: 5' }],
    ['a cidr that does not fit', network({ addresses: [{ address_family: 4, address: '10.0.0.1', cidr: 64 }] }), { networkProblem: 'packet metadata service: metadata network.addresses[0].cidr: not a prefix length for IPv4 (0 to 32): 64' }],
    ['an interface name that is none', { network: { interfaces: [{ name: 'eth 0', mac: '0c:c4:7a:e5:43:fa' }] } }, { networkProblem: expect.stringContaining('metadata network.interfaces[0].name: not an interface name') }],
    ['a DNS server that is none', network({ dns: ['x'] }), { networkProblem: 'packet metadata service: metadata network.dns[0]: not an IP address: "x"' }],
  ])('%s', (_, doc, expected) => {
    expect(networkOf(() => packetNetwork(doc, 'packet metadata service'))).toEqual(expected);
  });
});

const onmetal = `# Rackspace OnMetal
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet manual
    bond-master bond0

auto eth1
iface eth1 inet manual
    bond-master bond0

auto bond0
iface bond0 inet static
    address 10.0.0.3
    netmask 255.255.255.0
    gateway 10.0.0.1
    dns-nameservers 8.8.8.8 8.8.4.4
    dns-search example.com
    bond-mode 4
    bond-miimon 100
    bond-lacp-rate 1
    bond-xmit_hash_policy layer3+4
    bond-slaves eth0 eth1
    hwaddress ether A0:36:9F:2E:8E:58

auto bond0.101
iface bond0.101 inet static
    address 10.184.1.2/19
    vlan-raw-device bond0
    post-up route add -net 10.176.0.0 netmask 255.240.0.0 gw 10.184.0.1 || true
    post-up echo hello

iface bond0 inet6 static
    address 2001:db8::3
    netmask 64
    gateway 2001:db8::1
`;

describe('Debian interfaces files', () => {
  test('a bond of two links with a VLAN on it, static IPv4 and IPv6, DNS and a post-up route', () => {
    const h = header('a Debian interfaces file');
    expect(filesOf(debianNetwork(onmetal, 'interfaces'))).toEqual({
      '10-bootsmith-bond0.netdev': `${h}[NetDev]\nName=bond0\nKind=bond\nMACAddress=a0:36:9f:2e:8e:58\n\n[Bond]\nMode=802.3ad\nMIIMonitorSec=100ms\nTransmitHashPolicy=layer3+4\nLACPTransmitRate=fast\n`,
      '10-bootsmith-bond0.101.netdev': `${h}[NetDev]\nName=bond0.101\nKind=vlan\n\n[VLAN]\nId=101\n`,
      '10-bootsmith-eth0.network': `${h}[Match]\nName=eth0\n\n[Network]\nBond=bond0\n`,
      '10-bootsmith-eth1.network': `${h}[Match]\nName=eth1\n\n[Network]\nBond=bond0\n`,
      '10-bootsmith-bond0.network':
        `${h}[Match]\nName=bond0\n\n[Network]\nVLAN=bond0.101\nAddress=10.0.0.3/24\nAddress=2001:db8::3/64\nGateway=10.0.0.1\nGateway=2001:db8::1\n` +
        'DNS=8.8.8.8\nDNS=8.8.4.4\nDomains=example.com\n',
      '10-bootsmith-bond0.101.network': `${h}[Match]\nName=bond0.101\n\n[Network]\nAddress=10.184.1.2/19\n\n[Route]\nDestination=10.176.0.0/12\nGateway=10.184.0.1\n`,
    });
  });

  test('DHCP, a vlanN with its raw device, continuation lines, and members named only by bond-slaves', () => {
    const text = 'auto eth0\niface eth0 inet dhcp\n\niface vlan7 inet6 auto\n  vlan-raw-device \\\n    eth0\n\niface bond1 inet dhcp\n  bond-slaves eth2 eth3\n  bond-mode active-backup\n';
    const files = filesOf(debianNetwork(text, 'interfaces'));
    const h = header('a Debian interfaces file');
    expect(files['10-bootsmith-eth0.network']).toBe(`${h}[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\nVLAN=vlan7\n`);
    expect(files['10-bootsmith-vlan7.netdev']).toBe(`${h}[NetDev]\nName=vlan7\nKind=vlan\n\n[VLAN]\nId=7\n`);
    expect(files['10-bootsmith-vlan7.network']).toBe(`${h}[Match]\nName=vlan7\n\n[Network]\nIPv6AcceptRA=yes\n`);
    expect(files['10-bootsmith-bond1.netdev']).toBe(`${h}[NetDev]\nName=bond1\nKind=bond\n\n[Bond]\nMode=active-backup\n`);
    expect(files['10-bootsmith-eth3.network']).toBe(`${h}[Match]\nName=eth3\n\n[Network]\nBond=bond1\n`);
  });

  test.each([
    ['a static iface without an address', 'iface eth0 inet static\n  netmask 255.255.255.0\n', 'interfaces: line 1: static iface eth0 has no address'],
    ['a static iface without a netmask', 'iface eth0 inet static\n  address 10.0.0.2\n', 'interfaces: line 1: static iface eth0 has no netmask (or /prefix on its address)'],
    ['an address that is none', '\niface eth0 inet static\n  address 10.0.0.300/24\n', 'interfaces: line 3: not an IP address: "10.0.0.300"'],
    ['an IPv4 address on inet6', 'iface eth0 inet6 static\n  address 10.0.0.3/24\n', 'interfaces: line 2: not an IPv6 address: "10.0.0.3"'],
    ['a gateway that carries a unit section', 'iface eth0 inet static\n  address 10.0.0.2/24\n  gateway 10.0.0.1\\n[Network]\n', 'interfaces: line 3: not an IP address: "10.0.0.1\\\\n[Network]"'],
    ['a method it does not read', 'iface eth0 inet ppp\n', 'interfaces: line 1: not a method this reads for inet (static, dhcp, manual): "ppp"'],
    ['an option before any iface', '  address 10.0.0.2\n', 'interfaces: line 1: an option outside any iface stanza: "address"'],
    ['a source stanza', 'source /etc/network/interfaces.d/*\n', 'interfaces: line 1: "source" stanzas are not read: the configuration must be in this one file'],
    ['an interface name too long', 'iface a-very-long-interface0 inet dhcp\n', 'interfaces: line 1: not an interface name'],
    ['a VLAN id out of range', 'iface eth0.5000 inet dhcp\n', 'interfaces: line 1: not a VLAN id (1 to 4094): 5000'],
    ['a route without a gateway', 'iface eth0 inet dhcp\n  post-up route add -net 10.0.0.0/8 dev eth0\n', 'interfaces: line 2: a route without a gateway ("gw") is not read'],
    ['a bond mode that is none', 'iface bond0 inet dhcp\n  bond-slaves eth0\n  bond-mode 9\n', 'interfaces: line 3: not a bonding mode'],
    ['an LACP rate named like an Object property', 'iface bond0 inet dhcp\n  bond-slaves eth0\n  bond-lacp-rate constructor\n', 'interfaces: line 3: not an LACP rate (slow, fast, 0 or 1): "constructor"'],
    ['an address family named like an Object property', 'iface eth0 constructor dhcp\n', 'interfaces: line 1: not an address family this reads (inet, inet6): "constructor"'],
    ['a bond member that is a VLAN', 'iface eth0.4 inet manual\niface bond0 inet dhcp\n  bond-slaves eth0.4\n', 'interfaces: bond bond0: member eth0.4 is not a physical link here'],
  ])('%s is refused, naming the line', (_, text, message) => {
    expect(networkOf(() => debianNetwork(text, 'interfaces'))).toEqual({ networkProblem: expect.stringContaining(message) });
  });
});

describe('the model', () => {
  test('netmasks and addresses as bytes', () => {
    expect(addressBytes('::ffff:192.0.2.1' as IpAddress)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]);
    expect(addressBytes('2001:db8::1' as IpAddress)).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(netmaskPrefix('w', 'f', '255.255.255.255', 4)).toBe(32);
    expect(netmaskPrefix('w', 'f', '0.0.0.0', 4)).toBe(0);
    expect(netmaskPrefix('w', 'f', 'ffff:ffff:ffff:ff80::', 6)).toBe(57);
    expect(() => netmaskPrefix('w', 'f', '::1', 6)).toThrow('w: f: not a netmask (its ones are not contiguous): "::1"');
  });

  const link = (name: string, rest: Partial<Link> = {}): Link =>
    ({ name: name as InterfaceName, kind: 'physical', dhcp4: false, dhcp6: false, acceptRa: false, addresses: [], gateways: [], routes: [], nameservers: [], domains: [], ...rest }) as Link;
  test.each([
    ['two links of one name', [link('eth0'), link('eth0')], 'link eth0: the name is given to two links'],
    ['a member of two bonds', [link('eth0'), link('b1', { kind: 'bond', bond: { mode: 'broadcast', members: ['eth0' as InterfaceName] } }), link('b2', { kind: 'bond', bond: { mode: 'broadcast', members: ['eth0' as InterfaceName] } })], 'bond b2: member eth0 is a member of bond b1 already'],
    ['a name that is none', [link('eth0\n')], 'link "eth0\\n": not an interface name'],
    ['a route to another family', [link('eth0', { routes: [{ destination: '10.0.0.0' as IpAddress, prefix: 8, gateway: 'fd00::1' as IpAddress }] })], 'physical eth0: route to 10.0.0.0/8: gateway fd00::1 is of another family'],
    ['a prefix too long', [link('eth0', { addresses: [{ address: '10.0.0.1' as IpAddress, prefix: 40 }] })], 'physical eth0: address 10.0.0.1/40: the prefix is not 0 to 32'],
  ])('the writer refuses %s, whoever made the model', (_, links, problem) => {
    expect(networkConfigProblem({ origin: 'test', links })).toBe(problem);
    expect(() => networkdFiles({ origin: 'test', links })).toThrow(`test: ${problem}`);
  });

  test('the plan writes the files into /run/systemd/network before the units, and restarts networkd once after them', () => {
    const userData = '#cloud-config\ncoreos:\n  units:\n    - name: extra.network\n      content: "[Match]\\nName=eth9\\n"\n    - name: web.service\n      command: start\n      content: "[Service]\\nExecStart=/bin/true\\n"\n';
    const report = validateUserData(Buffer.from(userData));
    expect(report.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const config = toCloudConfig(report.root);
    const actions = plan(config, { live: false, unitDirs, sshKeyName: 'coreos-cloudinit', network: openstackNetwork(networkData, where) });
    const shown = actions.map((a) => (a.kind === 'file' ? `file ${a.path} [${a.origin}]` : `${a.kind} [${a.origin}]`));
    expect(shown.filter((s) => s.startsWith('file /run/systemd/network/10-bootsmith-'))).toHaveLength(7);
    expect(shown.slice(7)).toEqual(['file /etc/systemd/network/extra.network [coreos.units[0]]', 'file /etc/systemd/system/web.service [coreos.units[1]]', 'networkd-restart [network_data.json]', 'unit-command [coreos.units[1]]']);
  });
});

describe('hostile input', () => {
  /** What networkd would read from the files: every line a comment, a section, a Key=value of plain characters, or empty. */
  const plainFiles = (config: NetworkConfig | undefined) => {
    for (const file of config ? networkdFiles(config) : []) {
      expect(file.name).toMatch(/^10-bootsmith-[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}\.(network|netdev)$/);
      for (const line of file.content.split('\n')) expect(line).toMatch(/^(# Written by coreos-cloudinit from [^\n]+\.|\[[A-Za-z]+\]|[A-Za-z0-9]+=[A-Za-z0-9:./+ _-]+|)$/);
    }
  };
  const value = (...good: unknown[]) => fc.oneof(fc.constantFrom(...good), fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 12 }));

  test('any network_data.json gives files of plain values, or a problem: never another throw', () => {
    const link = fc.record({
      id: value('eth0', 'eth1', 'bond0', 'vlan7'),
      type: value('phy', 'bond', 'vlan', 'ovs'),
      ethernet_mac_address: value('52:54:00:12:34:56', '52:54:00:12:34:57'),
      mtu: value(1500, 9000),
      bond_links: value(['eth0'], ['eth0', 'eth1']),
      bond_mode: value('802.3ad', 1, 'active-backup'),
      bond_miimon: value(100),
      vlan_id: value(7, 4094),
      vlan_link: value('eth0', 'bond0'),
    }, { requiredKeys: ['id', 'type'] });
    const network = fc.record({
      type: value('ipv4', 'ipv6', 'ipv4_dhcp', 'ipv6_slaac'),
      link: value('eth0', 'eth1', 'bond0', 'vlan7'),
      ip_address: value('10.0.0.2', 'fd00::2', '10.0.0.2/24'),
      netmask: value('255.255.255.0', 'ffff:ffff::'),
      routes: fc.array(fc.record({ network: value('0.0.0.0', '10.1.0.0'), netmask: value('0.0.0.0', '255.255.0.0'), gateway: value('10.0.0.1', 'fd00::1') }), { maxLength: 2 }),
      services: fc.array(fc.record({ type: value('dns'), address: value('10.0.0.53') }), { maxLength: 2 }),
    });
    fc.assert(
      fc.property(fc.record({ links: fc.array(link, { maxLength: 5 }), networks: fc.array(network, { maxLength: 5 }), services: value([{ type: 'dns', address: '8.8.8.8' }]) }), (doc) => {
        const got = networkOf(() => openstackNetwork(doc, where));
        plainFiles(got.network);
      }),
      { numRuns: 300 },
    );
  });

  test('any interfaces file gives files of plain values, or a problem: never another throw', () => {
    const words = ['iface', 'auto', 'eth0', 'eth0.7', 'bond0', 'vlan7', 'inet', 'inet6', 'static', 'dhcp', 'manual', 'address', '10.0.0.2/24', 'fd00::2', 'netmask', '255.255.255.0', '64',
      'gateway', '10.0.0.1', 'bond-slaves', 'bond-master', 'bond-mode', '4', 'vlan-raw-device', 'post-up', 'route', 'add', '-net', 'gw', 'default', 'hwaddress', 'ether',
      '52:54:00:12:34:56', 'mtu', '1500', 'dns-nameservers', 'dns-search', 'example.com', '\\', '#', '=', '\n[Network]'];
    const line = fc.tuple(fc.boolean(), fc.array(fc.oneof(fc.constantFrom(...words), fc.string({ maxLength: 6 })), { maxLength: 6 })).map(([indent, w]) => `${indent ? '  ' : ''}${w.join(' ')}`);
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), (lines) => {
        const got = networkOf(() => debianNetwork(lines.join('\n'), 'interfaces'));
        plainFiles(got.network);
      }),
      { numRuns: 500 },
    );
  });
});
