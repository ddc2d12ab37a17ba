/**
 * First boot from EC2 (and from GCE): the boot units installed into a temp root, started in a real
 * systemd (a user manager in a private mount namespace) against a stand-in metadata service; then
 * the drop-in, files, users and units are checked.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeMetadata, gceInstance } from '../support/fake-metadata';
import { asRoot, makeRoot } from '../support/roots';

const repo = join(__dirname, '../..');
const bin = `${process.execPath} ${repo}/bin/coreos-cloudinit.js`;
const harness = join(__dirname, '../support/systemd-user.sh');
const canRun = asRoot && spawnSync('unshare', ['-m', 'true']).status === 0;
if (!canRun) test.skip('the boot test needs root and unshare -m; CI runs it', () => undefined);

const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6 ops@example.com';
const userData = `#cloud-config
coreos:
  etcd2:
    name: node-a
    advertise_client_urls: http://$private_ipv4:2379
    listen_client_urls: http://0.0.0.0:2379
  units:
    - name: web.service
      command: start
      content: |
        [Service]
        ExecStart=/bin/sleep 300
users:
  - name: ops
    groups: [sudo]
write_files:
  - path: /etc/motd
    content: "This is $private_ipv4\\n"
`;

function inNamespace(script: string): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('unshare', ['-m', 'bash', harness, script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', () => resolve(out));
  });
}

/**
 * The script that boots a platform's unit beside the user manager: the boot units installed into
 * `root` (--oem), the metadata URL in the manager's environment, user-config.target started, and
 * the unit (oem-cloudinit-UNIT.service) waited for; `before` runs before the install, `after` once
 * the unit is done. It echoes "UNIT unit: STATE".
 */
function bootScript(root: string, o: { oem: string; unit: string; url: [string, string] }, lines: { before?: string[]; after?: string[] } = {}): string {
  const apply = `${bin} --root ${root} --systemd-bus unix:path=/run/user/0/bus --unit-dir /etc/systemd/user --runtime-unit-dir /run/systemd/user --http-timeout 2000`;
  return [
    `mkdir -p ${root}/etc/systemd/user ${root}/run/systemd/user`,
    `mount --bind ${root}/etc/systemd/user /etc/systemd/user`,
    `mount --bind ${root}/run/systemd/user /run/systemd/user`,
    ...(lines.before ?? []),
    `${bin} --install-units --root ${root} --unit-dir /etc/systemd/user --oem ${o.oem} --exec '${apply}'`,
    `systemctl --user set-environment ${o.url[0]}=${o.url[1]}`,
    'systemctl --user daemon-reload',
    // As at boot: systemd starts the units; the unit reloads systemd while it runs, which a
    // blocking `systemctl start` would wait out until its timeout, so poll for the result.
    'systemctl --user start --no-block user-config.target',
    `for _ in $(seq 1 300); do s=$(systemctl --user is-active oem-cloudinit-${o.unit}.service); [ "$s" = activating ] || [ "$s" = inactive ] || break; sleep 0.1; done`,
    `echo "${o.unit} unit: $s"`,
    ...(lines.after ?? []),
  ].join('\n');
}

(canRun ? describe : describe.skip)('booting from EC2 with the boot units', () => {
  const root = makeRoot();
  const server = new FakeMetadata({ imds: 'v2', userData, metaData: { 'instance-id': 'i-boot', 'local-ipv4': '10.0.0.5', hostname: 'ip-10-0-0-5' }, keys: { ops: key } });
  let out: string;
  let state: Record<string, Record<string, string>>;

  beforeAll(async () => {
    await server.start();
    out = await inNamespace(
      bootScript(root, { oem: 'ec2-compat', unit: 'ec2', url: ['COREOS_CLOUDINIT_EC2_METADATA_URL', server.url] }, {
        // etcd2 as the image would ship it
        before: ["printf '[Service]\\nExecStart=/bin/sleep 300\\n' > /run/systemd/user/etcd2.service"],
        after: [
          'systemctl --user start etcd2.service',
          'echo ---',
          'systemctl --user show -p Id,ActiveState,Result,Environment,DropInPaths oem-cloudinit-ec2.service etcd2.service web.service',
        ],
      }),
    );
    state = Object.fromEntries(
      (out.split('\n---\n')[1] ?? '')
        .trim()
        .split('\n\n')
        .map((section) => {
          const props = Object.fromEntries(section.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
          return [props.Id ?? '', props];
        }),
    );
  }, 120_000);
  afterAll(() => server.stop());

  test('the EC2 unit ran and succeeded', () => {
    expect(out).toMatch(/^ec2 unit: active$/m);
    expect(state['oem-cloudinit-ec2.service']).toMatchObject({ ActiveState: 'active', Result: 'success' });
    expect(server.requests[0]).toMatchObject({ method: 'PUT', path: 'latest/api/token' });
  });

  test('etcd2 got its drop-in, with the machine\'s address', () => {
    expect(state['etcd2.service']!.DropInPaths).toBe('/run/systemd/user/etcd2.service.d/20-cloudinit.conf');
    expect(state['etcd2.service']!.Environment).toBe('ETCD_ADVERTISE_CLIENT_URLS=http://10.0.0.5:2379 ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:2379 ETCD_NAME=node-a');
  });

  test('files, users, keys and units', () => {
    expect(readFileSync(join(root, 'etc/motd'), 'utf8')).toBe('This is 10.0.0.5\n');
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('ip-10-0-0-5\n');
    expect(readFileSync(join(root, 'etc/group'), 'utf8')).toMatch(/^sudo:x:27:ops$/m);
    expect(readFileSync(join(root, 'home/core/.ssh/authorized_keys'), 'utf8')).toBe(`${key}\n`);
    expect(JSON.parse(readFileSync(join(root, 'var/lib/coreos-cloudinit/instance.json'), 'utf8'))).toEqual({ source: 'ec2', instanceId: 'i-boot' });
    expect(state['web.service']).toMatchObject({ ActiveState: 'active' });
  });
});

(canRun ? describe : describe.skip)('booting from GCE with the boot units', () => {
  const root = makeRoot();
  const server = new FakeMetadata({}, undefined, { gce: { userData, instance: gceInstance } });
  let out: string;

  beforeAll(async () => {
    await server.start();
    out = await inNamespace(
      bootScript(root, { oem: 'gce', unit: 'gce', url: ['COREOS_CLOUDINIT_GCE_METADATA_URL', server.url] }, { after: ['systemctl --user show -p Result,ExecStart oem-cloudinit-gce.service'] }),
    );
  }, 120_000);
  afterAll(() => server.stop());

  test('the GCE unit ran --oem=gce against the metadata server, every request with Metadata-Flavor: Google', () => {
    expect(out).toMatch(/^gce unit: active$/m);
    expect(out).toMatch(/^Result=success$/m);
    expect(out).toMatch(/^ExecStart=.* --oem=gce ;/m);
    expect(server.requests.length).toBeGreaterThan(0);
    expect(server.requests.every((r) => r.flavor === 'Google' && r.status === 200)).toBe(true);
  });

  test("the metadata's address, hostname and instance id", () => {
    expect(readFileSync(join(root, 'etc/motd'), 'utf8')).toBe('This is 10.128.0.5\n');
    expect(readFileSync(join(root, 'run/systemd/user/etcd2.service.d/20-cloudinit.conf'), 'utf8')).toMatch(/^Environment="ETCD_ADVERTISE_CLIENT_URLS=http:\/\/10\.128\.0\.5:2379"$/m);
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe(`${gceInstance.hostname}\n`);
    expect(JSON.parse(readFileSync(join(root, 'var/lib/coreos-cloudinit/instance.json'), 'utf8'))).toEqual({ source: 'gce', instanceId: gceInstance.id });
  });
});
