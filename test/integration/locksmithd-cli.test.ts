/** The locksmithd and locksmithctl programs with stand-ins for update_engine and logind on a real dbus-daemon. */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveLogind, serveStandIns, startDbusDaemon } from '../support/dbus';
import type { DbusDaemon } from '../support/dbus';

const bins = join(__dirname, '../../bin');
const haveDbus = spawnSync('dbus-daemon', ['--version']).status === 0;
if (!haveDbus) test.skip('needs dbus-daemon; CI installs it', () => undefined);

function until(check: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => (check() ? resolve() : Date.now() > deadline ? reject(new Error('timed out')) : setTimeout(tick, 50));
    tick();
  });
}

function ctl(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(bins, 'locksmithctl.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (status) => resolve({ status, stdout, stderr }));
  });
}

(haveDbus ? describe : describe.skip)('locksmithd program', () => {
  let dbusd: DbusDaemon;
  let daemon: ChildProcess | undefined;
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-lsd-'));
  mkdirSync(join(root, 'etc/coreos'), { recursive: true });
  const pidFile = join(root, 'locksmithd.pid');
  writeFileSync(join(root, 'machine-id'), 'machine-x\n');
  beforeAll(async () => {
    dbusd = await startDbusDaemon();
  });
  afterEach(() => daemon?.kill());
  afterAll(() => dbusd.stop());

  const startDaemon = (env: Record<string, string> = {}) => {
    let log = '';
    daemon = spawn(process.execPath, [join(bins, 'locksmithd.js'), '--root', root, '--bus', dbusd.address, '--systemd-bus', 'none', '--machine-id-file', join(root, 'machine-id'), '--pid-file', pidFile], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    daemon.stderr!.on('data', (d: Buffer) => (log += d));
    return () => log;
  };

  test('a malformed configuration is an error at start', () => {
    writeFileSync(join(root, 'etc/coreos/update.conf'), 'REBOOT_STRATEGY=sometimes\n');
    const r = spawnSync(process.execPath, [join(bins, 'locksmithd.js'), '--root', root, '--bus', dbusd.address], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    // One line, however many findings: a log line per event.
    expect(r.stderr).toBe('locksmithd: error: invalid locksmithd configuration: unknown REBOOT_STRATEGY "sometimes": use etcd-lock, reboot or off\n');
  });

  test('--reclaim-stale-after is checked at start like the rest', () => {
    writeFileSync(join(root, 'etc/coreos/update.conf'), 'REBOOT_STRATEGY=etcd-lock\n');
    const r = spawnSync(process.execPath, [join(bins, 'locksmithd.js'), '--root', root, '--bus', dbusd.address, '--reclaim-stale-after', 'soon'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/invalid LOCKSMITHD_RECLAIM_STALE_AFTER "soon": want a duration such as 2h/);
  });

  test('send-need-reboot wakes it; strategy reboot reboots through logind', async () => {
    writeFileSync(join(root, 'etc/coreos/update.conf'), 'REBOOT_STRATEGY=reboot\n');
    const { engine, logind, bus } = await serveStandIns(dbusd.address);
    const log = startDaemon();
    await until(() => log().includes('starting'));
    await new Promise((r) => setTimeout(r, 300));
    expect(logind.reboots).toEqual([]);
    engine.operation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT'; // staged, but no signal yet: the daemon waits up to a minute
    expect((await ctl(['--bus', dbusd.address, 'send-need-reboot'])).status).toBe(0);
    await until(() => logind.reboots.length === 1);
    expect(engine.finalized.length).toBe(1);
    bus.disconnect();
  }, 90_000);

  test('set-strategy tells a running locksmithd to reload', async () => {
    writeFileSync(join(root, 'etc/coreos/update.conf'), 'GROUP=stable\nREBOOT_STRATEGY=off\n');
    const { engine, logind, bus } = await serveStandIns(dbusd.address);
    engine.operation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
    const log = startDaemon();
    await until(() => log().includes('never rebooting'));
    const r = await ctl(['--root', root, '--pid-file', pidFile, 'set-strategy', 'reboot']);
    expect(r.stdout).toMatch(/^Strategy: reboot\nTold locksmithd \(pid \d+\) to reload\n$/);
    await until(() => logind.reboots.length === 1);
    expect(log()).toContain('reloading the settings');
    bus.disconnect();
  }, 90_000);

  test('logind absent: the program stays up, logs the failed reboot request, and reboots once logind appears', async () => {
    writeFileSync(join(root, 'etc/coreos/update.conf'), 'REBOOT_STRATEGY=reboot\n');
    const { engine, bus } = await serveStandIns(dbusd.address, false);
    engine.operation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
    const log = startDaemon();
    let exited: number | null | undefined;
    daemon!.on('exit', (code) => (exited = code));
    await until(() => log().includes('requesting the reboot failed'));
    expect(engine.finalized).toHaveLength(1);
    expect(exited).toBeUndefined();
    const logind = await serveLogind(bus);
    // The first retry comes 5 s after the failure.
    // The daemon logs the request once logind's answer has come back, after logind has seen the call.
    await until(() => logind.reboots.length === 1 && log().includes('reboot requested; waiting for the machine to go down'), 45_000);
    expect(logind.reboots).toHaveLength(1);
    expect(log()).not.toContain('bug:');
    expect(exited).toBeUndefined();
    bus.disconnect();
  }, 90_000);
});

test('REBOOT_STRATEGY=off without D-Bus or systemd: the reference\'s line, exit 0', () => {
  const root = mkdtempSync(join(tmpdir(), 'bootsmith-lsd-off-'));
  mkdirSync(join(root, 'etc/coreos'), { recursive: true });
  writeFileSync(join(root, 'etc/coreos/update.conf'), 'REBOOT_STRATEGY=off\n');
  const r = spawnSync(process.execPath, [join(bins, 'locksmithd.js'), '--root', root, '--bus', 'unix:path=/nonexistent/bus', '--pid-file', join(root, 'pid')], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '' },
  });
  expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: '', stderr: 'locksmithd: Reboot strategy is "off" - locksmithd is exiting.\n' });
  // the environment's strategy counts as the file's does
  const env = spawnSync(process.execPath, [join(bins, 'locksmithd.js'), '--root', mkdtempSync(join(tmpdir(), 'bootsmith-lsd-off-')), '--bus', 'unix:path=/nonexistent/bus'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', REBOOT_STRATEGY: 'off' },
  });
  expect([env.status, env.stderr]).toEqual([0, 'locksmithd: Reboot strategy is "off" - locksmithd is exiting.\n']);
});
