/**
 * Journey 1, on a real machine: the image of images/machine.ts booted in QEMU with a config drive.
 * Real systemd, udev, D-Bus, shadow and the units apply the user data on first boot; the console
 * shows the units, and after a clean poweroff ROOT (read with debugfs) shows the files, owners and
 * modes. The second boot applies the same user data and changes nothing.
 *
 * The network comes from the config drive too: network_data.json gives the card (by its MAC) the
 * static address 10.0.2.42/24 and a default route, where QEMU's DHCP would give 10.0.2.15.
 * coreos-cloudinit writes networkd files for it and restarts systemd-networkd; a unit from the
 * user data then sends what networkctl says to a stand-in service on the host, through the only
 * way out restrict=on leaves (guestfwd to 10.0.2.100), from that address.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildMachine, readMachineImage } from '../../images/machine';
import type { MachineImage } from '../../images/machine';
import { canBootMachines, Machine, machineMac, until } from '../support/machine';
import type { Boot, Ext4 } from '../support/machine';

if (!canBootMachines) test.skip('booting a machine needs root, qemu-system-x86, mmdebstrap, genisoimage, e2fsprogs and dosfstools; CI has them', () => undefined);

// Boots take 20-30 s on an idle machine and up to 90 s on a loaded one; the deadlines allow twice that.
const bootDeadline = 240_000;
/** The port the guest reports its network to (10.0.2.100, guestfwd to the test's stand-in). */
const reportPort = 8080;
const coreKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6 core@example.com';
const deployKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDx3hTrQ2cYzXlLqfZwwzyRvh7gQm5XoI0ZQp7s2vXb7 deploy@example.com';

// etcd2.service is a stand-in here (the image has no etcd): it records the environment the
// cloud-config drop-in gives it, so the test sees $private_ipv4 as systemd passed it.
const userData = `#cloud-config
hostname: machine-01
ssh_authorized_keys:
  - ${coreKey}
users:
  - name: deploy
    groups: [sudo]
    ssh_authorized_keys:
      - ${deployKey}
write_files:
  - path: /etc/deploy/app.conf
    owner: deploy:deploy
    permissions: "0640"
    content: |
      listen=$private_ipv4
  - path: /opt/bin/hello
    permissions: "0755"
    content: |
      #!/bin/sh
      echo "hello $GREETING" > /var/lib/hello.txt
  - path: /opt/bin/report-network
    permissions: "0755"
    content: |
      #!/bin/sh
      # Once networkd has given the card its address from network_data.json: what networkctl says,
      # to the host's stand-in at 10.0.2.100:${reportPort}.
      link=$(ip -o link show | awk -F': ' '/${machineMac}/ { print $2; exit }')
      until ip -4 -o addr show dev "$link" | grep -q ' 10.0.2.42/24 '; do sleep 1; done
      { networkctl list --no-pager --no-legend; networkctl status --no-pager --lines=0 "$link"; ip -4 -o addr show dev "$link"; ip -4 route; } > /run/network-report
      exec node -e 'const r = require("http").request({ host: "10.0.2.100", port: ${reportPort}, method: "POST", path: "/network" }, (s) => { s.resume(); s.on("end", () => process.exit(s.statusCode === 200 ? 0 : 1)); }); require("fs").createReadStream("/run/network-report").pipe(r);'
coreos:
  etcd2:
    name: machine-01
    advertise_client_urls: http://$private_ipv4:2379
    listen_client_urls: http://0.0.0.0:2379
  update:
    group: beta
    reboot_strategy: reboot
  units:
    - name: etcd2.service
      command: start
      content: |
        [Unit]
        Description=etcd2 (stand-in)
        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=/bin/sh -c 'echo "$ETCD_NAME $ETCD_ADVERTISE_CLIENT_URLS" > /var/lib/etcd2.env'
    - name: report-network.service
      command: start
      content: |
        [Unit]
        Description=Report the network networkd set up to the host
        [Service]
        Type=oneshot
        RemainAfterExit=yes
        TimeoutStartSec=600
        ExecStart=/opt/bin/report-network
    - name: hello.service
      command: start
      enable: true
      content: |
        [Unit]
        Description=Hello from user data
        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=/opt/bin/hello
        [Install]
        WantedBy=multi-user.target
      drop_ins:
        - name: 10-greeting.conf
          content: |
            [Service]
            Environment=GREETING=from-the-drop-in
`;

const metaData = { uuid: 'machine-01-instance', hostname: 'from-metadata', public_keys: {} };
// A static address on the card, in QEMU's user network (10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3).
const networkData = {
  links: [{ id: 'card0', type: 'phy', ethernet_mac_address: machineMac, mtu: 1500 }],
  networks: [{ id: 'net0', type: 'ipv4', link: 'card0', ip_address: '10.0.2.42', netmask: '255.255.255.0', routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.0.2.2' }] }],
  services: [{ type: 'dns', address: '10.0.2.3' }],
};

const provisioned = /systemd\[1\]: Finished user-configdrive\.service/;
const broken = /user-configdrive\.service: (Main process exited, code=exited, status=[1-9]|Failed with result)|Kernel panic|emergency mode|Failed to start/;

(canBootMachines ? describe : describe.skip)('journey 1: first boot of a real machine from a config drive', () => {
  const work = mkdtempSync(join(tmpdir(), 'bootsmith-machine-'));
  let image: { dir: string; partitions: MachineImage['partitions'] };
  let machine: Machine;
  let first: Boot;
  let second: Boot;
  let afterFirst: Ext4Snapshot;
  let afterSecond: Ext4Snapshot;
  const timings: Record<string, number> = {};
  // The host's stand-in: what each boot's report-network.service sent (bounded: a report is a few lines).
  const reports: string[] = [];
  const stand = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
      if (body.length > 64 * 1024) req.destroy();
    });
    req.on('end', () => {
      reports.push(`${req.method} ${req.url}\n${body}`);
      res.end('ok');
    });
  });

  beforeAll(async () => {
    let t = Date.now();
    const built = process.env['BOOTSMITH_MACHINE_IMAGE'];
    if (built) {
      const read = readMachineImage(built);
      if (!read) throw new Error(`BOOTSMITH_MACHINE_IMAGE=${built} holds no machine image`);
      image = { dir: built, partitions: read.partitions };
    } else {
      image = await buildMachine({ out: join(work, 'image'), releases: false });
      timings['image build'] = (Date.now() - t) / 1000;
    }
    await new Promise<void>((resolve) => stand.listen(0, '127.0.0.1', resolve));
    const guestfwd = [{ guestPort: reportPort, hostPort: (stand.address() as AddressInfo).port }];
    machine = new Machine({ image: image.dir, dir: join(work, 'machine'), userData, metaData, networkData, guestfwd, cmdline: 'systemd.journald.forward_to_console=1' });

    first = machine.start();
    t = Date.now();
    await first.waitFor(provisioned, bootDeadline, broken);
    timings['boot 1 to provisioned'] = (Date.now() - t) / 1000;
    await first.waitFor(/systemd\[1\]: Startup finished in/, bootDeadline, broken);
    await first.waitFor(/locksmithd\[\d+\]: starting: strategy reboot/, bootDeadline, broken);
    await until(() => reports.length === 1, bootDeadline, 'the first boot\'s network report', () => first.console());
    await first.powerOff();
    afterFirst = snapshot(machine.root());

    second = machine.start();
    t = Date.now();
    await second.waitFor(provisioned, bootDeadline, broken);
    timings['boot 2 to provisioned'] = (Date.now() - t) / 1000;
    await second.waitFor(/systemd\[1\]: Startup finished in/, bootDeadline, broken);
    await second.waitFor(/locksmithd\[\d+\]: starting: strategy reboot/, bootDeadline, broken);
    await until(() => reports.length === 2, bootDeadline, 'the second boot\'s network report', () => second.console());
    await second.powerOff();
    afterSecond = snapshot(machine.root());
    if (process.env.MACHINE_TIMINGS) process.stdout.write(`machine timings: ${JSON.stringify(timings)}\n`);
  }, 20 * 60_000);

  afterAll(() => {
    stand.close();
    machine?.stop();
    if (!process.env['BOOTSMITH_KEEP_MACHINE']) rmSync(work, { recursive: true, force: true });
  });

  test('the boot loader chose USR-A, and /usr came up read-only from it', () => {
    expect(first.choice.label).toBe('USR-A');
    expect(first.console()).toContain(`mount.usr=PARTUUID=${image.partitions.usrA.toLowerCase()}`);
    expect(first.console()).toMatch(/Welcome to .*Bootsmith Machine 2000\.0\.0/);
  });

  test('coreos-cloudinit applied the config drive with no failures, and the units started', () => {
    const text = first.console();
    expect(text).toMatch(/coreos-cloudinit\[\d+\]: .*\d+ changed, \d+ unchanged, 0 failed/);
    expect(text).toMatch(/systemd\[1\]: Finished hello\.service/);
    expect(text).toMatch(/systemd\[1\]: Finished etcd2\.service/);
    expect(text).toMatch(/locksmithd\[\d+\]: starting: strategy reboot/);
  });

  test('files, owners and modes on ROOT', () => {
    const r = afterFirst;
    expect(r.files['/etc/hostname']).toBe('machine-01\n');
    const deploy = /^deploy:x:(\d+):(\d+):/m.exec(r.files['/etc/passwd'] ?? '');
    expect(deploy).not.toBeNull();
    const [uid, gid] = [Number(deploy![1]), Number(deploy![2])];
    expect(r.files['/etc/group']).toMatch(/^sudo:x:27:deploy$/m);
    expect(r.files['/etc/deploy/app.conf']).toBe('listen=10.0.2.42\n');
    expect(r.stats['/etc/deploy/app.conf']).toMatchObject({ mode: 0o640, uid, gid });
    expect(r.stats['/opt/bin/hello']).toMatchObject({ mode: 0o755, uid: 0, gid: 0 });
    expect(r.files['/home/deploy/.ssh/authorized_keys']).toBe(`${deployKey}\n`);
    expect(r.stats['/home/deploy/.ssh/authorized_keys']).toMatchObject({ mode: 0o600, uid, gid });
    expect(r.files['/home/core/.ssh/authorized_keys']).toBe(`${coreKey}\n`);
    expect(r.stats['/home/core/.ssh/authorized_keys']).toMatchObject({ mode: 0o600, uid: 500, gid: 500 });
  });

  test('the unit ran with its drop-in, is enabled, and etcd2 got $private_ipv4', () => {
    const r = afterFirst;
    expect(r.files['/var/lib/hello.txt']).toBe('hello from-the-drop-in\n');
    expect(r.files['/etc/systemd/system/hello.service.d/10-greeting.conf']).toContain('GREETING=from-the-drop-in');
    expect(r.stats['/etc/systemd/system/multi-user.target.wants/hello.service']?.type).toBe('symlink');
    expect(r.files['/var/lib/etcd2.env']).toBe('machine-01 http://10.0.2.42:2379\n');
    expect(r.files['/etc/environment']).toMatch(/^COREOS_PRIVATE_IPV4=10\.0\.2\.42$/m);
  });

  test('the network of network_data.json: networkd gave the card 10.0.2.42/24 and the default route, and the host was reached from it', () => {
    expect(first.console()).toMatch(/coreos-cloudinit\[\d+\]: changed\s+file \/run\/systemd\/network\/10-bootsmith-\S+\.network/);
    expect(first.console()).toMatch(/coreos-cloudinit\[\d+\]: changed\s+restart systemd-networkd\.service/);
    for (const report of reports) {
      expect(report).toMatch(/^POST \/network\n/);
      // networkctl: the link is routable (its IPv6 router advertisements may still be coming:
      // configuring), by our file, with the static address only.
      expect(report).toMatch(/^\s*\d+ \S+\s+ether\s+routable\s+configur(ing|ed)\s*$/m);
      expect(report).toMatch(/Network File: \/run\/systemd\/network\/10-bootsmith-\S+\.network/);
      expect(report).toMatch(/Address: 10\.0\.2\.42\b/);
      expect(report).toMatch(/Gateway: 10\.0\.2\.2/);
      expect(report).toMatch(/DNS: 10\.0\.2\.3/);
      expect(report).toMatch(/inet 10\.0\.2\.42\/24 /);
      expect(report).not.toMatch(/10\.0\.2\.15/);
      expect(report).toMatch(/^default via 10\.0\.2\.2 dev /m);
    }
    expect(reports).toHaveLength(2);
  });

  test('update group and reboot strategy in update.conf; a machine id made on first boot', () => {
    const r = afterFirst;
    expect(r.files['/etc/coreos/update.conf']).toMatch(/^GROUP=beta$/m);
    expect(r.files['/etc/coreos/update.conf']).toMatch(/^REBOOT_STRATEGY=reboot$/m);
    expect(r.files['/etc/machine-id']).toMatch(/^[0-9a-f]{32}\n$/);
  });

  test('the second boot changes nothing', () => {
    // Only what lives in /run is made again (the etcd2 drop-in, so a reload), and what user data
    // says to start or restart runs again (etcd2.service is not enabled); nothing persistent changes.
    const changed = [...second.console().matchAll(/coreos-cloudinit\[\d+\]: changed\s+(.*)/g)].map((m) => m[1]!.trim());
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.filter((line) => !/^(file \/run\/|reload systemd|start |restart )/.test(line))).toEqual([]);
    expect(second.console()).toMatch(/coreos-cloudinit\[\d+\]: .*\d+ changed, \d+ unchanged, 0 failed/);
    expect(second.console()).toMatch(/systemd\[1\]: Finished hello\.service/);
    for (const path of watched) {
      expect({ path, stat: afterSecond.stats[path], text: afterSecond.files[path] }).toEqual({ path, stat: afterFirst.stats[path], text: afterFirst.files[path] });
    }
    expect(afterSecond.files['/etc/machine-id']).toBe(afterFirst.files['/etc/machine-id']);
  });
});

/** The files the user data touches, read after a poweroff. */
const watched = [
  '/etc/hostname', '/etc/passwd', '/etc/group', '/etc/shadow', '/etc/deploy/app.conf', '/opt/bin/hello',
  '/home/deploy/.ssh/authorized_keys', '/home/core/.ssh/authorized_keys', '/etc/systemd/system/hello.service',
  '/etc/systemd/system/hello.service.d/10-greeting.conf', '/etc/coreos/update.conf', '/etc/environment',
];
const readOnly = ['/var/lib/hello.txt', '/var/lib/etcd2.env', '/etc/machine-id', '/etc/systemd/system/multi-user.target.wants/hello.service'];

interface Ext4Snapshot {
  files: Record<string, string | undefined>;
  stats: Record<string, ReturnType<Ext4['stat']>>;
}

function snapshot(fs: Ext4): Ext4Snapshot {
  const files: Ext4Snapshot['files'] = {};
  const stats: Ext4Snapshot['stats'] = {};
  for (const p of [...watched, ...readOnly]) {
    files[p] = fs.read(p);
    stats[p] = fs.stat(p);
  }
  return { files, stats };
}
