/**
 * Files under a root directory (`--root`, or `/`), as the apply engine changes them: paths are
 * resolved the way a chroot would see them and may not climb out of the root through a symlink;
 * files are replaced atomically with owner and mode set before any content is visible.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** What an operation did: changed the file system, or found it already as wanted. */
export type Outcome = 'changed' | 'unchanged';

export class PathError extends Error {}

export interface FileAttributes {
  /** Permission bits, such as 0o644. */
  mode: number;
  uid: number;
  gid: number;
}

const maxLinks = 40;

export class RootedFs {
  /** The root as an absolute host path, without a trailing slash (empty for `/`). */
  private readonly base: string;

  constructor(root: string) {
    this.base = path.resolve(root) === '/' ? '' : path.resolve(root);
  }

  /** The host path of an in-root path whose parents are all resolved (see {@link resolve}). */
  hostPath(inRoot: string): string {
    return this.base + inRoot;
  }

  /**
   * Resolves an absolute in-root path, following symlinks in its parent directories as a chroot
   * would (absolute targets are taken inside the root). The last component is not followed.
   * Throws PathError when a relative symlink climbs above the root, or the path is not absolute.
   */
  resolve(target: string): string {
    if (!path.posix.isAbsolute(target)) throw new PathError(`${target} is not an absolute path`);
    if (target.split('/').includes('..')) throw new PathError(`${target} has a ".." component; write the path it means`);
    const parts = path.posix.normalize(target).split('/').filter(Boolean);
    const last = parts.pop();
    if (last === undefined) return '/';
    let dir = '/';
    let hops = 0;
    const pending = [...parts];
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '..') {
        if (dir === '/') throw new PathError(`${target} leads out of the root through a symlink`);
        dir = path.posix.dirname(dir);
        continue;
      }
      const next = path.posix.join(dir, part);
      let link: string | undefined;
      try {
        if (fs.lstatSync(this.hostPath(next)).isSymbolicLink()) link = fs.readlinkSync(this.hostPath(next));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      if (link === undefined) {
        dir = next;
        continue;
      }
      if (++hops > maxLinks) throw new PathError(`${target}: too many levels of symbolic links`);
      if (link.startsWith('/')) dir = '/';
      pending.unshift(...link.split('/').filter((p) => p && p !== '.'));
    }
    return path.posix.join(dir, last);
  }

  /** File attributes and type of an in-root path (not following a final symlink), or undefined. */
  stat(inRoot: string): fs.Stats | undefined {
    try {
      return fs.lstatSync(this.hostPath(this.resolve(inRoot)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  read(inRoot: string): Buffer | undefined {
    try {
      return fs.readFileSync(this.hostPath(this.resolve(inRoot)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  /** Creates missing parent directories of an in-root path with mode 0755. */
  makeParents(inRoot: string): Outcome {
    const dir = path.posix.dirname(this.resolve(inRoot));
    const host = this.hostPath(this.resolve(dir === '/' ? '/' : dir));
    if (fs.existsSync(host)) return 'unchanged';
    fs.mkdirSync(host, { recursive: true, mode: 0o755 });
    return 'changed';
  }

  /**
   * Makes the file at `inRoot` hold `content` with `attrs`: unchanged when it already does;
   * otherwise written to a temporary file in the same directory, created 0600, chowned and
   * chmodded before the content goes in, synced, and renamed over the target. A secret never
   * sits in a file others can read, and a reader sees the old file or the new one, never a part.
   */
  writeAtomic(inRoot: string, content: Buffer, attrs: FileAttributes): Outcome {
    if (!this.differs(inRoot, content, attrs)) return 'unchanged';
    const resolved = this.resolve(inRoot);
    const host = this.hostPath(resolved);
    this.makeParents(resolved);
    // One fixed name per target: a run killed mid-write leaves it behind, and the next run replaces it.
    const temp = path.join(path.dirname(host), `.${path.basename(host)}.bootsmith-tmp`);
    fs.rmSync(temp, { force: true });
    const fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.fchownSync(fd, attrs.uid, attrs.gid);
      fs.fchmodSync(fd, attrs.mode);
      let offset = 0;
      while (offset < content.length) offset += fs.writeSync(fd, content, offset, content.length - offset);
      fs.fsyncSync(fd);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(temp, { force: true });
      throw err;
    }
    fs.closeSync(fd);
    fs.renameSync(temp, host);
    syncDirectory(path.dirname(host));
    return 'changed';
  }

  /** Whether the file at `inRoot` is not yet a regular file with this content and these attributes. */
  differs(inRoot: string, content: Buffer, attrs: FileAttributes): boolean {
    const resolved = this.resolve(inRoot);
    const current = this.stat(resolved);
    if (current?.isDirectory()) throw new PathError(`${inRoot} is a directory`);
    return !(
      current?.isFile() &&
      (current.mode & 0o7777) === attrs.mode &&
      current.uid === attrs.uid &&
      current.gid === attrs.gid &&
      current.size === content.length &&
      fs.readFileSync(this.hostPath(resolved)).equals(content)
    );
  }

  /** Makes `inRoot` a symlink to `target` (replacing a file or another link there). */
  symlink(inRoot: string, target: string): Outcome {
    const resolved = this.resolve(inRoot);
    const host = this.hostPath(resolved);
    const current = this.stat(resolved);
    if (current?.isSymbolicLink() && fs.readlinkSync(host) === target) return 'unchanged';
    if (current?.isDirectory()) throw new PathError(`${inRoot} is a directory`);
    this.makeParents(resolved);
    const temp = path.join(path.dirname(host), `.${path.basename(host)}.bootsmith-tmp`);
    fs.rmSync(temp, { force: true });
    fs.symlinkSync(target, temp);
    fs.renameSync(temp, host);
    syncDirectory(path.dirname(host));
    return 'changed';
  }

  /** Makes `inRoot` a directory with exactly `attrs` (parents are made 0755). */
  ensureDir(inRoot: string, attrs: FileAttributes): Outcome {
    const resolved = this.resolve(inRoot);
    const host = this.hostPath(resolved);
    const current = this.stat(resolved);
    if (current && !current.isDirectory()) throw new PathError(`${inRoot} exists and is not a directory`);
    if (current && (current.mode & 0o7777) === attrs.mode && current.uid === attrs.uid && current.gid === attrs.gid) return 'unchanged';
    if (!current) {
      this.makeParents(resolved);
      fs.mkdirSync(host, { mode: 0o700 });
    }
    fs.chownSync(host, attrs.uid, attrs.gid);
    fs.chmodSync(host, attrs.mode);
    return 'changed';
  }

  /** The names in a directory, sorted; empty when it does not exist. */
  list(inRoot: string): string[] {
    try {
      return fs.readdirSync(this.hostPath(this.resolve(inRoot))).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /** Removes a file or link; unchanged when there is none. */
  remove(inRoot: string): Outcome {
    const resolved = this.resolve(inRoot);
    if (!this.stat(resolved)) return 'unchanged';
    fs.rmSync(this.hostPath(resolved));
    return 'changed';
  }

  /** The target of a symlink, or undefined when the path is not a symlink. */
  readLink(inRoot: string): string | undefined {
    const st = this.stat(inRoot);
    return st?.isSymbolicLink() ? fs.readlinkSync(this.hostPath(this.resolve(inRoot))) : undefined;
  }
}

function syncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
