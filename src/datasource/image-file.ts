/** What the image readers (ISO 9660, FAT) share: bounded reads at an offset, and the volume they give. */
import { readSync } from 'node:fs';

/** Largest read from an image: a corrupt size field or chain must not allocate gigabytes. */
const maxRead = 64 * 1024 * 1024;

/** `length` bytes at `offset` of an open image; an error past its end or beyond the read limit. */
export function readAt(fd: number, offset: number, length: number): Buffer {
  if (length > maxRead) throw new Error(`the image asks to read ${length} bytes at ${offset}: corrupt, or not a config drive`);
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n === 0) throw new Error(`the image ends at byte ${offset + done}, before the ${length} bytes wanted at ${offset}`);
    done += n;
  }
  return buf;
}

/** A read-only file system image: its label, and files by path (`openstack/latest/user_data`). */
export interface Volume {
  label: string;
  /** A file's bytes, or undefined when there is no such file. */
  read(path: string): Buffer | undefined;
}

/** An entry of `entries` by name: the exact name, else the same name in another case (ISO and FAT names may be upper-case). */
export function findEntry<T extends { name: string }>(entries: T[], name: string): T | undefined {
  return entries.find((e) => e.name === name) ?? entries.find((e) => e.name.toLowerCase() === name.toLowerCase());
}

/** The largest a directory listing or cluster chain may grow before it is taken as corrupt. */
export const maxImageRead = maxRead;
