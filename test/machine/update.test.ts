/**
 * The update journeys on real machines (test/support/lab.ts): VMs of the image of
 * images/machine.ts share one real etcd and one bootsmith-update-server on the host, which they
 * reach through guestfwd (10.0.2.100); update_engine checks every 10 s, locksmithd takes a slot of
 * the etcd semaphore (total_slots 1) before it reboots.
 *
 * 2. Update under the lock: once machine-01 and machine-02 run version N, N+1 is published: each
 *    downloads, verifies and stages it; locksmithd takes the slot, update_engine finalizes, logind
 *    reboots (QEMU exits: -no-reboot), the harness's boot selection picks USR-B, the machine comes
 *    up on N+1, passes the health gate, marks USR-B good and gives the slot back; then the other.
 * 3. Rollback: a broken N+2 is rolled back by the first machine to boot it; the rollout halts.

 * Journey 4 (power loss) is in power-loss.test.ts.
 *
 * BOOTSMITH_MACHINE_IMAGE=DIR uses an image built before (`npm run images -- machine DIR`) instead
 * of building one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { releaseVersions } from '../../images/machine';
import { haveEtcd } from '../support/etcd';
import { brokenBoot as broken, Lab, updateUnderLock } from '../support/lab';
import { canBootMachines, until } from '../support/machine';
import type { Machine } from '../support/machine';

const ready = canBootMachines && haveEtcd;
if (!ready) test.skip('the update journeys of real machines need what booting one needs (see first-boot.test.ts) and etcd', () => undefined);

// A boot takes 45-80 s on a loaded machine (two run at once), and more than 250 s on one loaded
// many times over; the deadlines wait on conditions, so they can allow much more.
const bootDeadline = 600_000;
const journeyDeadline = 45 * 60_000;
const from = '2000.0.0';
const next = releaseVersions.find((r) => !r.broken)!.version;
const bad = releaseVersions.find((r) => r.broken)!.version;
const escape = (v: string) => v.replace(/\./g, '\\.');

(ready ? describe : describe.skip)('the update journeys of real machines under the etcd reboot lock', () => {
  const work = mkdtempSync(join(tmpdir(), 'bootsmith-update-'));
  let lab: Lab;
  let published = 0;
  const machines: Machine[] = [];

  beforeAll(async () => {
    lab = await Lab.start({ work, image: process.env['BOOTSMITH_MACHINE_IMAGE'] });
    machines.push(lab.machine('machine-01'), lab.machine('machine-02'));
    const t = Date.now();
    for (const m of lab.machines) m.start();
    // All on N and checking with the server, locksmithd waiting on etcd-lock: then N+1 is published.
    await until(() => lab.server.machines.size === 2, bootDeadline, 'the machines to check with the update server', () => lab.consoles());
    for (const m of lab.machines) await m.current!.waitFor(/locksmithd\[\d+\]: starting: strategy etcd-lock/, bootDeadline, broken);
    lab.timings['boot to first check (both at once)'] = (Date.now() - t) / 1000;
  }, journeyDeadline);

  afterAll(async () => {
    await lab?.stop();
    if (process.env.MACHINE_TIMINGS) process.stdout.write(`update journey timings: ${JSON.stringify(lab?.timings)}\n`);
    if (!process.env['BOOTSMITH_KEEP_MACHINE']) rmSync(work, { recursive: true, force: true });
  });

  test(`journey 2: N+1 (${next}) reaches both machines, one reboot at a time`, async () => {
    const t0 = Date.now();
    expect(machines.map((m) => m.current!.choice.label)).toEqual(['USR-A', 'USR-A']);
    published = lab.publish(next);
    // Each machine: its first boot ends in the update's reboot; the harness boots it again.
    const updated = await Promise.all(
      machines.map(async (m) => {
        const u = await updateUnderLock(m, { journeyMs: journeyDeadline, bootMs: bootDeadline });
        for (const [step, at] of Object.entries(u.steps)) lab.timings[`journey 2: ${m.options.dir.slice(-10)} ${step} (after publish)`] = (at - published) / 1000;
        return u;
      }),
    );
    const reboots = updated.map((u) => u.after);
    lab.timings['journey 2: publish to both marked good'] = (Date.now() - published) / 1000;
    await until(() => [...lab.events().values()].filter((e) => e.includes(`3/2 ${next}`)).length === 2, 120_000, 'both machines to report from N+1', () => lab.consoles());
    expect(reboots.map((b) => b.choice.label)).toEqual(['USR-B', 'USR-B']);
    for (const b of reboots) expect(b.console()).toMatch(new RegExp(`Welcome to .*Bootsmith Machine ${escape(next)}`));

    // The semaphore: never two holders; each machine held it once; nobody holds it now.
    const seen = lab.lock.holdersSeen;
    expect(Math.max(...seen.map((h) => h.length))).toBe(1);
    expect(new Set(seen.flat()).size).toBe(2);
    expect(lab.lock.holders).toEqual([]);

    // Power off both, then read the GPT and the machine ids.
    await Promise.all(machines.map((m) => m.current!.powerOff()));
    const byId = lab.events();
    for (const m of machines) {
      expect(m.slotFlags('USR-B')).toEqual({ priority: 2, tries: 0, successful: true });
      expect(m.slotFlags('USR-A')).toEqual({ priority: 1, tries: 0, successful: true });
      const id = m.root().read('/etc/machine-id')?.trim() ?? '';
      expect(byId.get(id)).toEqual([`13/1 ${from}`, `14/1 ${from}`, `3/1 ${from}`, `3/2 ${next}`]);
    }
    lab.timings['journey 2'] = (Date.now() - t0) / 1000;
  }, journeyDeadline);

  test(`journey 3: a broken N+2 (${bad}): the first machine to boot it fails the health gate, rolls back to N+1, reports it; the rollout halts`, async () => {
    const t0 = Date.now();
    // Both boot again on N+1 (USR-B); the harness boots again whatever reboots.
    let stopping = false;
    const supervise = async (m: Machine) => {
      for (;;) {
        await m.current!.exited;
        if (stopping || !/reboot: Restarting system/.test(m.current!.console())) return;
        m.start();
      }
    };
    for (const m of machines) m.start();
    const supervised = machines.map(supervise);
    for (const m of machines) await m.current!.waitFor(/update_engine\[\d+\]: USR-B was already marked successful/, bootDeadline, broken);
    const holdersBefore = lab.lock.holdersSeen.length;
    published = lab.publish(bad);
    await until(() => lab.server.halted.has(`stable/${bad}`), journeyDeadline, `the server to halt stable/${bad}`, () => lab.consoles());
    lab.timings['journey 3: publish N+2 to halted'] = (Date.now() - published) / 1000;
    const tried = machines.filter((m) => m.boots.some((b) => b.choice.label === 'USR-A' && b.number > 2));
    expect(tried).toHaveLength(1);
    const first = tried[0]!;
    const other = machines.find((m) => m !== first)!;
    // The first: N+2 on USR-A for its one try, degraded, rebooted back to USR-B, which says so.
    await until(() => /this boot is a rollback: USR-A was finalized but did not boot successfully; running USR-B/.test(first.current!.console()), bootDeadline, 'the rollback boot', () => lab.consoles());
    await first.current!.waitFor(/locksmithd\[\d+\]: healthy after the reboot: gave back the reboot slot/, bootDeadline, broken);
    const released = Date.now();
    const trial = first.boots.find((b) => b.choice.label === 'USR-A' && b.number > 2)!;
    expect(trial.console()).toMatch(new RegExp(`Welcome to .*Bootsmith Machine ${escape(bad)}`));
    expect(trial.console()).toMatch(/not healthy after 120 s on the trial boot of USR-A \(system degraded\): rebooting to roll back to USR-B/);
    expect(first.current!.choice.label).toBe('USR-B');
    // The other staged it too and waited for the slot; once it is free (the etcd watch wakes
    // locksmithd), its Finalize finds the rollout halted: no reboot.
    await other.current!.waitFor(new RegExp(`no longer offers ${escape(bad)}.*not finalized`), bootDeadline, broken);
    lab.timings['journey 3: slot given back to the other refused'] = (Date.now() - released) / 1000;
    expect(other.boots).toHaveLength(3);
    await until(() => lab.lock.holders.length === 0, 120_000, 'the slot given back', () => lab.consoles());
    expect(Math.max(...lab.lock.holdersSeen.slice(holdersBefore).map((h) => h.length))).toBe(1);

    stopping = true;
    await Promise.all(machines.map((m) => m.current!.powerOff()));
    await Promise.all(supervised);
    for (const m of machines) expect(m.slotFlags('USR-B')).toEqual({ priority: 2, tries: 0, successful: true });
    expect(first.slotFlags('USR-A')).toMatchObject({ tries: 0, successful: false });
    expect(other.slotFlags('USR-A').priority).toBeLessThan(2);
    const id = first.root().read('/etc/machine-id')?.trim() ?? '';
    expect(lab.events().get(id)?.slice(4)).toEqual([`13/1 ${next}`, `14/1 ${next}`, `3/1 ${next}`, `3/0/44 ${next}`]);
    lab.timings['journey 3'] = (Date.now() - t0) / 1000;
  }, journeyDeadline);
});
