/**
 * Applying user data into temporary roots, offline (no systemd), with the real shadow tools:
 * files, users, SSH keys, generated settings, unit links; dry runs, re-runs, failures, refusals.
 */
import { appendFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, copyFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { applyUserData } from '../../src/apply/apply';
import { DryRunFs } from '../../src/apply/dry-run-fs';
import type { User } from '../../src/cloudconfig/config';
import type { IgnitionGroup } from '../../src/cloudconfig/ignition/config';
import { commands } from '../../src/system/paths';
import type { ActionResult } from '../../src/apply/execute';
import { asRoot, makeRoot, snapshot } from '../support/roots';

const example = readFileSync(join(__dirname, '../../examples/etcd-node.yaml'));

/** As on a machine whose /etc/environment has the address (coreos-setup-environment writes it). */
const env = { COREOS_PRIVATE_IPV4: '10.0.0.5' };

async function apply(root: string, text: string | Buffer, dryRun = false) {
  return applyUserData(typeof text === 'string' ? Buffer.from(text) : text, { root, dryRun, env });
}

function outcomes(results: ActionResult[]): string[] {
  return results.map((r) => `${r.outcome} ${r.subject}`);
}

const describeAsRoot = asRoot ? describe : describe.skip;
if (!asRoot) test.skip('apply tests need root (chown, useradd --root); CI runs them', () => undefined);

describeAsRoot('the bundled example, offline', () => {
  const root = makeRoot();
  let first: ActionResult[];

  beforeAll(async () => {
    // The unit the example's drop-in belongs to comes with the OS image.
    mkdirSync(join(root, 'usr/lib/systemd/system'), { recursive: true });
    require('node:fs').writeFileSync(join(root, 'usr/lib/systemd/system/etcd-member.service'), '[Service]\nExecStart=/usr/bin/etcd\n\n[Install]\nWantedBy=multi-user.target\n');
    first = (await apply(root, example)).results;
  });

  test('every action succeeds or is skipped for want of systemd', () => {
    expect(first.filter((r) => r.outcome === 'failed')).toEqual([]);
    expect(first.filter((r) => r.outcome === 'skipped').map((r) => r.subject)).toEqual([
      'start etcd-member.service',
      'start app.service',
      'restart locksmithd.service',
      'restart update-engine.service',
    ]);
  });

  test('files: content, mode, owner', () => {
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('node-01\n');
    const ca = lstatSync(join(root, 'etc/ssl/etcd/ca.pem'));
    expect([ca.mode & 0o777, ca.uid, ca.gid]).toEqual([0o644, 232, 232]);
    expect(readFileSync(join(root, 'etc/motd.d/fleet.conf'), 'utf8')).toBe('Welcome to the fleet.\n');
    expect(lstatSync(join(root, 'etc/motd.d')).mode & 0o777).toBe(0o755);
  });

  test('users, through useradd', () => {
    expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).toMatch(/^deploy:x:\d+:\d+:Deployment robot:\/home\/deploy:\/bin\/bash$/m);
    expect(readFileSync(join(root, 'etc/shadow'), 'utf8')).toMatch(/^deploy:\$6\$Tq3E\/PN\.SJODmF8j\$/m);
    expect(readFileSync(join(root, 'etc/group'), 'utf8')).toMatch(/^sudo:x:27:deploy$/m);
    expect(readFileSync(join(root, 'etc/group'), 'utf8')).toMatch(/^docker:x:233:core,deploy$/m);
    expect(existsSync(join(root, 'home/deploy'))).toBe(true);
  });

  test('SSH keys, the update-ssh-keys way', () => {
    const dir = join(root, 'home/core/.ssh');
    const merged = lstatSync(join(dir, 'authorized_keys'));
    expect([merged.mode & 0o777, merged.uid, merged.gid]).toEqual([0o600, 500, 500]);
    expect(lstatSync(join(dir, 'authorized_keys.d')).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(dir, 'authorized_keys.d/coreos-cloudinit'), 'utf8')).toMatch(/^ssh-ed25519 AAAA\S+ admin@example.com\n$/);
    expect(readFileSync(join(dir, 'authorized_keys'), 'utf8')).toBe(readFileSync(join(dir, 'authorized_keys.d/coreos-cloudinit'), 'utf8'));
    expect(readFileSync(join(root, 'home/deploy/.ssh/authorized_keys'), 'utf8')).toMatch(/^ssh-rsa /);
  });

  test('update.conf, the locksmithd drop-in, units and enable links', () => {
    expect(readFileSync(join(root, 'etc/coreos/update.conf'), 'utf8')).toBe('GROUP=stable\nREBOOT_STRATEGY=etcd-lock\n');
    expect(readFileSync(join(root, 'run/systemd/system/locksmithd.service.d/20-cloudinit.conf'), 'utf8')).toBe(
      '[Service]\nEnvironment="LOCKSMITHD_ENDPOINT=https://10.0.0.5:2379"\nEnvironment="LOCKSMITHD_ETCD_CAFILE=/etc/ssl/etcd/ca.pem"\n' +
        'Environment="LOCKSMITHD_GROUP=workers"\nEnvironment="REBOOT_WINDOW_START=Thu 04:00"\nEnvironment="REBOOT_WINDOW_LENGTH=1h30m"\n',
    );
    expect(readFileSync(join(root, 'etc/systemd/system/etcd-member.service.d/20-cluster.conf'), 'utf8')).toMatch(/^\[Service\]\nEnvironment="ETCD_NAME=node-01"/);
    expect(readlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants/app.service'))).toBe('/etc/systemd/system/app.service');
    expect(readlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants/etcd-member.service'))).toBe('/usr/lib/systemd/system/etcd-member.service');
  });

  test('applying again changes nothing, and says so', async () => {
    const before = snapshot(root);
    const again = await apply(root, example);
    expect(again.results.filter((r) => r.outcome === 'changed')).toEqual([]);
    expect(snapshot(root)).toEqual(before);
  });
});

describeAsRoot('dry run', () => {
  test('reports what would change and changes nothing', async () => {
    const root = makeRoot();
    const before = snapshot(root);
    const report = await apply(root, example, true);
    expect(snapshot(root)).toEqual(before);
    expect(outcomes(report.results)).toEqual(expect.arrayContaining(['changed file /etc/hostname', 'changed user deploy', 'changed ssh keys of deploy', 'changed file /etc/systemd/system/app.service']));
    expect(report.results.find((r) => r.subject === 'ssh keys of deploy')?.detail).toBe('once user deploy exists');
  });

  test('predicts the real apply: actions see what earlier ones in the run would write (a unit written then enabled, a user created then owning a file)', async () => {
    const text =
      '#cloud-config\nusers:\n  - name: app\nwrite_files:\n  - path: /srv/app.conf\n    owner: app\n    content: x\n' +
      'coreos:\n  units:\n    - name: app.service\n      enable: true\n      content: |\n        [Service]\n        ExecStart=/bin/true\n\n        [Install]\n        WantedBy=multi-user.target\n';
    const root = makeRoot();
    const before = snapshot(root);
    const dry = await apply(root, text, true);
    expect(snapshot(root)).toEqual(before);
    expect(dry.results.filter((r) => r.outcome === 'failed')).toEqual([]);
    const real = await apply(root, text);
    expect(outcomes(dry.results)).toEqual(outcomes(real.results));
    expect(outcomes(dry.results)).toContain('changed enable app.service');
    // and once applied, a dry run predicts that nothing changes
    expect((await apply(root, text, true)).results.filter((r) => r.outcome !== 'unchanged')).toEqual([]);
  });

  test('the bundled example: the dry run reports what the apply then does', async () => {
    const root = makeRoot();
    mkdirSync(join(root, 'usr/lib/systemd/system'), { recursive: true });
    writeFileSync(join(root, 'usr/lib/systemd/system/etcd-member.service'), '[Service]\nExecStart=/usr/bin/etcd\n\n[Install]\nWantedBy=multi-user.target\n');
    const dry = await apply(root, example, true);
    expect(outcomes(dry.results)).toEqual(outcomes((await apply(root, example)).results));
  });
});

describeAsRoot('sections', () => {
  test.each([
    ['shadow\'s default ranges', ''],
    ['the ranges of the root\'s login.defs', 'UID_MIN 2000\nGID_MIN 3000\nSYS_UID_MAX 400\nSYS_GID_MAX 450\n'],
  ])('the dry run predicts the ids useradd and groupadd pick, for plain and system accounts, with %s', (_, ranges) => {
    const root = makeRoot();
    writeFileSync(join(root, 'etc/login.defs'), `USERGROUPS_ENAB yes\n${ranges}`);
    // A group holding the id the first new user's own group would take first: it must take another.
    appendFileSync(join(root, 'etc/group'), `web:x:${ranges ? 3000 : 1000}:\n`);
    appendFileSync(join(root, 'etc/gshadow'), 'web:!::\n');
    const dry = new DryRunFs(root);
    const user = (name: string, system: boolean): User => ({
      ...{ origin: 'test', name, passwd: undefined, gecos: undefined, homedir: undefined, primaryGroup: undefined, shell: '/bin/sh' },
      ...{ noCreateHome: true, groups: [], noUserGroup: false, system, noLogInit: false, sshAuthorizedKeys: [] },
    });
    const group = (name: string, system: boolean): IgnitionGroup => ({ origin: 'test', name, gid: undefined, passwordHash: undefined, system, shouldExist: true });
    dry.addUser(user('app', false));
    dry.addUser(user('svc', true));
    dry.addGroup(group('team', false));
    dry.addGroup(group('daemons', true));
    const predicted = ['/etc/passwd', '/etc/group'].map((f) => dry.read(f)?.toString('utf8'));
    execFileSync(commands.useradd, ['--root', root, '--no-create-home', '--shell', '/bin/sh', 'app']);
    execFileSync(commands.useradd, ['--root', root, '--no-create-home', '--shell', '/bin/sh', '--system', 'svc']);
    execFileSync(commands.groupadd, ['--root', root, 'team']);
    execFileSync(commands.groupadd, ['--root', root, '--system', 'daemons']);
    expect(predicted).toEqual(['etc/passwd', 'etc/group'].map((f) => readFileSync(join(root, f), 'utf8')));
  });

  test('existing users get their password and groups brought up to date', async () => {
    const root = makeRoot();
    await apply(root, '#cloud-config\nusers:\n  - name: core\n    passwd: $6$abc$def\n    groups: [sudo]\n');
    expect(readFileSync(join(root, 'etc/shadow'), 'utf8')).toMatch(/^core:\$6\$abc\$def:/m);
    expect(readFileSync(join(root, 'etc/group'), 'utf8')).toMatch(/^sudo:x:27:core$/m);
  });

  test('a new user\'s home is a copy of the root\'s /etc/skel, with login.defs\' HOME_MODE; one missing (a run killed after useradd) is made', async () => {
    const root = makeRoot();
    mkdirSync(join(root, 'etc/skel'));
    writeFileSync(join(root, 'etc/skel/.bashrc'), 'PS1=x\n');
    writeFileSync(join(root, 'etc/login.defs'), '# comment\nUMASK 022\nHOME_MODE 0750\n');
    const config = '#cloud-config\nusers:\n  - name: alice\n  - name: bob\n    no_create_home: true\n';
    await apply(root, config);
    const home = lstatSync(join(root, 'home/alice'));
    expect([(home.mode & 0o7777).toString(8), home.uid, home.gid]).toEqual(['750', 1000, 100]);
    expect(readFileSync(join(root, 'home/alice/.bashrc'), 'utf8')).toBe('PS1=x\n');
    expect(lstatSync(join(root, 'home/alice/.bashrc')).uid).toBe(1000);
    expect(readdirSync(join(root, 'home')).sort()).toEqual(['alice', 'core']);
    rmSync(join(root, 'home/alice'), { recursive: true });
    const again = await apply(root, config);
    expect(again.results.find((r) => r.subject === 'user alice')?.outcome).toBe('changed');
    expect(readdirSync(join(root, 'home/alice'))).toEqual(['.bashrc']);
    expect((await apply(root, config)).results.find((r) => r.subject === 'user alice')?.outcome).toBe('unchanged');
  });

  test('a membership in /etc/group but not /etc/gshadow (a shadow tool killed between the two) is completed', async () => {
    const root = makeRoot();
    writeFileSync(join(root, 'etc/group'), readFileSync(join(root, 'etc/group'), 'utf8').replace('sudo:x:27:', 'sudo:x:27:core'));
    const report = await apply(root, '#cloud-config\nusers:\n  - name: core\n    groups: [sudo]\n');
    expect(report.results.find((r) => r.subject === 'user core')?.outcome).toBe('changed');
    expect(readFileSync(join(root, 'etc/gshadow'), 'utf8')).toMatch(/^sudo:\*::core$/m);
    expect(readFileSync(join(root, 'etc/group'), 'utf8')).toMatch(/^sudo:x:27:core$/m);
    expect((await apply(root, '#cloud-config\nusers:\n  - name: core\n    groups: [sudo]\n')).results.find((r) => r.subject === 'user core')?.outcome).toBe('unchanged');
  });

  test('update.conf keeps its other keys; reboot_strategy off masks locksmithd', async () => {
    const root = makeRoot();
    mkdirSync(join(root, 'etc/coreos'));
    require('node:fs').writeFileSync(join(root, 'etc/coreos/update.conf'), 'GROUP=beta\nSERVER=https://updates.example/v1/update/\nREBOOT_STRATEGY=reboot\n');
    await apply(root, '#cloud-config\ncoreos:\n  update:\n    reboot-strategy: off\n');
    expect(readFileSync(join(root, 'etc/coreos/update.conf'), 'utf8')).toBe('GROUP=beta\nSERVER=https://updates.example/v1/update/\nREBOOT_STRATEGY=off\n');
    expect(readlinkSync(join(root, 'run/systemd/system/locksmithd.service'))).toBe('/dev/null');
  });

  test('etcd2, fleet and flannel settings; oem release; /etc/hosts', async () => {
    const root = makeRoot();
    const { results } = await apply(
      root,
      '#cloud-config\nhostname: h1\nmanage_etc_hosts: localhost\ncoreos:\n  etcd2:\n    discovery: https://discovery.etcd.io/x\n    heartbeat_interval: 100\n    debug: true\n    proxy: off\n' +
        '  fleet:\n    metadata: region=eu\n    etcd_request_timeout: 1.5\n  flannel:\n    interface: eth1\n    etcd_prefix: /coreos.com/network\n' +
        '  oem:\n    id: rackspace\n    name: Rackspace Cloud Servers\n    version_id: 168.0.0\n    home_url: https://www.rackspace.com/\n',
    );
    expect(results.filter((r) => r.outcome === 'failed')).toEqual([]);
    expect(readFileSync(join(root, 'run/systemd/system/etcd2.service.d/20-cloudinit.conf'), 'utf8')).toBe(
      '[Service]\nEnvironment="ETCD_DEBUG=true"\nEnvironment="ETCD_DISCOVERY=https://discovery.etcd.io/x"\nEnvironment="ETCD_HEARTBEAT_INTERVAL=100"\nEnvironment="ETCD_PROXY=off"\n',
    );
    expect(readFileSync(join(root, 'run/systemd/system/fleet.service.d/20-cloudinit.conf'), 'utf8')).toBe(
      '[Service]\nEnvironment="FLEET_ETCD_REQUEST_TIMEOUT=1.5"\nEnvironment="FLEET_METADATA=region=eu"\n',
    );
    expect(readFileSync(join(root, 'run/flannel/options.env'), 'utf8')).toBe('FLANNELD_ETCD_PREFIX=/coreos.com/network\nFLANNELD_IFACE=eth1\n');
    expect(readFileSync(join(root, 'etc/oem-release'), 'utf8')).toBe('ID=rackspace\nVERSION_ID=168.0.0\nNAME="Rackspace Cloud Servers"\nHOME_URL="https://www.rackspace.com/"\n');
    expect(readFileSync(join(root, 'etc/hosts'), 'utf8')).toBe('127.0.0.1 h1 localhost\n::1 h1 localhost\n');
  });

  test('network units go to systemd-networkd\'s directory; runtime units to /run; masks link to /dev/null', async () => {
    const root = makeRoot();
    await apply(
      root,
      '#cloud-config\ncoreos:\n  units:\n    - name: 10-eth.network\n      content: "[Match]\\nName=eth0\\n"\n    - name: r.service\n      runtime: true\n      content: "[Service]\\nExecStart=/bin/true\\n"\n' +
        '    - name: m.service\n      mask: true\n',
    );
    expect(readFileSync(join(root, 'etc/systemd/network/10-eth.network'), 'utf8')).toBe('[Match]\nName=eth0\n');
    expect(existsSync(join(root, 'run/systemd/system/r.service'))).toBe(true);
    expect(readlinkSync(join(root, 'etc/systemd/system/m.service'))).toBe('/dev/null');
  });

  test('a #! script runs with the interpreter its first line names, under the root', async () => {
    const root = makeRoot();
    // A tiny root the script can run in: dash and the libraries it needs.
    for (const file of [ '/bin/dash', ...execFileSync('ldd', ['/bin/dash'], { encoding: 'utf8' }).match(/\/\S+/g)!]) {
      mkdirSync(join(root, file, '..'), { recursive: true });
      copyFileSync(file, join(root, file));
    }
    execFileSync('chmod', ['755', join(root, 'bin/dash')]);
    const { results } = await apply(root, '#!/bin/dash\necho "hello from $0"\necho done > /script-ran\n');
    expect(results).toEqual([expect.objectContaining({ subject: 'script', outcome: 'changed', detail: expect.stringMatching(/^hello from \/var\/lib\/coreos-cloudinit\/scripts\//) })]);
    expect(readFileSync(join(root, 'script-ran'), 'utf8')).toBe('done\n');
  });
});

describeAsRoot('bad input and faults', () => {
  test('user data with errors is not applied', async () => {
    const root = makeRoot();
    const before = snapshot(root);
    const report = await apply(root, '#cloud-config\nhostname: a\ncoreos:\n  update:\n    reboot-strategy: sometimes\n');
    expect(report.applied).toBe(false);
    expect(snapshot(root)).toEqual(before);
  });

  test('one failed action is reported with its cause; the independent ones still run', async () => {
    const root = makeRoot();
    const { results } = await apply(
      root,
      '#cloud-config\nusers:\n  - name: alice\n    groups: [nosuchgroup]\n  - name: bob\nwrite_files:\n  - path: /etc/a\n    owner: nobody-here\n    content: x\n  - path: /etc/b\n    content: y\n',
    );
    expect(outcomes(results)).toEqual(['failed user alice', 'changed user bob', 'failed file /etc/a', 'changed file /etc/b']);
    expect(results[0]!.detail).toMatch(/useradd failed: .*group 'nosuchgroup' does not exist/);
    expect(results[2]!.detail).toBe('owner nobody-here: no user "nobody-here" in /etc/passwd');
    expect(existsSync(join(root, 'etc/a'))).toBe(false);
  });

  test('a symlink that leads out of the root is refused; nothing is written outside', async () => {
    const root = makeRoot();
    const outside = makeRoot();
    symlinkSync(`../../../../../../../..${outside}/etc`, join(root, 'etc/escape'));
    const { results } = await apply(root, '#cloud-config\nwrite_files:\n  - path: /etc/escape/passwd\n    content: owned\n');
    expect(results[0]).toMatchObject({ outcome: 'failed', detail: '/etc/escape/passwd leads out of the root through a symlink' });
    expect(readFileSync(join(outside, 'etc/passwd'), 'utf8')).toMatch(/^root:/);
  });

  test('a path with ".." is refused for that entry only', async () => {
    const root = makeRoot();
    const { results } = await apply(root, '#cloud-config\nwrite_files:\n  - path: /etc/../../etc/x\n    content: a\n  - path: /etc/y\n    content: b\n');
    expect(outcomes(results)).toEqual(['failed file /etc/../../etc/x', 'changed file /etc/y']);
    expect(results[0]!.detail).toBe('/etc/../../etc/x has a ".." component; write the path it means');
    expect(existsSync(join(root, 'etc/x'))).toBe(false);
  });

  test('an absolute symlink is followed inside the root, as a chroot would', async () => {
    const root = makeRoot();
    mkdirSync(join(root, 'data'));
    symlinkSync('/data', join(root, 'etc/linked'));
    await apply(root, '#cloud-config\nwrite_files:\n  - path: /etc/linked/file\n    content: inside\n');
    expect(readFileSync(join(root, 'data/file'), 'utf8')).toBe('inside');
  });
});
