/**
 * Processes killed (SIGKILL) while a payload is written and while the boot flags are rewritten,
 * and a disk that fills up: afterwards the active slot still boots, the table verifies (after the
 * reader settles an interrupted write), and running again converges.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { makeDisk, makeUsrImage } from '../../images/make';
import { makePayload } from '../../src/update/make-payload';
import { applyPayload } from '../../src/update/apply-payload';
import { readGpt } from '../../src/update/gpt';
import { bestSlot } from '../../src/update/slots';
import { finalizeStaged, readStaged, stage } from '../../src/update/engine';
import { fileSource } from '../../src/update/payload-source';
import { PayloadError } from '../../src/update/payload-format';
import { cgptFlags, keyPair, sgdiskVerify, slotVersion, updateTools, usrSlot } from '../support/update';
import { writeFileSync, copyFileSync } from 'node:fs';

const root = join(__dirname, '../..');
const cli = join(root, 'bin/update_engine_client.js');
const built = existsSync(join(root, 'dist/update_engine_client.js'));
const ready = updateTools && built;
if (!ready) test.skip('crash tests need bzip2, e2fsprogs, gdisk, cgpt and a build (npm test builds first)', () => undefined);

(ready ? describe : describe.skip)('killed and starved', () => {
  let dir: string;
  let disk: string;
  let payload: string;
  let pub: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-crash-'));
    const keys = keyPair();
    pub = join(dir, 'key.pub.pem');
    writeFileSync(pub, keys.publicKey);
    const installed = join(dir, 'usr-old.img');
    makeUsrImage(installed, '1000.0.0');
    disk = join(dir, 'disk.img');
    makeDisk(disk, 32, installed);
    // Dense content, so decompressing takes long enough to be killed part-way.
    const next = join(dir, 'usr-new.img');
    makeUsrImage(next, '1001.0.0', 30, 24, true);
    payload = (await makePayload(next, join(dir, 'update.gz'), [keys.privateKey])).path;
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const machine = (d: string) => ({ disk: d, active: { label: 'USR-A' } });

  /** Runs the CLI applying the payload and kills it once progress reaches `atPercent`. */
  function killDuringApply(d: string, state: string, atPercent: number): Promise<string> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [cli, '--apply-payload', payload, '--disk', d, '--active', 'USR-A', '--public-key', pub, '--state-dir', state, '--progress', 'lines']);
      let seen = 'nothing';
      const kill = () => child.kill('SIGKILL');
      child.stderr.on('data', (b: Buffer) => {
        for (const m of b.toString().matchAll(/progress (\d+)%/g)) {
          seen = `${m[1]}%`;
          if (Number(m[1]) >= atPercent) kill();
        }
      });
      child.on('close', (code, signal) => resolve(`${signal ?? `exit ${code}`} after ${seen}`));
    });
  }

  test.each([0, 10, 40, 70])('killed while writing (at %i%): USR-A still boots, the table verifies, a rerun converges', async (at) => {
    const d = join(dir, `kill-${at}.img`);
    copyFileSync(disk, d);
    const state = join(dir, `state-kill-${at}`);
    // An earlier update had been staged: the record must not outlive the slot's overwrite.
    await stage(machine(d), state, { source: fileSource(payload), publicKeys: [] });
    const how = await killDuringApply(d, state, at);
    // Killed part-way: before the whole payload was through.
    expect(Number(/^SIGKILL after (\d+)%$/.exec(how)?.[1])).toBeLessThan(100);
    expect(sgdiskVerify(d)).toContain('No problems found');
    expect(cgptFlags(d, 3)).toEqual([1, 0, 1]);
    expect(cgptFlags(d, 4)).toEqual([0, 0, 0]);
    expect(bestSlot(readGpt(d).entries)!.name).toBe('USR-A');
    expect(readStaged(state)).toBeUndefined();
    await expect(finalizeStaged(machine(d), state)).rejects.toThrow(/no verified update is staged/);
    // Run again: it converges to the staged update, which then finalizes and boots.
    const r = spawnSync(process.execPath, [cli, '--apply-payload', payload, '--disk', d, '--active', 'USR-A', '--public-key', pub, '--state-dir', state, '--progress', 'none'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^staged USR-B \(partition 4\): 31457280 of 31457280 bytes written in [\d.]+ s \([\d.]+ MiB\/s\) and verified/);
    await finalizeStaged(machine(d), state);
    const pick = bestSlot(readGpt(d).entries)!;
    expect(pick.name).toBe('USR-B');
    expect(slotVersion(d, pick, dir)).toBe('1001.0.0');
    rmSync(d);
  }, 120_000);

  test('killed while rewriting the flags, 20 times: the table is settled on one whole state, USR-A intact', () => {
    // A loop that flips USR-B between finalized and unbootable, bundled so it runs as its own process.
    const loop = join(dir, 'flag-loop.js');
    writeFileSync(
      join(dir, 'flag-loop.ts'),
      `import { finalize, markUnbootable, findSlots } from ${JSON.stringify(join(root, 'src/update/slots'))};
       import { readGpt } from ${JSON.stringify(join(root, 'src/update/gpt'))};
       const disk = process.argv[2]!;
       process.stdout.write('ready\\n');
       for (;;) {
         const slots = findSlots(readGpt(disk).entries, { label: 'USR-A' });
         finalize(disk, slots);
         markUnbootable(disk, findSlots(readGpt(disk).entries, { label: 'USR-A' }).passive);
       }`,
    );
    buildSync({ entryPoints: [join(dir, 'flag-loop.ts')], outfile: loop, bundle: true, platform: 'node', format: 'cjs', logLevel: 'warning' });
    const d = join(dir, 'flags.img');
    copyFileSync(disk, d);
    const settled: string[] = [];
    for (let i = 0; i < 20; i++) {
      const delay = 20 + ((i * 37) % 200);
      // `timeout -s KILL` kills it at a moment unrelated to its progress.
      spawnSync('timeout', ['-s', 'KILL', `${delay / 1000}`, process.execPath, loop, d]);
      const gpt = readGpt(d);
      if (gpt.repaired) settled.push(gpt.repaired);
      expect(sgdiskVerify(d)).toContain('No problems found');
      expect(cgptFlags(d, 3)).toEqual([1, 0, 1]);
      expect([JSON.stringify(cgptFlags(d, 4))]).toContainEqual(expect.stringMatching(/^\[(0,0,0|2,1,0)\]$/));
      const best = bestSlot(gpt.entries)!.name;
      expect(['USR-A', 'USR-B']).toContain(best);
    }
    // How many kills left the two copies differing is not asserted: timing decides it.
  }, 120_000);

  const asRoot = process.getuid?.() === 0;
  (asRoot ? test : test.skip)('a full disk: the write fails with ENOSPC, USR-B unbootable, USR-A untouched (tmpfs, root)', async () => {
    const mnt = join(dir, 'small');
    spawnSync('mkdir', ['-p', mnt]);
    // Room for the disk's written parts (tables, USR-A's data: its zeros stay holes) but not for USR-B's 30 MiB.
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`mount tmpfs: ${m.stderr}`);
    try {
      const d = join(mnt, 'disk.img');
      spawnSync('cp', ['--sparse=always', disk, d]);
      const err = (await applyPayload({ source: fileSource(payload), disk: d, target: usrSlot(d, 'USR-B') }).catch((e: unknown) => e)) as PayloadError;
      expect(err).toBeInstanceOf(PayloadError);
      expect(err.check).toBe('write');
      expect(err.message).toMatch(/writing operation \d+ .*: ENOSPC/);
      expect(sgdiskVerify(d)).toContain('No problems found');
      expect(cgptFlags(d, 3)).toEqual([1, 0, 1]);
      expect(cgptFlags(d, 4)).toEqual([0, 0, 0]);
      expect(slotVersion(d, usrSlot(d, 'USR-A'), dir)).toBe('1000.0.0');
    } finally {
      spawnSync('umount', [mnt]);
    }
  }, 120_000);
});
