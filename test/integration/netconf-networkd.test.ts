/**
 * The networkd files as the real systemd-networkd takes them: coreos-cloudinit writes them from a
 * config drive's network_data.json into a temporary root, and networkd, run in a private network
 * and mount namespace (a veth pair with the link's MAC address stands in for the NIC), configures
 * the link with the address and routes the metadata gives, without a warning about the files.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asRoot, makeRoot } from '../support/roots';

const bin = join(__dirname, '../../bin/coreos-cloudinit.js');
const networkd = '/lib/systemd/systemd-networkd';

const networkData = {
  links: [{ id: 'tap1a81968a-79', type: 'phy', ethernet_mac_address: 'fa:16:3e:00:00:01', mtu: 1400 }],
  networks: [
    {
      id: 'net0', type: 'ipv4', link: 'tap1a81968a-79', ip_address: '192.0.2.10', netmask: '255.255.255.0',
      routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '192.0.2.1' }, { network: '198.51.100.0', netmask: '255.255.255.0', gateway: '192.0.2.254' }],
    },
    { id: 'net1', type: 'ipv6', link: 'tap1a81968a-79', ip_address: '2001:db8::10', netmask: 'ffff:ffff:ffff:ffff::', routes: [{ network: '::', netmask: '::', gateway: '2001:db8::1' }] },
  ],
  services: [{ type: 'dns', address: '192.0.2.53' }],
};

/**
 * In the namespaces: /run and the network directories on tmpfs (the files copied in), /sys
 * read-only (so networkd does not wait for a udev that cannot see this namespace), the veth pair,
 * then networkd until the address is there (at most 30 s), and what the link ended up with.
 */
const script = (root: string, log: string) => `set -e
mount -t tmpfs none /run
mkdir -p /run/systemd/network /run/systemd/netif
chown systemd-network:systemd-network /run/systemd/netif
cp ${root}/run/systemd/network/* /run/systemd/network/
mount -t tmpfs none /etc/systemd/network
mount -t sysfs -o ro sysfs /sys
ip link add nic0 address fa:16:3e:00:00:01 type veth peer name peer0
ip link set peer0 up
SYSTEMD_LOG_LEVEL=debug ${networkd} >${log} 2>&1 &
pid=$!
trap 'kill $pid' EXIT
for _ in $(seq 1 300); do ip -o addr show nic0 | grep -q 192.0.2.10 && ip -6 route | grep -q '^default' && break; sleep 0.1; done
ip -o link show nic0; ip -o addr show nic0; ip route; ip -6 route
`;

const usable = asRoot && existsSync(networkd) && spawnSync('unshare', ['-n', 'ip', 'link', 'add', 'name', 'x0', 'type', 'veth', 'peer', 'name', 'x1']).status === 0;

(usable ? test : test.skip)('systemd-networkd configures the link with the address and routes from network_data.json', () => {
  const drive = mkdtempSync(join(tmpdir(), 'bootsmith-cd-'));
  mkdirSync(join(drive, 'openstack/latest'), { recursive: true });
  writeFileSync(join(drive, 'openstack/latest/meta_data.json'), '{}');
  writeFileSync(join(drive, 'openstack/latest/user_data'), '');
  writeFileSync(join(drive, 'openstack/latest/network_data.json'), JSON.stringify(networkData));
  const root = makeRoot();
  execFileSync(process.execPath, [bin, '--from-configdrive', drive, '--root', root], { stdio: 'pipe' });
  const log = join(mkdtempSync(join(tmpdir(), 'bootsmith-networkd-')), 'networkd.log');
  const r = spawnSync('unshare', ['-mn', '--propagation', 'private', 'sh', '-c', script(root, log)], { encoding: 'utf8', timeout: 60_000 });
  expect([r.status, r.stderr]).toEqual([0, '']);
  expect(r.stdout).toMatch(/nic0@peer0: .* mtu 1400 /);
  expect(r.stdout).toMatch(/nic0\s+inet 192\.0\.2\.10\/24 /);
  expect(r.stdout).toMatch(/nic0\s+inet6 2001:db8::10\/64 /);
  expect(r.stdout).toMatch(/^default via 192\.0\.2\.1 dev nic0 proto static/m);
  expect(r.stdout).toMatch(/^198\.51\.100\.0\/24 via 192\.0\.2\.254 dev nic0 proto static/m);
  expect(r.stdout).toMatch(/^default via 2001:db8::1 dev nic0 proto static/m);
  const said = readFileSync(log, 'utf8');
  expect(said).toMatch(/nic0: Configuring with \/run\/systemd\/network\/10-bootsmith-tap1a81968a-79\.network/);
  expect(said.split('\n').filter((l) => l.includes('10-bootsmith') && !/Configuring with|found matching/.test(l))).toEqual([]);
});
