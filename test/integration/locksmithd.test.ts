/**
 * locksmithd end to end on a real dbus-daemon and a real etcd: a stand-in update_engine stages an
 * update, the daemon takes a slot only inside the window, finalizes and "reboots" (a stand-in
 * logind records it); started again as after a boot, it gives the slot back once healthy.
 * The clock is injected: long waits pass at once.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { rawSettings, settingsFrom } from '../../src/lock/config';
import { openBus } from '../../src/system/dbus';
import { systemdOn } from '../../src/system/systemd';
import { realClock, startDaemon } from '../../src/lock/daemon';
import type { Clock } from '../../src/lock/daemon';
import { Semaphore } from '../../src/lock/semaphore';
import { presenceKey, seenKey } from '../../src/lock/presence';
import { serveFakeSystemd, serveLogind, startDbusDaemon, serveStandIns } from '../support/dbus';
import type { DbusDaemon } from '../support/dbus';
import { EtcdCluster, haveEtcd } from '../support/etcd';

const ctlBin = join(__dirname, '../../bin/locksmithctl.js');
const haveDbus = spawnSync('dbus-daemon', ['--version']).status === 0;
const run = haveEtcd && haveDbus;
if (!run) test.skip('locksmithd tests need etcd and dbus-daemon; CI installs them', () => undefined);

/** Resolves once `check` holds (looked at every 20 ms), or rejects after `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await check()); ) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A clock that starts at `iso`; a wait passes (in a few real ms) unless woken first. */
function testClock(iso: string): Clock & { jumps: number[] } {
  let now = new Date(iso).getTime();
  const jumps: number[] = [];
  return {
    jumps,
    now: () => now,
    sleep: (ms, waker) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => {
          jumps.push(ms);
          if (ms !== Infinity) now += ms;
          resolve();
        }, 20);
        waker.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
  };
}

(run ? describe : describe.skip)('locksmithd', () => {
  let etcd: EtcdCluster;
  let daemon: DbusDaemon;
  let client: Etcd3;
  beforeAll(async () => {
    [etcd, daemon] = await Promise.all([EtcdCluster.start(), startDbusDaemon()]);
    client = new Etcd3({ hosts: etcd.endpoints });
  }, 30_000);
  afterAll(() => {
    client.close();
    etcd.stop();
    daemon.stop();
  });

  test('a staged update: slot inside the window, finalize, reboot; after the boot the slot is given back', async () => {
    const { engine, logind, bus: serviceBus } = await serveStandIns(daemon.address);
    const settings = settingsFrom(
      rawSettings([], {
        REBOOT_STRATEGY: 'etcd-lock',
        LOCKSMITHD_ENDPOINT: etcd.endpoints[0]!,
        LOCKSMITHD_GROUP: 'e2e',
        REBOOT_WINDOW_START: 'Thu 23:00',
        REBOOT_WINDOW_LENGTH: '1h',
        LOCKSMITHD_REBOOT_WINDOW_TIMEZONE: 'UTC',
      }),
    );
    const clock = testClock('2026-11-19T12:00:00Z'); // a Thursday, before the window
    engine.onFinalize = () => clock.now();
    const semaphore = new Semaphore(client, 'e2e');
    const bus = await openBus(daemon.address);
    const logs: string[] = [];
    const first = await startDaemon(settings, { bus, systemd: undefined, etcd: client, machineId: 'machine-a', clock, log: (m) => logs.push(m) });

    await new Promise((r) => setTimeout(r, 200));
    expect(logind.reboots).toEqual([]); // nothing staged yet
    engine.operation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
    engine.announce();
    expect((await first.done).name).toBe('reboot-requested');
    expect(logind.reboots).toEqual([false]);
    expect(engine.finalized.map((t) => new Date(t).toISOString())).toEqual(['2026-11-19T23:00:00.000Z']);
    expect((await semaphore.read()).value.holders).toEqual(['machine-a']);
    expect(logs).toContain('took a reboot slot');

    // The machine comes back: update_engine is idle again; systemd is still starting, so the slot
    // stays taken; once systemd reports running it is given back.
    engine.operation = 'UPDATE_STATUS_IDLE';
    const { manager, bus: systemdServiceBus } = await serveFakeSystemd(daemon.address);
    const second = await startDaemon(settings, { bus, systemd: await systemdOn(bus), etcd: client, machineId: 'machine-a', clock, log: (m) => logs.push(m) });
    await new Promise((r) => setTimeout(r, 300));
    expect((await semaphore.read()).value.holders).toEqual(['machine-a']);
    expect(logs).toContain('waiting for the machine to be healthy before giving back the reboot slot');
    manager.state = 'running';
    for (let i = 0; i < 100 && (await semaphore.read()).value.holders.length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await semaphore.read()).value.holders).toEqual([]);
    expect(logs).toContain('healthy after the reboot: gave back the reboot slot');
    await second.stop();
    systemdServiceBus.disconnect();
    bus.disconnect();
    serviceBus.disconnect();
  }, 60_000);

  test('a slot this machine already holds counts as taken (where locksmithctl lock says "holder exists")', async () => {
    const { engine, logind, bus: serviceBus } = await serveStandIns(daemon.address);
    const settings = settingsFrom(rawSettings([], { REBOOT_STRATEGY: 'etcd-lock', LOCKSMITHD_ENDPOINT: etcd.endpoints[0]!, LOCKSMITHD_GROUP: 'relock' }));
    const bus = await openBus(daemon.address);
    const logs: string[] = [];
    const d = await startDaemon(settings, { bus, systemd: undefined, etcd: client, machineId: 'machine-d', log: (m) => logs.push(m) });
    await new Promise((r) => setTimeout(r, 300)); // started, holding nothing, waiting for an update
    const ctl = (...args: string[]) => spawnSync(process.execPath, [ctlBin, '--endpoint', etcd.endpoints[0]!, '--group', 'relock', ...args], { encoding: 'utf8' });
    expect(ctl('lock', 'machine-d')).toMatchObject({ status: 0, stderr: '' });
    expect(ctl('lock', 'machine-d')).toMatchObject({ status: 1, stderr: 'Error locking: holder exists\n' });
    engine.operation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
    engine.announce();
    expect((await d.done).name).toBe('reboot-requested');
    expect(logind.reboots).toEqual([false]);
    expect((await new Semaphore(client, 'relock').read()).value.holders).toEqual(['machine-d']);
    bus.disconnect();
    serviceBus.disconnect();
  }, 30_000);

  test('opt-in reclaim: a holder silent for longer than the age loses its slot; a live one keeps it', async () => {
    const { engine, logind, bus: serviceBus } = await serveStandIns(daemon.address);
    engine.operation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
    const semaphore = new Semaphore(client, 'reclaim');
    await semaphore.setMax(2);
    await semaphore.lock('dead-machine');
    await semaphore.lock('live-machine');
    await client.put(seenKey('reclaim', 'dead-machine')).value(new Date(Date.now() - 3 * 3600_000).toISOString());
    await client.put(seenKey('reclaim', 'live-machine')).value(new Date(Date.now() - 3 * 3600_000).toISOString());
    const lease = client.lease(60);
    await lease.put(presenceKey('reclaim', 'live-machine')).value('running');
    const settings = settingsFrom(
      rawSettings([], { REBOOT_STRATEGY: 'etcd-lock', LOCKSMITHD_ENDPOINT: etcd.endpoints[0]!, LOCKSMITHD_GROUP: 'reclaim', LOCKSMITHD_RECLAIM_STALE_AFTER: '1h' }),
    );
    const bus = await openBus(daemon.address);
    const logs: string[] = [];
    const d = await startDaemon(settings, { bus, systemd: undefined, etcd: client, machineId: 'machine-c', log: (m) => logs.push(m) });
    expect((await d.done).name).toBe('reboot-requested');
    expect(logind.reboots).toEqual([false]);
    expect((await semaphore.read()).value.holders).toEqual(['live-machine', 'machine-c']);
    expect(logs.filter((l) => l.startsWith('reclaimed'))).toEqual([expect.stringMatching(/^reclaimed the reboot slot of dead-machine: silent since /)]);
    await semaphore.unlock('machine-c');
    await semaphore.unlock('live-machine');
    await lease.revoke();
    bus.disconnect();
    serviceBus.disconnect();
  }, 30_000);

  test('with every slot held it waits, and takes the slot when one is freed (watched, not polled)', async () => {
    const { engine, logind, bus: serviceBus } = await serveStandIns(daemon.address);
    engine.operation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
    const semaphore = new Semaphore(client, 'busy');
    await semaphore.lock('someone-else');
    const settings = settingsFrom(rawSettings([], { REBOOT_STRATEGY: 'etcd-lock', LOCKSMITHD_ENDPOINT: etcd.endpoints[0]!, LOCKSMITHD_GROUP: 'busy' }));
    // A clock whose waits never end unless woken: only the watch can make the daemon try again.
    let asleep!: () => void;
    const sleeping = new Promise<void>((resolve) => (asleep = resolve));
    const clock: Clock = { now: () => Date.now(), sleep: (_ms, waker) => (asleep(), realClock.sleep(Infinity, waker)) };
    const bus = await openBus(daemon.address);
    const d = await startDaemon(settings, { bus, systemd: undefined, etcd: client, machineId: 'machine-b', clock, log: () => undefined });
    await sleeping; // it found every slot held
    expect(logind.reboots).toEqual([]);
    await semaphore.unlock('someone-else');
    expect((await d.done).name).toBe('reboot-requested');
    expect((await semaphore.read()).value.holders).toEqual(['machine-b']);
    await semaphore.unlock('machine-b');
    bus.disconnect();
    serviceBus.disconnect();
  }, 30_000);

  test('logind absent from the bus: the daemon stays up, logs each failed request, keeps the slot with the flags switched, and reboots once logind appears', async () => {
    const { engine, bus: serviceBus } = await serveStandIns(daemon.address, false);
    engine.operation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
    const settings = settingsFrom(rawSettings([], { REBOOT_STRATEGY: 'etcd-lock', LOCKSMITHD_ENDPOINT: etcd.endpoints[0]!, LOCKSMITHD_GROUP: 'no-logind' }));
    const semaphore = new Semaphore(client, 'no-logind');
    const bus = await openBus(daemon.address);
    const logs: string[] = [];
    const d = await startDaemon(settings, { bus, systemd: undefined, etcd: client, machineId: 'machine-d', clock: testClock('2026-11-19T12:00:00Z'), log: (m) => logs.push(m) });
    let settled = false;
    void d.done.finally(() => (settled = true));
    const failures = () => logs.filter((l) => l.startsWith('requesting the reboot failed')).length;
    await until(() => failures() >= 3);
    expect(logs.find((l) => l.startsWith('requesting the reboot failed'))).toMatch(/org\.freedesktop\.login1|ServiceUnknown|not provided/);
    expect(settled).toBe(false);
    expect(engine.finalized).toHaveLength(1);
    expect((await semaphore.read()).value.holders).toEqual(['machine-d']);

    const logind = await serveLogind(serviceBus);
    expect((await d.done).name).toBe('reboot-requested');
    expect(logind.reboots).toEqual([false]);
    expect(engine.finalized).toHaveLength(1); // finalized once; only the reboot was asked again
    expect((await semaphore.read()).value.holders).toEqual(['machine-d']); // held through the reboot
    await semaphore.unlock('machine-d');
    bus.disconnect();
    serviceBus.disconnect();
  }, 30_000);

  test('a corrupt semaphore fails closed: no slot, no finalize, no reboot; the error names the key', async () => {
    const { engine, logind, bus: serviceBus } = await serveStandIns(daemon.address);
    engine.operation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
    const semaphore = new Semaphore(client, 'corrupt');
    const value = JSON.stringify({ total_slots: 2, holders: [7, null] });
    await client.put(semaphore.key).value(value);
    const settings = settingsFrom(rawSettings([], { REBOOT_STRATEGY: 'etcd-lock', LOCKSMITHD_ENDPOINT: etcd.endpoints[0]!, LOCKSMITHD_GROUP: 'corrupt' }));
    const bus = await openBus(daemon.address);
    const logs: string[] = [];
    const d = await startDaemon(settings, { bus, systemd: undefined, etcd: client, machineId: 'machine-e', clock: testClock('2026-11-19T12:00:00Z'), log: (m) => logs.push(m) });
    await until(() => logs.filter((l) => l.includes(`${semaphore.key} is corrupt: holder 0 is number`)).length >= 3);
    expect(engine.finalized).toEqual([]);
    expect(logind.reboots).toEqual([]);
    expect(await client.get(semaphore.key).string()).toBe(value);
    await d.stop();
    bus.disconnect();
    serviceBus.disconnect();
  }, 30_000);

  test('Finalize without an answer: the slot stays held and Finalize is asked again until the engine answers', async () => {
    const { engine, logind, bus: serviceBus } = await serveStandIns(daemon.address);
    engine.operation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
    engine.hangFinalize = true;
    const settings = settingsFrom(rawSettings([], { REBOOT_STRATEGY: 'etcd-lock', LOCKSMITHD_ENDPOINT: etcd.endpoints[0]!, LOCKSMITHD_GROUP: 'no-reply' }));
    const semaphore = new Semaphore(client, 'no-reply');
    const bus = await openBus(daemon.address);
    const logs: string[] = [];
    const d = await startDaemon(settings, { bus, systemd: undefined, etcd: client, machineId: 'machine-f', clock: testClock('2026-11-19T12:00:00Z'), log: (m) => logs.push(m), agent: { timeouts: { finalizeMs: 200 } } });
    await until(() => logs.filter((l) => l.startsWith('finalizing got no answer')).length >= 2);
    expect((await semaphore.read()).value.holders).toEqual(['machine-f']);
    expect(logind.reboots).toEqual([]);
    engine.hangFinalize = false;
    expect((await d.done).name).toBe('reboot-requested');
    expect(logind.reboots).toEqual([false]);
    expect((await semaphore.read()).value.holders).toEqual(['machine-f']);
    await semaphore.unlock('machine-f');
    bus.disconnect();
    serviceBus.disconnect();
  }, 30_000);
});
