/**
 * The GPT reader and writer against oracles: the reference image built by sgdisk with fixed GUIDs,
 * the exact CRC bytes cgpt writes for the same attribute changes (shared/reference/update-engine.md
 * 2.4), `cgpt show -i N -P|-T|-S`, and `sgdisk -v`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attr, readGpt, updateGpt } from '../../src/update/gpt';
import { bootNext, findSlots, finalize, isRollback, markSuccessful, markUnbootable, usrFromCmdline } from '../../src/update/slots';

const have = (cmd: string, arg: string) => spawnSync(cmd, [arg]).status !== null && !spawnSync(cmd, [arg]).error;
const tools = have('sgdisk', '--version') && have('cgpt', 'version');
if (!tools) test.skip('GPT tests need sgdisk (gdisk) and cgpt; CI installs them', () => undefined);

const usrType = '5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6';

/** The oracle image of the reference: 64 MiB, Flatcar's layout, fixed GUIDs. */
function oracleImage(): string {
  const img = join(mkdtempSync(join(tmpdir(), 'bootsmith-gpt-')), 'disk.img');
  spawnSync('truncate', ['-s', '64M', img]);
  const r = spawnSync('sgdisk', [
    '-o', '-U', '00000000-0000-0000-0000-000000000001',
    '-n', '1:2048:+8M', '-t', '1:C12A7328-F81F-11D2-BA4B-00A0C93EC93B', '-c', '1:EFI-SYSTEM', '-u', '1:11111111-1111-1111-1111-111111111111',
    '-n', '2:0:+1M', '-t', '2:21686148-6449-6E6F-744E-656564454649', '-c', '2:BIOS-BOOT', '-u', '2:22222222-2222-2222-2222-222222222222',
    '-n', '3:0:+16M', '-t', `3:${usrType}`, '-c', '3:USR-A', '-u', '3:7130C94A-213A-4E5A-8E26-6CCE9662F132',
    '-n', '4:0:+16M', '-t', `4:${usrType}`, '-c', '4:USR-B', '-u', '4:E03DD35C-7C2D-4A47-B3FE-27F15780A57C',
    '-n', '6:0:+4M', '-t', '6:0FC63DAF-8483-4772-8E79-3D69D8477DE4', '-c', '6:OEM', '-u', '6:66666666-6666-6666-6666-666666666666',
    '-n', '7:0:+1M', '-t', '7:C95DC21A-DF0E-4340-8D7B-26CBFA9A03E0', '-c', '7:OEM-CONFIG', '-u', '7:77777777-7777-7777-7777-777777777777',
    '-n', '9:0:0', '-t', '9:3884DD41-8582-4404-B9A8-E9B84F2DF50E', '-c', '9:ROOT', '-u', '9:99999999-9999-9999-9999-999999999999',
    img,
  ], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return img;
}

const bytes = (img: string, offset: number) => readFileSync(img).subarray(offset, offset + 4).toString('hex');
const cgpt = (img: string, n: number, field: string) => spawnSync('cgpt', ['show', '-i', String(n), `-${field}`, img], { encoding: 'utf8' }).stdout.trim();
const verify = (img: string) => spawnSync('sgdisk', ['-v', img], { encoding: 'utf8' }).stdout;

(tools ? describe : describe.skip)('GPT', () => {
  test('reads what sgdisk wrote', () => {
    const gpt = readGpt(oracleImage());
    expect(gpt.repaired).toBeUndefined();
    expect(gpt.header).toMatchObject({ diskGuid: '00000000-0000-0000-0000-000000000001', numEntries: 128, entrySize: 128, alternateLba: 131071n });
    const used = gpt.entries.filter((e) => e.firstLba > 0n);
    expect(used.map((e) => [e.number, e.name, e.firstLba, e.lastLba])).toEqual([
      [1, 'EFI-SYSTEM', 2048n, 18431n],
      [2, 'BIOS-BOOT', 18432n, 20479n],
      [3, 'USR-A', 20480n, 53247n],
      [4, 'USR-B', 53248n, 86015n],
      [6, 'OEM', 86016n, 94207n],
      [7, 'OEM-CONFIG', 94208n, 96255n],
      [9, 'ROOT', 96256n, 131038n],
    ]);
    expect(used[2]).toMatchObject({ typeGuid: usrType, uniqueGuid: '7130C94A-213A-4E5A-8E26-6CCE9662F132', attributes: 0n });
  });

  test('attribute changes write the same bytes and CRCs as cgpt', () => {
    const img = oracleImage();
    expect([bytes(img, 528), bytes(img, 600)]).toEqual(['f7dd0e74', '79de36bb']);
    updateGpt(img, (e) => void (e[2]!.attributes = attr.with(e[2]!.attributes, { priority: 1, tries: 0, successful: true })));
    expect([bytes(img, 528), bytes(img, 600)]).toEqual(['123b4665', '93ab05b3']);
    expect(bytes(img, 67108368)).toBe('d7f74aeb'); // the backup header's CRC
    updateGpt(img, (e) => void (e[3]!.attributes = attr.with(e[3]!.attributes, { priority: 2, tries: 1, successful: false })));
    expect([bytes(img, 528), bytes(img, 600)]).toEqual(['18c8961a', 'fe336df4']);
    expect([cgpt(img, 3, 'P'), cgpt(img, 3, 'T'), cgpt(img, 3, 'S'), cgpt(img, 4, 'P'), cgpt(img, 4, 'T'), cgpt(img, 4, 'S')]).toEqual(['1', '0', '1', '2', '1', '0']);
    expect(verify(img)).toMatch(/No problems found/);
  });

  test('a bad primary is repaired from the backup', () => {
    const img = oracleImage();
    const fd = openSync(img, 'r+');
    writeSync(fd, Buffer.alloc(512), 0, 512, 512); // wipe the primary header
    closeSync(fd);
    const gpt = readGpt(img);
    expect(gpt.repaired).toBe('primary table restored from the backup (no GPT signature at LBA 1)');
    expect(gpt.entries[2]!.name).toBe('USR-A');
    expect(verify(img)).toMatch(/No problems found/);
    expect(readGpt(img).repaired).toBeUndefined();
  });

  test('a write cut short between the copies (backup new, primary old) is settled on the primary', () => {
    const img = oracleImage();
    const usrB = (gpt: ReturnType<typeof readGpt>) => gpt.entries[3]!.attributes;
    // What a kill after the backup's fsync leaves: a valid backup with new flags, the old primary.
    const before = readFileSync(img).subarray(512, 512 * 34);
    updateGpt(img, (e) => (e[3]!.attributes = attr.with(0n, { priority: 2, tries: 1 })));
    const fd = openSync(img, 'r+');
    writeSync(fd, before, 0, before.length, 512);
    closeSync(fd);
    expect(verify(img)).toMatch(/Identified 1 problems/); // sgdisk checks the backup array against the primary's CRC
    const gpt = readGpt(img);
    expect(gpt.repaired).toBe('backup table differed from the primary (an interrupted write); restored from the primary');
    expect(usrB(gpt)).toBe(0n);
    expect(verify(img)).toMatch(/No problems found/);
    expect(cgpt(img, 4, 'P')).toBe('0');
  });

  test('read without repair: the same table, the disk not written (a look at a disk a running guest writes)', () => {
    const img = oracleImage();
    // The state halfway through the guest's write: the backup new, the primary old.
    const before = readFileSync(img).subarray(512, 512 * 34);
    updateGpt(img, (e) => (e[3]!.attributes = attr.with(0n, { priority: 2, tries: 1 })));
    const fd = openSync(img, 'r+');
    writeSync(fd, before, 0, before.length, 512);
    closeSync(fd);
    const disk = readFileSync(img);
    const gpt = readGpt(img, { repair: false });
    expect(gpt.repaired).toBe('backup table differed from the primary (an interrupted write); restored from the primary');
    expect(gpt.entries[3]!.attributes).toBe(0n);
    expect(readFileSync(img).equals(disk)).toBe(true);
    expect(verify(img)).toMatch(/Identified 1 problems/);
  });

  test('both copies bad is an error that says what is wrong with each', () => {
    const img = oracleImage();
    const fd = openSync(img, 'r+');
    writeSync(fd, Buffer.from([1, 2, 3, 4]), 0, 4, 1024 + 2 * 128 + 48); // an entry of the primary array
    writeSync(fd, Buffer.alloc(512), 0, 512, 67108864 - 512); // the backup header
    closeSync(fd);
    expect(() => readGpt(img)).toThrow(/has no valid GPT: entry array of the header at LBA 1 fails its CRC32; no GPT signature at LBA 131071/);
  });

  test('attribute fields stay in range', () => {
    expect(() => attr.with(0n, { priority: 16 })).toThrow('priority must be 0 to 15, not 16');
    const a = attr.with(0n, { priority: 15, tries: 15, successful: true });
    expect([attr.priority(a), attr.tries(a), attr.successful(a), a.toString(16)]).toEqual([15, 15, true, '1ff000000000000']);
  });
});

(tools ? describe : describe.skip)('gptprio', () => {
  /** Sets USR-A (3) and USR-B (4) attributes from cgpt's 16-bit view (bits 48-63). */
  const set = (img: string, a: number, b: number) =>
    updateGpt(img, (e) => {
      e[2]!.attributes = BigInt(a) << 48n;
      e[3]!.attributes = BigInt(b) << 48n;
    });
  const view = (img: string) => readGpt(img).entries.slice(2, 4).map((e) => Number(e.attributes >> 48n).toString(16));

  test('the update: B staged with one try is picked, its try used up; then marked good it boots without a write', () => {
    const img = oracleImage();
    set(img, 0x101, 0x012);
    expect(bootNext(img)).toEqual({ partition: 4, uniqueGuid: 'E03DD35C-7C2D-4A47-B3FE-27F15780A57C', label: 'USR-B', decremented: true });
    expect(view(img)).toEqual(['101', '2']);
    expect(verify(img)).toMatch(/No problems found/);
    expect([cgpt(img, 4, 'P'), cgpt(img, 4, 'T'), cgpt(img, 4, 'S')]).toEqual(['2', '0', '0']);
    updateGpt(img, (e) => void (e[3]!.attributes = attr.with(e[3]!.attributes, { successful: true })));
    expect(bootNext(img)).toMatchObject({ partition: 4, decremented: false });
    expect(view(img)).toEqual(['101', '102']);
  });

  test('B never marked good: the next boot rolls back to A', () => {
    const img = oracleImage();
    set(img, 0x101, 0x002);
    expect(bootNext(img)).toMatchObject({ partition: 3, label: 'USR-A', decremented: false });
  });

  test('ties go to the lower partition; priority 0 and exhausted slots never boot', () => {
    const img = oracleImage();
    set(img, 0x102, 0x102);
    expect(bootNext(img).partition).toBe(3);
    set(img, 0x100, 0x100);
    expect(() => bootNext(img)).toThrow(/no USR partition can boot/);
    set(img, 0x001, 0x002);
    expect(() => bootNext(img)).toThrow(/no USR partition can boot/);
  });
});

(tools ? describe : describe.skip)('slots', () => {
  const slotsOf = (img: string, label: string) => findSlots(readGpt(img).entries, { label });
  const fields = (img: string, n: number) => [cgpt(img, n, 'P'), cgpt(img, n, 'T'), cgpt(img, n, 'S')].join(' ');

  test('the running slot from usr= on the kernel command line', () => {
    const img = oracleImage();
    const cmdline = 'BOOT_IMAGE=/flatcar/vmlinuz-a mount.usr=PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132 rootflags=rw';
    const slots = findSlots(readGpt(img).entries, { partUuid: usrFromCmdline(cmdline)! });
    expect([slots.active.name, slots.passive.name]).toEqual(['USR-A', 'USR-B']);
    expect(() => findSlots(readGpt(img).entries, { partUuid: '00000000-0000-0000-0000-000000000009' })).toThrow(/neither USR partition is the running one/);
  });

  test('finalize, boot, mark good: as cgpt sees it', () => {
    const img = oracleImage();
    updateGpt(img, (e) => void (e[2]!.attributes = attr.with(0n, { priority: 1, successful: true })));
    finalize(img, slotsOf(img, 'USR-A'));
    expect([fields(img, 3), fields(img, 4)]).toEqual(['1 0 1', '2 1 0']);
    expect(bootNext(img).label).toBe('USR-B');
    const afterBoot = slotsOf(img, 'USR-B');
    expect(isRollback(afterBoot)).toBe(false);
    markSuccessful(img, afterBoot.active);
    expect([fields(img, 3), fields(img, 4)]).toEqual(['1 0 1', '2 0 1']);
    expect(verify(img)).toMatch(/No problems found/);
  });

  test('a failed boot of the new slot is seen as a rollback; a bad payload slot is made unbootable', () => {
    const img = oracleImage();
    updateGpt(img, (e) => void (e[2]!.attributes = attr.with(0n, { priority: 1, successful: true })));
    finalize(img, slotsOf(img, 'USR-A'));
    bootNext(img); // B tried once and never marked good ...
    expect(bootNext(img).label).toBe('USR-A'); // ... so the next boot falls back to A
    expect(isRollback(slotsOf(img, 'USR-A'))).toBe(true);
    markUnbootable(img, slotsOf(img, 'USR-A').passive);
    expect(fields(img, 4)).toBe('0 0 0');
    expect(isRollback(slotsOf(img, 'USR-A'))).toBe(false);
  });
});
