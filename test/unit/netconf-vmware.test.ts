/**
 * `--convert-netconf vmware`: the VMware interface keys (read as the datasource reads them, from a
 * map of keys) into the network model and networkd files; refusals name the guestinfo key.
 */
import fc from 'fast-check';
import { networkdFiles } from '../../src/apply/netconf/networkd';
import { networkOf } from '../../src/datasource/metadata-values';
import { vmwareNetconf } from '../../src/datasource/netconf-vmware';
import { readVmwareNetwork } from '../../src/datasource/vmware-network';
import type { NetworkConfig } from '../../src/system/network-config';

const where = 'vmware guestinfo';

/** The network configuration the keys give, as networkOf gives it to the datasource. */
async function converted(keys: Record<string, string>) {
  const network = await readVmwareNetwork(where, async (key) => keys[key] || undefined);
  return networkOf(() => vmwareNetconf(network, where));
}

/** The files as name → content. */
const filesOf = (config: NetworkConfig | undefined) => Object.fromEntries((config ? networkdFiles(config) : []).map((f) => [f.name, f.content]));
const h = '# Written by coreos-cloudinit from VMware guestinfo.\n';

/** Three interfaces: by name with a default route, by MAC with an on-link route, DHCP; one only named; global DNS. */
const keys: Record<string, string> = {
  'dns.server.0': '10.0.0.2',
  'dns.server.1': '2001:db8::53',
  'dns.domain.0': 'example.com',
  'dns.domain.1': 'corp.example.com',
  'interface.0.name': 'ens192',
  'interface.0.role': 'public',
  'interface.0.ip.0.address': '203.0.113.10/24',
  'interface.0.ip.1.address': '2001:db8:1::10/64',
  'interface.0.route.0.destination': '0.0.0.0/0',
  'interface.0.route.0.gateway': '203.0.113.1',
  'interface.0.route.1.gateway': '2001:db8:1::1',
  'interface.1.mac': '00:50:56:8B:91:42',
  'interface.1.dhcp': 'no',
  'interface.1.ip.0.address': '10.0.0.5/16',
  'interface.1.route.0.destination': '10.1.0.0/16',
  'interface.1.route.0.gateway': '10.0.0.1',
  'interface.1.route.1.destination': '192.0.2.0/24',
  'interface.1.route.2.destination': 'fd00:1::/48',
  'interface.2.name': 'ens224',
  'interface.2.mac': '00:50:56:8b:91:43',
  'interface.2.dhcp': 'yes',
  'interface.3.name': 'ens256',
};

describe('--convert-netconf vmware', () => {
  test('each interface with its addresses, default routes, routes (on-link ones too) and the global DNS on every configured link', async () => {
    const got = await converted(keys);
    expect(got.networkProblem).toBeUndefined();
    expect(filesOf(got.network)).toEqual({
      '10-bootsmith-ens192.network':
        `${h}[Match]\nName=ens192\n\n[Network]\nAddress=203.0.113.10/24\nAddress=2001:db8:1::10/64\nGateway=203.0.113.1\nGateway=2001:db8:1::1\n` +
        'DNS=10.0.0.2\nDNS=2001:db8::53\nDomains=example.com corp.example.com\n',
      // Matched by its MAC address alone: its files are named by its index.
      '10-bootsmith-vmware1.network':
        `${h}[Match]\nMACAddress=00:50:56:8b:91:42\nType=ether\n\n[Network]\nAddress=10.0.0.5/16\nDNS=10.0.0.2\nDNS=2001:db8::53\nDomains=example.com corp.example.com\n` +
        '\n[Route]\nDestination=10.1.0.0/16\nGateway=10.0.0.1\n\n[Route]\nDestination=192.0.2.0/24\nScope=link\n\n[Route]\nDestination=fd00:1::/48\n',
      // Named and with a MAC address: matched by the MAC address, its files named by the name.
      '10-bootsmith-ens224.network': `${h}[Match]\nMACAddress=00:50:56:8b:91:43\nType=ether\n\n[Network]\nDHCP=yes\nDNS=10.0.0.2\nDNS=2001:db8::53\nDomains=example.com corp.example.com\n`,
      // ens256 has nothing to configure: no file (DNS alone would take it from the image's own file).
    });
  });

  test('no interface keys, or only DNS: no network configuration', async () => {
    expect(await converted({})).toEqual({});
    expect(await converted({ 'dns.server.0': '10.0.0.2' })).toEqual({});
  });

  test.each([
    ['an interface neither named nor with a MAC address', { 'interface.0.ip.0.address': '10.0.0.5/16' },
      'vmware guestinfo: guestinfo.interface.0: neither guestinfo.interface.0.name nor guestinfo.interface.0.mac is set: nothing to match the interface by'],
    ['two interfaces of one name', { 'interface.0.name': 'eth0', 'interface.1.name': 'eth0', 'interface.1.dhcp': 'yes' },
      'vmware guestinfo: guestinfo.interface.1.name: interface 0\'s files have that name too: "eth0"'],
    ['two interfaces of one MAC address', { 'interface.0.mac': '00:50:56:00:00:01', 'interface.1.mac': '00:50:56:00:00:01' },
      'vmware guestinfo: guestinfo.interface.1.mac: interface 0 has that MAC address too: "00:50:56:00:00:01"'],
    ['a name that is the one an unnamed interface\'s files have', { 'interface.0.mac': '00:50:56:00:00:01', 'interface.1.name': 'vmware0' },
      'vmware guestinfo: guestinfo.interface.1.name: interface 0\'s files have that name too: "vmware0"'],
    ['an unnamed interface whose files would have a name given', { 'interface.0.name': 'vmware1', 'interface.1.mac': '00:50:56:00:00:01' },
      'vmware guestinfo: guestinfo.interface.1: no name is set, and the one its files would have, vmware1, is interface 0\'s'],
  ])('%s: a problem naming the key, no configuration', async (_, given, problem) => {
    expect(await converted(given)).toEqual({ networkProblem: problem });
  });

  test('values that do not parse are refused by the reader, naming the key, with the model\'s rules for names and MAC addresses', async () => {
    await expect(converted({ 'interface.0.name': 'eth0\n[Match]' })).rejects.toThrow(/^vmware guestinfo: guestinfo\.interface\.0\.name: not an interface name \(1 to 15 letters, digits, "_", "\." and "-"\): "eth0\\n\[Match\]"$/);
    await expect(converted({ 'interface.0.mac': '00:50:56:8b:91' })).rejects.toThrow(/^vmware guestinfo: guestinfo\.interface\.0\.mac: not a MAC address \(six hex pairs with ":"\): "00:50:56:8b:91"$/);
    await expect(converted({ 'interface.0.name': 'eth0', 'interface.0.route.0.destination': '10.0.0.0/8', 'interface.0.route.0.gateway': 'fd00::1' })).rejects.toThrow(
      /^vmware guestinfo: guestinfo\.interface\.0\.route\.0\.gateway: not an IPv4 address, as the destination is: "fd00::1"$/,
    );
  });

  test('any keys give files of plain values, a problem, or a refusal naming a key: never another throw', async () => {
    const value = (...good: string[]) => fc.oneof(fc.constantFrom(...good), fc.string({ maxLength: 12 }));
    const entry = fc.tuple(
      fc.constantFrom('name', 'mac', 'dhcp', 'ip.0.address', 'ip.1.address', 'route.0.destination', 'route.0.gateway', 'route.1.gateway'),
      value('eth0', 'vmware1', '00:50:56:00:00:01', 'yes', 'no', '10.0.0.2/24', 'fd00::2/64', '0.0.0.0/0', '10.1.0.0/16', '10.0.0.1', 'fd00::1'),
    );
    const keyMap = fc.record({
      interfaces: fc.array(fc.array(entry, { maxLength: 5 }), { maxLength: 3 }),
      dns: fc.array(value('10.0.0.53', 'example.com'), { maxLength: 2 }),
    }).map(({ interfaces, dns }) => {
      const out: Record<string, string> = {};
      interfaces.forEach((entries, n) => entries.forEach(([k, v]) => (out[`interface.${n}.${k}`] = v)));
      dns.forEach((v, i) => (out[`dns.server.${i}`] = v));
      return out;
    });
    await fc.assert(
      fc.asyncProperty(keyMap, async (given) => {
        let got;
        try {
          got = await converted(given);
        } catch (err) {
          expect((err as Error).message).toMatch(/^vmware guestinfo: guestinfo\.(interface\.\d|dns\.server\.\d)/);
          return;
        }
        if (got.networkProblem) expect(got.networkProblem).toMatch(/^vmware guestinfo: guestinfo\.interface\.\d/);
        for (const file of networkdFiles(got.network ?? { origin: 'none', links: [] })) {
          expect(file.name).toMatch(/^10-bootsmith-[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}\.network$/);
          for (const line of file.content.split('\n')) expect(line).toMatch(/^(# Written by coreos-cloudinit from VMware guestinfo\.|\[[A-Za-z]+\]|[A-Za-z0-9]+=[A-Za-z0-9:./+ _-]+|)$/);
        }
      }),
      { numRuns: 300 },
    );
  });
});
