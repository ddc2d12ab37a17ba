/**
 * The GPT on a block device, as on a real machine (/dev/vda): a block device's st_size is 0, so
 * its size comes from sysfs. The machine journey found update_engine computing the last LBA as -1
 * there, and Node writing the "backup" table at a negative position, which it takes as the
 * current one: the primary table was overwritten. Here: the size from a fake sysfs, and the table
 * read and changed through a loop device (as root) with sgdisk -v content after.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDisk } from '../../images/make';
import { attr, blockDeviceBytes, readGpt, updateGpt } from '../../src/update/gpt';

const makedev = (major: bigint, minor: bigint) => ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);

describe('a block device\'s size', () => {
  test('is read from /sys/dev/block/MAJOR:MINOR/size, in 512-byte sectors', () => {
    const sys = mkdtempSync(join(tmpdir(), 'bootsmith-sysfs-'));
    try {
      for (const [dev, sectors] of [['254:0', '6557696'], ['259:300', '2048'], ['4100:70000', '64']] as const) {
        mkdirSync(join(sys, 'dev/block', dev), { recursive: true });
        writeFileSync(join(sys, 'dev/block', dev, 'size'), `${sectors}\n`);
      }
      expect(blockDeviceBytes(makedev(254n, 0n), sys)).toBe(6557696 * 512);
      expect(blockDeviceBytes(makedev(259n, 300n), sys)).toBe(2048 * 512);
      expect(blockDeviceBytes(makedev(4100n, 70000n), sys)).toBe(64 * 512);
      writeFileSync(join(sys, 'dev/block/254:0/size'), 'garbage\n');
      expect(() => blockDeviceBytes(makedev(254n, 0n), sys)).toThrow(/no sector count/);
    } finally {
      rmSync(sys, { recursive: true, force: true });
    }
  });
});

const canLoop = process.getuid?.() === 0 && spawnSync('losetup', ['--version']).status === 0 && spawnSync('sgdisk', ['--version']).status === 0;

(canLoop ? describe : describe.skip)('the GPT through a loop device (as root)', () => {
  let dir: string;
  let loop: string | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-gpt-loop-'));
    makeDisk(join(dir, 'disk.img'));
    const r = spawnSync('losetup', ['--find', '--show', join(dir, 'disk.img')], { encoding: 'utf8' });
    if (r.status === 0) loop = r.stdout.trim();
  });
  afterAll(() => {
    if (loop) spawnSync('losetup', ['-d', loop]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('is read with no repair, changed, and both copies stay valid at the disk\'s end', () => {
    if (!loop) return; // no free loop device here
    const before = readGpt(loop);
    expect(before.repaired).toBeUndefined();
    expect(before.header.alternateLba).toBe(BigInt(statSync(join(dir, 'disk.img')).size / 512 - 1)); // the disk's end, not -1
    updateGpt(loop, (entries) => {
      const b = entries.find((e) => e.name === 'USR-B')!;
      b.attributes = attr.with(b.attributes, { priority: 2, tries: 1, successful: false });
    });
    spawnSync('sync');
    const v = spawnSync('sgdisk', ['-v', join(dir, 'disk.img')], { encoding: 'utf8' });
    expect(v.stdout).toMatch(/No problems found/);
    const after = readGpt(join(dir, 'disk.img'));
    expect(after.repaired).toBeUndefined();
    const b = after.entries.find((e) => e.name === 'USR-B')!;
    expect([attr.priority(b.attributes), attr.tries(b.attributes), attr.successful(b.attributes)]).toEqual([2, 1, false]);
  });
});
