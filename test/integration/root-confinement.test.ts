/**
 * Nothing crosses --root: a root whose files are symlinks to host files (a hostile image) never
 * gets a host file read into it, nor a host file written; each kind of file the programs touch
 * under a root, through the built programs where users run them. And a relative --root works.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { instanceIdValue, ipAddressValue } from '../../src/datasource/metadata-values';
import { applyFetched, applyUserData } from '../../src/apply/apply';
import { readStrategy, writeStrategy } from '../../src/lock/strategy-file';
import { machineIdentity, readEngineSettings } from '../../src/update/engine-config';
import { asRoot, makeRoot } from '../support/roots';

const bins = join(__dirname, '../../bin');

beforeAll(() => {
  if (!existsSync(join(__dirname, '../../dist/coreos-cloudinit.js'))) throw new Error('dist/ is missing: run "node scripts/build.mjs" (npm test does)');
});

/** A 0600 host file outside every root, holding a secret; and a check that it is as it was. */
function hostSecret(text = 'HOST-SECRET=do-not-copy\n'): { path: string; untouched: () => void } {
  const path = join(mkdtempSync(join(tmpdir(), 'bootsmith-host-')), 'secret');
  writeFileSync(path, text, { mode: 0o600 });
  const before = statSync(path);
  return {
    path,
    untouched: () => {
      const now = lstatSync(path);
      expect(now.isFile()).toBe(true);
      expect([now.mode & 0o7777, now.ino, now.mtimeMs]).toEqual([0o600, before.ino, before.mtimeMs]);
      expect(readFileSync(path, 'utf8')).toBe(text);
    },
  };
}

/** Links `inRoot` (under root) to `target`, making its parent directories. */
function link(root: string, inRoot: string, target: string): void {
  mkdirSync(dirname(join(root, inRoot)), { recursive: true });
  symlinkSync(target, join(root, inRoot));
}

/** Every regular file under `dir`, with its content: where a secret could have been copied to. */
function allContent(dir: string): string {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((rel) => join(dir, rel))
    .filter((p) => lstatSync(p).isFile())
    .map((p) => readFileSync(p, 'utf8'))
    .join('\n');
}

function cloudinit(args: string[], cwd?: string) {
  const r = spawnSync(process.execPath, [join(bins, 'coreos-cloudinit.js'), ...args], { encoding: 'utf8', cwd, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function userData(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'bootsmith-ud-')), 'user-data');
  writeFileSync(file, text);
  return file;
}

const describeAsRoot = asRoot ? describe : describe.skip;
if (!asRoot) test.skip('these tests need root (chown, useradd --root); CI runs them', () => undefined);

describeAsRoot('the issue\'s repros, through the real coreos-cloudinit', () => {
  test('etc/coreos/update.conf linked to a 0600 host secret: the secret is not copied into the image', () => {
    const root = makeRoot();
    const secret = hostSecret();
    link(root, 'etc/coreos/update.conf', secret.path);
    const r = cloudinit(['--from-file', userData('#cloud-config\ncoreos:\n  update:\n    group: stable\n'), '--root', root]);
    expect(r).toMatchObject({ status: 0 });
    expect(r.stdout).toMatch(/^changed +file \/etc\/coreos\/update.conf/m);
    expect(allContent(root)).not.toContain('do-not-copy');
    secret.untouched();
    // Written where the link leads inside the root, from nothing: no line of the host file.
    expect(readFileSync(join(root, secret.path), 'utf8')).toBe('GROUP=stable\n');
    expect(readlinkSync(join(root, 'etc/coreos/update.conf'))).toBe(secret.path);
    expect(lstatSync(join(root, secret.path)).mode & 0o777).toBe(0o644);
  });

  test('home/core/.ssh/authorized_keys linked to /etc/shadow: the host\'s shadow is not copied into the image', () => {
    const root = makeRoot();
    const hostShadow = readFileSync('/etc/shadow', 'utf8');
    const before = statSync('/etc/shadow');
    const imageShadow = readFileSync(join(root, 'etc/shadow'), 'utf8');
    link(root, 'home/core/.ssh/authorized_keys', '/etc/shadow');
    const r = cloudinit(['--from-file', userData('#cloud-config\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample admin@example.com\n'), '--root', root]);
    expect(r).toMatchObject({ status: 0 });
    const keys = join(root, 'home/core/.ssh/authorized_keys.d');
    // The keys written by hand that update-ssh-keys keeps are the image's /etc/shadow (where the link leads inside it), not the host's.
    expect(readFileSync(join(keys, 'old_authorized_keys'), 'utf8')).toBe(imageShadow);
    expect(allContent(root)).not.toContain(hostShadow.split('\n')[0]);
    expect(readFileSync('/etc/shadow', 'utf8')).toBe(hostShadow);
    expect(statSync('/etc/shadow').mtimeMs).toBe(before.mtimeMs);
  });
});

describeAsRoot('each kind of file under the root stays inside it', () => {
  const apply = (root: string, text: string) => applyUserData(Buffer.from(text), { root });

  test('/etc/environment (merged with the metadata\'s addresses) linked to a host secret', async () => {
    const root = makeRoot();
    const secret = hostSecret();
    link(root, 'etc/environment', secret.path);
    const { results } = await applyFetched({ source: 'ec2', userData: undefined, metadata: { instanceId: instanceIdValue('test', 'instance-id', 'i-1'), privateIpv4: ipAddressValue('test', 'local-ipv4', '10.0.0.5', 4), sshPublicKeys: [] } }, { root });
    expect(results.find((r) => r.subject === 'file /etc/environment')).toMatchObject({ outcome: 'changed' });
    expect(readFileSync(join(root, secret.path), 'utf8')).toBe('COREOS_PRIVATE_IPV4=10.0.0.5\n');
    expect(allContent(root)).not.toContain('do-not-copy');
    secret.untouched();
  });

  test('/etc/hosts: a dangling absolute link is written at its in-root target; a link to a host file leaves it alone', async () => {
    const root = makeRoot();
    const nowhere = `/nonexistent-${basename(root)}`;
    link(root, 'etc/hosts', nowhere);
    await apply(root, '#cloud-config\nhostname: h1\nmanage_etc_hosts: localhost\n');
    expect(readFileSync(join(root, nowhere), 'utf8')).toBe('127.0.0.1 h1 localhost\n::1 h1 localhost\n');
    expect(existsSync(nowhere)).toBe(false);

    const other = makeRoot();
    const secret = hostSecret();
    link(other, 'etc/hosts', secret.path);
    await apply(other, '#cloud-config\nhostname: h1\nmanage_etc_hosts: localhost\n');
    expect(readFileSync(join(other, secret.path), 'utf8')).toBe('127.0.0.1 h1 localhost\n::1 h1 localhost\n');
    secret.untouched();
  });

  test('authorized_keys.d: a key file linked to a host secret is not merged into authorized_keys', async () => {
    const root = makeRoot();
    const secret = hostSecret();
    link(root, 'home/core/.ssh/authorized_keys.d/planted', secret.path);
    const { results } = await apply(root, '#cloud-config\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample admin@example.com\n');
    expect(results.filter((r) => r.outcome === 'failed')).toEqual([]);
    expect(readFileSync(join(root, 'home/core/.ssh/authorized_keys'), 'utf8')).toBe('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample admin@example.com\n');
    expect(allContent(root)).not.toContain('do-not-copy');
    secret.untouched();
  });

  test('passwd and group read for an owner come from the root: a link to a host file with other users finds none of them', async () => {
    const root = makeRoot();
    const passwd = hostSecret('intruder:x:4242:4242::/:/bin/sh\n');
    const group = hostSecret('intruders:x:4343:\n');
    for (const f of ['etc/passwd', 'etc/group']) require('node:fs').rmSync(join(root, f));
    link(root, 'etc/passwd', passwd.path);
    link(root, 'etc/group', group.path);
    // Inside the root, where the links lead: other users.
    mkdirSync(join(root, dirname(passwd.path)), { recursive: true });
    writeFileSync(join(root, passwd.path), 'imageuser:x:77:77::/:/bin/sh\n');
    const { results } = await apply(
      root,
      '#cloud-config\nwrite_files:\n  - path: /etc/a\n    owner: intruder\n    content: a\n  - path: /etc/b\n    owner: imageuser\n    content: b\n  - path: /etc/c\n    owner: ":intruders"\n    content: c\n',
    );
    expect(results.map((r) => `${r.outcome} ${r.subject} ${r.detail ?? ''}`.trim())).toEqual([
      'failed file /etc/a owner intruder: no user "intruder" in /etc/passwd',
      'changed file /etc/b',
      'failed file /etc/c owner :intruders: no group "intruders" in /etc/group',
    ]);
    expect([statSync(join(root, 'etc/b')).uid, statSync(join(root, 'etc/b')).gid]).toEqual([77, 0]);
    passwd.untouched();
    group.untouched();
  });

  test('unit files and drop-ins linked to host files are written at their in-root targets', async () => {
    const root = makeRoot();
    const unit = hostSecret();
    const dropIn = hostSecret();
    link(root, 'etc/systemd/system/a.service', unit.path);
    link(root, 'etc/systemd/system/b.service.d/10-x.conf', dropIn.path);
    const { results } = await apply(
      root,
      '#cloud-config\ncoreos:\n  units:\n    - name: a.service\n      content: "[Service]\\nExecStart=/bin/true\\n"\n' +
        '    - name: b.service\n      drop_ins:\n        - name: 10-x.conf\n          content: "[Service]\\nNice=5\\n"\n',
    );
    expect(results.filter((r) => r.outcome === 'failed')).toEqual([]);
    expect(readFileSync(join(root, unit.path), 'utf8')).toBe('[Service]\nExecStart=/bin/true\n');
    expect(readFileSync(join(root, dropIn.path), 'utf8')).toBe('[Service]\nNice=5\n');
    unit.untouched();
    dropIn.untouched();
  });

  test('enabling offline reads the unit file inside the root: a link to a host unit file enables nothing from it', async () => {
    const root = makeRoot();
    const hostUnit = hostSecret('[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=from-the-host.target\n');
    link(root, 'usr/lib/systemd/system/c.service', hostUnit.path);
    const first = await apply(root, '#cloud-config\ncoreos:\n  units:\n    - name: c.service\n      enable: true\n');
    expect(first.results.find((r) => r.subject === 'enable c.service')).toMatchObject({ outcome: 'failed', detail: expect.stringMatching(/^no unit file for c.service/) });
    expect(existsSync(join(root, 'etc/systemd/system/from-the-host.target.wants'))).toBe(false);
    // With the unit where the link leads inside the root, that one is enabled.
    mkdirSync(join(root, dirname(hostUnit.path)), { recursive: true });
    writeFileSync(join(root, hostUnit.path), '[Install]\nWantedBy=multi-user.target\n');
    await apply(root, '#cloud-config\ncoreos:\n  units:\n    - name: c.service\n      enable: true\n');
    expect(readlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants/c.service'))).toBe('/usr/lib/systemd/system/c.service');
    hostUnit.untouched();
  });

  test('offline links act on the link: an enable or mask link pointing at a host file is replaced, the file untouched', async () => {
    const root = makeRoot();
    const wants = hostSecret();
    const masked = hostSecret();
    mkdirSync(join(root, 'usr/lib/systemd/system'), { recursive: true });
    writeFileSync(join(root, 'usr/lib/systemd/system/d.service'), '[Install]\nWantedBy=multi-user.target\n');
    link(root, 'etc/systemd/system/multi-user.target.wants/d.service', wants.path);
    link(root, 'etc/systemd/system/m.service', masked.path);
    const { results } = await apply(root, '#cloud-config\ncoreos:\n  units:\n    - name: d.service\n      enable: true\n    - name: m.service\n      mask: true\n');
    expect(results.filter((r) => r.outcome === 'failed')).toEqual([]);
    expect(readlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants/d.service'))).toBe('/usr/lib/systemd/system/d.service');
    expect(readlinkSync(join(root, 'etc/systemd/system/m.service'))).toBe('/dev/null');
    wants.untouched();
    masked.untouched();
    // Unmasking (a runtime unit without content) removes the link only: the host's /dev/null stays a device.
    link(root, 'run/systemd/system/r.service', '/dev/null');
    await apply(root, '#cloud-config\ncoreos:\n  units:\n    - name: r.service\n      runtime: true\n');
    expect(readdirSync(join(root, 'run/systemd/system'))).not.toContain('r.service');
    expect(lstatSync('/dev/null').isCharacterDevice()).toBe(true);
  });
});

describe('the daemons read update.conf and the release inside the root', () => {
  test('locksmithctl\'s strategy file: a link to a host update.conf is neither read nor written', () => {
    const root = makeRoot();
    const secret = hostSecret('REBOOT_STRATEGY=off\nLOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h\n');
    link(root, 'etc/coreos/update.conf', secret.path);
    expect(readStrategy(root)).toEqual({ strategy: 'reboot', window: null });
    expect(writeStrategy(root, 'etcd-lock', {})).toBe(true);
    expect(readFileSync(join(root, secret.path), 'utf8')).toBe('REBOOT_STRATEGY=etcd-lock\n');
    secret.untouched();
  });

  test('update_engine\'s settings and identity: release, update.conf, oem-release and machine-id linked to host files are not read', () => {
    const root = makeRoot();
    const release = hostSecret('COREOS_RELEASE_VERSION=6666.0.0\n');
    const conf = hostSecret('GROUP=host-secret-channel\n');
    const machineId = hostSecret('0123456789abcdef0123456789abcdef\n');
    link(root, 'usr/share/coreos/release', release.path);
    expect(() => readEngineSettings(root)).toThrow(/no COREOS_RELEASE_VERSION/);
    mkdirSync(join(root, dirname(release.path)), { recursive: true });
    writeFileSync(join(root, release.path), 'COREOS_RELEASE_VERSION=1.0.0\n');
    link(root, 'etc/coreos/update.conf', conf.path);
    link(root, 'etc/oem-release', release.path);
    const settings = readEngineSettings(root);
    expect([settings.version, settings.group]).toEqual(['1.0.0', 'stable']);
    link(root, 'etc/machine-id', machineId.path);
    const prefsDir = mkdtempSync(join(tmpdir(), 'bootsmith-prefs-'));
    expect(() => machineIdentity(settings, { root, prefsDir })).toThrow(/does not hold a machine id/);
    for (const s of [release, conf, machineId]) s.untouched();
  });

  test('locksmithd: a link from update.conf to a host file does not make its settings', () => {
    const root = makeRoot();
    const secret = hostSecret('REBOOT_STRATEGY=from-the-host\n');
    link(root, 'etc/coreos/update.conf', secret.path);
    const idFile = join(root, 'machine-id');
    writeFileSync(idFile, 'a1b2c3d4e5f60718293a4b5c6d7e8f90\n');
    // No bus at that address: locksmithd stops there, after reading its settings.
    const r = spawnSync(process.execPath, [join(bins, 'locksmithd.js'), '--root', root, '--bus', `unix:path=${join(root, 'no-bus')}`, '--machine-id-file', idFile], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '' },
      timeout: 60_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).not.toContain('from-the-host');
    expect(r.stderr).not.toMatch(/invalid locksmithd configuration/);
    secret.untouched();
  });
});

describeAsRoot('a relative --root', () => {
  test('works for users (shadow\'s useradd gets it absolute), keys and files', () => {
    const root = makeRoot();
    const r = cloudinit(
      ['--from-file', userData('#cloud-config\nusers:\n  - name: alice\n    groups: [sudo]\n    ssh_authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice@example.com"]\nwrite_files:\n  - path: /etc/motd\n    owner: alice\n    content: hi\n'), '--root', basename(root)],
      dirname(root),
    );
    expect(r).toMatchObject({ status: 0, stderr: '', stdout: expect.not.stringMatching(/failed /) });
    expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).toMatch(/^alice:x:\d+:\d+::\/home\/alice:/m);
    expect(readFileSync(join(root, 'etc/group'), 'utf8')).toMatch(/^sudo:x:27:alice$/m);
    expect(readFileSync(join(root, 'home/alice/.ssh/authorized_keys'), 'utf8')).toBe('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice@example.com\n');
    const alice = statSync(join(root, 'home/alice'));
    expect(statSync(join(root, 'etc/motd')).uid).toBe(alice.uid);
  });

  test('an empty --root is a usage error', () => {
    const r = cloudinit(['--from-file', userData('#cloud-config\n'), '--root', '']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--root.*want a directory/);
  });
});
