/**
 * locksmithctl as users run it, against a real etcd: locksmith's output and messages (scripts parse
 * them; see shared/reference/locksmith.md §1.4), exit codes, env, TLS, strategy file.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
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

function ctl(args: string[], env: Record<string, string> = {}, uid?: number) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000, uid });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A loopback port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

const me = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';

(haveEtcd ? describe : describe.skip)('locksmithctl', () => {
  let etcd: EtcdCluster;
  let at: string[];
  beforeAll(async () => {
    etcd = await EtcdCluster.start();
    at = ['--endpoint', etcd.endpoints[0]!, '--machine-id-file', idFile];
  }, 30_000);
  afterAll(() => etcd.stop());

  test('status: Available, Max, then after a blank line MACHINE ID and one bare id per line, as locksmith prints it', () => {
    const g = ['--group', 'cli'];
    expect(ctl([...at, ...g, 'status'])).toEqual({ status: 0, stdout: 'Available: 1\nMax: 1\n', stderr: '' });
    expect(ctl([...at, ...g, 'lock'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(ctl([...at, ...g, 'set-max', '3'])).toEqual({ status: 0, stdout: 'Old-Max: 1\nMax: 3\n', stderr: '' });
    expect(ctl([...at, ...g, 'lock', 'other-machine']).status).toBe(0);
    expect(ctl([...at, ...g, 'status'])).toEqual({ status: 0, stdout: `Available: 1\nMax: 3\n\nMACHINE ID\n${me}\nother-machine\n`, stderr: '' });
    // What scripts do with it: the last line is an id, and nothing else.
    const last = ctl([...at, ...g, 'status']).stdout.trimEnd().split('\n').pop()!;
    expect(ctl([...at, ...g, 'unlock', ...last.split(/\s+/)])).toEqual({ status: 0, stdout: '', stderr: '' });
    // set-max below the holders: Available goes negative, as locksmith's does.
    expect(ctl([...at, ...g, 'set-max', '0']).stdout).toBe('Old-Max: 3\nMax: 0\n');
    expect(ctl([...at, ...g, 'status']).stdout).toBe(`Available: -1\nMax: 0\n\nMACHINE ID\n${me}\n`);
    // The last sign of life only on request.
    expect(ctl([...at, ...g, 'status', '--verbose']).stdout).toMatch(new RegExp(`^Available: -1\nMax: 0\n\nMACHINE ID +LAST SIGN OF LIFE\n${me} +\\S+Z \\(\\d+s ago\\)\n$`));
    expect(JSON.parse(ctl([...at, ...g, '--format', 'json', 'status']).stdout)).toEqual({
      group: 'cli',
      total_slots: 0,
      available: -1,
      holders: [{ id: me, alive: false, lastSeen: expect.stringMatching(/Z$/) }],
    });
    expect(ctl([...at, ...g, 'unlock']).status).toBe(0);
  });

  test('errors start with locksmith\'s words, on stderr, exit 1', () => {
    const g = ['--group', 'errors'];
    expect(ctl([...at, ...g, 'unlock', 'nobody'])).toEqual({ status: 1, stdout: '', stderr: 'Error unlocking: holder does not exist: nobody does not hold a slot\n' });
    expect(ctl([...at, ...g, 'lock'])).toEqual({ status: 0, stdout: '', stderr: '' });
    // locksmithctl lock by the holder fails (locksmithd counts it as success: see the agent's tests).
    expect(ctl([...at, ...g, 'lock'])).toEqual({ status: 1, stdout: '', stderr: 'Error locking: holder exists\n' });
    expect(ctl([...at, ...g, 'lock', 'other-machine'])).toEqual({ status: 1, stdout: '', stderr: `Error locking: semaphore is at 0: all 1 semaphore slots are held (${me})\n` });
    expect(ctl([...at, ...g, 'set-max'])).toEqual({ status: 1, stdout: '', stderr: 'New maximum value must be set.\n' });
    expect(ctl([...at, ...g, 'set-max', 'abc'])).toEqual({ status: 1, stdout: '', stderr: 'Invalid maximum value: abc\n' });
    expect(ctl([...at, ...g, 'set-max', '1001'])).toEqual({ status: 1, stdout: '', stderr: 'Invalid maximum value: 1001 (at most 1000)\n' });
    expect(ctl(['--endpoint', etcd.endpoints[0]!, '--machine-id-file', join(dir, 'none'), ...g, 'unlock'])).toEqual({
      status: 1,
      stdout: '',
      stderr: `Cannot read machine-id: ENOENT: no such file or directory, open '${join(dir, 'none')}'\n`,
    });
    expect(ctl([...at, ...g, 'status']).stdout).toBe(`Available: 0\nMax: 1\n\nMACHINE ID\n${me}\n`); // nothing changed
    expect(ctl([...at, ...g, 'unlock']).status).toBe(0);
  });

  test('reboot as a user other than root: locksmith\'s message, before etcd is asked', () => {
    chmodSync(dir, 0o755);
    expect(ctl(['--endpoint', 'http://127.0.0.1:1', '--machine-id-file', idFile, 'reboot'], {}, 65534)).toEqual({ status: 1, stdout: '', stderr: 'Must be root to initiate reboot.\n' });
  });

  test('an unknown subcommand: locksmith\'s two lines on stdout, exit 2', () => {
    expect(ctl(['bogus'])).toEqual({ status: 2, stdout: 'locksmithctl: unknown subcommand: "bogus"\nRun \'locksmithctl help\' for usage.\n', stderr: '' });
    expect(ctl([...at, 'bogus', 'status'])).toEqual({ status: 2, stdout: 'locksmithctl: unknown subcommand: "bogus"\nRun \'locksmithctl help\' for usage.\n', stderr: '' });
    expect(ctl(['help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('Usage: locksmithctl') });
  });

  test('LOCKSMITHCTL_* environment, flags win', () => {
    const env = { LOCKSMITHCTL_ENDPOINT: etcd.endpoints[0]!, LOCKSMITHCTL_GROUP: 'from-env' };
    expect(ctl(['--machine-id-file', idFile, 'lock'], env).status).toBe(0);
    expect(ctl(['--machine-id-file', idFile, 'status'], env).stdout).toMatch(/^Available: 0\n/);
    expect(ctl(['--machine-id-file', idFile, '--group', 'other', 'status'], env).stdout).toMatch(/^Available: 1\n/);
  });

  test('unlock --stale never frees a slot taken by locksmithctl lock less than AGE ago', async () => {
    const client = new Etcd3({ hosts: etcd.endpoints });
    const g = ['--group', 'by-hand'];
    expect(ctl([...at, ...g, 'set-max', '2']).status).toBe(0);
    expect(ctl([...at, ...g, 'lock', 'by-hand'])).toEqual({ status: 0, stdout: '', stderr: '' });
    const taken = Date.parse((await client.get(seenKey('by-hand', 'by-hand')).string())!);
    expect(Math.abs(Date.now() - taken)).toBeLessThan(30_000);
    expect(ctl([...at, ...g, 'unlock', '--stale', '1h'])).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(ctl([...at, ...g, 'status']).stdout).toBe('Available: 1\nMax: 2\n\nMACHINE ID\nby-hand\n');
    // A refused lock records nothing: a stale holder locked again by hand stays stale.
    await client.put(seenKey('by-hand', 'by-hand')).value(new Date(Date.now() - 3 * 3600_000).toISOString());
    expect(ctl([...at, ...g, 'lock', 'by-hand']).stderr).toBe('Error locking: holder exists\n');
    expect(ctl([...at, ...g, 'unlock', '--stale', '1h'])).toEqual({ status: 0, stdout: 'Unlocked by-hand (last seen 3h ago)\n', stderr: '' });
    // Older than AGE: freed.
    expect(ctl([...at, ...g, 'lock', 'short-lived']).status).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    expect(ctl([...at, ...g, 'unlock', '--stale', '1s'])).toEqual({ status: 0, stdout: expect.stringMatching(/^Unlocked short-lived \(last seen \d+s ago\)\n$/), stderr: '' });
    expect(ctl([...at, ...g, 'status']).stdout).toBe('Available: 2\nMax: 2\n');
    client.close();
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
    expect(ctl([...at, ...g, 'status', '--verbose']).stdout).toMatch(/gone +\S+ \(5h ago\)\nrecent +\S+ \(10m ago\)\nrunning +alive\n$/);
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
    expect(ctl(['--bogus', 'status']).status).toBe(2);
    expect(ctl([...at, 'status', '--bogus']).status).toBe(2);
  });
});

describe('locksmithctl without etcd', () => {
  const started = (args: string[]) => {
    const t0 = process.hrtime.bigint();
    const r = ctl(args);
    return { ...r, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
  };

  test('connection refused: one line naming the endpoint and the cause, exit 1, fast', async () => {
    const port = await closedPort();
    for (const command of [['status'], ['lock'], ['unlock'], ['set-max', '2'], ['unlock', '--stale', '1h']]) {
      const r = started(['--endpoint', `http://127.0.0.1:${port}`, '--machine-id-file', idFile, ...command]);
      expect(r).toMatchObject({
        status: 1,
        stdout: '',
        stderr: `Error initializing etcd client: etcd cluster is unavailable or misconfigured: http://127.0.0.1:${port}: connection refused\n`,
      });
      // Generous for a loaded machine: measured about 0.1 s idle; it took 0.45 s with the client loaded and asked.
      expect(r.ms).toBeLessThan(2000);
    }
  });

  test('connection refused is found before the etcd client (a fifth of a second to load) is loaded', async () => {
    const hook = join(dir, 'no-etcd3.js');
    writeFileSync(hook, "const M = require('node:module'); const load = M._load; M._load = function (r, ...a) { if (r === 'etcd3') throw new Error('etcd3 was loaded'); return load.call(this, r, ...a); };\n");
    const port = await closedPort();
    const r = spawnSync(process.execPath, ['-r', hook, bin, '--endpoint', `http://127.0.0.1:${port}`, 'status'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' }, timeout: 30_000 });
    expect([r.status, r.stderr]).toEqual([1, `Error initializing etcd client: etcd cluster is unavailable or misconfigured: http://127.0.0.1:${port}: connection refused\n`]);
    // Nor do commands that need no etcd load it.
    expect(spawnSync(process.execPath, ['-r', hook, bin, '--version'], { encoding: 'utf8' }).status).toBe(0);
  });

  test('every endpoint named with its own cause', async () => {
    const [a, b] = [await closedPort(), await closedPort()];
    expect(ctl(['--endpoint', `http://127.0.0.1:${a}`, '--endpoint', `http://127.0.0.1:${b},http://no-such-host.invalid:2379`, 'status']).stderr).toBe(
      `Error initializing etcd client: etcd cluster is unavailable or misconfigured: http://127.0.0.1:${a}: connection refused; http://127.0.0.1:${b}: connection refused; http://no-such-host.invalid:2379: host not found\n`,
    );
  });

  test('something that is not etcd on the port: one line, no raw gRPC text', async () => {
    const server: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        // Asynchronously: this process serves the port.
        const { spawn } = require('node:child_process') as typeof import('node:child_process');
        const child = spawn(process.execPath, [bin, '--endpoint', endpoint, 'status'], { env: { PATH: process.env.PATH ?? '' } });
        let [stdout, stderr] = ['', ''];
        child.stdout.on('data', (d: Buffer) => (stdout += d));
        child.stderr.on('data', (d: Buffer) => (stderr += d));
        child.on('close', (status) => resolve({ status, stdout, stderr }));
      });
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(new RegExp(`^Error initializing etcd client: etcd cluster is unavailable or misconfigured: ${endpoint}: \\S[^\n]*\n$`));
      expect(r.stderr).not.toMatch(/UNAVAILABLE|Resolution note|^\d+ /);
    } finally {
      server.close();
    }
  }, 30_000);
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
      stderr: 'Error initializing etcd client: a client certificate needs its key: give both --etcd-certfile and --etcd-keyfile\n',
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
