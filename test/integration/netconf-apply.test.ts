/**
 * Network configuration from metadata, applied through the CLI into a temporary root: a config
 * drive's network_data.json, a config drive's Debian interfaces file (--convert-netconf debian,
 * Rackspace OnMetal) and DigitalOcean's interfaces (--convert-netconf digitalocean), file by file.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { FakeMetadata, digitaloceanDocument } from '../support/fake-metadata';
import { asRoot, makeRoot, snapshot } from '../support/roots';
import { pathOnly, runAsync } from '../support/cli';

const bin = join(__dirname, '../../bin/coreos-cloudinit.js');

const cli = (args: string[], env: Record<string, string> = {}) => runAsync(bin, args, pathOnly(env));

/** A config drive directory with these files (paths under the drive). */
function configDrive(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-cd-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const networkDir = 'run/systemd/network';
const networkFiles = (root: string) => (existsSync(join(root, networkDir)) ? readdirSync(join(root, networkDir)).sort() : []);
const read = (root: string, name: string) => readFileSync(join(root, networkDir, name), 'utf8');

const staticAddress = {
  links: [{ id: 'eth0', type: 'phy', ethernet_mac_address: '52:54:00:12:34:56', mtu: 1500 }],
  networks: [
    { id: 'net0', type: 'ipv4', link: 'eth0', ip_address: '10.0.2.15', netmask: '255.255.255.0', routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.0.2.2' }] },
  ],
  services: [{ type: 'dns', address: '10.0.2.3' }],
};

(asRoot ? describe : describe.skip)('network configuration from a config drive', () => {
  test('network_data.json with a static address: the .network file appears with that address, and networkd is to be restarted once', async () => {
    const drive = configDrive({
      'openstack/latest/meta_data.json': JSON.stringify({ uuid: 'cd-1', hostname: 'node-1' }),
      'openstack/latest/network_data.json': JSON.stringify(staticAddress),
      'openstack/latest/user_data': '#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: hi\n',
    });
    const root = makeRoot();
    const r = await cli(['--from-configdrive', drive, '--root', root]);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(networkFiles(root)).toEqual(['10-bootsmith-eth0.network']);
    expect(read(root, '10-bootsmith-eth0.network')).toBe(
      '# Written by coreos-cloudinit from network_data.json.\n[Match]\nMACAddress=52:54:00:12:34:56\nType=ether\n\n[Link]\nMTUBytes=1500\n\n' +
        '[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n',
    );
    expect(r.stdout).toMatch(/^changed\s+file \/run\/systemd\/network\/10-bootsmith-eth0\.network \[network_data\.json\]$/m);
    expect(r.stdout).toMatch(/^skipped\s+restart systemd-networkd\.service \[network_data\.json\]: no systemd to run it \(offline apply\)$/m);
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('node-1\n');

    // Again: nothing changes, and networkd is left alone.
    const again = await cli(['--from-configdrive', drive, '--root', root]);
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/^unchanged\s+file \/run\/systemd\/network\/10-bootsmith-eth0\.network \[network_data\.json\]$/m);
    expect(again.stdout).toMatch(/^unchanged\s+restart systemd-networkd\.service/m);
  });

  test('--dry-run says which files it would write, and writes none', async () => {
    const drive = configDrive({ 'openstack/latest/meta_data.json': '{}', 'openstack/latest/network_data.json': JSON.stringify(staticAddress), 'openstack/latest/user_data': '' });
    const root = makeRoot();
    const before = snapshot(root);
    const r = await cli(['--from-configdrive', drive, '--root', root, '--dry-run']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^would change\s+file \/run\/systemd\/network\/10-bootsmith-eth0\.network \[network_data\.json\]$/m);
    expect(snapshot(root)).toEqual(before);
  });

  test('a network_data.json that does not parse is a failed action naming the field; nothing of it is written, the rest applies', async () => {
    const broken = { ...staticAddress, networks: [{ ...staticAddress.networks[0], netmask: '255.255.0.255' }] };
    const drive = configDrive({
      'openstack/latest/meta_data.json': JSON.stringify({ hostname: 'node-2' }),
      'openstack/latest/network_data.json': JSON.stringify(broken),
      'openstack/latest/user_data': '',
    });
    const root = makeRoot();
    const r = await cli(['--from-configdrive', drive, '--root', root]);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(
      'failed    network configuration [configdrive]: openstack config drive: network_data.json networks[0].netmask: not a netmask (its ones are not contiguous): "255.255.0.255"; no network files were written\n',
    );
    expect(networkFiles(root)).toEqual([]);
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('node-2\n');
    // --validate says so too.
    const v = await cli(['--validate', '--from-configdrive', drive]);
    expect(v.status).toBe(1);
    expect(v.stdout).toContain(': error: the network configuration is not applied: openstack config drive: network_data.json networks[0].netmask: not a netmask');
    expect(v.stdout).toMatch(/\[network-config\]$/m);
  });

  const interfaces = 'auto eth0\niface eth0 inet static\n    address 10.1.0.4\n    netmask 255.255.0.0\n    gateway 10.1.0.1\n    dns-nameservers 10.1.0.2\n';

  test('--convert-netconf debian reads the interfaces file meta_data.json names, instead of network_data.json', async () => {
    const drive = configDrive({
      'openstack/latest/meta_data.json': JSON.stringify({ uuid: 'onmetal-1', network_config: { content_path: '/content/0000' } }),
      'openstack/latest/network_data.json': JSON.stringify(staticAddress),
      'openstack/latest/user_data': '',
      'openstack/content/0000': interfaces,
    });
    const root = makeRoot();
    const r = await cli(['--from-configdrive', drive, '--convert-netconf', 'debian', '--root', root]);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(networkFiles(root)).toEqual(['10-bootsmith-eth0.network']);
    expect(read(root, '10-bootsmith-eth0.network')).toBe(
      '# Written by coreos-cloudinit from a Debian interfaces file.\n[Match]\nName=eth0\n\n[Network]\nAddress=10.1.0.4/16\nGateway=10.1.0.1\nDNS=10.1.0.2\n',
    );
    // As Go spells it too.
    const goRoot = makeRoot();
    expect((await cli([`-from-configdrive=${drive}`, '-convert-netconf=debian', '--root', goRoot])).status).toBe(0);
    expect(snapshot(goRoot).filter((l) => l.includes('/run/systemd/network/'))).toEqual(snapshot(root).filter((l) => l.includes('/run/systemd/network/')));
  });

  test.each([
    ['a path that climbs out of the drive', '../../../etc/passwd', 'not a path on the drive: "../../../etc/passwd"'],
    ['a file the drive does not have', '/content/0001', 'no such file on the drive: openstack/content/0001'],
  ])('--convert-netconf debian with %s: a failed action, nothing written', async (_, path, problem) => {
    const drive = configDrive({ 'openstack/latest/meta_data.json': JSON.stringify({ network_config: { content_path: path } }), 'openstack/latest/user_data': '', 'openstack/content/0000': interfaces });
    const root = makeRoot();
    const r = await cli(['--from-configdrive', drive, '--convert-netconf', 'debian', '--root', root]);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`failed    network configuration [configdrive]: openstack config drive: meta_data.json network_config.content_path: ${problem}; no network files were written\n`);
    expect(networkFiles(root)).toEqual([]);
  });

  test('--convert-netconf takes only the formats it reads', async () => {
    const r = await cli(['--from-file', '/dev/null', '--convert-netconf', 'yaml']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/argument 'yaml' is invalid\. Allowed choices are debian, digitalocean, packet, vmware\./);
  });

  test('--install-units --oem rackspace-onmetal enables its unit, which runs --oem=rackspace-onmetal once the config drive is mounted, and masks the plain config drive service', async () => {
    const root = makeRoot();
    const r = await cli(['--install-units', '--root', root, '--oem', 'rackspace-onmetal', '--exec', '/usr/bin/coreos-cloudinit']);
    expect([r.status, r.stderr]).toEqual([0, '']);
    const unit = 'oem-cloudinit-rackspace-onmetal.service';
    expect(readlinkSync(join(root, `etc/systemd/system/user-config.target.wants/${unit}`))).toBe(`/etc/systemd/system/${unit}`);
    const text = readFileSync(join(root, `etc/systemd/system/${unit}`), 'utf8');
    expect(text).toMatch(/^ExecStart=\/usr\/bin\/coreos-cloudinit --oem=rackspace-onmetal$/m);
    expect(text).toMatch(/^RequiresMountsFor=\/media\/configdrive$/m);
    expect(text).toMatch(/^Before=network-online\.target$/m);
    expect(readlinkSync(join(root, 'etc/systemd/system/user-configdrive.service'))).toBe('/dev/null');
    expect(existsSync(join(root, 'etc/systemd/system/media-configdrive.mount.wants/user-configdrive.service'))).toBe(false);
    expect(r.stdout).toMatch(/^changed\s+mask user-configdrive\.service \[--oem rackspace-onmetal\]$/m);
    // Installed again, the same: nothing changes.
    const again = await cli(['--install-units', '--root', root, '--oem', 'rackspace-onmetal', '--exec', '/usr/bin/coreos-cloudinit']);
    expect([again.status, again.stdout]).toEqual([0, expect.stringMatching(/^0 changed, /m)]);
  });
});

(asRoot ? describe : describe.skip)('network configuration from DigitalOcean', () => {
  let server: FakeMetadata;
  beforeEach(async () => {
    server = new FakeMetadata({}, undefined, { digitalocean: { userData: '', metadata: digitaloceanDocument } });
    await server.start();
  });
  afterEach(() => server.stop());

  test('--convert-netconf digitalocean writes a file for each interface; --oem digitalocean does the same; without the flag, none', async () => {
    const root = makeRoot();
    const r = await cli(['--from-digitalocean-metadata', server.url, '--convert-netconf', 'digitalocean', '--root', root]);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(networkFiles(root)).toEqual(['10-bootsmith-private0.network', '10-bootsmith-public0.network', '10-bootsmith-public1.network']);
    expect(read(root, '10-bootsmith-private0.network')).toBe('# Written by coreos-cloudinit from metadata/v1.json.\n[Match]\nMACAddress=04:01:2a:0f:2a:02\nType=ether\n\n[Network]\nAddress=10.132.255.113/16\n');
    expect(read(root, '10-bootsmith-public1.network')).toBe(
      '# Written by coreos-cloudinit from metadata/v1.json.\n[Match]\nMACAddress=04:01:2a:0f:2a:03\nType=ether\n\n[Network]\nAddress=198.51.100.99/24\nGateway=198.51.100.1\n' +
        'DNS=2001:4860:4860::8844\nDNS=8.8.8.8\n',
    );
    const viaOem = makeRoot();
    const o = await cli(['--oem', 'digitalocean', '--root', viaOem], { COREOS_CLOUDINIT_DIGITALOCEAN_METADATA_URL: server.url });
    expect([o.status, o.stderr]).toEqual([0, '']);
    expect(snapshot(viaOem)).toEqual(snapshot(root));
    const without = makeRoot();
    expect((await cli(['--from-digitalocean-metadata', server.url, '--root', without])).status).toBe(0);
    expect(networkFiles(without)).toEqual([]);
  });

  test('an interface without a MAC address is a failed action naming the field; the rest applies', async () => {
    const { mac: _, ...noMac } = digitaloceanDocument.interfaces.private[0]!;
    server.clouds.digitalocean!.metadata = { ...digitaloceanDocument, interfaces: { ...digitaloceanDocument.interfaces, private: [noMac] } };
    const root = makeRoot();
    const r = await cli(['--from-digitalocean-metadata', server.url, '--convert-netconf', 'digitalocean', '--root', root]);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('failed    network configuration [digitalocean]: digitalocean metadata service: metadata/v1.json interfaces.private[0].mac: missing; no network files were written\n');
    expect(networkFiles(root)).toEqual([]);
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('droplet-1\n');
  });
});
