/**
 * The update_engine daemon and update_engine_client's D-Bus flags, as programs: one machine (a
 * root and a disk with 1000.0.0 in USR-A), a real dbus-daemon as its system bus with a stand-in
 * systemd manager, and the update server on loopback. -status, -check_for_update, -update with its
 * exit codes, -watch_for_updates, -reset_status, --format json; a rejected payload fails -update
 * and the daemon goes on; the compatibility switch finalizes right after staging.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as dbus from 'dbus-next';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRelease } from '../../images/make';
import { UpdateServer } from '../../src/update/server';
import { serveFakeSystemd, startDbusDaemon } from '../support/dbus';
import type { DbusDaemon } from '../support/dbus';
import { until } from '../support/fleet';
import { sample, scrape } from '../support/metrics';
import { cgptFlags, keyPair, updateMachine, updateTools } from '../support/update';

const root = join(__dirname, '../..');
const bins = join(root, 'bin');
const haveDbus = spawnSync('dbus-daemon', ['--version']).status === 0;
const ready = updateTools && haveDbus && existsSync(join(root, 'dist/update_engine.js'));
if (!ready) test.skip('needs bzip2, e2fsprogs, gdisk, cgpt, dbus-daemon and a build', () => undefined);

interface Daemon {
  child: ChildProcess;
  log: () => string;
}

function startEngine(args: string[]): Daemon {
  const child = spawn(process.execPath, [join(bins, 'update_engine.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  return { child, log: () => log };
}

function stopEngine(d: Daemon | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!d || d.child.exitCode !== null) return resolve();
    d.child.once('exit', () => resolve());
    d.child.kill('SIGTERM');
  });
}

/** A program run to its end, without blocking this process: the stand-in systemd answers from here. */
function run(program: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(bins, `${program}.js`), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const client = (bus: string, args: string[]) => run('update_engine_client', ['--bus', bus, ...args]);

/**
 * How many match rules on the bus at `address` select update_engine's StatusUpdate signal (the bus
 * daemon's Debug.Stats interface): a watcher is in place once its rule is.
 */
async function statusWatchers(address: string): Promise<number> {
  const bus = dbus.sessionBus({ busAddress: address });
  try {
    const reply = await bus.call(new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus.Debug.Stats', member: 'GetAllMatchRules' }));
    const rules = reply?.body[0] as Record<string, string[]>;
    return Object.values(rules).flat().filter((r) => r.includes("member='StatusUpdate'")).length;
  } finally {
    bus.disconnect();
  }
}

/** Calls a method of update_engine's Manager on the bus at `address`, and waits for its reply. */
async function callEngine(address: string, member: string): Promise<void> {
  const bus = dbus.sessionBus({ busAddress: address });
  try {
    await bus.call(new dbus.Message({ destination: 'com.coreos.update1', path: '/com/coreos/update1', interface: 'com.coreos.update1.Manager', member }));
  } finally {
    bus.disconnect();
  }
}

(ready ? describe : describe.skip)('update_engine and update_engine_client over D-Bus', () => {
  let dir: string;
  let server: UpdateServer;
  let url: string;
  let dbusd: DbusDaemon;
  let bus: string;
  let key: { privateKey: string; publicKey: string };
  let keyFile: string;
  let fake: Awaited<ReturnType<typeof serveFakeSystemd>>;
  const engines: Daemon[] = [];
  const engineArgs = (m: { root: string; disk: string }) => [
    '--root', m.root, '--bus', bus, '--disk', m.disk, '--active', 'USR-A', '--state-dir', join(m.root, 'var/lib/update_engine'),
    '--boot-id-file', join(m.root, 'boot_id'), '--public-key', keyFile, '--first-check', '3600', '--health-timeout', '5',
  ];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-engine-'));
    key = keyPair();
    keyFile = join(dir, 'key.pub.pem');
    writeFileSync(keyFile, key.publicKey);
    await makeRelease(join(dir, 'channels'), 'stable', '1001.0.0', [key.privateKey], dir);
    server = new UpdateServer({ tree: join(dir, 'channels') });
    url = await server.listen(0);
    dbusd = await startDbusDaemon();
    bus = dbusd.address;
    fake = await serveFakeSystemd(bus);
    fake.manager.state = 'running';
  }, 60_000);
  afterEach(async () => {
    for (const e of engines.splice(0)) await stopEngine(e);
  });
  afterAll(async () => {
    fake.bus.disconnect();
    dbusd.stop();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('status, check, update with the watch, reset, a failed update, no update', async () => {
    const m = updateMachine(dir, 'one', url);
    const engine = startEngine([...engineArgs(m), '--metrics-listen', '127.0.0.1:0']);
    engines.push(engine);
    const started = /version 1000\.0\.0 on USR-A, channel stable, server http:\/\/127\.0\.0\.1:\d+\/v1\/update\//;
    await until(() => started.test(engine.log()) && engine.log().includes('USR-A was already marked successful'), 10_000, 'the daemon to start and settle the boot');

    expect(await client(bus, ['-status'])).toEqual({ code: 0, stderr: '', stdout: 'LAST_CHECKED_TIME=0\nPROGRESS=0.000000\nCURRENT_OP=UPDATE_STATUS_IDLE\nNEW_VERSION=0.0.0\nNEW_SIZE=0\n' });

    // The watch prints every StatusUpdate, as JSON lines here; -update waits for the outcome.
    const watchersBefore = await statusWatchers(bus);
    const watch = spawn(process.execPath, [join(bins, 'update_engine_client.js'), '--bus', bus, '-watch_for_updates', '--format', 'json'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let watched = '';
    watch.stdout.on('data', (d: Buffer) => (watched += d));
    await until(async () => (await statusWatchers(bus)) > watchersBefore, 10_000, 'the watch to subscribe to StatusUpdate');
    const update = await client(bus, ['-update']);
    expect(update).toMatchObject({ code: 0, stdout: 'Update succeeded: 1001.0.0 is staged; a reboot is needed.\n' });
    await until(() => watched.includes('UPDATE_STATUS_UPDATED_NEED_REBOOT'), 5000, 'the watch to see the update staged');
    watch.kill('SIGTERM');
    const ops = watched.trim().split('\n').map((l) => (JSON.parse(l) as { currentOperation: string }).currentOperation);
    expect(ops.filter((op, i) => op !== ops[i - 1])).toEqual([
      'UPDATE_STATUS_CHECKING_FOR_UPDATE', 'UPDATE_STATUS_UPDATE_AVAILABLE', 'UPDATE_STATUS_DOWNLOADING', 'UPDATE_STATUS_VERIFYING', 'UPDATE_STATUS_FINALIZING', 'UPDATE_STATUS_UPDATED_NEED_REBOOT',
    ]);
    const size = (await server.releases('stable'))[0]!.size;
    const status = await client(bus, ['-status']);
    expect(status.stdout).toMatch(new RegExp(`^LAST_CHECKED_TIME=\\d{10}\\nPROGRESS=1\\.000000\\nCURRENT_OP=UPDATE_STATUS_UPDATED_NEED_REBOOT\\nNEW_VERSION=1001\\.0\\.0\\nNEW_SIZE=${size}\\n$`));
    expect(cgptFlags(m.disk, 4)).toEqual([0, 0, 0]); // staged, not finalized: locksmithd calls Finalize
    // --metrics-listen: the check, the status, the progress and the bytes downloaded.
    const metricsUrl = /serving metrics at (http:\S+)\/metrics/.exec(engine.log())![1]!;
    const metrics = await scrape(`${metricsUrl}/metrics`);
    expect(sample(metrics, 'bootsmith_update_checks_total', { result: 'update' })).toBe(1);
    expect(sample(metrics, 'bootsmith_update_status', { status: 'UPDATE_STATUS_UPDATED_NEED_REBOOT' })).toBe(1);
    expect(sample(metrics, 'bootsmith_update_status', { status: 'UPDATE_STATUS_IDLE' })).toBe(0);
    expect(sample(metrics, 'bootsmith_update_progress_ratio')).toBe(1);
    expect(sample(metrics, 'bootsmith_update_bytes_downloaded_total')).toBe(size);
    // Already staged: -update says so at once; -check_for_update only pings.
    expect(await client(bus, ['-update'])).toMatchObject({ code: 0, stdout: 'Update succeeded: 1001.0.0 is staged; a reboot is needed.\n' });
    expect(await client(bus, ['-check_for_update'])).toEqual({ code: 0, stdout: '', stderr: '' });

    // -reset_status forgets the staged update.
    const reset = await client(bus, ['-reset_status']);
    expect(reset.code).toBe(0);
    expect(reset.stderr).toMatch(/the staged update 1001\.0\.0 is forgotten/);
    expect(existsSync(join(m.root, 'var/lib/update_engine/staged.json'))).toBe(false);
    expect((await client(bus, ['-status'])).stdout).toContain('CURRENT_OP=UPDATE_STATUS_IDLE\nNEW_VERSION=0.0.0\n');
    // Reset again from IDLE: a no-op, as in the reference.
    expect((await client(bus, ['-reset_status'])).code).toBe(0);

    // A payload that fails its check: -update exits 1; the daemon reports it and goes on.
    const bad = await makeRelease(join(dir, 'channels'), 'stable', '1002.0.0', [key.privateKey], dir);
    writeFileSync(`${bad.payload.path}.sha256`, `${'0'.repeat(64)}  flatcar_production_update.gz\n`);
    const failed = await client(bus, ['-update']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/the update failed/);
    // The daemon's log comes through its own pipe, in its own time.
    await until(() => /update failed \(code 10\): .*SHA-256/.test(engine.log()), 10_000, 'the daemon to log the failure');
    expect(sample(await scrape(`${metricsUrl}/metrics`), 'bootsmith_update_errors_total', { code: '10' })).toBe(1);
    expect(server.halted.has('stable/1002.0.0')).toBe(true);
    expect(cgptFlags(m.disk, 4)).toEqual([0, 0, 0]);
    expect((await client(bus, ['-status'])).stdout).toContain('CURRENT_OP=UPDATE_STATUS_IDLE');

    // A channel with nothing in it: no update, exit 0 (as Flatcar's client).
    writeFileSync(join(m.root, 'etc/coreos/update.conf'), `GROUP=empty\nSERVER=${url}/v1/update/\n`);
    expect(await client(bus, ['-update'])).toMatchObject({ code: 0, stdout: 'No update available.\n' });
    expect(engine.child.exitCode).toBe(null);
    await stopEngine(engine);
  }, 90_000);

  test('a reboot with an update staged, before Finalize: no rollback reported, still staged after the boot, and Finalize then switches to it', async () => {
    const m = updateMachine(dir, 'power', url);
    const before = startEngine(engineArgs(m));
    engines.push(before);
    await until(() => before.log().includes('USR-A was already marked successful'), 10_000, 'the daemon to settle the boot');
    expect(await client(bus, ['-update'])).toMatchObject({ code: 0, stdout: 'Update succeeded: 1001.0.0 is staged; a reboot is needed.\n' });
    await stopEngine(before);
    // The machine goes down before locksmithd asked for Finalize, and boots USR-A again.
    writeFileSync(join(m.root, 'boot_id'), '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0\n');
    const after = startEngine(engineArgs(m));
    engines.push(after);
    await until(() => after.log().includes('1001.0.0 is still staged in USR-B') && after.log().includes('USR-A was already marked successful'), 10_000, 'the daemon to settle the boot');
    // MarkSuccessful returns once this boot's report is done (it is what locksmithd waits for).
    await callEngine(bus, 'MarkSuccessful');
    const events = (server.machines.get(m.machineId)?.events ?? []).map((e) => `${e.type}/${e.result}${e.errorCode !== undefined ? `/${e.errorCode}` : ''}`);
    expect(events).toEqual(['13/1', '14/1', '3/1']);
    expect(server.halted.has('stable/1001.0.0')).toBe(false);
    expect((await client(bus, ['-status'])).stdout).toContain('CURRENT_OP=UPDATE_STATUS_UPDATED_NEED_REBOOT\nNEW_VERSION=1001.0.0\n');
    await callEngine(bus, 'Finalize');
    expect(cgptFlags(m.disk, 4)).toEqual([2, 1, 0]);
    await stopEngine(after);
  }, 60_000);

  test('--finalize-after-staging switches the boot flags at once, and a later Finalize succeeds', async () => {
    const m = updateMachine(dir, 'compat', url);
    const engine = startEngine([...engineArgs(m), '--finalize-after-staging']);
    engines.push(engine);
    await until(() => engine.log().includes('marked successful'), 10_000, 'the daemon to settle the boot');
    expect((await client(bus, ['-update'])).code).toBe(0);
    expect(cgptFlags(m.disk, 4)).toEqual([2, 1, 0]);
    expect(cgptFlags(m.disk, 3)).toEqual([1, 0, 1]);
    await stopEngine(engine);
  }, 60_000);

  // The bus policy shipped in services/, on a dbus-daemon configured as a system bus is (default deny).
  const asRoot = process.getuid?.() === 0;
  (asRoot ? test : test.skip)('the system bus policy: root owns the name and calls everything; another user is refused', async () => {
    const busDir = mkdtempSync(join(tmpdir(), 'bootsmith-sysbus-'));
    chmodSync(busDir, 0o755); // the socket is for every user, as /run/dbus is
    const socket = join(busDir, 'system_bus_socket');
    const config = join(busDir, 'system.conf');
    writeFileSync(
      config,
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <includedir>${join(root, 'services')}</includedir>
</busconfig>
`,
    );
    const sysbus = spawn('dbus-daemon', ['--config-file', config, '--nofork', '--print-address=1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const address = await new Promise<string>((resolve, reject) => {
        let out = '';
        sysbus.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0]!.trim());
        });
        sysbus.on('exit', (code) => reject(new Error(`dbus-daemon exited ${code}`)));
      });
      const m = updateMachine(dir, 'policy', url);
      const engine = startEngine([...engineArgs(m).map((a) => (a === bus ? address : a)), '--systemd-bus', 'none']);
      engines.push(engine);
      await until(() => engine.log().includes('marked successful'), 10_000, 'the daemon on the system-like bus');
      expect((await client(address, ['-status'])).stdout).toContain('CURRENT_OP=UPDATE_STATUS_IDLE');
      // nobody (65534) is neither root nor core: every method is refused by the bus.
      const denied = await new Promise<{ code: number; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [join(bins, 'update_engine_client.js'), '--bus', address, '-status', '--wait', '0'], { uid: 65534, gid: 65534, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d));
        child.on('exit', (code) => resolve({ code: code ?? -1, stderr }));
      });
      expect(denied.code).toBe(1);
      expect(denied.stderr).toMatch(/Rejected send message|AccessDenied/);
    } finally {
      sysbus.kill();
      rmSync(busDir, { recursive: true, force: true });
    }
  }, 60_000);

  test('errors: no update_engine on the bus, a second daemon, no disk, usage', async () => {
    const none = await client(bus, ['-status', '--wait', '0']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^update_engine_client: update_engine is not on the bus \(com\.coreos\.update1\)/);

    const m = updateMachine(dir, 'errors', url);
    const first = startEngine(engineArgs(m));
    engines.push(first);
    await until(() => first.log().includes('marked successful'), 10_000, 'the first daemon');
    const second = await run('update_engine', engineArgs(m));
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/com\.coreos\.update1 is owned by another process on this bus/);
    await stopEngine(first);

    const noDisk = await run('update_engine', engineArgs({ root: m.root, disk: join(dir, 'missing.img') }));
    expect(noDisk.code).toBe(1);
    expect(noDisk.stderr).toMatch(/missing\.img/);

    const usage = await run('update_engine', ['--health-timeout', 'soon']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--health-timeout soon is not a number of seconds/);
    const two = await client(bus, ['-status', '-update']);
    expect(two.code).toBe(2);
    expect(two.stderr).toMatch(/one thing at a time/);
  }, 60_000);
});
