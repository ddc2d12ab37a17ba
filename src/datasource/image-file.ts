/**
 * What the image readers (ISO 9660, FAT) share: bounded reads at an offset, the error they give,
 * and the volume they give. A config drive image is outside us: every size and offset in it is
 * checked before use, so a crafted one costs milliseconds and gives our message, never a
 * RangeError or a read of gigabytes.
 */
import { fstatSync, readSync } from 'node:fs';

/** Largest read from an image: a corrupt size field or chain must not allocate gigabytes. */
const maxRead = 64 * 1024 * 1024;

/** The largest a directory may be: thousands of entries, far more than a config drive has. 1 MiB. */
export const maxDirectory = 1024 * 1024;

/** A corrupt or hostile image: "config drive image: WHAT". */
export class ImageError extends Error {
  constructor(what: string, options?: ErrorOptions) {
    super(`config drive image: ${what}`, options);
  }
}

/** `length` bytes at `offset` of an open image; an ImageError past its end or beyond the read limit. */
export function readAt(fd: number, offset: number, length: number): Buffer {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new ImageError(`a read of ${length} bytes at ${offset}: corrupt`);
  if (length > maxRead) throw new ImageError(`it asks to read ${length} bytes at ${offset}: corrupt, or not a config drive`);
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, offset + done);
    if (n === 0) throw new ImageError(`it ends at byte ${offset + done}, before the ${length} bytes wanted at ${offset}`);
    done += n;
  }
  return buf;
}

/** The size of an open image file in bytes; undefined for a device (whose size fstat does not give). */
export function fileSize(fd: number): number | undefined {
  const st = fstatSync(fd);
  return st.isFile() ? st.size : undefined;
}

/**
 * Runs a reader on an image: its own errors (ImageError) and the system's (ENOENT, EACCES) pass
 * as they are; anything else is a check this reader lacks, reported as a corrupt image (with the
 * original as the cause), never as raw RangeError text.
 */
export function readingImage<T>(format: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ImageError || typeof (err as NodeJS.ErrnoException).errno === 'number') throw err; // a system error: ENOENT, EIO ...
    throw new ImageError(`corrupt ${format} structure`, { cause: err });
  }
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

/** The largest a cluster chain may grow before it is taken as corrupt. */
export const maxImageRead = maxRead;
