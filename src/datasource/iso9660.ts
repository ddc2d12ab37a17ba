/**
 * Reading files from an ISO 9660 image (a config drive, a CD-ROM device) without mounting it:
 * the volume label, and files by path. Names come from Rock Ridge (NM entries) when present, else
 * Joliet, else the ISO names themselves (`;1` dropped, compared without case). That covers the
 * images Nova makes (`genisoimage -J -r -V config-2`).
 */
import { closeSync, openSync } from 'node:fs';
import { findEntry, readAt } from './image-file';
import type { Volume } from './image-file';

const sector = 2048;

interface DirEntry {
  name: string;
  extent: number;
  size: number;
  directory: boolean;
}

class Image {
  constructor(private readonly fd: number) {}

  read(offset: number, length: number): Buffer {
    return readAt(this.fd, offset, length);
  }
}

/** What the volume descriptors say: the label and the root directory of the tree to read. */
interface Descriptor {
  label: string;
  root: DirEntry;
  /** Names are UCS-2 (Joliet). */
  joliet: boolean;
}

function record(buf: Buffer, at: number, joliet: boolean): { entry: DirEntry; length: number; systemUse: Buffer } | undefined {
  const length = buf[at]!;
  if (length === 0) return undefined;
  const nameLength = buf[at + 32]!;
  const rawName = buf.subarray(at + 33, at + 33 + nameLength);
  let name: string;
  if (nameLength === 1 && (rawName[0] === 0 || rawName[0] === 1)) name = rawName[0] === 0 ? '.' : '..';
  else name = joliet ? Buffer.from(rawName).swap16().toString('utf16le') : rawName.toString('latin1');
  const suStart = at + 33 + nameLength + (nameLength % 2 === 0 ? 1 : 0);
  return {
    entry: { name, extent: buf.readUInt32LE(at + 2), size: buf.readUInt32LE(at + 10), directory: (buf[at + 25]! & 2) !== 0 },
    length,
    systemUse: buf.subarray(suStart, at + length),
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

function readDescriptor(image: Image): Descriptor {
  let primary: Buffer | undefined;
  let jolietRoot: Buffer | undefined;
  for (let n = 16; n < 16 + 64; n++) {
    const vd = image.read(n * sector, sector);
    if (vd.toString('latin1', 1, 6) !== 'CD001') throw new Error('not an ISO 9660 image (no CD001 volume descriptor)');
    if (vd[0] === 255) break;
    if (vd[0] === 1 && !primary) primary = vd;
    if (vd[0] === 2 && ['%/@', '%/C', '%/E'].includes(vd.toString('latin1', 88, 91))) jolietRoot = vd;
  }
  if (!primary) throw new Error('not an ISO 9660 image (no primary volume descriptor)');
  const label = primary.toString('latin1', 40, 72).trim();
  const rootOf = (vd: Buffer, joliet: boolean) => record(vd, 156, joliet)!.entry;
  // Rock Ridge lives in the primary tree; prefer it, as it keeps names exactly.
  const root = rootOf(primary, false);
  const first = image.read(root.extent * sector, sector);
  const dot = record(first, 0, false);
  const hasRockRidge = dot !== undefined && dot.systemUse.toString('latin1', 0, 2) === 'SP';
  if (!hasRockRidge && jolietRoot) return { label, root: rootOf(jolietRoot, true), joliet: true };
  return { label, root, joliet: false };
}

function list(image: Image, dir: DirEntry, joliet: boolean): DirEntry[] {
  const data = image.read(dir.extent * sector, Math.ceil(dir.size / sector) * sector);
  const out: DirEntry[] = [];
  for (let at = 0; at < dir.size; ) {
    const r = record(data, at, joliet);
    if (!r) {
      at = (Math.floor(at / sector) + 1) * sector; // records never cross a sector: the rest is padding
      continue;
    }
    const name = rockRidgeName(r.systemUse) ?? r.entry.name.replace(/;\d+$/, '').replace(/\.$/, '');
    if (r.entry.name !== '.' && r.entry.name !== '..') out.push({ ...r.entry, name });
    at += r.length;
  }
  return out;
}

/** Opens an ISO 9660 image (a file or a device) and reads what is asked of it, closing it after. */
export function withIsoImage<T>(path: string, use: (iso: Volume) => T): T {
  const fd = openSync(path, 'r');
  try {
    const image = new Image(fd);
    const volume = readDescriptor(image);
    return use({
      label: volume.label,
      read(file) {
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
      },
    });
  } finally {
    closeSync(fd);
  }
}
