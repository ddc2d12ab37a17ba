/**
 * The whole update journey: three simulated machines (own disk, machine id, update.conf, a real
 * dbus-daemon with update_engine and locksmithd, a stand-in logind whose Reboot runs gptprio and
 * starts the daemons again) share one real etcd (total_slots 1) and one update server on loopback.
 * A new stable version reaches every machine one reboot at a time; a broken one is rolled back by
 * the first machine that boots it and goes no further; one machine moves from stable to beta.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgptFlags, updateTools } from '../support/update';
import { haveEtcd } from '../support/etcd';
import { Journey, until } from '../support/fleet';
import type { SimMachine } from '../support/fleet';

const root = join(__dirname, '../..');
const haveDbus = spawnSync('dbus-daemon', ['--version']).status === 0;
const ready = updateTools && haveEtcd && haveDbus && existsSync(join(root, 'dist/update_engine.js'));
if (!ready) test.skip('needs bzip2, e2fsprogs, gdisk, cgpt, etcd, dbus-daemon and a build', () => undefined);

/** The Omaha events the server recorded for a machine, as "type/result[/code] version". */
const events = (j: Journey, m: SimMachine) => (j.server.machines.get(m.machineId)?.events ?? []).map((e) => `${e.type}/${e.result}${e.errorCode !== undefined ? `/${e.errorCode}` : ''} ${e.version}`);

/** The flags [priority, tries, successful] of the slot a machine runs. */
const runningFlags = (m: SimMachine) => cgptFlags(m.disk, m.boots.at(-1)!.slot === 'USR-A' ? 3 : 4);

(ready ? describe : describe.skip)('the update journey of a fleet', () => {
  let dir: string;
  let j: Journey;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-journey-'));
    j = await Journey.start(dir, { machines: 3, totalSlots: 1, checks: { first: 1, interval: 2, fuzz: 0.5 }, healthTimeoutS: 4 });
  }, 60_000);
  afterAll(async () => {
    if (process.env.JOURNEY_LOG) process.stderr.write(`${j.logs()}\n`); // the whole fleet's log, for a look
    await j?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a new stable version: every machine stages it, reboots one at a time, comes back on it, marks it good, gives back the slot', async () => {
    for (const m of j.machines) expect(m.boots).toEqual([expect.objectContaining({ slot: 'USR-A', version: '1000.0.0' })]);
    await j.publish('stable', '1001.1.0');
    // Waits on every condition asserted below, the server's record of the boot included.
    const allOn = async () =>
      j.machines.every((m) => m.version === '1001.1.0' && runningFlags(m)[2] === 1 && events(j, m).includes('3/2 1001.1.0')) && (await j.holders()).length === 0;
    await until(allOn, 90_000, 'every machine on 1001.1.0, marked good and reported, no slot held').catch((err: Error) => {
      throw new Error(`${err.message}\n${j.logs()}`);
    });
    // One reboot each, never two machines holding the lock: the semaphore never had two holders.
    expect(j.maxHolders()).toBe(1);
    expect(j.holdersSeen.filter((h) => h.length === 1).length).toBeGreaterThanOrEqual(3);
    for (const m of j.machines) {
      expect(m.boots.map((b) => `${b.slot} ${b.version}`)).toEqual(['USR-A 1000.0.0', 'USR-B 1001.1.0']);
      expect(cgptFlags(m.disk, 4)).toEqual([2, 0, 1]); // the new slot: above, no tries left, successful
      expect(cgptFlags(m.disk, 3)).toEqual([1, 0, 1]); // the old one stays bootable behind it
      // Download started and finished, staged, then the report from the new version after the reboot.
      expect(events(j, m)).toEqual(['13/1 1000.0.0', '14/1 1000.0.0', '3/1 1000.0.0', '3/2 1001.1.0']);
      const status = await m.client(['-status']);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/^LAST_CHECKED_TIME=\d+\nPROGRESS=0\.000000\nCURRENT_OP=UPDATE_STATUS_(IDLE|CHECKING_FOR_UPDATE)\nNEW_VERSION=0\.0\.0\nNEW_SIZE=0\n$/);
    }
    // The reboots came one after another: each machine's new boot before the next one's reboot.
    const order = [...j.machines].sort((a, b) => a.reboots[0]! - b.reboots[0]!);
    for (let i = 1; i < order.length; i++) expect(order[i]!.reboots[0]!).toBeGreaterThan(order[i - 1]!.boots[1]!.at);
  }, 120_000);

  test('a broken version: the first machine to boot it fails the health gate, rolls back, reports it, and the rollout halts', async () => {
    await j.publish('stable', '1001.2.0', { 'share/bootsmith/simulate': 'SYSTEM_STATE=degraded\n' });
    await until(() => j.server.halted.has('stable/1001.2.0'), 90_000, 'the server to halt stable/1001.2.0').catch((err: Error) => {
      throw new Error(`${err.message}\n${j.logs()}`);
    });
    const tried = j.machines.filter((m) => m.boots.some((b) => b.version === '1001.2.0'));
    expect(tried).toHaveLength(1);
    const first = tried[0]!;
    // Settled: every machine back on 1001.1.0 and idle (the others dropped what they had staged), no slot held.
    const settled = async () =>
      j.machines.every((m) => m.version === '1001.1.0') &&
      (await Promise.all(j.machines.map((m) => m.client(['-status'])))).every((r) => r.stdout.includes('CURRENT_OP=UPDATE_STATUS_IDLE')) &&
      (await j.holders()).length === 0;
    await until(settled, 60_000, 'every machine idle on 1001.1.0 and no slot held').catch((err: Error) => {
      throw new Error(`${err.message}\n${j.logs()}`);
    });
    // The daemons log on their own time (update_engine after its health gate, locksmithd after
    // Finalize's error): wait for what is asserted below rather than count on its order.
    const others = j.machines.filter((x) => x !== first);
    const written = () =>
      events(j, first).includes('3/0/44 1001.1.0') &&
      /this boot is a rollback: USR-A was finalized but did not boot successfully; running USR-B/.test(first.journal()) &&
      others.every((m) => /the update server no longer offers 1001\.2\.0 \(its rollout is halted or withdrawn\): not finalized/.test(m.journal()));
    await until(written, 60_000, 'the rollback reported and logged, and the others\' Finalize refused').catch((err: Error) => {
      throw new Error(`${err.message}\n${j.logs()}`);
    });
    // The first machine: 1001.2.0 on USR-A for its one try, then back to USR-B with 1001.1.0.
    expect(first.boots.slice(2).map((b) => `${b.slot} ${b.version}`)).toEqual(['USR-A 1001.2.0', 'USR-B 1001.1.0']);
    expect(cgptFlags(first.disk, 3)).toEqual([3, 0, 0]); // the broken slot: never marked, no tries: never picked again
    expect(cgptFlags(first.disk, 4)).toEqual([2, 0, 1]);
    expect(events(j, first).slice(4)).toEqual(['13/1 1001.1.0', '14/1 1001.1.0', '3/1 1001.1.0', '3/0/44 1001.1.0']);
    expect(first.journal()).toMatch(/not healthy after 4 s on the trial boot of USR-A \(system degraded\): rebooting to roll back to USR-B/);
    expect(first.journal()).toMatch(/this boot is a rollback: USR-A was finalized but did not boot successfully; running USR-B/);
    // The others staged it too, but their Finalize asked the server first and found it halted.
    for (const m of others) {
      expect(m.boots).toHaveLength(2);
      expect(m.journal()).toMatch(/the update server no longer offers 1001\.2\.0 \(its rollout is halted or withdrawn\): not finalized/);
      expect(cgptFlags(m.disk, 4)).toEqual([2, 0, 1]);
      expect(cgptFlags(m.disk, 3)[0]).toBeLessThan(2); // the staged slot was never made the one to boot
    }
    expect(j.maxHolders()).toBe(1);
    // Further checks keep the fleet where it is.
    const checks = j.server.counts.checks;
    await until(() => j.server.counts.checks >= checks + 6, 30_000, 'more update checks');
    expect(j.machines.map((m) => m.version)).toEqual(['1001.1.0', '1001.1.0', '1001.1.0']);
  }, 150_000);

  test('a machine moved from stable to beta gets the beta version on its next check; the others stay', async () => {
    await j.publish('beta', '1002.1.0');
    const mover = j.machines[1]!;
    mover.setGroup('beta');
    await until(async () => mover.version === '1002.1.0' && runningFlags(mover)[2] === 1 && (await j.holders()).length === 0, 60_000, 'the moved machine on 1002.1.0').catch((err: Error) => {
      throw new Error(`${err.message}\n${j.logs()}`);
    });
    expect(j.server.machines.get(mover.machineId)?.track).toBe('beta');
    expect(j.machines.filter((m) => m !== mover).map((m) => m.version)).toEqual(['1001.1.0', '1001.1.0']);
    const json = await mover.client(['-status', '--format', 'json']);
    expect(JSON.parse(json.stdout)).toEqual({ lastCheckedTime: expect.any(Number), progress: 0, currentOperation: expect.stringMatching(/^UPDATE_STATUS_(IDLE|CHECKING_FOR_UPDATE)$/), newVersion: '0.0.0', newSize: 0 });
    expect(j.maxHolders()).toBe(1);
  }, 90_000);
});
