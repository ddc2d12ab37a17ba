/**
 * The root as a dry run sees it: the files as they are, with the changes this run would have made
 * so far laid over them. A dry run executes the same actions as a real one, against this overlay
 * instead of the disk, so an action sees what the ones before it would have written (a unit file
 * the plan writes, then enables; a user it creates, then owns a file) and predicts what the real
 * apply does. Nothing here touches the disk except to read it.
 *
 * Pending changes are kept by in-root path, resolved against the real tree; a pending symlink is
 * followed when a later read goes through it as its last component.
 */
import type * as fs from 'node:fs';
import { posix } from 'node:path';
import type { User } from '../cloudconfig/config';
import type { IgnitionGroup } from '../cloudconfig/ignition/config';
import { files } from '../system/paths';
import { RootedFs } from '../system/rooted-fs';
import type { FileAttributes, Outcome } from '../system/rooted-fs';
import { PathError } from '../system/rooted-fs';
import { homeMode, loginDefs, nextFreeId, readGroups, readPasswd, useraddDefaults } from '../system/accounts';

type Pending =
  | { kind: 'file'; content: Buffer; attrs: FileAttributes }
  | { kind: 'dir'; attrs: FileAttributes }
  | { kind: 'link'; target: string; owner: { uid: number; gid: number } | undefined }
  | { kind: 'gone' };

/** As Linux's MAXSYMLINKS. */
const maxLinks = 40;

/** The part of fs.Stats that callers of RootedFs use, for something that exists only in the overlay. */
function pendingStats(p: Exclude<Pending, { kind: 'gone' }>): fs.Stats {
  const attrs = p.kind === 'link' ? { mode: 0o777, uid: 0, gid: 0, ...p.owner } : p.attrs;
  const type = p.kind === 'file' ? 0o100000 : p.kind === 'dir' ? 0o040000 : 0o120000;
  return {
    isFile: () => p.kind === 'file',
    isDirectory: () => p.kind === 'dir',
    isSymbolicLink: () => p.kind === 'link',
    isCharacterDevice: () => false,
    isBlockDevice: () => false,
    isFIFO: () => false,
    isSocket: () => false,
    mode: type | attrs.mode,
    uid: attrs.uid,
    gid: attrs.gid,
    size: p.kind === 'file' ? p.content.length : p.kind === 'link' ? p.target.length : 4096,
  } as fs.Stats;
}

export class DryRunFs extends RootedFs {
  private readonly pending = new Map<string, Pending>();
  private readonly pendingUsers = new Set<string>();

  /** The overlay entry a path leads to, and its key: with `follow`, a pending symlink at the end is followed. */
  private find(inRoot: string, follow: boolean): { key: string; entry: Pending | undefined } {
    let path = inRoot;
    for (let hops = 0; hops <= maxLinks; hops++) {
      const key = this.resolve(path, { follow: false });
      const entry = this.pending.get(key);
      if (follow && entry?.kind === 'link') {
        path = entry.target.startsWith('/') ? entry.target : posix.join(posix.dirname(key), entry.target);
        continue;
      }
      if (follow && entry === undefined) {
        const real = this.resolve(path, { follow: true });
        return { key: real, entry: this.pending.get(real) };
      }
      return { key, entry };
    }
    throw new PathError(`${inRoot}: too many levels of symbolic links`);
  }

  override stat(inRoot: string): fs.Stats | undefined {
    const { key, entry } = this.find(inRoot, true);
    if (entry) return entry.kind === 'gone' ? undefined : pendingStats(entry);
    return super.stat(key);
  }

  override lstat(inRoot: string): fs.Stats | undefined {
    const { key, entry } = this.find(inRoot, false);
    if (entry) return entry.kind === 'gone' ? undefined : pendingStats(entry);
    return super.lstat(key);
  }

  override read(inRoot: string): Buffer | undefined {
    const { key, entry } = this.find(inRoot, true);
    if (!entry) return super.read(key);
    if (entry.kind === 'dir') throw new PathError(`${inRoot} is a directory`);
    return entry.kind === 'file' ? entry.content : undefined;
  }

  override readLink(inRoot: string): string | undefined {
    const { key, entry } = this.find(inRoot, false);
    if (!entry) return super.readLink(key);
    return entry.kind === 'link' ? entry.target : undefined;
  }

  override differs(inRoot: string, content: Buffer, attrs: FileAttributes): boolean {
    const { key, entry } = this.find(inRoot, true);
    if (!entry) return super.differs(key, content, attrs);
    if (entry.kind === 'dir') throw new PathError(`${inRoot} is a directory`);
    if (entry.kind !== 'file') return true;
    const a = entry.attrs;
    return !(a.mode === attrs.mode && a.uid === attrs.uid && a.gid === attrs.gid && entry.content.equals(content));
  }

  override writeAtomic(inRoot: string, content: Buffer, attrs: FileAttributes): Outcome {
    if (!this.differs(inRoot, content, attrs)) return 'unchanged';
    this.pending.set(this.find(inRoot, true).key, { kind: 'file', content, attrs });
    return 'changed';
  }

  override symlink(inRoot: string, target: string, owner?: { uid: number; gid: number }): Outcome {
    const current = this.lstat(inRoot);
    const owned = owner === undefined || (current?.uid === owner.uid && current.gid === owner.gid);
    if (this.readLink(inRoot) === target && owned) return 'unchanged';
    if (current?.isDirectory()) throw new PathError(`${inRoot} is a directory`);
    this.pending.set(this.find(inRoot, false).key, { kind: 'link', target, owner });
    return 'changed';
  }

  override isHardLink(inRoot: string, target: string): boolean {
    const a = this.find(inRoot, false);
    const b = this.find(target, false);
    return a.entry === undefined && b.entry === undefined && super.isHardLink(a.key, b.key);
  }

  /** A hard link as the dry run sees it: a copy of what the target is now (later changes to either are not shared). */
  override hardLink(inRoot: string, target: string): Outcome {
    if (this.isHardLink(inRoot, target)) return 'unchanged';
    const st = this.lstat(target);
    if (!st) throw new PathError(`${target} does not exist: nothing to link to`);
    if (st.isDirectory()) throw new PathError(`${target} is a directory: it cannot be hard linked`);
    if (this.lstat(inRoot)?.isDirectory()) throw new PathError(`${inRoot} is a directory`);
    const key = this.find(inRoot, false).key;
    const link = this.readLink(target);
    if (link !== undefined) this.pending.set(key, { kind: 'link', target: link, owner: { uid: st.uid, gid: st.gid } });
    else this.pending.set(key, { kind: 'file', content: this.read(target) ?? Buffer.alloc(0), attrs: { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid } });
    return 'changed';
  }

  override ensureDir(inRoot: string, attrs: FileAttributes): Outcome {
    const current = this.stat(inRoot);
    if (current && !current.isDirectory()) throw new PathError(`${inRoot} exists and is not a directory`);
    if (current && (current.mode & 0o7777) === attrs.mode && current.uid === attrs.uid && current.gid === attrs.gid) return 'unchanged';
    this.pending.set(this.find(inRoot, true).key, { kind: 'dir', attrs });
    return 'changed';
  }

  /** The directory alone: what a copy of the template would put in it is not shown. */
  override createDir(inRoot: string, attrs: FileAttributes): Outcome {
    return this.lstat(inRoot) ? 'unchanged' : this.ensureDir(inRoot, attrs);
  }

  override list(inRoot: string): string[] {
    const { key } = this.find(inRoot, true);
    const names = new Set(this.stat(inRoot)?.isDirectory() ? super.list(key) : []);
    for (const [path, entry] of this.pending) {
      if (posix.dirname(path) !== key) continue;
      if (entry.kind === 'gone') names.delete(posix.basename(path));
      else names.add(posix.basename(path));
    }
    return [...names].sort();
  }

  override remove(inRoot: string): Outcome {
    if (!this.lstat(inRoot)) return 'unchanged';
    this.pending.set(this.find(inRoot, false).key, { kind: 'gone' });
    return 'changed';
  }

  /**
   * Records a user that useradd would create: a passwd line (the next free id, as useradd picks
   * it), its own group unless told otherwise, and its home. Later actions can then name it, as
   * an owner or for SSH keys; the ids are a prediction.
   */
  addUser(user: User): void {
    const defs = loginDefs(this);
    const defaults = useraddDefaults(this);
    const groups = readGroups(this);
    const uid = user.uid ?? nextFreeId(defs, 'UID', user.system === true, readPasswd(this).map((u) => u.uid));
    const named = user.primaryGroup === undefined ? undefined : groups.find((g) => g.name === user.primaryGroup || String(g.gid) === user.primaryGroup);
    const userGroup = user.primaryGroup === undefined && !user.noUserGroup && defs.get('USERGROUPS_ENAB') === 'yes';
    let gid = named?.gid ?? Number(defaults.get('GROUP') ?? 100);
    if (userGroup) {
      gid = nextFreeId(defs, 'GID', user.system === true, groups.map((g) => g.gid), uid);
      const groupText = this.read(files.group)?.toString('utf8') ?? '';
      this.writeAtomic(files.group, Buffer.from(`${groupText}${groupText && !groupText.endsWith('\n') ? '\n' : ''}${user.name}:x:${gid}:\n`), this.attrsOf(files.group));
    }
    const home = user.homedir ?? `/home/${user.name}`;
    const passwdText = this.read(files.passwd)?.toString('utf8') ?? '';
    const line = `${user.name}:x:${uid}:${gid}:${user.gecos ?? ''}:${home}:${user.shell ?? defaults.get('SHELL') ?? '/bin/sh'}\n`;
    this.writeAtomic(files.passwd, Buffer.from(`${passwdText}${passwdText && !passwdText.endsWith('\n') ? '\n' : ''}${line}`), this.attrsOf(files.passwd));
    if (!user.noCreateHome) this.createDir(home, { mode: homeMode(this), uid, gid });
    this.pendingUsers.add(user.name);
  }

  /**
   * Records a group that groupadd would create: a group line with the gid asked for, or the next
   * free one (as groupadd picks it), so later users can name it; the id is a prediction.
   */
  addGroup(group: IgnitionGroup): void {
    const gid = group.gid ?? nextFreeId(loginDefs(this), 'GID', group.system === true, readGroups(this).map((g) => g.gid));
    const groupText = this.read(files.group)?.toString('utf8') ?? '';
    const line = `${group.name}:x:${gid}:\n`;
    this.writeAtomic(files.group, Buffer.from(`${groupText}${groupText && !groupText.endsWith('\n') ? '\n' : ''}${line}`), this.attrsOf(files.group));
  }

  /** Whether the user exists only in this dry run (useradd would create it). */
  isPendingUser(name: string): boolean {
    return this.pendingUsers.has(name);
  }

  private attrsOf(path: string): FileAttributes {
    const st = this.stat(path);
    return st ? { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid } : { mode: 0o644, uid: 0, gid: 0 };
  }
}
