/** locksmithctl as users run it, against a real etcd: messages, exit codes, env, TLS, strategy file. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { presenceKey, seenKey } from '../../src/lock/presence';
import { EtcdCluster, haveEtcd, makeServerTls } from '../support/etcd';
import type { ServerTls } from '../support/etcd';

const bin = join(__dirname, '../../bin/locksmithctl.js');
const dir = mkdtempSync(join(tmpdir(), 'bootsmith-lsctl-'));
const idFile = join(dir, 'machine-id');
writeFileSync(idFile, 'a1b2c3d4e5f60718293a4b5c6d7e8f90\n');

function ctl(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

(haveEtcd ? describe : describe.skip)('locksmithctl', () => {
  let etcd: EtcdCluster;
  let at: string[];
  beforeAll(async () => {
    etcd = await EtcdCluster.start();
    at = ['--endpoint', etcd.endpoints[0]!, '--machine-id-file', idFile];
  }, 30_000);
  afterAll(() => etcd.stop());

  test('status, lock, full, set-max, unlock: locksmith\'s messages and exit codes', () => {
    const g = ['--group', 'cli'];
    expect(ctl([...at, ...g, 'status'])).toEqual({ status: 0, stdout: 'Available: 1\nMax: 1\n', stderr: '' });
    expect(ctl([...at, ...g, 'lock'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(ctl([...at, ...g, 'lock'])).toMatchObject({ status: 0 }); // again, as the holder
    expect(ctl([...at, ...g, 'lock', 'other-machine'])).toEqual({
      status: 1,
      stdout: '',
      stderr: 'Error locking: all 1 semaphore slots are held (a1b2c3d4e5f60718293a4b5c6d7e8f90)\n',
    });
    expect(ctl([...at, ...g, 'set-max', '2']).stdout).toBe('Old-Max: 1\nMax: 2\n');
    expect(ctl([...at, ...g, 'set-max', 'abc'])).toMatchObject({ status: 1, stderr: 'Error setting value: Invalid maximum value: abc\n' });
    expect(ctl([...at, ...g, 'lock', 'other-machine']).status).toBe(0);
    const status = ctl([...at, ...g, 'status']).stdout;
    expect(status).toMatch(/^Available: 0\nMax: 2\n\nMACHINE ID +LAST SIGN OF LIFE\na1b2c3d4e5f60718293a4b5c6d7e8f90 +never seen\nother-machine +never seen\n$/);
    expect(JSON.parse(ctl([...at, ...g, '--format', 'json', 'status']).stdout)).toEqual({
      group: 'cli',
      total_slots: 2,
      available: 0,
      holders: [
        { id: 'a1b2c3d4e5f60718293a4b5c6d7e8f90', alive: false, lastSeen: null },
        { id: 'other-machine', alive: false, lastSeen: null },
      ],
    });
    expect(ctl([...at, ...g, 'unlock', 'nobody'])).toMatchObject({ status: 1, stderr: 'Error unlocking: nobody does not hold a slot\n' });
    expect(ctl([...at, ...g, 'unlock']).status).toBe(0);
    expect(ctl([...at, ...g, 'status']).stdout).toMatch(/^Available: 1\n/);
  });

  test('LOCKSMITHCTL_* environment, flags win', () => {
    const env = { LOCKSMITHCTL_ENDPOINT: etcd.endpoints[0]!, LOCKSMITHCTL_GROUP: 'from-env' };
    expect(ctl(['--machine-id-file', idFile, 'lock'], env).status).toBe(0);
    expect(ctl(['--machine-id-file', idFile, 'status'], env).stdout).toMatch(/^Available: 0\n/);
    expect(ctl(['--machine-id-file', idFile, '--group', 'other', 'status'], env).stdout).toMatch(/^Available: 1\n/);
  });

  test('unlock --stale frees holders silent for longer than the age; live ones stay', async () => {
    const client = new Etcd3({ hosts: etcd.endpoints });
    const g = ['--group', 'stale'];
    expect(ctl([...at, ...g, 'set-max', '3']).status).toBe(0);
    for (const id of ['gone', 'recent', 'running']) expect(ctl([...at, ...g, 'lock', id]).status).toBe(0);
    await client.put(seenKey('stale', 'gone')).value(new Date(Date.now() - 5 * 3600_000).toISOString());
    await client.put(seenKey('stale', 'recent')).value(new Date(Date.now() - 10 * 60_000).toISOString());
    const lease = client.lease(60);
    await lease.put(presenceKey('stale', 'running')).value('now');
    await client.put(seenKey('stale', 'running')).value(new Date(Date.now() - 9 * 3600_000).toISOString());
    expect(ctl([...at, ...g, 'status']).stdout).toMatch(/gone +\S+ \(5h ago\)\nrecent +\S+ \(10m ago\)\nrunning +alive\n$/);
    expect(ctl([...at, ...g, 'unlock', '--stale', '1h'])).toEqual({ status: 0, stdout: 'Unlocked gone (last seen 5h ago)\n', stderr: '' });
    expect(ctl([...at, ...g, 'status']).stdout).toMatch(/^Available: 1\n/);
    expect(ctl([...at, ...g, 'unlock', '--stale', 'soon']).stderr).toBe('Error unlocking: invalid age "soon": use a duration such as 90m or 2h\n');
    await lease.revoke();
    client.close();
  });

  test('--endpoint repeats and takes commas, and does not swallow the command after it', () => {
    expect(ctl(['--endpoint', 'http://127.0.0.1:1,http://127.0.0.1:2', '--endpoint', etcd.endpoints[0]!, '--group', 'rep', 'status']).stdout).toBe('Available: 1\nMax: 1\n');
  });

  test('usage errors exit 2', () => {
    expect(ctl(['bogus']).status).toBe(2);
    expect(ctl([...at, 'set-max']).status).toBe(2);
  });
});

(haveEtcd ? describe : describe.skip)('locksmithctl over TLS', () => {
  let etcd: EtcdCluster;
  let tls: ServerTls;
  beforeAll(async () => {
    tls = makeServerTls(mkdtempSync(join(tmpdir(), 'bootsmith-tls-')));
    etcd = await EtcdCluster.start(1, tls);
  }, 30_000);
  afterAll(() => etcd.stop());

  test('a CA file alone is enough (server-authenticated TLS)', () => {
    const r = ctl(['--endpoint', etcd.endpoints[0]!, '--etcd-cafile', tls.caFile, 'status']);
    expect(r).toEqual({ status: 0, stdout: 'Available: 1\nMax: 1\n', stderr: '' });
  });

  test('a certificate without its key is refused with a clear error', () => {
    expect(ctl(['--endpoint', etcd.endpoints[0]!, '--etcd-certfile', tls.certFile, 'status'])).toMatchObject({
      status: 1,
      stderr: 'Error getting status: a client certificate needs its key: give both --etcd-certfile and --etcd-keyfile\n',
    });
  });
});

describe('locksmithctl set-strategy and get-strategy', () => {
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-strategy-'));
  mkdirSync(join(root, 'etc/coreos'), { recursive: true });
  const conf = join(root, 'etc/coreos/update.conf');
  writeFileSync(conf, 'GROUP=stable\nSERVER=https://updates.example/v1/update/\nREBOOT_STRATEGY=reboot\n');

  test('rewrites update.conf, keeping other lines', () => {
    expect(ctl(['--root', root, 'set-strategy', 'etcd-lock', '--window-start', 'Thu 04:00', '--window-length', '1h30m'])).toEqual({ status: 0, stdout: 'Strategy: etcd-lock\n', stderr: '' });
    expect(readFileSync(conf, 'utf8')).toBe(
      'GROUP=stable\nSERVER=https://updates.example/v1/update/\nREBOOT_STRATEGY=etcd-lock\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h30m\nLOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00\n',
    );
    expect(ctl(['--root', root, 'get-strategy']).stdout).toBe('Strategy: etcd-lock\nWindow: Thu 04:00 for 1h30m\n');
    expect(ctl(['--root', root, 'set-strategy', 'reboot', '--no-window']).status).toBe(0);
    expect(readFileSync(conf, 'utf8')).toBe('GROUP=stable\nSERVER=https://updates.example/v1/update/\nREBOOT_STRATEGY=reboot\n');
    expect(JSON.parse(ctl(['--root', root, '--format', 'json', 'get-strategy']).stdout)).toEqual({ strategy: 'reboot', window: null });
  });

  test.each([
    [['sometimes'], 'unknown strategy "sometimes": use etcd-lock, reboot, off'],
    [['etcd-lock', '--window-start', 'Thu 04:00'], 'give both --window-start and --window-length, or neither'],
    [['etcd-lock', '--window-start', 'Thursday 04:00', '--window-length', '1h'], 'invalid window start "Thursday 04:00": want "Thu 04:00" or "04:00"'],
    [['etcd-lock', '--window-start', '04:00', '--window-length', '1 hour'], 'invalid window length "1 hour": want a duration such as 1h30m'],
  ])('%j is refused and changes nothing', (args, message) => {
    const before = readFileSync(conf, 'utf8');
    expect(ctl(['--root', root, 'set-strategy', ...args])).toEqual({ status: 1, stdout: '', stderr: `Error setting strategy: ${message}\n` });
    expect(readFileSync(conf, 'utf8')).toBe(before);
  });
});
