/** coreos-cloudinit fetching from a stand-in EC2 metadata service and applying into a temp root. */
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeMetadata, cloudKey, digitaloceanDocument, gceInstance, packetDocument } from '../support/fake-metadata';
import type { CloudSettings } from '../support/fake-metadata';
import { asRoot, makeRoot, snapshot } from '../support/roots';
import { pathOnly, runAsync } from '../support/cli';

const bin = join(__dirname, '../../bin/coreos-cloudinit.js');
const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6 from-metadata';
const userData = `#cloud-config
hostname: from-user-data
coreos:
  etcd2:
    advertise_client_urls: http://$private_ipv4:2379
    initial_advertise_peer_urls: http://$private_ipv4:2380
    listen_client_urls: http://0.0.0.0:2379
    discovery: https://discovery.etcd.io/6a28e078895c5ec737174db2419bb2f3
write_files:
  - path: /etc/public-address
    content: "$public_ipv4"
`;

const cli = (args: string[]) => runAsync(bin, args, pathOnly());

(asRoot ? describe : describe.skip)('from EC2', () => {
  let server: FakeMetadata;
  beforeEach(async () => {
    server = new FakeMetadata({
      imds: 'v2',
      userData,
      metaData: { 'instance-id': 'i-42', hostname: 'ip-10-0-0-5', 'local-ipv4': '10.0.0.5', 'public-ipv4': '203.0.113.7' },
      keys: { fleet: key },
    });
    await server.start();
  });
  afterEach(() => server.stop());

  test('user data, metadata and substitutions arrive intact', async () => {
    const root = makeRoot();
    const r = await cli(['--from-ec2-metadata', server.url, '--root', root, '--http-timeout', '500']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^user data from ${server.url}/?2009-04-04/user-data\n`));
    expect(readFileSync(join(root, 'run/systemd/system/etcd2.service.d/20-cloudinit.conf'), 'utf8')).toBe(
      '[Service]\nEnvironment="ETCD_ADVERTISE_CLIENT_URLS=http://10.0.0.5:2379"\nEnvironment="ETCD_DISCOVERY=https://discovery.etcd.io/6a28e078895c5ec737174db2419bb2f3"\n' +
        'Environment="ETCD_INITIAL_ADVERTISE_PEER_URLS=http://10.0.0.5:2380"\nEnvironment="ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:2379"\n',
    );
    expect(readFileSync(join(root, 'etc/public-address'), 'utf8')).toBe('203.0.113.7');
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('from-user-data\n'); // user data wins over metadata
    expect(readFileSync(join(root, 'home/core/.ssh/authorized_keys'), 'utf8')).toBe(`${key}\n`);
    expect(readFileSync(join(root, 'etc/environment'), 'utf8')).toBe('COREOS_PRIVATE_IPV4=10.0.0.5\nCOREOS_PUBLIC_IPV4=203.0.113.7\n');
    const kept = lstatSync(join(root, 'var/lib/coreos-cloudinit/user-data'));
    expect([kept.mode & 0o777, readFileSync(join(root, 'var/lib/coreos-cloudinit/user-data'), 'utf8')]).toEqual([0o600, userData]);
    expect(JSON.parse(readFileSync(join(root, 'var/lib/coreos-cloudinit/instance.json'), 'utf8'))).toEqual({ source: 'ec2', instanceId: 'i-42' });
  });

  test('a machine whose instance id changed is treated as new', async () => {
    const root = makeRoot();
    const first = await cli(['--from-ec2-metadata', server.url, '--root', root]);
    expect(first.stdout).toMatch(/^changed\s+instance i-42 \[ec2\]: first boot$/m);
    const again = await cli(['--from-ec2-metadata', server.url, '--root', root]);
    expect(again.stdout).toMatch(/^unchanged instance i-42 \[ec2\]$/m);
    expect(again.stdout).toMatch(/^0 changed, /m);
    server.ec2.metaData!['instance-id'] = 'i-43';
    const cloned = await cli(['--from-ec2-metadata', server.url, '--root', root]);
    expect(cloned.stdout).toMatch(/^changed\s+instance i-43 \[ec2\]: a new instance \(was i-42\)$/m);
    expect(JSON.parse(readFileSync(join(root, 'var/lib/coreos-cloudinit/instance.json'), 'utf8'))).toEqual({ source: 'ec2', instanceId: 'i-43' });
  });

  test('nothing is applied from a failed fetch', async () => {
    const root = makeRoot();
    const before = snapshot(root);
    server.alwaysFail.set('2009-04-04/user-data', 'truncate');
    const r = await cli(['--from-ec2-metadata', server.url, '--root', root, '--http-timeout', '300', '--http-deadline', '1500']);
    expect(r.status).toBe(1);
    // Each retry is said as it happens, with its cause and the wait; then the failure, naming the URL.
    expect(r.stderr).toMatch(/^coreos-cloudinit: http:\/\/127\.0\.0\.1:\d+\/2009-04-04\/user-data: .*(bytes|whole body).*; retry 2 of 15 in \d+ ms\n/);
    expect(r.stderr).toMatch(/^coreos-cloudinit: no datasource answered \(http:\/\/127\.0\.0\.1:\d+\/2009-04-04\/user-data: .*(bytes|whole body).*\)\n$/m);
    expect(snapshot(root)).toEqual(before);
  });

  test('validating from the metadata service warns about variables that would be empty', async () => {
    server.ec2.metaData = { 'local-ipv4': '10.0.0.5' };
    const r = await cli(['--validate', '--from-ec2-metadata', server.url]);
    expect(r.stdout).toContain(`${server.url.replace(/\/?$/, '/')}2009-04-04/user-data:11:15: warning:`);
    expect(r.stdout).toMatch(/^\S+:11:15: warning: \$public_ipv4 has no value in the metadata \(nor in COREOS_PUBLIC_IPV4\): it becomes empty \[empty-variable\]$/m);
  });
});

(asRoot ? describe : describe.skip)('from GCE, DigitalOcean and Packet: a first boot', () => {
  const userData = '#cloud-config\ncoreos:\n  etcd2:\n    advertise_client_urls: http://$private_ipv4:2379\nwrite_files:\n  - path: /etc/public-address\n    content: "$public_ipv4"\n';
  const injection = '10.0.0.1"\nwrite_files:\n  - path: /etc/injected\n    content: x\n#';
  const clouds = [
    {
      oem: 'gce',
      variable: 'GCE',
      settings: (address = gceInstance['network-interfaces/0/ip']): CloudSettings => ({ gce: { userData, instance: { ...gceInstance, 'network-interfaces/0/ip': address } } }),
      userDataUrl: 'computeMetadata/v1/instance/attributes/user-data',
      expect: { id: gceInstance.id, hostname: gceInstance.hostname, private: '10.128.0.5', public: '203.0.113.7', keys: undefined, environment: 'COREOS_PRIVATE_IPV4=10.128.0.5\nCOREOS_PUBLIC_IPV4=203.0.113.7\n' },
    },
    {
      oem: 'digitalocean',
      variable: 'DIGITALOCEAN',
      settings: (address = '10.132.255.113'): CloudSettings => {
        const private0 = { ...digitaloceanDocument.interfaces.private[0]!, ipv4: { ip_address: address, netmask: '255.255.0.0', gateway: '10.132.0.1' } };
        return { digitalocean: { userData, metadata: { ...digitaloceanDocument, interfaces: { ...digitaloceanDocument.interfaces, private: [private0] } } } };
      },
      userDataUrl: 'metadata/v1/user-data',
      expect: {
        id: '2756294',
        hostname: 'droplet-1',
        private: '10.132.255.113',
        public: '203.0.113.20',
        keys: `${cloudKey}\n`,
        environment: 'COREOS_PRIVATE_IPV4=10.132.255.113\nCOREOS_PUBLIC_IPV4=203.0.113.20\nCOREOS_PUBLIC_IPV6=2001:0DB8:0800:0010:0000:0000:017D:2001\n',
      },
    },
    {
      oem: 'packet',
      variable: 'PACKET',
      settings: (address = '10.88.1.3'): CloudSettings => {
        const addresses = packetDocument.network.addresses.map((a) => (a.public ? a : { ...a, address }));
        return { packet: { userData, metadata: { ...packetDocument, network: { ...packetDocument.network, addresses } } } };
      },
      userDataUrl: 'userdata',
      expect: { id: packetDocument.id, hostname: 'metal-1', private: '10.88.1.3', public: '203.0.113.11', keys: `${cloudKey}\n`, environment: 'COREOS_PRIVATE_IPV4=10.88.1.3\nCOREOS_PUBLIC_IPV4=203.0.113.11\nCOREOS_PUBLIC_IPV6=2001:db8:1::3\n' },
    },
  ];
  let server: FakeMetadata | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  test.each(clouds)('$oem: user data, metadata and $private_ipv4; --oem $oem does the same', async (cloud) => {
    server = new FakeMetadata({}, undefined, cloud.settings());
    await server.start();
    const root = makeRoot();
    // --oem digitalocean converts the droplet's interfaces too, as the reference's preset does.
    const netconf = cloud.oem === 'digitalocean' ? ['--convert-netconf', 'digitalocean'] : [];
    const r = await cli([`--from-${cloud.oem}-metadata`, server.url, ...netconf, '--root', root, '--http-timeout', '500']);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(r.stdout).toMatch(new RegExp(`^user data from ${server.url}${cloud.userDataUrl}\n`));
    expect(r.stdout).toMatch(new RegExp(`^changed\\s+instance ${cloud.expect.id} \\[${cloud.oem}\\]: first boot$`, 'm'));
    expect(readFileSync(join(root, 'run/systemd/system/etcd2.service.d/20-cloudinit.conf'), 'utf8')).toBe(`[Service]\nEnvironment="ETCD_ADVERTISE_CLIENT_URLS=http://${cloud.expect.private}:2379"\n`);
    expect(readFileSync(join(root, 'etc/public-address'), 'utf8')).toBe(cloud.expect.public);
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe(`${cloud.expect.hostname}\n`); // none in the user data: the metadata's
    expect(readFileSync(join(root, 'etc/environment'), 'utf8')).toBe(cloud.expect.environment);
    if (cloud.expect.keys) expect(readFileSync(join(root, 'home/core/.ssh/authorized_keys'), 'utf8')).toBe(cloud.expect.keys);
    else expect(existsSync(join(root, 'home/core/.ssh'))).toBe(false);
    expect(JSON.parse(readFileSync(join(root, 'var/lib/coreos-cloudinit/instance.json'), 'utf8'))).toEqual({ source: cloud.oem, instanceId: cloud.expect.id });
    // The preset: the cloud's default URL, which the variable overrides.
    const viaOem = makeRoot();
    const o = await cliWithEnv(['--oem', cloud.oem, '--root', viaOem], { [`COREOS_CLOUDINIT_${cloud.variable}_METADATA_URL`]: server.url });
    expect([o.status, o.stderr, o.stdout]).toEqual([0, '', r.stdout]);
    expect(snapshot(viaOem)).toEqual(snapshot(root));
  });

  test.each(clouds)('$oem: a private address that carries YAML is refused, naming the field; nothing is written', async (cloud) => {
    server = new FakeMetadata({}, undefined, cloud.settings(injection));
    await server.start();
    const root = makeRoot();
    const before = snapshot(root);
    const r = await cli([`--from-${cloud.oem}-metadata`, server.url, '--root', root]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^coreos-cloudinit: no datasource answered \\(http://127\\.0\\.0\\.1:\\d+/\\S*: ${cloud.oem} metadata service: \\S+.* not an IP address: "10\\.0\\.0\\.1\\\\"\\\\nwrite_files`));
    expect(snapshot(root)).toEqual(before);
  });

  test.each(clouds)('--install-units --oem $oem enables its unit, which runs --oem=$oem', async ({ oem }) => {
    const root = makeRoot();
    const r = await cli(['--install-units', '--root', root, '--oem', oem, '--exec', '/usr/bin/coreos-cloudinit']);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(readlinkSync(join(root, `etc/systemd/system/user-config.target.wants/oem-cloudinit-${oem}.service`))).toBe(`/etc/systemd/system/oem-cloudinit-${oem}.service`);
    expect(readFileSync(join(root, `etc/systemd/system/oem-cloudinit-${oem}.service`), 'utf8')).toMatch(new RegExp(`^ExecStart=/usr/bin/coreos-cloudinit --oem=${oem}$`, 'm'));
  });

  test('--install-units ties the config drive\'s service to its mount, which the path unit starts (a failed service is not run again and again)', async () => {
    const root = makeRoot();
    const r = await cli(['--install-units', '--root', root, '--exec', '/usr/bin/coreos-cloudinit']);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(readlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants/user-config.target'))).toBe('/etc/systemd/system/user-config.target');
    expect(readlinkSync(join(root, 'etc/systemd/system/media-configdrive.mount.wants/user-configdrive.service'))).toBe('/etc/systemd/system/user-configdrive.service');
    expect(readFileSync(join(root, 'etc/systemd/system/user-configdrive.path'), 'utf8')).toMatch(/^Unit=media-configdrive\.mount$/m);
  });
});

/** A config drive directory: openstack/latest/ with the files given. */
function configDrive(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'bootsmith-cd-'));
  mkdirSync(join(dir, 'openstack/latest'), { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, 'openstack/latest', name), text);
  return dir;
}

const cliWithEnv = (args: string[], env: Record<string, string>) => runAsync(bin, args, pathOnly(env));

(asRoot ? describe : describe.skip)('nothing from the metadata becomes user data (issue 12)', () => {
  const usesAddress = '#cloud-config\ncoreos:\n  etcd2:\n    advertise_client_urls: "http://$private_ipv6:2379"\n';

  test('an ip_address that carries YAML is refused, naming the source and field; nothing is written', async () => {
    const drive = configDrive({
      'meta_data.json': JSON.stringify({ uuid: 'cd-1', hostname: 'node-1' }),
      'network_data.json': JSON.stringify({ networks: [{ type: 'ipv6', ip_address: '1.2.3.4"\nwrite_files:\n  - path: /etc/injected\n    content: pwned\n#' }] }),
      user_data: usesAddress,
    });
    const root = makeRoot();
    const before = snapshot(root);
    const r = await cli(['--from-configdrive', drive, '--root', root]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`coreos-cloudinit: no datasource answered (${drive}: openstack config drive: network_data.json networks[0].ip_address: not an IP address: "1.2.3.4\\"\\nwrite_files`);
    expect(existsSync(join(root, 'etc/injected'))).toBe(false);
    expect(snapshot(root)).toEqual(before);
  });

  test('a valid address is substituted', async () => {
    const drive = configDrive({
      'meta_data.json': JSON.stringify({ uuid: 'cd-1', hostname: 'node-1' }),
      'network_data.json': JSON.stringify({ networks: [{ type: 'ipv6', ip_address: 'fd00::5' }] }),
      user_data: usesAddress,
    });
    const root = makeRoot();
    const r = await cli(['--from-configdrive', drive, '--root', root]);
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(readFileSync(join(root, 'run/systemd/system/etcd2.service.d/20-cloudinit.conf'), 'utf8')).toBe('[Service]\nEnvironment="ETCD_ADVERTISE_CLIENT_URLS=http://fd00::5:2379"\n');
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('node-1\n');
  });

  test('user data whose substituted text has errors is not applied', async () => {
    const root = makeRoot();
    const before = snapshot(root);
    const file = join(mkdtempSync(join(tmpdir(), 'bootsmith-ud-')), 'user-data');
    writeFileSync(file, '#cloud-config\nwrite_files:\n  - path: /etc/applied\n    content: "yes"\ncoreos:\n  etcd2:\n    name: $private_ipv6\n');
    // fd00:: is an address, but spliced after "name: " it ends in a colon: YAML that means something else.
    const r = await cliWithEnv(['--from-file', file, '--root', root], { COREOS_PRIVATE_IPV6: 'fd00::' });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/\/user-data \(after substituting the metadata variables\):7:\d+: error: .*\[yaml-syntax\]$/m);
    expect(r.stdout).toMatch(/not applied: the user data has errors once the metadata variables are substituted\n$/);
    expect(snapshot(root)).toEqual(before);
  });

  test('--validate from a datasource reports the errors of the substituted text too', async () => {
    const drive = configDrive({
      'meta_data.json': JSON.stringify({ uuid: 'cd-1' }),
      'network_data.json': JSON.stringify({ networks: [{ type: 'ipv6', ip_address: 'fd00::' }] }),
      user_data: '#cloud-config\ncoreos:\n  etcd2:\n    name: $private_ipv6\n',
    });
    const r = await cli(['--validate', '--from-configdrive', drive]);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`${drive}/openstack/latest/user_data (after substituting the metadata variables):4:`);
    expect(r.stdout).toMatch(/ \(after substituting the metadata variables\):4:\d+: error: .*\[yaml-syntax\]$/m);
  });

  test('an environment address that is not one is an error, and nothing is applied', async () => {
    const root = makeRoot();
    const before = snapshot(root);
    const file = join(mkdtempSync(join(tmpdir(), 'bootsmith-ud-')), 'user-data');
    writeFileSync(file, '#cloud-config\nwrite_files:\n  - path: /etc/addr\n    content: "$private_ipv4"\n');
    const r = await cliWithEnv(['--from-file', file, '--root', root], { COREOS_PRIVATE_IPV4: '10.0.0.1"\nwrite_files: []\n#' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^coreos-cloudinit: COREOS_PRIVATE_IPV4=.* is not an IPv4 address\n$/);
    expect(snapshot(root)).toEqual(before);
  });
});

(asRoot ? describe : describe.skip)('Also= (issue 12)', () => {
  const unit = (name: string, also: string, enable: boolean) =>
    `    - name: ${name}\n${enable ? '      enable: true\n' : ''}      content: |\n        [Service]\n        ExecStart=/bin/true\n        [Install]\n        WantedBy=multi-user.target\n        Also=${also}\n`;

  test('cycles are followed once each: a and b name each other, c names itself', async () => {
    const root = makeRoot();
    const file = join(mkdtempSync(join(tmpdir(), 'bootsmith-ud-')), 'user-data');
    writeFileSync(file, `#cloud-config\ncoreos:\n  units:\n${unit('a.service', 'b.service', true)}${unit('b.service', 'a.service', false)}${unit('c.service', 'c.service', true)}`);
    const r = await cli(['--from-file', file, '--root', root]);
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toMatch(/call stack/);
    expect(r.status).toBe(0);
    for (const name of ['a', 'b', 'c']) {
      expect(readlinkSync(join(root, `etc/systemd/system/multi-user.target.wants/${name}.service`))).toBe(`/etc/systemd/system/${name}.service`);
    }
    const again = await cli(['--from-file', file, '--root', root]);
    expect([again.status, again.stdout]).toEqual([0, expect.stringMatching(/^0 changed, /m)]);
  });
});
