/**
 * Applying Ignition, the pure parts: a validated config into typed settings (spec 3.x and 2.x),
 * data URLs, hashes, resolving inline resources within the size budget, and the plan's order.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { decodeDataUrl, toIgnitionConfig } from '../../src/cloudconfig/ignition/config';
import type { IgnitionConfig } from '../../src/cloudconfig/ignition/config';
import { validateUserData } from '../../src/cloudconfig/validate';
import { defaultFetchOptions, hashMismatch, planIgnition, resolveResources } from '../../src/apply/ignition';
import type { Action } from '../../src/apply/plan';
import { unitDirs } from '../../src/system/paths';

const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6 admin@example.com';

/** A config object validated (no errors allowed) and turned into settings. */
function configOf(doc: object): IgnitionConfig {
  const report = validateUserData(Buffer.from(JSON.stringify(doc, null, 2)));
  expect(report.kind).toBe('ignition');
  expect(report.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const version = report.ignitionVersion!;
  const [major, minor] = version.split('.').map(Number);
  return toIgnitionConfig(report.root!, { version, major: major!, minor: minor! });
}

function describeAction(a: Action): string {
  switch (a.kind) {
    case 'file':
      return `file ${a.path} ${a.mode.toString(8)}${a.overwrite === false ? ' keep-existing' : ''}`;
    case 'keep-file':
      return `keep-file ${a.path}${a.append.length ? ` +${a.append.length}` : ''}`;
    case 'directory':
    case 'link':
      return `${a.kind} ${a.path}`;
    case 'mask':
      return `${a.mask ? 'mask' : 'unmask'} ${a.path}`;
    case 'enable':
    case 'disable':
      return `${a.kind} ${a.unit}`;
    case 'user':
      return `user ${a.user.name}`;
    case 'group':
      return `group ${a.group.name}`;
    case 'ssh-keys':
      return `ssh-keys ${a.user} ${a.keyName}`;
    case 'not-applied':
      return `${a.failed ? 'failed' : 'not applied'} ${a.what} ${a.target}`;
    default:
      return a.kind;
  }
}

async function planOf(doc: object): Promise<string[]> {
  const config = configOf(doc);
  return planIgnition(config, await resolveResources(config), { unitDirs }).map(describeAction);
}

test('data URLs: plain with percent escapes (bytes, not only UTF-8), base64, and a media type', () => {
  expect(decodeDataUrl('data:,hello%20world%0A')).toEqual(Buffer.from('hello world\n'));
  expect(decodeDataUrl('data:,%FF%00')).toEqual(Buffer.from([0xff, 0x00]));
  expect(decodeDataUrl('data:text/plain;charset=utf-8;base64,aMOpbGxv')).toEqual(Buffer.from('héllo'));
  expect(decodeDataUrl('data:,caf\u00e9')).toEqual(Buffer.from('café'));
  expect(decodeDataUrl('data:,')).toEqual(Buffer.alloc(0));
  expect(typeof decodeDataUrl('data:;base64,not base64')).toBe('string');
});

test('verification hashes: sha512 and sha256 of the contents, in either case of hex', () => {
  const data = Buffer.from('contents\n');
  const sha512 = createHash('sha512').update(data).digest('hex');
  const sha256 = createHash('sha256').update(data).digest('hex');
  expect(hashMismatch(data, `sha512-${sha512}`)).toBeUndefined();
  expect(hashMismatch(data, `sha256-${sha256.toUpperCase()}`)).toBeUndefined();
  expect(hashMismatch(Buffer.from('other\n'), `sha256-${sha256}`)).toMatch(/do not match the verification hash/);
});

test('spec 3.x: Ignition\'s defaults (overwrite false, mode and owner unset) and every section', () => {
  const config = configOf({
    ignition: { version: '3.4.0' },
    passwd: {
      groups: [{ name: 'builders', gid: 4000 }],
      users: [{ name: 'deploy', uid: 1500, gecos: 'Deploy', homeDir: '/srv/deploy', groups: ['builders'], sshAuthorizedKeys: [key], shouldExist: true }, { name: 'gone', shouldExist: false }],
    },
    storage: {
      files: [
        { path: '/etc/a', contents: { source: 'data:,a' }, user: { name: 'deploy' }, group: { id: 4000 } },
        { path: '/etc/b', mode: 0o600, overwrite: true, contents: { source: 'https://example.com/b', httpHeaders: [{ name: 'X-Token', value: 't' }] } },
        { path: '/etc/c', append: [{ source: 'data:,more' }] },
      ],
      directories: [{ path: '/srv/x', mode: 0o750 }],
      links: [{ path: '/etc/l', target: '/etc/a', hard: true }],
    },
    systemd: { units: [{ name: 'a.service', enabled: false, mask: false, dropins: [{ name: '10-x.conf', contents: '[Service]\nNice=1\n' }] }] },
  });
  expect(config.groups).toEqual([{ origin: 'passwd.groups[0]', name: 'builders', gid: 4000, passwordHash: undefined, system: false, shouldExist: true }]);
  expect(config.users.map((u) => [u.name, u.uid, u.homedir, u.groups, u.sshAuthorizedKeys.length, u.shouldExist])).toEqual([
    ['deploy', 1500, '/srv/deploy', ['builders'], 1, true],
    ['gone', undefined, undefined, [], 0, false],
  ]);
  const [a, b, c] = config.files;
  expect(a).toMatchObject({ path: '/etc/a', overwrite: false, mode: undefined, owner: { user: { name: 'deploy' }, group: { id: 4000 } }, append: [] });
  expect(a!.contents!.source).toEqual({ kind: 'inline', data: Buffer.from('a') });
  expect(b).toMatchObject({ overwrite: true, mode: 0o600, owner: { user: undefined, group: undefined } });
  expect(b!.contents).toMatchObject({ source: { kind: 'url', url: 'https://example.com/b', scheme: 'https' }, headers: [['X-Token', 't']] });
  expect(c!.contents).toBeUndefined();
  expect(c!.append.map((r) => r.origin)).toEqual(['storage.files[2].append[0]']);
  expect(config.directories).toEqual([{ origin: 'storage.directories[0]', path: '/srv/x', overwrite: false, mode: 0o750, owner: { user: undefined, group: undefined } }]);
  expect(config.links).toMatchObject([{ path: '/etc/l', target: '/etc/a', hard: true, overwrite: false }]);
  expect(config.units).toEqual([
    { origin: 'systemd.units[0]', name: 'a.service', contents: undefined, enabled: false, mask: false, dropIns: [{ name: '10-x.conf', contents: '[Service]\nNice=1\n' }], network: false },
  ]);
  expect(config.notApplied).toEqual([]);
});

test('spec 2.x maps to the same model: files replace by default, `append: true`, filesystem "root" only, create, enable, networkd', () => {
  const config = configOf({
    ignition: { version: '2.2.0' },
    storage: {
      filesystems: [{ name: 'data', mount: { device: '/dev/vdb', format: 'ext4' } }],
      files: [
        { filesystem: 'root', path: '/etc/a', contents: { source: 'data:,a' }, user: { id: 500 }, mode: 0o640 },
        { filesystem: 'root', path: '/etc/b', append: true, contents: { source: 'data:,b' } },
        { filesystem: 'root', path: '/etc/empty' },
        { filesystem: 'data', path: '/x' },
      ],
    },
    passwd: { users: [{ name: 'old', create: { uid: 2000, shell: '/bin/sh' } }] },
    systemd: { units: [{ name: 'b.service', enable: true, contents: '[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n' }] },
    networkd: { units: [{ name: '10-eth.network', contents: '[Match]\nName=eth0\n' }] },
  });
  expect(config.files.map((f) => [f.path, f.overwrite, f.contents?.source, f.append.length, f.mode, f.owner.user])).toEqual([
    ['/etc/a', true, { kind: 'inline', data: Buffer.from('a') }, 0, 0o640, { id: 500 }],
    ['/etc/b', false, undefined, 1, undefined, undefined],
    ['/etc/empty', true, { kind: 'inline', data: Buffer.alloc(0) }, 0, undefined, undefined],
  ]);
  expect(config.notApplied.map((n) => `${n.what} ${n.target} [${n.origin}]`)).toEqual(['filesystem /dev/vdb [storage.filesystems[0]]', 'file /x [storage.files[3]]']);
  expect(config.users.map((u) => [u.name, u.uid, u.shell])).toEqual([['old', 2000, '/bin/sh']]);
  expect(config.units.map((u) => [u.name, u.enabled, u.network])).toEqual([
    ['b.service', true, false],
    ['10-eth.network', undefined, true],
  ]);
});

test('the plan, in Ignition\'s order: what is not applied, groups, users, keys, nodes parents first, units, then enabling', async () => {
  expect(
    await planOf({
      ignition: { version: '3.3.0', config: { merge: [{ source: 'https://example.com/more.ign' }] } },
      kernelArguments: { shouldExist: ['quiet'] },
      passwd: { groups: [{ name: 'g' }], users: [{ name: 'u', sshAuthorizedKeys: [key] }, { name: 'v', shouldExist: false }] },
      storage: {
        disks: [{ device: '/dev/vdb', partitions: [{ label: 'data', number: 1 }] }],
        raid: [{ name: 'md0', level: 'raid1', devices: ['/dev/vdc', '/dev/vdd'] }],
        luks: [{ name: 'secret', device: '/dev/vde' }],
        filesystems: [{ device: '/dev/disk/by-partlabel/data', format: 'ext4', path: '/var/data' }],
        files: [{ path: '/srv/app/deep/f', contents: { source: 'data:,x' } }, { path: '/etc/touched' }, { path: '/etc/tftp', contents: { source: 'tftp://10.0.0.1/f' } }],
        directories: [{ path: '/srv/app' }, { path: '/srv/app/deep' }],
        links: [{ path: '/srv/l', target: '/srv/app/deep/f' }],
      },
      systemd: {
        units: [
          { name: 'a.service', enabled: true, contents: '[Service]\nExecStart=/bin/true\n\n[Install]\nWantedBy=multi-user.target\n', dropins: [{ name: '10-a.conf', contents: '[Service]\nNice=1\n' }, { name: '20-empty.conf' }] },
          { name: 'b.service', mask: true, enabled: true },
          { name: 'c.service', mask: false, contents: '[Service]\nExecStart=/bin/true\n' },
          { name: 'd.service', enabled: false },
        ],
      },
    }),
  ).toEqual([
    'not applied config https://example.com/more.ign',
    'not applied kernel-argument quiet',
    'not applied disk /dev/vdb',
    'not applied partition /dev/vdb data',
    'not applied raid md0',
    'not applied luks secret',
    'not applied filesystem /dev/disk/by-partlabel/data',
    'group g',
    'user u',
    'not applied user v',
    'ssh-keys u ignition',
    'directory /srv/app',
    'keep-file /etc/touched',
    'not applied file /etc/tftp',
    'link /srv/l',
    'directory /srv/app/deep',
    'file /srv/app/deep/f 644 keep-existing',
    'file /etc/systemd/system/a.service 644',
    'file /etc/systemd/system/a.service.d/10-a.conf 644',
    'mask /etc/systemd/system/b.service',
    'unmask /etc/systemd/system/c.service',
    'file /etc/systemd/system/c.service 644',
    'enable a.service',
    'disable d.service',
  ]);
});

test('resources: gzip unpacked before the hash is checked; a mismatch or too much in all is a failure, not applied', async () => {
  const body = Buffer.from('line\n'.repeat(1000));
  const gz = `data:;base64,${gzipSync(body).toString('base64')}`;
  const good = `sha512-${createHash('sha512').update(body).digest('hex')}`;
  const bad = `sha256-${'0'.repeat(64)}`;
  const config = configOf({
    ignition: { version: '3.4.0' },
    storage: {
      files: [
        { path: '/a', contents: { source: gz, compression: 'gzip', verification: { hash: good } } },
        { path: '/b', contents: { source: 'data:,x', verification: { hash: bad } } },
      ],
    },
  });
  const resolved = [...(await resolveResources(config)).values()];
  expect(resolved[0]).toEqual({ kind: 'ok', data: body });
  expect(resolved[1]).toMatchObject({ kind: 'failed', why: expect.stringMatching(/do not match/) });
  const plan = planIgnition(config, await resolveResources(config), { unitDirs }).map(describeAction);
  expect(plan).toEqual(['file /a 644 keep-existing', 'failed file /b']);
  // A budget smaller than the unpacked contents: the gzip is cut off, not unpacked whole.
  const small = [...(await resolveResources(config, { ...defaultFetchOptions, maxTotal: 100 })).values()];
  expect(small[0]).toMatchObject({ kind: 'failed', why: expect.stringMatching(/more than the 100 bytes/) });
});

test('one deadline bounds all the fetches of a config: past it, a remote source is not fetched', async () => {
  const config = configOf({ ignition: { version: '3.4.0' }, storage: { files: [{ path: '/a', contents: { source: 'http://127.0.0.1:9/never-asked' } }, { path: '/b', contents: { source: 'data:,b' } }] } });
  const resolved = [...(await resolveResources(config, { ...defaultFetchOptions, totalMs: 0 })).values()];
  expect(resolved).toEqual([
    { kind: 'failed', why: 'not fetched: fetching the config\'s sources took more than 0 ms in all' },
    { kind: 'ok', data: Buffer.from('b') },
  ]);
});
