/**
 * Reading files from a FAT12/16/32 image (a vfat config drive) without mounting it: the volume
 * label, and files by path, with long (VFAT) names.
 *
 * The image is outside us: cluster numbers are checked against the cluster count, chains for
 * loops and length (a directory at most maxDirectory bytes, a file at most maxImageRead), so a
 * crafted image costs milliseconds and gives an ImageError.
 */
import { closeSync, openSync } from 'node:fs';
import { findEntry, ImageError, maxDirectory, maxImageRead, readAt, readingImage } from './image-file';
import type { Volume } from './image-file';

interface Geometry {
  bytesPerSector: number;
  bytesPerCluster: number;
  fatOffset: number;
  fatBits: 12 | 16 | 32;
  /** FAT12/16: the fixed root directory region; FAT32: undefined (the root is a cluster chain). */
  rootRegion?: { offset: number; size: number };
  rootCluster: number;
  dataOffset: number;
  /** Data clusters: valid cluster numbers are 2 to clusters + 1. */
  clusters: number;
  bootLabel: string;
}

interface Entry {
  name: string;
  cluster: number;
  size: number;
  directory: boolean;
}

function geometry(boot: Buffer): Geometry {
  const bytesPerSector = boot.readUInt16LE(11);
  const sectorsPerCluster = boot[13]!;
  const reserved = boot.readUInt16LE(14);
  const fats = boot[16]!;
  const rootEntries = boot.readUInt16LE(17);
  const total = boot.readUInt16LE(19) || boot.readUInt32LE(32);
  const fatSectors = boot.readUInt16LE(22) || boot.readUInt32LE(36);
  if (boot.readUInt16LE(510) !== 0xaa55 || ![512, 1024, 2048, 4096].includes(bytesPerSector) || sectorsPerCluster === 0 || fats === 0) {
    throw new ImageError('not a FAT image (no valid boot sector)');
  }
  const rootSectors = Math.ceil((rootEntries * 32) / bytesPerSector);
  const dataSector = reserved + fats * fatSectors + rootSectors;
  const clusters = Math.floor((total - dataSector) / sectorsPerCluster);
  if (reserved === 0 || fatSectors === 0 || clusters < 1) throw new ImageError('not a FAT image (its boot sector gives no data clusters)');
  const fatBits = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32;
  const labelAt = fatBits === 32 ? 71 : 43;
  const signatureAt = fatBits === 32 ? 66 : 38;
  return {
    bytesPerSector,
    bytesPerCluster: bytesPerSector * sectorsPerCluster,
    fatOffset: reserved * bytesPerSector,
    fatBits,
    ...(fatBits === 32 ? {} : { rootRegion: { offset: (reserved + fats * fatSectors) * bytesPerSector, size: rootSectors * bytesPerSector } }),
    rootCluster: fatBits === 32 ? boot.readUInt32LE(44) : 0,
    dataOffset: dataSector * bytesPerSector,
    clusters,
    bootLabel: boot[signatureAt] === 0x29 ? boot.toString('latin1', labelAt, labelAt + 11).trim() : '',
  };
}

class FatImage {
  readonly g: Geometry;

  constructor(private readonly fd: number) {
    this.g = geometry(readAt(fd, 0, 512));
  }

  private next(cluster: number): number {
    const { fatBits, fatOffset } = this.g;
    if (fatBits === 32) return readAt(this.fd, fatOffset + cluster * 4, 4).readUInt32LE(0) & 0x0fffffff;
    if (fatBits === 16) return readAt(this.fd, fatOffset + cluster * 2, 2).readUInt16LE(0);
    const pair = readAt(this.fd, fatOffset + Math.floor(cluster * 1.5), 2).readUInt16LE(0);
    return cluster % 2 === 0 ? pair & 0xfff : pair >> 4;
  }

  /** The bytes of a cluster chain (up to `limit` bytes); an ImageError past `max` bytes. */
  chain(first: number, limit = Infinity, max = maxImageRead): Buffer {
    const end = this.g.fatBits === 32 ? 0x0ffffff8 : this.g.fatBits === 16 ? 0xfff8 : 0xff8;
    const parts: Buffer[] = [];
    let size = 0;
    const seen = new Set<number>();
    for (let c = first; c >= 2 && c < end && size < limit; c = this.next(c)) {
      if (c > this.g.clusters + 1) throw new ImageError(`cluster ${c} is beyond the last cluster (${this.g.clusters + 1})`);
      if (seen.has(c)) throw new ImageError('the FAT has a loop in a cluster chain');
      seen.add(c);
      parts.push(readAt(this.fd, this.g.dataOffset + (c - 2) * this.g.bytesPerCluster, this.g.bytesPerCluster));
      size += this.g.bytesPerCluster;
      if (size > max) throw new ImageError(`a cluster chain longer than ${max} bytes: corrupt`);
    }
    return Buffer.concat(parts).subarray(0, Math.min(size, limit));
  }

  rootBytes(): Buffer {
    const r = this.g.rootRegion;
    return r ? readAt(this.fd, r.offset, r.size) : this.chain(this.g.rootCluster, Infinity, maxDirectory);
  }

  /** Directory entries with their long names; also the volume label entry, if any. */
  entries(dir: Buffer): { entries: Entry[]; label: string | undefined } {
    const entries: Entry[] = [];
    let label: string | undefined;
    let long: string[] = [];
    for (let at = 0; at + 32 <= dir.length; at += 32) {
      const first = dir[at]!;
      if (first === 0) break;
      const attr = dir[at + 11]!;
      if (first === 0xe5) {
        long = [];
        continue;
      }
      if (attr === 0x0f) {
        const piece = Buffer.concat([dir.subarray(at + 1, at + 11), dir.subarray(at + 14, at + 26), dir.subarray(at + 28, at + 32)]);
        const text = piece.toString('utf16le').split('\u0000')[0]!.replace(/\uffff/g, '');
        if (first & 0x40) long = [];
        long.unshift(text);
        continue;
      }
      if (attr & 0x08) {
        label = dir.toString('latin1', at, at + 11).trim();
        long = [];
        continue;
      }
      const base = dir.toString('latin1', at, at + 8).trimEnd();
      const ext = dir.toString('latin1', at + 8, at + 11).trimEnd();
      const caseFlags = dir[at + 12]!;
      const short = (caseFlags & 0x08 ? base.toLowerCase() : base) + (ext ? `.${caseFlags & 0x10 ? ext.toLowerCase() : ext}` : '');
      const name = long.length > 0 ? long.join('') : short;
      long = [];
      if (name === '.' || name === '..') continue;
      const cluster = (this.g.fatBits === 32 ? dir.readUInt16LE(at + 20) << 16 : 0) | dir.readUInt16LE(at + 26);
      entries.push({ name, cluster, size: dir.readUInt32LE(at + 28), directory: (attr & 0x10) !== 0 });
    }
    return { entries, label };
  }
}

/** Opens a FAT image and reads what is asked of it, closing it after. */
export function withFatImage<T>(path: string, use: (fat: Volume) => T): T {
  const fd = openSync(path, 'r');
  try {
    const { image, root } = readingImage('FAT', () => {
      const image = new FatImage(fd);
      return { image, root: image.entries(image.rootBytes()) };
    });
    return use({
      label: root.label ?? image.g.bootLabel,
      read(file) {
        return readingImage('FAT', () => {
          let entries = root.entries;
          const parts = file.split('/').filter(Boolean);
          for (const [i, part] of parts.entries()) {
            const entry = findEntry(entries, part);
            if (!entry) return undefined;
            if (i === parts.length - 1) return entry.directory ? undefined : entry.size === 0 ? Buffer.alloc(0) : image.chain(entry.cluster, entry.size);
            if (!entry.directory) return undefined;
            entries = image.entries(image.chain(entry.cluster, Infinity, maxDirectory)).entries;
          }
          return undefined;
        });
      },
    });
  } finally {
    closeSync(fd);
  }
}

/** Whether the bytes at the start of an image are a FAT boot sector (rather than ISO 9660). */
export function looksLikeFat(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const boot = readAt(fd, 0, 512);
    return boot.readUInt16LE(510) === 0xaa55 && (boot.toString('latin1', 54, 59) === 'FAT12' || boot.toString('latin1', 54, 59) === 'FAT16' || boot.toString('latin1', 82, 87) === 'FAT32');
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}
