/**
 * Files under a root directory (`--root`, or `/`), as the apply engine and the daemons see them:
 * the one place where a path under the root becomes a host path. Every component of a path, the
 * last included, is resolved the way a chroot would see it: an absolute symlink target is taken
 * inside the root, and a relative one that climbs above the root is refused. So a hostile image
 * (`etc/coreos/update.conf -> /root/secret`) can never make us read or write a host file. Files
 * are replaced atomically with owner and mode set before any content is visible.
 *
 * Operations say which way they treat a symlink at the last component: reads and writes of
 * content act on what it points to (inside the root); {@link RootedFs.lstat},
 * {@link RootedFs.readLink}, {@link RootedFs.symlink} and {@link RootedFs.remove} act on the link
 * itself (mask and enable links).
 *
 * Between resolving and acting, a final component that has become a symlink is not followed
 * (O_NOFOLLOW, or a rename onto the name). A parent directory swapped for a symlink in that window
 * would still be followed by the kernel: Node has no openat2(RESOLVE_IN_ROOT). An image at rest is
 * not changing under us, so that window is left open.
 *
 * Durability is paid once per batch of files (see {@link RootedFs.stageWrites}): the temporary
 * files are all written, made durable together, renamed, and their directories synced once.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, constants, copyFileSync, fchmodSync, fchownSync, fstatSync, fsyncSync, lchownSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { commands } from './paths';

/** What an operation did: changed the file system, or found it already as wanted. */
export type Outcome = 'changed' | 'unchanged';

/** A path that cannot be used under the root: not absolute, `..`, a symlink out, a loop, a wrong type. */
export class PathError extends Error {}

export interface FileAttributes {
  /** Permission bits, such as 0o644. */
  mode: number;
  uid: number;
  gid: number;
}

/**
 * How a path's last component is resolved: `follow: true` resolves a symlink there too (to act on
 * what it points to); `follow: false` leaves it (to act on the link itself).
 */
export interface Resolution {
  follow: boolean;
}

const follow: Resolution = { follow: true };
const noFollow: Resolution = { follow: false };

/** A staged write that could not be completed (made durable or renamed): the target keeps its old content. */
export interface WriteFailure {
  /** The in-root path that was written. */
  path: string;
  /** What {@link RootedFs.stageWrites} was given when it was staged. */
  tag: number;
  error: Error;
}

/** A file written under its temporary name, waiting to be made durable and renamed over its target. */
interface Staged {
  inRoot: string;
  tag: number;
  /** The host paths of the target and of its temporary file, in the same directory. */
  host: string;
  temp: string;
}

/**
 * From this many staged files on, one `sync -f` (syncfs(2) of each file system) makes them durable;
 * below it, an fsync of each is cheaper than starting a process (about 0.3 ms an fsync against
 * 3-10 ms a spawn, measured here).
 */
const syncfsFrom = 16;

/** As Linux's MAXSYMLINKS: more links than this on one path is a loop. */
const maxLinks = 40;

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = constants;

/**
 * A `--root` value as an absolute path, resolved once where the root is taken in: shadow's tools
 * refuse a relative `--root`, and a path relative to the working directory would change meaning
 * if anything changed that directory.
 */
export function absoluteRoot(dir: string): string {
  if (dir === '') throw new PathError('the root is an empty path');
  return resolve(dir);
}

export class RootedFs {
  /** The root as an absolute host path (`/` for the host itself): what shadow's `--root` and chroot get. */
  readonly root: string;
  /** The root as a prefix for in-root paths: without a trailing slash, empty for `/`. */
  private readonly base: string;
  /** Staged writes by resolved in-root path; writes are staged only while {@link tag} is set. */
  private readonly staged = new Map<string, Staged>();
  /** Every ancestor directory of a staged path (resolved, in-root). */
  private readonly stagedDirs = new Set<string>();
  /** What stageWrites() was given, while writes are staged. */
  private tag: number | undefined;
  /** Failures of staged writes completed early (a path that touched them was resolved), for the next commit(). */
  private readonly earlyFailures: WriteFailure[] = [];

  constructor(root: string) {
    this.root = absoluteRoot(root);
    this.base = this.root === '/' ? '' : this.root;
  }

  /**
   * Resolves an absolute in-root path to the in-root path it means, following symlinks as a chroot
   * would: an absolute target starts again at the root, a relative one from the link's directory.
   * The last component is followed too when `follow` is set; a dangling link resolves to where its
   * target would be, inside the root. Throws PathError when the path is not absolute, has a `..`
   * component, leads above the root through a relative symlink, or meets more than 40 symlinks.
   *
   * Staged writes on the path, above it or below it are completed first, so whatever resolves a
   * path (every operation here does) sees them done: the file there, its directory listed whole.
   */
  resolve(target: string, how: Resolution): string {
    const resolved = this.resolveNames(target, how);
    if (this.staged.size > 0 && this.touchesStaged(resolved)) this.earlyFailures.push(...this.complete());
    return resolved;
  }

  private resolveNames(target: string, how: Resolution): string {
    if (!posix.isAbsolute(target)) throw new PathError(`${target} is not an absolute path`);
    if (target.split('/').includes('..')) throw new PathError(`${target} has a ".." component; write the path it means`);
    const pending = components(target);
    let dir = '/';
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '..') {
        if (dir === '/') throw new PathError(`${target} leads out of the root through a symlink`);
        dir = posix.dirname(dir);
        continue;
      }
      const next = posix.join(dir, part);
      const link = pending.length > 0 || how.follow ? this.linkTarget(next) : undefined;
      if (link === undefined) {
        dir = next;
        continue;
      }
      if (++hops > maxLinks) throw new PathError(`${target}: too many levels of symbolic links`);
      if (link.startsWith('/')) dir = '/';
      pending.unshift(...components(link));
    }
    return dir;
  }

  /** File attributes and type of what an in-root path leads to (a final symlink followed inside the root), or undefined. */
  stat(inRoot: string): Stats | undefined {
    return this.lstatResolved(this.resolve(inRoot, follow));
  }

  /** File attributes and type of an in-root path itself (a final symlink is reported as one), or undefined. */
  lstat(inRoot: string): Stats | undefined {
    return this.lstatResolved(this.resolve(inRoot, noFollow));
  }

  /**
   * The content of the regular file an in-root path leads to, or undefined when there is none.
   * Anything else there (a directory, a FIFO, a device) is refused rather than read: a FIFO would
   * block, a device would never end.
   */
  read(inRoot: string): Buffer | undefined {
    return this.readResolved(this.resolve(inRoot, follow), inRoot);
  }

  /**
   * Makes the file an in-root path leads to hold `content` with `attrs`: unchanged when it already
   * does; otherwise written to a temporary file in the same directory, created 0600, chowned and
   * chmodded before the content goes in, made durable, and renamed over the target. A secret never
   * sits in a file others can read, and a reader or a crash sees the old file or the new one, never
   * a part. While writes are staged ({@link stageWrites}) the file waits under its temporary name
   * for {@link commit}; otherwise it is completed before this returns.
   */
  writeAtomic(inRoot: string, content: Buffer, attrs: FileAttributes): Outcome {
    const resolved = this.resolve(inRoot, follow);
    if (!this.differsResolved(resolved, inRoot, content, attrs)) return 'unchanged';
    const host = this.host(resolved);
    this.makeParents(resolved);
    // One fixed name per target: a run killed mid-write leaves it behind, and the next run replaces it.
    const temp = tempName(host);
    rmSync(temp, { force: true });
    const fd = openSync(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      fchownSync(fd, attrs.uid, attrs.gid);
      fchmodSync(fd, attrs.mode);
      let offset = 0;
      while (offset < content.length) offset += writeSync(fd, content, offset, content.length - offset);
    } catch (err) {
      closeSync(fd);
      rmSync(temp, { force: true });
      throw err;
    }
    closeSync(fd);
    this.staged.set(resolved, { inRoot, tag: this.tag ?? 0, host, temp });
    for (let dir = posix.dirname(resolved); !this.stagedDirs.has(dir); dir = posix.dirname(dir)) {
      this.stagedDirs.add(dir);
      if (dir === '/') break;
    }
    if (this.tag === undefined) {
      const [failure] = this.complete();
      if (failure) throw failure.error;
    }
    return 'changed';
  }

  /**
   * From now until {@link commit}, writeAtomic stages its files: each is written whole under its
   * temporary name (owner and mode set before the content) and left there, and commit completes
   * them all at once: made durable together (one syncfs of each file system), renamed over their
   * targets, and each directory synced once. A reader or a crash still sees each target old or
   * new. Resolving a path that touches a staged one completes the batch first, so operations here
   * see the files written; anything outside this class (a command, systemd) sees them only after
   * commit. `tag` names the writes in the failures commit returns.
   */
  stageWrites(tag: number): void {
    this.tag = tag;
  }

  /**
   * Completes the staged writes and stops staging: writes complete as they are made again. Returns
   * the writes that failed, which keep their old content, in the order they were staged.
   */
  commit(): WriteFailure[] {
    this.tag = undefined;
    return [...this.earlyFailures.splice(0), ...this.complete()];
  }

  /** Whether the file an in-root path leads to is not yet a regular file with this content and these attributes. */
  differs(inRoot: string, content: Buffer, attrs: FileAttributes): boolean {
    return this.differsResolved(this.resolve(inRoot, follow), inRoot, content, attrs);
  }

  /**
   * Makes an in-root path itself a symlink to `target` (replacing a file or another link there,
   * never following it), owned by `owner` when given (the link itself, as lchown sets it).
   */
  symlink(inRoot: string, target: string, owner?: { uid: number; gid: number }): Outcome {
    const resolved = this.resolve(inRoot, noFollow);
    const host = this.host(resolved);
    const current = this.lstatResolved(resolved);
    const owned = (st: Stats) => owner === undefined || (st.uid === owner.uid && st.gid === owner.gid);
    if (current?.isSymbolicLink() && readlinkSync(host) === target && owned(current)) return 'unchanged';
    if (current?.isDirectory()) throw new PathError(`${inRoot} is a directory`);
    this.makeParents(resolved);
    const temp = tempName(host);
    rmSync(temp, { force: true });
    symlinkSync(target, temp);
    if (owner) lchownSync(temp, owner.uid, owner.gid);
    renameSync(temp, host);
    syncDirectory(dirname(host));
    return 'changed';
  }

  /** Whether two in-root paths (a final symlink not followed) are the same file: hard links of one another. */
  isHardLink(inRoot: string, target: string): boolean {
    const a = this.lstatResolved(this.resolve(inRoot, noFollow));
    const b = this.lstatResolved(this.resolve(target, noFollow));
    return a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino;
  }

  /**
   * Makes an in-root path a hard link of the in-root path `target` (a final symlink there is not
   * followed, as link(2) has it), replacing a file or link at the path; never a directory.
   */
  hardLink(inRoot: string, target: string): Outcome {
    if (this.isHardLink(inRoot, target)) return 'unchanged';
    const resolved = this.resolve(inRoot, noFollow);
    const targetResolved = this.resolve(target, noFollow);
    const existing = this.lstatResolved(targetResolved);
    if (!existing) throw new PathError(`${target} does not exist: nothing to link to`);
    if (existing.isDirectory()) throw new PathError(`${target} is a directory: it cannot be hard linked`);
    if (this.lstatResolved(resolved)?.isDirectory()) throw new PathError(`${inRoot} is a directory`);
    const host = this.host(resolved);
    this.makeParents(resolved);
    const temp = tempName(host);
    rmSync(temp, { force: true });
    linkSync(this.host(targetResolved), temp);
    renameSync(temp, host);
    syncDirectory(dirname(host));
    return 'changed';
  }

  /** Makes the directory an in-root path leads to exist with exactly `attrs` (parents are made 0755). */
  ensureDir(inRoot: string, attrs: FileAttributes): Outcome {
    const resolved = this.resolve(inRoot, follow);
    const host = this.host(resolved);
    const current = this.lstatResolved(resolved);
    if (current && !current.isDirectory()) throw new PathError(`${inRoot} exists and is not a directory`);
    if (current && (current.mode & 0o7777) === attrs.mode && current.uid === attrs.uid && current.gid === attrs.gid) return 'unchanged';
    if (!current) {
      this.makeParents(resolved);
      mkdirSync(host, { mode: 0o700 });
    }
    // Through a descriptor opened without following: a symlink put there since is refused, not chowned.
    const fd = openNoFollow(host, O_RDONLY | O_DIRECTORY, inRoot);
    try {
      fchownSync(fd, attrs.uid, attrs.gid);
      fchmodSync(fd, attrs.mode);
    } finally {
      closeSync(fd);
    }
    return 'changed';
  }

  /**
   * Creates a directory that is not there yet, whole: it is made under a temporary name beside its
   * place, filled with a copy of the directory `template` (an in-root path; its directories, files
   * and symlinks, owned by `attrs`' user and group, their modes kept, anything else left out),
   * made durable and only then renamed into place. A run killed on the way leaves no directory
   * there, only the temporary one, which the next call replaces. Unchanged when something is
   * there already.
   */
  createDir(inRoot: string, attrs: FileAttributes, template?: string): Outcome {
    const resolved = this.resolve(inRoot, follow);
    if (this.lstatResolved(resolved)) return 'unchanged';
    this.makeParents(resolved);
    const host = this.host(resolved);
    const temp = tempName(host);
    rmSync(temp, { recursive: true, force: true });
    mkdirSync(temp, { mode: 0o700 });
    const made = [temp];
    const from = template === undefined ? undefined : this.resolve(template, follow);
    if (from !== undefined && this.lstatResolved(from)?.isDirectory()) copyTree(this.host(from), temp, attrs, made);
    lchownSync(temp, attrs.uid, attrs.gid);
    chmodSync(temp, attrs.mode);
    syncData(made);
    renameSync(temp, host);
    syncDirectory(dirname(host));
    return 'changed';
  }

  /** The names in the directory an in-root path leads to, sorted; empty when it does not exist. */
  list(inRoot: string): string[] {
    try {
      return readdirSync(this.host(this.resolve(inRoot, follow))).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /** Removes the file or link at an in-root path itself (a link's target stays); unchanged when there is none. */
  remove(inRoot: string): Outcome {
    const resolved = this.resolve(inRoot, noFollow);
    if (!this.lstatResolved(resolved)) return 'unchanged';
    unlinkSync(this.host(resolved));
    return 'changed';
  }

  /** The target of the symlink at an in-root path itself, or undefined when it is not a symlink. */
  readLink(inRoot: string): string | undefined {
    const resolved = this.resolve(inRoot, noFollow);
    return this.lstatResolved(resolved)?.isSymbolicLink() ? readlinkSync(this.host(resolved)) : undefined;
  }

  /** Whether a resolved in-root path is a staged path, or lies above or below one. */
  private touchesStaged(resolved: string): boolean {
    if (this.stagedDirs.has(resolved)) return true;
    for (let p = resolved; ; p = posix.dirname(p)) {
      if (this.staged.has(p)) return true;
      if (p === '/') return false;
    }
  }

  /**
   * Completes every staged write: makes the temporary files durable, renames each over its target
   * and syncs each directory once. A write that cannot be completed is reported and its temporary
   * file removed; its target keeps its old content.
   */
  private complete(): WriteFailure[] {
    const batch = [...this.staged.values()];
    this.staged.clear();
    this.stagedDirs.clear();
    const failures: WriteFailure[] = [];
    const fail = (entry: Staged, err: unknown) => {
      failures.push({ path: entry.inRoot, tag: entry.tag, error: err as Error });
      rmSync(entry.temp, { force: true });
    };
    try {
      syncData(batch.map((entry) => entry.temp));
    } catch (err) {
      for (const entry of batch) fail(entry, err);
      return failures;
    }
    const renamed: Staged[] = [];
    for (const entry of batch) {
      try {
        // rename replaces the name itself: a symlink put there since resolving is replaced, not followed.
        renameSync(entry.temp, entry.host);
        renamed.push(entry);
      } catch (err) {
        fail(entry, err);
      }
    }
    const dirs = new Map<string, Staged[]>();
    for (const entry of renamed) {
      const dir = dirname(entry.host);
      if (!dirs.has(dir)) dirs.set(dir, []);
      dirs.get(dir)!.push(entry);
    }
    for (const [dir, entries] of dirs) {
      try {
        syncDirectory(dir);
      } catch (err) {
        for (const entry of entries) failures.push({ path: entry.inRoot, tag: entry.tag, error: err as Error });
      }
    }
    return failures;
  }

  /** The host path of a resolved in-root path. Private: a host path is only ever made from a resolved one. */
  private host(resolved: string): string {
    return this.base + resolved;
  }

  /** The target of the symlink at a resolved in-root path, or undefined when there is none (or nothing). */
  private linkTarget(resolved: string): string | undefined {
    try {
      return lstatSync(this.host(resolved)).isSymbolicLink() ? readlinkSync(this.host(resolved)) : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  private lstatResolved(resolved: string): Stats | undefined {
    try {
      return lstatSync(this.host(resolved));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  private readResolved(resolved: string, inRoot: string): Buffer | undefined {
    let fd: number;
    try {
      // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
      fd = openNoFollow(this.host(resolved), O_RDONLY | O_NONBLOCK, inRoot);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    try {
      const st = fstatSync(fd);
      if (st.isDirectory()) throw new PathError(`${inRoot} is a directory`);
      if (!st.isFile()) throw new PathError(`${inRoot} is not a regular file`);
      return readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  private differsResolved(resolved: string, inRoot: string, content: Buffer, attrs: FileAttributes): boolean {
    const current = this.lstatResolved(resolved);
    if (current?.isDirectory()) throw new PathError(`${inRoot} is a directory`);
    return !(
      current?.isFile() &&
      (current.mode & 0o7777) === attrs.mode &&
      current.uid === attrs.uid &&
      current.gid === attrs.gid &&
      current.size === content.length &&
      this.readResolved(resolved, inRoot)?.equals(content)
    );
  }

  /** Creates the missing parent directories of a resolved in-root path, mode 0755. */
  private makeParents(resolved: string): void {
    mkdirSync(this.host(posix.dirname(resolved)), { recursive: true, mode: 0o755 });
  }
}

/** The components of a path or a link target, without empty and `.` ones (`..` stays: it means something). */
function components(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Opens a host path without following a final symlink: one there now was put there after resolving. */
function openNoFollow(host: string, flags: number, inRoot: string): number {
  try {
    return openSync(host, flags | O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new PathError(`${inRoot} became a symlink while in use`);
    throw err;
  }
}

function tempName(host: string): string {
  return join(dirname(host), `.${basename(host)}.bootsmith-tmp`);
}

/**
 * Copies the directory tree at host path `from` into the existing directory `to`, without
 * following a symlink in it (a link is copied as a link): directories, regular files and
 * symlinks, owned by `owner`, with their modes; sockets, FIFOs and devices are left out. Each
 * directory and file made is added to `made`.
 */
function copyTree(from: string, to: string, owner: FileAttributes, made: string[]): void {
  for (const name of readdirSync(from).sort()) {
    const src = join(from, name);
    const dst = join(to, name);
    const st = lstatSync(src);
    if (st.isDirectory()) {
      mkdirSync(dst, { mode: 0o700 });
      copyTree(src, dst, owner, made);
    } else if (st.isFile()) copyFileSync(src, dst, constants.COPYFILE_EXCL);
    else if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
    else continue;
    lchownSync(dst, owner.uid, owner.gid);
    if (st.isSymbolicLink()) continue; // (made durable with its directory)
    chmodSync(dst, st.mode & 0o7777);
    made.push(dst);
  }
}

/**
 * Makes the content of files and directories (host paths) durable: one `sync -f` (syncfs(2)) of
 * each file system they are on, or an fsync of each when they are few (or there is no sync
 * command).
 */
function syncData(paths: string[]): void {
  if (paths.length >= syncfsFrom) {
    // One directory of each file system: syncfs syncs the whole file system a path is on.
    const dirs = new Set(paths.map((path) => dirname(path)));
    const byDevice = new Map<number, string>();
    for (const dir of dirs) {
      const { dev } = statSync(dir);
      if (!byDevice.has(dev)) byDevice.set(dev, dir);
    }
    const run = spawnSync(commands.sync, ['-f', '--', ...byDevice.values()], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    if (!run.error && run.status === 0) return;
    if ((run.error as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT') {
      throw new Error(`making the files durable failed: ${commands.sync} -f ${run.error ? run.error.message : `exited ${run.status ?? run.signal}: ${run.stderr.trim()}`}`);
    }
  }
  for (const path of paths) {
    const fd = openSync(path, O_RDONLY | O_NOFOLLOW);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
