/**
 * Applying Ignition configs into temporary roots, offline (no systemd), with the real shadow
 * tools: files, directories, links, users, groups, SSH keys, units, drop-ins, enable links and
 * masks; overwrite rules, dry runs and re-runs; remote sources from a loopback server, and the
 * failures that leave no file behind.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { applyFetched, applyUserData } from '../../src/apply/apply';
import type { ActionResult } from '../../src/apply/execute';
import type { RetryPolicy } from '../../src/datasource/defaults';
import type { Hostname } from '../../src/cloudconfig/values';
import type { InstanceId, SshPublicKey } from '../../src/datasource/types';
import { asRoot, makeRoot, snapshot } from '../support/roots';

const adminKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBq7E68devjRKAB2lwqxl16pR8Y+7vOt6k2VMYV4L7l6 admin@example.com';
const hash = '$6$Tq3E/PN.SJODmF8j$WN4p8cBtqjPmPi9A4D5zkgNjKrt2g67l1WNqpZcyggVBAYcFbaeMf7oSYy1E6.G453sGOSk2LVJ6P9r/AkEyp0';
const appUnit = '[Unit]\nDescription=App\n\n[Service]\nExecStart=/usr/bin/app\n\n[Install]\nWantedBy=multi-user.target\n';
const oldUnit = '[Service]\nExecStart=/usr/bin/old\n\n[Install]\nWantedBy=multi-user.target\n';
const compressed = Buffer.from('setting = 1\n'.repeat(50));

/** Quick to give up: one try, a short timeout (the failures tested here are final anyway). */
const policy: RetryPolicy = { timeoutMs: 2000, attempts: 1, backoffMs: 10, maxBackoffMs: 10, deadlineMs: 5000 };

async function apply(root: string, doc: object | string, dryRun = false) {
  return applyUserData(Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2)), { root, dryRun, http: policy });
}

function outcomes(results: ActionResult[]): string[] {
  return results.map((r) => `${r.outcome} ${r.subject}`);
}

function sha512(data: Buffer | string): string {
  return `sha512-${createHash('sha512').update(data).digest('hex')}`;
}

function dataUrl(data: Buffer): string {
  return `data:;base64,${data.toString('base64')}`;
}

/** A root whose OS image ships old.service, enabled. */
function imageRoot(): string {
  const root = makeRoot();
  mkdirSync(join(root, 'usr/lib/systemd/system'), { recursive: true });
  writeFileSync(join(root, 'usr/lib/systemd/system/old.service'), oldUnit);
  mkdirSync(join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
  symlinkSync('/usr/lib/systemd/system/old.service', join(root, 'etc/systemd/system/multi-user.target.wants/old.service'));
  return root;
}

const config = {
  ignition: { version: '3.4.0' },
  passwd: {
    groups: [{ name: 'builders', gid: 4000 }],
    users: [
      { name: 'core', sshAuthorizedKeys: [adminKey] },
      { name: 'deploy', uid: 1500, gecos: 'Deployment robot', homeDir: '/home/deploy', groups: ['builders', 'sudo'], shell: '/bin/bash', passwordHash: hash, sshAuthorizedKeys: [adminKey] },
      { name: 'svc', system: true, noCreateHome: true, noUserGroup: true, primaryGroup: 'builders' },
    ],
  },
  storage: {
    disks: [{ device: '/dev/vdb', partitions: [{ label: 'data', number: 1 }] }],
    filesystems: [{ device: '/dev/disk/by-partlabel/data', format: 'ext4', path: '/var/lib/data' }],
    directories: [{ path: '/srv/app', mode: 0o750, user: { name: 'deploy' }, group: { name: 'builders' } }],
    files: [
      { path: '/srv/app/config.toml', mode: 0o640, user: { name: 'deploy' }, group: { id: 4000 }, contents: { source: 'data:,listen%20%3D%20%228080%22%0A' } },
      { path: '/etc/app/compressed.conf', contents: { compression: 'gzip', source: dataUrl(gzipSync(compressed)), verification: { hash: sha512(compressed) } } },
      { path: '/var/lib/app/marker' },
      { path: '/etc/hosts.extra', append: [{ source: 'data:,10.0.0.2%20db%0A' }] },
      { path: '/usr/local/bin/setuid-tool', mode: 0o4755, contents: { source: 'data:,%23!%2Fbin%2Fsh%0A' } },
    ],
    links: [
      { path: '/etc/app/current', target: '/srv/app/config.toml' },
      { path: '/etc/app/relative', target: '../hosts.extra', user: { id: 1500 }, group: { id: 4000 } },
      { path: '/srv/app/config.hard', target: '/srv/app/config.toml', hard: true },
    ],
  },
  systemd: {
    units: [
      { name: 'app.service', enabled: true, contents: appUnit, dropins: [{ name: '10-env.conf', contents: '[Service]\nEnvironment=MODE=prod\n' }] },
      { name: 'docker.service', dropins: [{ name: '20-opts.conf', contents: '[Service]\nEnvironment=DOCKER_OPTS=--debug\n' }] },
      { name: 'update-engine.service', mask: true },
      { name: 'old.service', enabled: false },
    ],
  },
};

const describeAsRoot = asRoot ? describe : describe.skip;
if (!asRoot) test.skip('apply tests need root (chown, useradd --root); CI runs them', () => undefined);

describeAsRoot('a spec 3.4 config, offline', () => {
  const root = imageRoot();
  let first: ActionResult[];

  beforeAll(async () => {
    const report = await apply(root, config);
    expect(report.validation.diagnostics).toEqual([]);
    first = report.results;
  });

  test('nothing fails; the storage devices are reported as not applied, a line each', () => {
    expect(first.filter((r) => r.outcome === 'failed')).toEqual([]);
    expect(first.filter((r) => r.outcome === 'skipped').map((r) => `${r.subject} [${r.origin}]: ${r.detail}`)).toEqual([
      'disk /dev/vdb [storage.disks[0]]: not applied: storage devices are set up by Ignition in the initramfs, before the root is mounted',
      'partition /dev/vdb data [storage.disks[0].partitions[0]]: not applied: storage devices are set up by Ignition in the initramfs, before the root is mounted',
      'filesystem /dev/disk/by-partlabel/data [storage.filesystems[0]]: not applied: storage devices are set up by Ignition in the initramfs, before the root is mounted',
    ]);
  });

  test('groups and users through groupadd and useradd: ids, GECOS, home, shell, password, groups, system users', () => {
    const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
    expect(readFileSync(join(root, 'etc/group'), 'utf8')).toMatch(/^builders:x:4000:deploy$/m);
    expect(readFileSync(join(root, 'etc/group'), 'utf8')).toMatch(/^sudo:x:27:deploy$/m);
    expect(passwd).toMatch(/^deploy:x:1500:\d+:Deployment robot:\/home\/deploy:\/bin\/bash$/m);
    expect(readFileSync(join(root, 'etc/shadow'), 'utf8')).toContain(`deploy:${hash}:`);
    expect(lstatSync(join(root, 'home/deploy')).uid).toBe(1500);
    const svc = /^svc:x:(\d+):(\d+):/m.exec(passwd)!;
    expect(Number(svc[1])).toBeLessThan(1000);
    expect(Number(svc[2])).toBe(4000);
    expect(existsSync(join(root, 'home/svc'))).toBe(false);
  });

  test('SSH keys under authorized_keys.d/ignition, merged into authorized_keys', () => {
    for (const [home, uid] of [['home/core', 500], ['home/deploy', 1500]] as const) {
      const keys = lstatSync(join(root, home, '.ssh/authorized_keys.d/ignition'));
      expect([keys.mode & 0o777, keys.uid]).toEqual([0o600, uid]);
      expect(readFileSync(join(root, home, '.ssh/authorized_keys'), 'utf8')).toBe(`${adminKey}\n`);
    }
  });

  test('directories and files: contents (data URLs, gzip checked against its hash), modes, owners by name and id', () => {
    const dir = lstatSync(join(root, 'srv/app'));
    expect([dir.isDirectory(), dir.mode & 0o7777, dir.uid, dir.gid]).toEqual([true, 0o750, 1500, 4000]);
    const conf = lstatSync(join(root, 'srv/app/config.toml'));
    expect([conf.mode & 0o7777, conf.uid, conf.gid]).toEqual([0o640, 1500, 4000]);
    expect(readFileSync(join(root, 'srv/app/config.toml'), 'utf8')).toBe('listen = "8080"\n');
    expect(readFileSync(join(root, 'etc/app/compressed.conf'))).toEqual(compressed);
    expect(lstatSync(join(root, 'etc/app/compressed.conf')).mode & 0o7777).toBe(0o644);
    expect(readFileSync(join(root, 'var/lib/app/marker'), 'utf8')).toBe('');
    expect(readFileSync(join(root, 'etc/hosts.extra'), 'utf8')).toBe('10.0.0.2 db\n');
    expect(lstatSync(join(root, 'usr/local/bin/setuid-tool')).mode & 0o7777).toBe(0o4755);
  });

  test('links: symbolic (absolute and relative, owned) and hard', () => {
    expect(readlinkSync(join(root, 'etc/app/current'))).toBe('/srv/app/config.toml');
    expect(readlinkSync(join(root, 'etc/app/relative'))).toBe('../hosts.extra');
    const owned = lstatSync(join(root, 'etc/app/relative'));
    expect([owned.uid, owned.gid]).toEqual([1500, 4000]);
    expect(lstatSync(join(root, 'srv/app/config.hard')).ino).toBe(lstatSync(join(root, 'srv/app/config.toml')).ino);
  });

  test('units: contents, drop-ins, enable links from [Install], masks, and a shipped unit disabled', () => {
    const units = join(root, 'etc/systemd/system');
    expect(readFileSync(join(units, 'app.service'), 'utf8')).toBe(appUnit);
    expect(readFileSync(join(units, 'app.service.d/10-env.conf'), 'utf8')).toBe('[Service]\nEnvironment=MODE=prod\n');
    expect(readFileSync(join(units, 'docker.service.d/20-opts.conf'), 'utf8')).toBe('[Service]\nEnvironment=DOCKER_OPTS=--debug\n');
    expect(existsSync(join(units, 'docker.service'))).toBe(false);
    expect(readlinkSync(join(units, 'multi-user.target.wants/app.service'))).toBe('/etc/systemd/system/app.service');
    expect(readlinkSync(join(units, 'update-engine.service'))).toBe('/dev/null');
    expect(existsSync(join(units, 'multi-user.target.wants/old.service'))).toBe(false);
    expect(outcomes(first).slice(-2)).toEqual(['changed enable app.service', 'changed disable old.service']);
  });

  test('applying again changes nothing, and says so', async () => {
    const before = snapshot(root);
    const again = await apply(root, config);
    expect(again.results.filter((r) => r.outcome === 'changed' || r.outcome === 'failed')).toEqual([]);
    expect(snapshot(root)).toEqual(before);
  });
});

describeAsRoot('dry run', () => {
  test('changes nothing and predicts the real apply, action by action; then predicts no change', async () => {
    const root = imageRoot();
    const before = snapshot(root);
    const dry = await apply(root, config, true);
    expect(snapshot(root)).toEqual(before);
    expect(dry.results.filter((r) => r.outcome === 'failed')).toEqual([]);
    const real = await apply(root, config);
    expect(outcomes(dry.results)).toEqual(outcomes(real.results));
    expect((await apply(root, config, true)).results.filter((r) => r.outcome === 'changed' || r.outcome === 'failed')).toEqual([]);
  });
});

describeAsRoot('overwrite, and what is already there', () => {
  const v3 = (storage: object) => ({ ignition: { version: '3.4.0' }, storage });

  test('a file: overwrite false refuses a different one and accepts the same; true replaces it', async () => {
    const root = makeRoot();
    writeFileSync(join(root, 'etc/a'), 'old\n');
    const refused = await apply(root, v3({ files: [{ path: '/etc/a', contents: { source: 'data:,new%0A' } }] }));
    expect(refused.results).toEqual([expect.objectContaining({ subject: 'file /etc/a', outcome: 'failed', detail: expect.stringMatching(/exists .* overwrite is false/) })]);
    expect(readFileSync(join(root, 'etc/a'), 'utf8')).toBe('old\n');
    const replaced = await apply(root, v3({ files: [{ path: '/etc/a', overwrite: true, contents: { source: 'data:,new%0A' } }] }));
    expect(outcomes(replaced.results)).toEqual(['changed file /etc/a']);
    const same = await apply(root, v3({ files: [{ path: '/etc/a', contents: { source: 'data:,new%0A' } }] }));
    expect(outcomes(same.results)).toEqual(['unchanged file /etc/a']);
  });

  test('a file without a source keeps what is there (its mode unless one is given); appended fragments are added once', async () => {
    const root = makeRoot();
    writeFileSync(join(root, 'etc/kept'), 'mine\n', { mode: 0o600 });
    writeFileSync(join(root, 'etc/hosts'), '127.0.0.1 localhost\n');
    const doc = v3({ files: [{ path: '/etc/kept' }, { path: '/etc/hosts', mode: 0o644, append: [{ source: 'data:,10.0.0.2%20db%0A' }] }] });
    expect(outcomes((await apply(root, doc)).results)).toEqual(['unchanged file /etc/kept', 'changed file /etc/hosts']);
    expect(readFileSync(join(root, 'etc/kept'), 'utf8')).toBe('mine\n');
    expect(lstatSync(join(root, 'etc/kept')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(root, 'etc/hosts'), 'utf8')).toBe('127.0.0.1 localhost\n10.0.0.2 db\n');
    expect(outcomes((await apply(root, doc)).results)).toEqual(['unchanged file /etc/kept', 'unchanged file /etc/hosts']);
    expect(readFileSync(join(root, 'etc/hosts'), 'utf8')).toBe('127.0.0.1 localhost\n10.0.0.2 db\n');
  });

  test('a directory or link over a file: refused without overwrite, replaced with it; an existing directory keeps its mode', async () => {
    const root = makeRoot();
    writeFileSync(join(root, 'etc/d'), 'file\n');
    writeFileSync(join(root, 'etc/l'), 'file\n');
    mkdirSync(join(root, 'etc/keep'), { mode: 0o700 });
    const doc = (overwrite: boolean) => v3({ directories: [{ path: '/etc/d', overwrite }, { path: '/etc/keep' }], links: [{ path: '/etc/l', target: '/etc/d', overwrite }] });
    const refused = await apply(root, doc(false));
    expect(outcomes(refused.results)).toEqual(['failed directory /etc/d', 'unchanged directory /etc/keep', 'failed link /etc/l']);
    expect(readFileSync(join(root, 'etc/d'), 'utf8')).toBe('file\n');
    expect(outcomes((await apply(root, doc(true))).results)).toEqual(['changed directory /etc/d', 'unchanged directory /etc/keep', 'changed link /etc/l']);
    expect(lstatSync(join(root, 'etc/d')).isDirectory()).toBe(true);
    expect(lstatSync(join(root, 'etc/keep')).mode & 0o777).toBe(0o700);
    expect(readlinkSync(join(root, 'etc/l'))).toBe('/etc/d');
  });

  test('an existing group is left as it is, and the report says when its gid differs', async () => {
    const root = makeRoot();
    const { results } = await apply(root, { ignition: { version: '3.4.0' }, passwd: { groups: [{ name: 'docker', gid: 999 }] } });
    expect(results).toEqual([expect.objectContaining({ subject: 'group docker', outcome: 'unchanged', detail: 'it exists with gid 233, not 999; left as it is' })]);
  });

  test('a group in /etc/group but not /etc/gshadow (a groupadd killed between the two) is added again with its gid', async () => {
    const root = makeRoot();
    writeFileSync(join(root, 'etc/group'), `${readFileSync(join(root, 'etc/group'), 'utf8')}builders:x:4001:\n`);
    const doc = { ignition: { version: '3.4.0' }, passwd: { groups: [{ name: 'builders', gid: 4000 }] } };
    expect(outcomes((await apply(root, doc, true)).results)).toEqual(['changed group builders']);
    expect(outcomes((await apply(root, doc)).results)).toEqual(['changed group builders']);
    expect(readFileSync(join(root, 'etc/group'), 'utf8').match(/^builders:.*$/gm)).toEqual(['builders:x:4001:']);
    expect(readFileSync(join(root, 'etc/gshadow'), 'utf8').match(/^builders:.*$/gm)).toEqual(['builders:!::']);
    expect(outcomes((await apply(root, doc)).results)).toEqual(['unchanged group builders']);
  });
});

describeAsRoot('spec 2.x', () => {
  test('files on the root filesystem, owners by id and name, systemd and networkd units; other filesystems not applied', async () => {
    const root = makeRoot();
    writeFileSync(join(root, 'etc/replaced'), 'old\n');
    const { results } = await apply(root, {
      ignition: { version: '2.3.0' },
      storage: {
        filesystems: [{ name: 'oem', mount: { device: '/dev/disk/by-label/OEM', format: 'ext4' } }],
        files: [
          { filesystem: 'root', path: '/etc/replaced', mode: 0o600, user: { id: 500 }, group: { name: 'core' }, contents: { source: 'data:,new%0A' } },
          { filesystem: 'oem', path: '/grub.cfg', contents: { source: 'data:,x' } },
        ],
        directories: [{ filesystem: 'root', path: '/opt/bin', mode: 0o755 }],
        links: [{ filesystem: 'root', path: '/opt/bin/sh', target: '/bin/sh' }],
      },
      systemd: { units: [{ name: 'app.service', enabled: true, contents: appUnit }] },
      networkd: { units: [{ name: '10-eth.network', contents: '[Match]\nName=eth0\n' }] },
      passwd: { users: [{ name: 'core', sshAuthorizedKeys: [adminKey] }] },
    });
    expect(results.filter((r) => r.outcome === 'failed')).toEqual([]);
    expect(outcomes(results.filter((r) => r.outcome === 'skipped'))).toEqual(['skipped filesystem /dev/disk/by-label/OEM', 'skipped file /grub.cfg']);
    expect(readFileSync(join(root, 'etc/replaced'), 'utf8')).toBe('new\n');
    const st = lstatSync(join(root, 'etc/replaced'));
    expect([st.mode & 0o777, st.uid, st.gid]).toEqual([0o600, 500, 500]);
    expect(readlinkSync(join(root, 'opt/bin/sh'))).toBe('/bin/sh');
    expect(readFileSync(join(root, 'etc/systemd/network/10-eth.network'), 'utf8')).toBe('[Match]\nName=eth0\n');
    expect(readlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants/app.service'))).toBe('/etc/systemd/system/app.service');
    expect(readFileSync(join(root, 'home/core/.ssh/authorized_keys.d/ignition'), 'utf8')).toBe(`${adminKey}\n`);
  });
});

describeAsRoot('remote sources, from a loopback server', () => {
  const body = Buffer.from('fetched contents\n');
  let server: http.Server;
  let base: string;
  const seen: Array<{ url: string; token: string | undefined }> = [];
  /** Requests to /slow, answered only when the test ends. */
  const stalled: http.ServerResponse[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen.push({ url: req.url ?? '', token: req.headers['x-token'] as string | undefined });
      if (req.url === '/file') res.end(body);
      else if (req.url === '/gz') res.end(gzipSync(body));
      else if (req.url === '/slow') stalled.push(res);
      else if (req.url === '/declared-huge') {
        res.writeHead(200, { 'content-length': String(17 * 1024 * 1024) });
        res.write('x');
      } else if (req.url === '/streamed-huge') {
        // No length given: the body runs past the limit as it streams.
        const chunk = Buffer.alloc(1024 * 1024, 0x61);
        let sent = 0;
        const more = () => {
          while (sent < 17 && !res.destroyed) {
            sent++;
            if (!res.write(chunk)) return void res.once('drain', more);
          }
          res.end();
        };
        more();
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    for (const res of stalled) res.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const file = (path: string, contents: object) => ({ path, contents });

  test('http sources are fetched with their headers, unpacked and checked against their hash', async () => {
    const root = makeRoot();
    const { results } = await apply(root, {
      ignition: { version: '3.4.0' },
      storage: {
        files: [
          file('/etc/plain', { source: `${base}/file`, httpHeaders: [{ name: 'X-Token', value: 'secret' }], verification: { hash: sha512(body) } }),
          file('/etc/unpacked', { source: `${base}/gz`, compression: 'gzip', verification: { hash: `sha256-${createHash('sha256').update(body).digest('hex')}` } }),
        ],
      },
    });
    expect(outcomes(results)).toEqual(['changed file /etc/plain', 'changed file /etc/unpacked']);
    expect(readFileSync(join(root, 'etc/plain'))).toEqual(body);
    expect(readFileSync(join(root, 'etc/unpacked'))).toEqual(body);
    expect(seen).toContainEqual({ url: '/file', token: 'secret' });
  });

  test('a bad hash, a 404, a server that never answers, a body too large (declared or streamed): failed, and no file or part of one is left', async () => {
    const root = makeRoot();
    const { results } = await apply(root, {
      ignition: { version: '3.4.0' },
      storage: {
        files: [
          file('/srv/bad-hash', { source: `${base}/file`, verification: { hash: sha512('something else') } }),
          file('/srv/missing', { source: `${base}/missing` }),
          file('/srv/slow', { source: `${base}/slow` }),
          file('/srv/declared', { source: `${base}/declared-huge` }),
          file('/srv/streamed', { source: `${base}/streamed-huge` }),
          { path: '/srv/appended', contents: { source: 'data:,head%0A' }, append: [{ source: `${base}/missing` }] },
          file('/srv/good', { source: 'data:,fine' }),
        ],
      },
    });
    expect(outcomes(results)).toEqual([
      'failed file /srv/bad-hash',
      'failed file /srv/missing',
      'failed file /srv/slow',
      'failed file /srv/declared',
      'failed file /srv/streamed',
      'failed file /srv/appended',
      'changed file /srv/good',
    ]);
    expect(results[0]!.detail).toMatch(/do not match the verification hash/);
    expect(results[1]!.detail).toMatch(/HTTP 404/);
    expect(results[2]!.detail).toMatch(/no complete answer within 2000 ms/);
    expect(results[3]!.detail).toMatch(/more than the 16777216 accepted/);
    expect(results[4]!.detail).toMatch(/body larger than 16777216 bytes/);
    expect(results[5]!.origin).toBe('storage.files[5].append[0]');
    expect(readdirSync(join(root, 'srv'))).toEqual(['good']);
  });

  test('sources of schemes not fetched here are reported as not applied; the config still applies', async () => {
    const root = makeRoot();
    const { results, applied } = await apply(root, {
      ignition: { version: '3.4.0' },
      storage: { files: [file('/etc/from-tftp', { source: 'tftp://127.0.0.1/f' }), file('/etc/from-s3', { source: 's3://bucket/key' }), file('/etc/ok', { source: 'data:,ok' })] },
    });
    expect(applied).toBe(true);
    expect(outcomes(results)).toEqual(['skipped file /etc/from-tftp', 'skipped file /etc/from-s3', 'changed file /etc/ok']);
    expect(results[0]!.detail).toMatch(/^not applied: tftp sources are not fetched here/);
    expect(existsSync(join(root, 'etc/from-tftp'))).toBe(false);
  });
});

describeAsRoot('invalid configs', () => {
  test('a config with errors is not applied at all: not even its valid parts', async () => {
    const root = makeRoot();
    const before = snapshot(root);
    const report = await apply(root, { ignition: { version: '3.4.0' }, storage: { files: [{ path: '/etc/ok', contents: { source: 'data:,ok' } }, { path: 'relative', contents: { source: 'data:,x' } }] } });
    expect(report.applied).toBe(false);
    expect(report.results).toEqual([]);
    expect(report.validation.diagnostics.map((d) => d.code)).toContain('relative-path');
    expect(snapshot(root)).toEqual(before);
  });

  test('Ignition has no metadata variables: a "$" in it is written as it is', async () => {
    const root = makeRoot();
    await applyUserData(Buffer.from(JSON.stringify({ ignition: { version: '3.4.0' }, storage: { files: [{ path: '/etc/x', contents: { source: 'data:,%24private_ipv4' } }] }, systemd: { units: [{ name: 'a.service', contents: '[Service]\nExecStart=/bin/echo $private_ipv4\n' }] } })), {
      root,
      env: { COREOS_PRIVATE_IPV4: '10.0.0.5' },
    });
    expect(readFileSync(join(root, 'etc/x'), 'utf8')).toBe('$private_ipv4');
    expect(readFileSync(join(root, 'etc/systemd/system/a.service'), 'utf8')).toContain('$private_ipv4');
  });
});

describeAsRoot('from a datasource', () => {
  test('an Ignition config as a cloud\'s user data: applied and kept with its instance record; the metadata is not merged in', async () => {
    const root = makeRoot();
    const userData = Buffer.from(JSON.stringify({ ignition: { version: '3.4.0' }, storage: { files: [{ path: '/etc/from-cloud', contents: { source: 'data:,yes' } }] } }));
    const metadata = { instanceId: 'i-0123' as InstanceId, hostname: 'from-metadata' as Hostname, sshPublicKeys: [adminKey as SshPublicKey] };
    const { results } = await applyFetched({ source: 'ec2', userData, metadata }, { root, http: policy });
    expect(outcomes(results)).toEqual([
      'changed instance i-0123',
      'changed file /var/lib/coreos-cloudinit/user-data',
      'changed file /var/lib/coreos-cloudinit/instance.json',
      'changed file /etc/from-cloud',
    ]);
    expect(readFileSync(join(root, 'var/lib/coreos-cloudinit/user-data'))).toEqual(userData);
    expect(existsSync(join(root, 'etc/hostname'))).toBe(false);
    expect(existsSync(join(root, 'home/core/.ssh'))).toBe(false);
  });
});
