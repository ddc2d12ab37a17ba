/**
 * Journey 4, power loss, on a real machine (test/support/lab.ts: the image, a real etcd with one
 * reboot slot, bootsmith-update-server on the host). The machine runs version N; N+1 is published.
 * QEMU is killed (SIGKILL: the power goes) twice on the way:
 *
 * 1. while the payload is being written to USR-B: the next boot is N on USR-A (USR-B was made
 *    unbootable before the first write), and update_engine downloads N+1 again;
 * 2. right after Finalize switched the boot flags, before the reboot: the test holds the only
 *    reboot slot until the machine has staged N+1 again, then lets go and kills QEMU the moment
 *    the GPT on the disk shows USR-B next. The next boot tries N+1, which is healthy: marked good,
 *    and locksmithd gives back the slot it took before the power went.
 *
 * BOOTSMITH_MACHINE_IMAGE=DIR uses an image built before (`npm run images -- machine DIR`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineVersion, releaseVersions } from '../../images/machine';
import { haveEtcd } from '../support/etcd';
import { brokenBoot as broken, Lab } from '../support/lab';
import { canBootMachines, until } from '../support/machine';
import type { Machine } from '../support/machine';

const ready = canBootMachines && haveEtcd;
if (!ready) test.skip('the power-loss journey of a real machine needs what booting one needs (see first-boot.test.ts) and etcd', () => undefined);

// A boot takes 45-80 s on a loaded machine, and more than 250 s on one loaded many times over;
// the deadlines wait on conditions, so they can allow much more.
const bootDeadline = 600_000;
const journeyDeadline = 45 * 60_000;
const from = machineVersion;
const next = releaseVersions.find((r) => !r.broken)!.version;
const escape = (v: string) => v.replace(/\./g, '\\.');
const testHolder = 'journey-4-test';

(ready ? describe : describe.skip)('journey 4: a real machine loses power during an update', () => {
  const work = mkdtempSync(join(tmpdir(), 'bootsmith-power-'));
  let lab: Lab;
  let m: Machine;

  beforeAll(async () => {
    lab = await Lab.start({ work, image: process.env['BOOTSMITH_MACHINE_IMAGE'] });
    m = lab.machine('machine-01');
    const t = Date.now();
    m.start();
    await until(() => lab.server.machines.size === 1, bootDeadline, 'the machine to check with the update server', () => lab.consoles());
    await m.current!.waitFor(/locksmithd\[\d+\]: starting: strategy etcd-lock/, bootDeadline, broken);
    lab.timings['boot to first check'] = (Date.now() - t) / 1000;
  }, journeyDeadline);

  afterAll(async () => {
    await lab?.stop();
    if (process.env.MACHINE_TIMINGS) process.stdout.write(`power-loss journey timings: ${JSON.stringify(lab?.timings)}\n`);
    if (!process.env['BOOTSMITH_KEEP_MACHINE']) rmSync(work, { recursive: true, force: true });
  });

  test(`power lost while N+1 (${next}) is written to USR-B, and again right after Finalize: a good version boots each time, and the update completes`, async () => {
    const t0 = Date.now();
    const lock = lab.lock;
    const payloadSize = lab.release(next).size;
    expect(m.current!.choice.label).toBe('USR-A');

    // 1. The payload streams into USR-B as it arrives: with 40% of it sent and update_engine not
    // yet verifying, it is being written.
    lab.publish(next);
    const writing = m.current!;
    await until(
      () => lab.payloadBytesSent > payloadSize * 0.4 && !/status UPDATE_STATUS_VERIFYING/.test(writing.console()),
      journeyDeadline,
      'the payload partly sent',
      () => lab.consoles(),
    );
    writing.kill();
    expect(await writing.waitExit(30_000)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(writing.console()).not.toMatch(/status UPDATE_STATUS_(VERIFYING|UPDATED_NEED_REBOOT)/);
    lab.timings['publish to power lost while writing'] = (Date.now() - t0) / 1000;
    expect(m.slotFlags('USR-B').priority).toBe(0);

    // 2. The slot held by the test: the machine boots N again, stages N+1 again, and waits for it.
    await lock.semaphore.lock(testHolder);
    const again = m.start();
    expect(again.choice.label).toBe('USR-A');
    await again.waitFor(new RegExp(`Welcome to .*Bootsmith Machine ${escape(from)}`), bootDeadline, broken);
    await again.waitFor(/locksmithd\[\d+\]: all reboot slots are held; waiting for one/, journeyDeadline, broken);
    lab.timings['power back to staged again, waiting for the slot'] = (Date.now() - again.started) / 1000;
    expect(again.console()).toMatch(new RegExp(`update_engine\\[\\d+\\]: ${escape(next)} is staged; a reboot is needed`));
    expect(m.slotFlags('USR-B').priority).toBe(0);
    const letGo = Date.now();
    await lock.semaphore.unlock(testHolder);
    // The GPT read every 50 ms: the reboot follows Finalize within seconds.
    await until(() => m.slotFlags('USR-B').priority === 2 || !again.running, bootDeadline, 'the boot flags switched to USR-B', () => lab.consoles(), 50);
    again.kill();
    lab.timings['slot free to flags switched'] = (Date.now() - letGo) / 1000;
    expect(await again.waitExit(30_000)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(again.console()).not.toMatch(/reboot: Restarting system/);
    expect(again.console()).toMatch(/locksmithd\[\d+\]: took a reboot slot/);
    expect(m.slotFlags('USR-B')).toEqual({ priority: 2, tries: 1, successful: false });
    await until(() => lock.holders.length === 1 && lock.holders[0] !== testHolder, 30_000, 'the machine to hold the slot', () => lab.consoles());
    const id = lock.holders[0]!;

    // 3. The next boot tries N+1 on USR-B: healthy, marked good, the slot given back.
    const t3 = Date.now();
    const trial = m.start();
    expect(trial.choice.label).toBe('USR-B');
    await trial.waitFor(new RegExp(`Welcome to .*Bootsmith Machine ${escape(next)}`), bootDeadline, broken);
    await trial.waitFor(/update_engine\[\d+\]: USR-B (was already )?marked successful/, bootDeadline, broken);
    await trial.waitFor(/locksmithd\[\d+\]: healthy after the reboot: gave back the reboot slot/, bootDeadline, broken);
    lab.timings['power back to marked good, slot given back'] = (Date.now() - t3) / 1000;
    // The version it came from, written before the power went, is there to report.
    await trial.waitFor(new RegExp(`update_engine\\[\\d+\\]: reported the update from ${escape(from)} to ${escape(next)}`), 120_000, broken);
    await until(() => lab.events().get(id)?.includes(`3/2 ${next}`) === true, 120_000, 'the update reported', () => lab.consoles());
    expect(lock.holders).toEqual([]);
    expect(Math.max(...lock.holdersSeen.map((h) => h.length))).toBe(1);
    await trial.powerOff();
    expect(m.slotFlags('USR-B')).toEqual({ priority: 2, tries: 0, successful: true });
    expect(m.slotFlags('USR-A')).toEqual({ priority: 1, tries: 0, successful: true });
    expect(m.root().read('/etc/machine-id')?.trim()).toBe(id);
    // The server saw the first download start and nothing more of it, then the whole update.
    expect(lab.events().get(id)).toEqual([`13/1 ${from}`, `13/1 ${from}`, `14/1 ${from}`, `3/1 ${from}`, `3/2 ${next}`]);
    lab.timings['journey 4'] = (Date.now() - t0) / 1000;
  }, journeyDeadline);
});
