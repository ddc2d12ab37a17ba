/**
 * Reading files from an ISO 9660 image (a config drive, a CD-ROM device) without mounting it:
 * the volume label, and files by path. Names come from Rock Ridge (NM entries) when present, else
 * Joliet, else the ISO names themselves (`;1` dropped, compared without case). That covers the
 * images Nova makes (`genisoimage -J -r -V config-2`).
 *
 * The image is outside us: every directory record is checked (its length against its name and the
 * sector it sits in, its extent against the image's end) before use, and a directory is at most
 * maxDirectory bytes, so a crafted image costs milliseconds and gives an ImageError.
 */
import { closeSync, openSync } from 'node:fs';
import { fileSize, findEntry, ImageError, maxDirectory, readAt, readingImage } from './image-file';
import type { Volume } from './image-file';

const sector = 2048;
/** A directory record's fixed part: 33 bytes, then the name (ECMA-119 9.1). */
const recordHead = 33;

interface DirEntry {
  name: string;
  extent: number;
  size: number;
  directory: boolean;
}

class Image {
  /** Bytes in the image: the volume's size, or the file's when that is less. */
  end = Infinity;

  constructor(readonly fd: number) {}

  read(offset: number, length: number): Buffer {
    return readAt(this.fd, offset, length);
  }

  /** Checks that an entry's extent lies inside the image; `at` is the record's offset, for the message. */
  checkExtent(entry: DirEntry, at: number): void {
    if (entry.extent * sector + entry.size > this.end) {
      throw new ImageError(`directory record at offset ${at}: extent beyond the image (${entry.size} bytes at sector ${entry.extent}, the image has ${this.end} bytes)`);
    }
  }
}

/** What the volume descriptors say: the label and the root directory of the tree to read. */
interface Descriptor {
  label: string;
  root: DirEntry;
  /** Names are UCS-2 (Joliet). */
  joliet: boolean;
}

/**
 * The record at `at` of `buf` (whose first byte is at image offset `base`): undefined for padding
 * (a zero length byte), an ImageError for a record that does not fit in its sector or its
 * directory (`limit` bytes), or whose name does not fit in it.
 */
function record(buf: Buffer, at: number, joliet: boolean, base: number, limit = buf.length): { entry: DirEntry; length: number; systemUse: Buffer } | undefined {
  const length = buf[at]!;
  if (length === 0) return undefined;
  const where = `directory record at offset ${base + at}`;
  const nameLength = buf[at + 32] ?? 0;
  if (length < recordHead + 1 || recordHead + nameLength > length) throw new ImageError(`${where}: length ${length} does not hold its ${nameLength}-byte name`);
  if (at + length > limit || Math.floor(at / sector) !== Math.floor((at + length - 1) / sector)) throw new ImageError(`${where}: it runs past its sector or its directory`);
  const rawName = buf.subarray(at + recordHead, at + recordHead + nameLength);
  let name: string;
  if (nameLength === 1 && (rawName[0] === 0 || rawName[0] === 1)) name = rawName[0] === 0 ? '.' : '..';
  else if (joliet) {
    if (nameLength % 2 !== 0) throw new ImageError(`${where}: a Joliet name of an odd length (${nameLength})`);
    name = Buffer.from(rawName).swap16().toString('utf16le');
  } else name = rawName.toString('latin1');
  const suStart = at + recordHead + nameLength + (nameLength % 2 === 0 ? 1 : 0);
  return {
    entry: { name, extent: buf.readUInt32LE(at + 2), size: buf.readUInt32LE(at + 10), directory: (buf[at + 25]! & 2) !== 0 },
    length,
    systemUse: buf.subarray(Math.min(suStart, at + length), at + length),
  };
}

/** The Rock Ridge name in a record's system use area, if it has one. */
function rockRidgeName(su: Buffer): string | undefined {
  let name = '';
  let found = false;
  for (let p = 0; p + 4 <= su.length; ) {
    const len = su[p + 2]!;
    if (len < 4) break;
    if (su[p] === 0x4e && su[p + 1] === 0x4d) {
      // NM: flags at +4 (1 continue, 2 ".", 4 ".."), then the name piece.
      found = true;
      name += su.subarray(p + 5, p + len).toString('utf8');
    }
    p += len;
  }
  return found ? name : undefined;
}

/** The root directory record of a volume descriptor (at byte 156), checked like any other. */
function rootOf(image: Image, vd: Buffer, n: number, joliet: boolean): DirEntry {
  const root = record(vd, 156, joliet, n * sector, 156 + 34)?.entry;
  if (!root || !root.directory) throw new ImageError(`volume descriptor ${n}: no root directory record`);
  image.checkExtent(root, n * sector + 156);
  return root;
}

function readDescriptor(image: Image): Descriptor {
  let primary: { vd: Buffer; n: number } | undefined;
  let joliet: { vd: Buffer; n: number } | undefined;
  for (let n = 16; n < 16 + 64; n++) {
    const vd = image.read(n * sector, sector);
    if (vd.toString('latin1', 1, 6) !== 'CD001') throw new ImageError('not an ISO 9660 image (no CD001 volume descriptor)');
    if (vd[0] === 255) break;
    if (vd[0] === 1 && !primary) primary = { vd, n };
    if (vd[0] === 2 && ['%/@', '%/C', '%/E'].includes(vd.toString('latin1', 88, 91))) joliet = { vd, n };
  }
  if (!primary) throw new ImageError('not an ISO 9660 image (no primary volume descriptor)');
  // The volume space size (blocks of the logical block size) bounds every extent; a file may end sooner.
  const blockSize = primary.vd.readUInt16LE(128) || sector;
  image.end = Math.min(primary.vd.readUInt32LE(80) * blockSize, fileSize(image.fd) ?? Infinity);
  const label = primary.vd.toString('latin1', 40, 72).trim();
  // Rock Ridge lives in the primary tree; prefer it, as it keeps names exactly.
  const root = rootOf(image, primary.vd, primary.n, false);
  const first = image.read(root.extent * sector, sector);
  const dot = record(first, 0, false, root.extent * sector);
  const hasRockRidge = dot !== undefined && dot.systemUse.toString('latin1', 0, 2) === 'SP';
  if (!hasRockRidge && joliet) return { label, root: rootOf(image, joliet.vd, joliet.n, true), joliet: true };
  return { label, root, joliet: false };
}

function list(image: Image, dir: DirEntry, joliet: boolean): DirEntry[] {
  const base = dir.extent * sector;
  if (dir.size > maxDirectory) throw new ImageError(`the directory at offset ${base} is ${dir.size} bytes, more than the ${maxDirectory} a config drive directory may have`);
  const data = image.read(base, dir.size);
  const out: DirEntry[] = [];
  for (let at = 0; at < dir.size; ) {
    const r = record(data, at, joliet, base);
    if (!r) {
      at = (Math.floor(at / sector) + 1) * sector; // records never cross a sector: the rest is padding
      continue;
    }
    if (r.entry.name !== '.' && r.entry.name !== '..') {
      image.checkExtent(r.entry, base + at);
      const name = rockRidgeName(r.systemUse) ?? r.entry.name.replace(/;\d+$/, '').replace(/\.$/, '');
      out.push({ ...r.entry, name });
    }
    at += r.length;
  }
  return out;
}

/**
 * Opens an ISO 9660 image (a file or a device) and reads what is asked of it, closing it after.
 * A path is walked one directory at a time from the root, so a directory that points back at an
 * ancestor (a loop) costs one listing per path component, no more.
 */
export function withIsoImage<T>(path: string, use: (iso: Volume) => T): T {
  const fd = openSync(path, 'r');
  try {
    const image = new Image(fd);
    const volume = readingImage('ISO 9660', () => readDescriptor(image));
    return use({
      label: volume.label,
      read(file) {
        return readingImage('ISO 9660', () => {
          let dir = volume.root;
          const parts = file.split('/').filter(Boolean);
          for (const [i, part] of parts.entries()) {
            const entry = findEntry(list(image, dir, volume.joliet), part);
            if (!entry) return undefined;
            if (i < parts.length - 1) {
              if (!entry.directory) return undefined;
              dir = entry;
            } else return entry.directory ? undefined : image.read(entry.extent * sector, entry.size);
          }
          return undefined;
        });
      },
    });
  } finally {
    closeSync(fd);
  }
}
