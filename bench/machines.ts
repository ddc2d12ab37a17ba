/**
 * The update journey of two real machines (section 11 of `npm run bench`): the lab of the machine
 * journeys (test/support/lab.ts: the machine image booted in QEMU, a real etcd with one reboot
 * slot, bootsmith-update-server on the host). Both machines boot version N; N+1 is published; the
 * figure is the time from publishing to both machines running N+1, marked good, the slot given
 * back, with each machine's steps: staged (downloaded, verified, written to USR-B), slot taken,
 * rebooted, marked good. Needs root, QEMU and the image tools (see test/machine); the image is
 * built first (its Debian part cached), or taken from BOOTSMITH_MACHINE_IMAGE=DIR.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { releaseVersions } from '../images/machine';
import { brokenBoot, Lab, updateUnderLock } from '../test/support/lab';
import { until } from '../test/support/machine';

const next = releaseVersions.find((r) => !r.broken)!.version;
const targetMinutes = 10;

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'bootsmith-bench-machines-'));
  const s = (ms: number) => `${(ms / 1000).toFixed(0)} s`;
  console.log('\n11. the update journey of two real machines (QEMU, TCG): publish N+1 to both marked good, one reboot slot');
  const lab = await Lab.start({ work, image: process.env['BOOTSMITH_MACHINE_IMAGE'] });
  try {
    if (lab.timings['image build'] !== undefined) console.log(`   image built in ${lab.timings['image build'].toFixed(0)} s`);
    const machines = [lab.machine('machine-01'), lab.machine('machine-02')];
    const booting = Date.now();
    for (const m of machines) m.start();
    await until(() => lab.server.machines.size === 2, 20 * 60_000, 'both machines to check with the update server', () => lab.consoles());
    for (const m of machines) await m.current!.waitFor(/locksmithd\[\d+\]: starting: strategy etcd-lock/, 20 * 60_000, brokenBoot);
    console.log(`   both booted and checking for updates in ${s(Date.now() - booting)}`);
    const published = lab.publish(next);
    const updated = await Promise.all(machines.map((m) => updateUnderLock(m, { journeyMs: 30 * 60_000, bootMs: 20 * 60_000 })));
    const both = Date.now() - published;
    console.log(`   payload ${(lab.release(next).size / 1e6).toFixed(0)} MB; after publishing:   staged  slot taken  rebooted  marked good`);
    for (const [i, u] of updated.entries()) {
      const at = (t: number) => s(t - published).padStart(10);
      console.log(`   machine-0${i + 1}                          ${[u.steps.staged, u.steps.slotTaken, u.steps.rebooted, u.steps.good].map(at).join('')}`);
    }
    console.log(`   publish to both marked good: ${s(both)}`);
    console.log(`   target: publish to both marked good within ${targetMinutes} minutes on ${cpus().length} cores: ${both <= targetMinutes * 60_000 ? 'met' : 'MISSED'}`);
    await Promise.all(machines.map((m) => m.current!.powerOff()));
  } finally {
    await lab.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(`the machine update-journey benchmark failed: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
