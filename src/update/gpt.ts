/**
 * GUID partition tables on a disk or disk image, without external tools: both headers and entry
 * arrays with their CRC32s, names, type and unique GUIDs, and the ChromeOS/CoreOS attribute bits
 * (priority 48-51, tries 52-55, successful 56). Every write updates both copies and all CRCs,
 * backup first, then primary, with an fsync after each. A bad primary with a good backup is
 * repaired from the backup, a backup that differs from a good primary (a write cut short between
 * the copies) from the primary; both bad is an error that names what is wrong. 512-byte sectors.
 */
import { closeSync, fsyncSync, fstatSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';

export const sectorSize = 512;
const headerSize = 92;
const signature = 'EFI PART';

export interface GptHeader {
  myLba: bigint;
  alternateLba: bigint;
  firstUsableLba: bigint;
  lastUsableLba: bigint;
  diskGuid: string;
  entriesLba: bigint;
  numEntries: number;
  entrySize: number;
}

export interface GptEntry {
  /** 1-based partition number. */
  number: number;
  typeGuid: string;
  uniqueGuid: string;
  firstLba: bigint;
  lastLba: bigint;
  attributes: bigint;
  name: string;
}

export interface Gpt {
  header: GptHeader;
  /** Every slot of the entry array, used or not (an unused slot has the zero type GUID). */
  entries: GptEntry[];
  /** What was wrong and mended when the table was read (a bad primary restored from the backup). */
  repaired: string | undefined;
}

export const zeroGuid = '00000000-0000-0000-0000-000000000000';

/** GPT's mixed-endian GUID bytes to the usual text form (upper case). */
export function guidToString(b: Buffer): string {
  const hex = (buf: Buffer) => buf.toString('hex');
  const le = (start: number, len: number) => hex(Buffer.from(b.subarray(start, start + len)).reverse());
  return `${le(0, 4)}-${le(4, 2)}-${le(6, 2)}-${hex(b.subarray(8, 10))}-${hex(b.subarray(10, 16))}`.toUpperCase();
}

export function guidToBytes(guid: string): Buffer {
  const h = guid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new Error(`invalid GUID ${guid}`);
  const b = Buffer.from(h, 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}

// ChromeOS attribute bits.
export const attr = {
  priority: (a: bigint) => Number((a >> 48n) & 0xfn),
  tries: (a: bigint) => Number((a >> 52n) & 0xfn),
  successful: (a: bigint) => Number((a >> 56n) & 1n) === 1,
  /** `a` with priority, tries and successful set (each left as it is when undefined). */
  with(a: bigint, f: { priority?: number; tries?: number; successful?: boolean }): bigint {
    const check = (v: number, name: string) => {
      if (!Number.isInteger(v) || v < 0 || v > 15) throw new Error(`${name} must be 0 to 15, not ${v}`);
      return BigInt(v);
    };
    let out = a;
    if (f.priority !== undefined) out = (out & ~(0xfn << 48n)) | (check(f.priority, 'priority') << 48n);
    if (f.tries !== undefined) out = (out & ~(0xfn << 52n)) | (check(f.tries, 'tries') << 52n);
    if (f.successful !== undefined) out = (out & ~(1n << 56n)) | ((f.successful ? 1n : 0n) << 56n);
    return out;
  },
};

function readAt(fd: number, offset: bigint, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, Number(offset) + done);
    if (n === 0) throw new Error(`the disk ends before byte ${Number(offset) + length}`);
    done += n;
  }
  return buf;
}

function writeAt(fd: number, offset: bigint, data: Buffer): void {
  // Node takes a negative position as "the current one": a bad offset would write over the start.
  if (offset < 0n) throw new Error(`refusing to write at offset ${offset}`);
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, Number(offset) + done);
}

/** A header at `lba` with its entry array, or why it is not a valid one. */
function readCopy(fd: number, lba: bigint): { header: GptHeader; entries: Buffer } | string {
  const raw = readAt(fd, lba * BigInt(sectorSize), sectorSize);
  if (raw.toString('latin1', 0, 8) !== signature) return `no GPT signature at LBA ${lba}`;
  const size = raw.readUInt32LE(12);
  if (size < headerSize || size > sectorSize) return `header at LBA ${lba} has a bad size ${size}`;
  const stored = raw.readUInt32LE(16);
  const copy = Buffer.from(raw.subarray(0, size));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== stored) return `header at LBA ${lba} fails its CRC32`;
  const header: GptHeader = {
    myLba: raw.readBigUInt64LE(24),
    alternateLba: raw.readBigUInt64LE(32),
    firstUsableLba: raw.readBigUInt64LE(40),
    lastUsableLba: raw.readBigUInt64LE(48),
    diskGuid: guidToString(raw.subarray(56, 72)),
    entriesLba: raw.readBigUInt64LE(72),
    numEntries: raw.readUInt32LE(80),
    entrySize: raw.readUInt32LE(84),
  };
  if (header.myLba !== lba) return `header at LBA ${lba} says it is at LBA ${header.myLba}`;
  if (header.entrySize < 128 || header.numEntries > 1024) return `header at LBA ${lba} has an implausible entry array`;
  const entries = readAt(fd, header.entriesLba * BigInt(sectorSize), header.numEntries * header.entrySize);
  if (crc32(entries) !== raw.readUInt32LE(88)) return `entry array of the header at LBA ${lba} fails its CRC32`;
  return { header, entries };
}

function parseEntries(raw: Buffer, header: GptHeader): GptEntry[] {
  const out: GptEntry[] = [];
  for (let i = 0; i < header.numEntries; i++) {
    const e = raw.subarray(i * header.entrySize, (i + 1) * header.entrySize);
    out.push({
      number: i + 1,
      typeGuid: guidToString(e.subarray(0, 16)),
      uniqueGuid: guidToString(e.subarray(16, 32)),
      firstLba: e.readBigUInt64LE(32),
      lastLba: e.readBigUInt64LE(40),
      attributes: e.readBigUInt64LE(48),
      name: e.toString('utf16le', 56, 128).replace(/\u0000.*$/s, ''),
    });
  }
  return out;
}

function serializeEntries(entries: GptEntry[], header: GptHeader): Buffer {
  const raw = Buffer.alloc(header.numEntries * header.entrySize);
  for (const e of entries) {
    const at = (e.number - 1) * header.entrySize;
    if (e.typeGuid === zeroGuid) continue;
    guidToBytes(e.typeGuid).copy(raw, at);
    guidToBytes(e.uniqueGuid).copy(raw, at + 16);
    raw.writeBigUInt64LE(e.firstLba, at + 32);
    raw.writeBigUInt64LE(e.lastLba, at + 40);
    raw.writeBigUInt64LE(e.attributes, at + 48);
    raw.write(e.name.slice(0, 36), at + 56, 'utf16le');
  }
  return raw;
}

function serializeHeader(h: GptHeader, myLba: bigint, alternateLba: bigint, entriesLba: bigint, entriesCrc: number): Buffer {
  const raw = Buffer.alloc(sectorSize);
  raw.write(signature, 0, 'latin1');
  raw.writeUInt32LE(0x00010000, 8);
  raw.writeUInt32LE(headerSize, 12);
  raw.writeBigUInt64LE(myLba, 24);
  raw.writeBigUInt64LE(alternateLba, 32);
  raw.writeBigUInt64LE(h.firstUsableLba, 40);
  raw.writeBigUInt64LE(h.lastUsableLba, 48);
  guidToBytes(h.diskGuid).copy(raw, 56);
  raw.writeBigUInt64LE(entriesLba, 72);
  raw.writeUInt32LE(h.numEntries, 80);
  raw.writeUInt32LE(h.entrySize, 84);
  raw.writeUInt32LE(entriesCrc, 88);
  raw.writeUInt32LE(crc32(raw.subarray(0, headerSize)), 16);
  return raw;
}

/**
 * The size in bytes of the disk open at `fd`: a file's length; for a block device, whose st_size
 * is 0, the kernel's count of 512-byte sectors (blockDeviceBytes).
 */
export function diskBytes(fd: number): number {
  const st = fstatSync(fd, { bigint: true });
  return st.isBlockDevice() ? blockDeviceBytes(st.rdev) : Number(st.size);
}

/** A block device's size from sysfs (`/sys/dev/block/MAJOR:MINOR/size`, in 512-byte sectors whatever the device's block size). */
export function blockDeviceBytes(rdev: bigint, sysfs = '/sys'): number {
  // Linux's dev_t: minor bits 0-7 and 20-31, major bits 8-19 and 32-43.
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n);
  const file = `${sysfs}/dev/block/${major}:${minor}/size`;
  const text = readFileSync(file, 'utf8').trim();
  if (!/^\d+$/.test(text)) throw new Error(`${file} holds no sector count: ${JSON.stringify(text.slice(0, 40))}`);
  return Number(text) * 512;
}

/** The disk's last LBA; a disk too small for a GPT (or whose size is unknown) is an error, never written. */
function lastLbaOf(fd: number): bigint {
  const last = BigInt(Math.floor(diskBytes(fd) / sectorSize)) - 1n;
  if (last < 67n) throw new Error(`the disk holds ${last + 1n} sectors, too few for a GPT`);
  return last;
}

/** Writes both copies: backup entries and header, sync, then primary, sync. */
function writeBoth(fd: number, header: GptHeader, entries: GptEntry[]): void {
  const raw = serializeEntries(entries, header);
  const crc = crc32(raw);
  const lastLba = lastLbaOf(fd);
  const entrySectors = BigInt(Math.ceil(raw.length / sectorSize));
  const backupEntries = lastLba - entrySectors;
  writeAt(fd, backupEntries * BigInt(sectorSize), raw);
  writeAt(fd, lastLba * BigInt(sectorSize), serializeHeader(header, lastLba, 1n, backupEntries, crc));
  fsyncSync(fd);
  writeAt(fd, 2n * BigInt(sectorSize), raw);
  writeAt(fd, BigInt(sectorSize), serializeHeader(header, 1n, lastLba, 2n, crc));
  fsyncSync(fd);
}

/**
 * Reads the table of the disk at `path`, repairing a bad primary from a good backup. With
 * `repair: false` the disk is opened read-only and never written (the table is read as the repair
 * would leave it): for a look at a disk another system may be writing, such as a running VM's.
 */
export function readGpt(path: string, options: { repair?: boolean } = {}): Gpt {
  const repair = options.repair ?? true;
  const fd = openSync(path, repair ? 'r+' : 'r');
  try {
    const lastLba = lastLbaOf(fd);
    const primary = readCopy(fd, 1n);
    const backupLba = typeof primary === 'string' ? lastLba : primary.header.alternateLba;
    const backup = readCopy(fd, backupLba);
    if (typeof primary === 'string' && typeof backup === 'string') throw new Error(`${path} has no valid GPT: ${primary}; ${backup}`);
    const good = typeof primary === 'string' ? (backup as Exclude<typeof backup, string>) : primary;
    const header = { ...good.header, myLba: 1n, alternateLba: lastLba, entriesLba: 2n };
    const entries = parseEntries(good.entries, header);
    let repaired: string | undefined;
    if (typeof primary === 'string' || typeof backup === 'string') {
      repaired = typeof primary === 'string' ? `primary table restored from the backup (${primary})` : `backup table restored from the primary (${backup})`;
    } else if (!primary.entries.equals(backup.entries) || backup.header.alternateLba !== 1n) {
      // A write stopped between the two copies: the primary, written last, holds the committed state.
      repaired = 'backup table differed from the primary (an interrupted write); restored from the primary';
    }
    if (repaired && repair) writeBoth(fd, header, entries);
    return { header, entries, repaired };
  } finally {
    closeSync(fd);
  }
}

/** Applies `change` to the entries and writes both copies of the table. */
export function updateGpt(path: string, change: (entries: GptEntry[]) => void): Gpt {
  const gpt = readGpt(path);
  change(gpt.entries);
  const fd = openSync(path, 'r+');
  try {
    writeBoth(fd, gpt.header, gpt.entries);
  } finally {
    closeSync(fd);
  }
  return gpt;
}

export interface NewPartition {
  number: number;
  typeGuid: string;
  uniqueGuid: string;
  name: string;
  firstLba: bigint;
  lastLba: bigint;
  attributes?: bigint;
}

/**
 * Writes a new table over the disk at `path` (its size fixed already): a protective MBR and both
 * copies with 128 entries, usable sectors 34 to the last minus 33, as sgdisk lays them out.
 */
export function createGpt(path: string, diskGuid: string, partitions: NewPartition[]): Gpt {
  const fd = openSync(path, 'r+');
  try {
    const sectors = BigInt(Math.floor(diskBytes(fd) / sectorSize));
    const header: GptHeader = { myLba: 1n, alternateLba: sectors - 1n, firstUsableLba: 34n, lastUsableLba: sectors - 34n, diskGuid, entriesLba: 2n, numEntries: 128, entrySize: 128 };
    const entries: GptEntry[] = Array.from({ length: 128 }, (_, i) => ({ number: i + 1, typeGuid: zeroGuid, uniqueGuid: zeroGuid, firstLba: 0n, lastLba: 0n, attributes: 0n, name: '' }));
    for (const p of partitions) {
      if (p.number < 1 || p.number > 128) throw new Error(`partition number ${p.number} is not 1 to 128`);
      if (p.firstLba < header.firstUsableLba || p.lastLba > header.lastUsableLba || p.lastLba < p.firstLba) {
        throw new Error(`partition ${p.number} (${p.name}) at sectors ${p.firstLba}-${p.lastLba} is outside ${header.firstUsableLba}-${header.lastUsableLba}`);
      }
      entries[p.number - 1] = { attributes: 0n, ...p };
    }
    // Protective MBR: one partition of type 0xEE over the disk (at most 2^32-1 sectors).
    const mbr = Buffer.alloc(sectorSize);
    const last = Number(sectors - 1n > 0xffffffffn ? 0xffffffffn : sectors - 1n);
    mbr.set([0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff], 446);
    mbr.writeUInt32LE(1, 454);
    mbr.writeUInt32LE(last, 458);
    mbr.writeUInt16LE(0xaa55, 510);
    writeAt(fd, 0n, mbr);
    writeBoth(fd, header, entries);
    return { header, entries, repaired: undefined };
  } finally {
    closeSync(fd);
  }
}
