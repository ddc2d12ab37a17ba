/**
 * Users and groups of the target root: lookups in its passwd and group files, and changes through
 * shadow's useradd, groupadd, chpasswd and gpasswd with `--root`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { User } from '../cloudconfig/config';
import type { AccountRef, IgnitionGroup, NodeOwner } from '../cloudconfig/ignition/config';
import { parseEnvFile } from './env-file';
import { commands, files } from './paths';
import type { RootedFs, Outcome } from './rooted-fs';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function lines(fs: RootedFs, file: string): string[][] {
  const text = fs.read(file)?.toString('utf8') ?? '';
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

export function readPasswd(fs: RootedFs): PasswdEntry[] {
  return lines(fs, files.passwd).map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '' }));
}

export function readGroups(fs: RootedFs): GroupEntry[] {
  return lines(fs, files.group).map((f) => ({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) }));
}

/** login.defs: `KEY value` lines, `#` comments. */
export function loginDefs(fs: RootedFs): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of (fs.read('/etc/login.defs')?.toString('utf8') ?? '').split('\n')) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)\s+(\S+)/.exec(line);
    if (m) out.set(m[1]!, m[2]!.replace(/^"(.*)"$/, '$1'));
  }
  return out;
}

/**
 * The id useradd (`UID`) or groupadd (`GID`) would pick, given the ids in use: its range from
 * login.defs (UID_MIN..UID_MAX, or SYS_UID_MIN..SYS_UID_MAX for a system account, with shadow's
 * defaults); `preferred` when it is in that range and free (useradd's own group takes the user's
 * id so); else the id after the highest taken in the range, for a system account the one below the lowest.
 */
export function nextFreeId(defs: Map<string, string>, kind: 'UID' | 'GID', system: boolean, inUse: number[], preferred?: number): number {
  const num = (key: string, fallback: number) => (/^\d+$/.test(defs.get(key) ?? '') ? Number(defs.get(key)) : fallback);
  const [low, high] = system ? [num(`SYS_${kind}_MIN`, 101), num(`SYS_${kind}_MAX`, 999)] : [num(`${kind}_MIN`, 1000), num(`${kind}_MAX`, 60000)];
  if (preferred !== undefined && preferred >= low && preferred <= high && !inUse.includes(preferred)) return preferred;
  const taken = inUse.filter((id) => id >= low && id <= high);
  if (taken.length === 0) return system ? high : low;
  return system ? Math.min(...taken) - 1 : Math.max(...taken) + 1;
}

/** useradd's defaults from the root's /etc/default/useradd. */
export function useraddDefaults(fs: RootedFs): Map<string, string> {
  return parseEnvFile(fs.read('/etc/default/useradd')?.toString('utf8') ?? '');
}

/** The mode useradd gives a home it makes: login.defs' HOME_MODE, or what its UMASK (022) leaves of 0777. */
export function homeMode(fs: RootedFs): number {
  const defs = loginDefs(fs);
  const octal = (key: string) => (/^0?[0-7]{1,4}$/.test(defs.get(key) ?? '') ? Number.parseInt(defs.get(key)!, 8) : undefined);
  return octal('HOME_MODE') ?? 0o777 & ~(octal('UMASK') ?? 0o022);
}

/**
 * Makes a user's home as useradd does (a copy of the skeleton directory, SKEL of
 * /etc/default/useradd or /etc/skel, owned by the user, with {@link homeMode}), but whole: useradd
 * makes it in place, mode 0 and root's until its last steps, so a useradd killed there leaves a
 * home its user cannot enter, and no run after can tell that from a home made so on purpose.
 */
function createHome(fs: RootedFs, entry: PasswdEntry): Outcome {
  return fs.createDir(entry.home, { mode: homeMode(fs), uid: entry.uid, gid: entry.gid }, useraddDefaults(fs).get('SKEL') ?? '/etc/skel');
}

/**
 * Whether `user` is a member of `group` in /etc/group and, where the group has a line there, in
 * /etc/gshadow too: shadow's tools write the two files one after the other, so a tool killed in
 * between leaves them disagreeing, and only gpasswd -a brings them together again.
 */
function isMember(fs: RootedFs, groups: GroupEntry[], group: string, user: string): boolean {
  if (!groups.find((e) => e.name === group)?.members.includes(user)) return false;
  const shadowLine = lines(fs, '/etc/gshadow').find((f) => f[0] === group);
  return !shadowLine || (shadowLine[3] ?? '').split(',').includes(user);
}

/** The password hash of a user from the root's shadow file, if it has one. */
function shadowHash(fs: RootedFs, name: string): string | undefined {
  return lines(fs, '/etc/shadow').find((f) => f[0] === name)?.[1];
}

/**
 * uid and gid for an owner, looked up in the root: a chown-style spec (`user`, `user:group`,
 * `user:`, `:group`, numeric ids), or Ignition's user and group (each by id or name; a missing one
 * is root).
 */
export function resolveOwner(fs: RootedFs, owner: string | NodeOwner): { uid: number; gid: number } {
  if (typeof owner !== 'string') return { uid: userId(fs, owner.user), gid: groupId(fs, owner.group) };
  const [userPart = '', groupPart] = owner.split(/[:.]/, 2);
  const users = readPasswd(fs);
  let uid = 0;
  let gid = 0;
  let loginGid = 0;
  if (userPart) {
    const entry = /^\d+$/.test(userPart) ? undefined : users.find((u) => u.name === userPart);
    if (!/^\d+$/.test(userPart) && !entry) throw new Error(`owner ${owner}: no user "${userPart}" in ${files.passwd}`);
    uid = entry ? entry.uid : Number(userPart);
    loginGid = entry ? entry.gid : 0;
  }
  if (groupPart === '') gid = loginGid; // `user:` means the user's login group, as chown has it
  else if (groupPart !== undefined) {
    const entry = /^\d+$/.test(groupPart) ? undefined : readGroups(fs).find((g) => g.name === groupPart);
    if (!/^\d+$/.test(groupPart) && !entry) throw new Error(`owner ${owner}: no group "${groupPart}" in ${files.group}`);
    gid = entry ? entry.gid : Number(groupPart);
  }
  return { uid, gid };
}

/** The uid of a user given by id or name (root when none is given). */
function userId(fs: RootedFs, ref: AccountRef | undefined): number {
  if (ref === undefined) return 0;
  if ('id' in ref) return ref.id;
  const entry = readPasswd(fs).find((u) => u.name === ref.name);
  if (!entry) throw new Error(`owner: no user "${ref.name}" in ${files.passwd}`);
  return entry.uid;
}

/** The gid of a group given by id or name (root when none is given). */
function groupId(fs: RootedFs, ref: AccountRef | undefined): number {
  if (ref === undefined) return 0;
  if ('id' in ref) return ref.id;
  const entry = readGroups(fs).find((g) => g.name === ref.name);
  if (!entry) throw new Error(`group: no group "${ref.name}" in ${files.group}`);
  return entry.gid;
}

/** Whether a process is gone: no such process, or a zombie nobody reaped (it holds nothing). */
function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? false;
  } catch {
    return true;
  }
}

/**
 * shadow's lock files (`/etc/passwd.lock`, and the `passwd.PID` it links them from) name the
 * process holding them. A tool killed mid-run leaves them behind; shadow clears them only when it
 * can tell the process is gone, which a zombie hides. Cleared here when their holder is gone, so
 * an apply killed during useradd converges when run again.
 */
export function clearStaleShadowLocks(fs: RootedFs): void {
  for (const db of ['passwd', 'shadow', 'group', 'gshadow']) {
    for (const name of fs.list('/etc').filter((n) => n === `${db}.lock` || new RegExp(`^${db}\\.\\d+$`).test(n))) {
      const pid = Number.parseInt(fs.read(`/etc/${name}`)?.toString('latin1') ?? '', 10);
      if (Number.isSafeInteger(pid) && pid > 0 && processGone(pid)) fs.remove(`/etc/${name}`);
    }
    // The new file a tool killed before its rename left (`shadow+`: a copy of the database, hashes
    // and all); a tool holding the lock may be writing it now.
    if (!fs.lstat(`/etc/${db}.lock`)) fs.remove(`/etc/${db}+`);
  }
}

/** Runs a shadow tool; its stderr becomes the error's message. */
function run(command: string, args: string[], input?: string): void {
  try {
    execFileSync(command, args, { input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    const why = e.stderr?.toString().trim() || e.message;
    throw new Error(`${command} failed: ${why}`);
  }
}

/** shadow's `--root` for the root of `fs`: always absolute (useradd refuses a relative one). */
function rootArgs(fs: RootedFs): string[] {
  return fs.root === '/' ? [] : ['--root', fs.root];
}

/** What a useradd cut short left undone of a user: its shadow line, or its own group, missing or half made. */
interface Unfinished {
  shadowLine: boolean;
  ownGroup: 'missing' | 'no-gshadow-line' | undefined;
}

/**
 * useradd commits passwd, shadow, group and gshadow one after the other, each renamed into place,
 * so a run killed in between leaves the user without its shadow line, without the group of its
 * own it was given (USERGROUPS_ENAB), or with that group in /etc/group only.
 */
function unfinished(fs: RootedFs, user: User, entry: PasswdEntry): Unfinished {
  const shadowLine = fs.stat('/etc/shadow') !== undefined && shadowHash(fs, user.name) === undefined;
  let ownGroup: Unfinished['ownGroup'];
  if (user.primaryGroup === undefined && !user.noUserGroup && loginDefs(fs).get('USERGROUPS_ENAB') === 'yes') {
    const groups = readGroups(fs);
    if (!groups.some((g) => g.gid === entry.gid || g.name === user.name)) ownGroup = 'missing';
    else if (groupWithoutShadowLine(fs, user.name, groups)?.gid === entry.gid) ownGroup = 'no-gshadow-line';
  }
  return { shadowLine, ownGroup };
}

/**
 * A group in /etc/group (`groups`, as read from it), with no members, that /etc/gshadow has no
 * line for: what a groupadd or useradd killed between its commits of the two leaves. Undefined
 * when the group is whole.
 */
export function groupWithoutShadowLine(fs: RootedFs, name: string, groups = readGroups(fs)): GroupEntry | undefined {
  if (!fs.stat('/etc/gshadow')) return undefined;
  const group = groups.find((g) => g.name === name);
  if (!group || group.members.length > 0 || lines(fs, '/etc/gshadow').some((f) => f[0] === name)) return undefined;
  return group;
}

/**
 * A user as it is in the root: its passwd entry and what a useradd cut short left undone (when it
 * exists), and what bringing it to its settings takes, one line a change (empty when it is so).
 */
type UserState = { entry?: undefined; changes: string[] } | { entry: PasswdEntry; left: Unfinished; changes: string[] };

function userState(fs: RootedFs, user: User): UserState {
  const entry = readPasswd(fs).find((u) => u.name === user.name);
  if (!entry) return { changes: [`create user ${user.name}`] };
  const changes: string[] = [];
  // A useradd or an apply cut short: finish what it began.
  const left = unfinished(fs, user, entry);
  if (left.shadowLine) changes.push(`add ${user.name} to /etc/shadow`);
  if (left.ownGroup) changes.push(`make the group ${user.name} (gid ${entry.gid}) whole`);
  if (!user.noCreateHome && entry.home && !fs.lstat(entry.home)) changes.push(`create the home directory ${entry.home}`);
  if (user.passwd && shadowHash(fs, user.name) !== user.passwd) changes.push(`set the password of ${user.name}`);
  const groups = readGroups(fs);
  for (const g of user.groups) {
    if (!isMember(fs, groups, g, user.name)) changes.push(`add ${user.name} to group ${g}`);
  }
  return { entry, left, changes };
}

/** What bringing a user to its settings takes, one line a change; empty when it is already so. */
export function userChanges(fs: RootedFs, user: User): string[] {
  return userState(fs, user).changes;
}

/**
 * Creates the user with useradd and its home with {@link createHome}, or, when it exists, finishes
 * what a useradd cut short left undone ({@link unfinished}), makes its home if it has none and
 * brings its password and supplementary groups up to date (chpasswd -e, gpasswd -a). Other
 * settings of an existing user are left alone.
 */
export function applyUser(fs: RootedFs, user: User): Outcome {
  const state = userState(fs, user);
  if (state.changes.length === 0) return 'unchanged';
  clearStaleShadowLocks(fs);
  if (!state.entry) {
    const args = [...rootArgs(fs), '--password', user.passwd ?? '*'];
    if (user.uid !== undefined) args.push('--uid', String(user.uid));
    if (user.gecos !== undefined) args.push('--comment', user.gecos);
    if (user.homedir !== undefined) args.push('--home-dir', user.homedir);
    args.push('--no-create-home');
    if (user.primaryGroup !== undefined) args.push('--gid', user.primaryGroup);
    if (user.groups.length > 0) args.push('--groups', user.groups.join(','));
    if (user.noUserGroup) args.push('--no-user-group');
    if (user.system) args.push('--system');
    if (user.noLogInit) args.push('--no-log-init');
    if (user.shell !== undefined) args.push('--shell', user.shell);
    run(commands.useradd, [...args, user.name]);
    const entry = readPasswd(fs).find((u) => u.name === user.name);
    if (!entry) throw new Error(`${commands.useradd} did not add ${user.name} to ${files.passwd}`);
    if (!user.noCreateHome && entry.home) createHome(fs, entry);
    return 'changed';
  }
  const { entry: existing, left } = state;
  // The group again with its id, through the tools, so both files have it as groupadd writes it.
  if (left.ownGroup === 'no-gshadow-line') run(commands.groupdel, [...rootArgs(fs), '--force', user.name]);
  if (left.ownGroup) run(commands.groupadd, [...rootArgs(fs), '--gid', String(existing.gid), user.name]);
  if (!user.noCreateHome && existing.home && !fs.lstat(existing.home)) createHome(fs, existing);
  // chpasswd adds a missing shadow line; '*' is what useradd was given when no password was.
  const hash = left.shadowLine ? (user.passwd ?? '*') : user.passwd;
  if (hash && shadowHash(fs, user.name) !== hash) run(commands.chpasswd, [...rootArgs(fs), '-e'], `${user.name}:${hash}\n`);
  const groups = readGroups(fs);
  for (const g of user.groups) {
    if (!isMember(fs, groups, g, user.name)) run(commands.gpasswd, [...rootArgs(fs), '-a', user.name, g]);
  }
  return 'changed';
}

/**
 * Creates the group with groupadd. An existing group is left as it is (Ignition only adds groups);
 * when its gid is not the one asked for, `detail` says so. One that a groupadd cut short left
 * without its gshadow line is deleted and added again, with the id it has.
 */
export function applyGroup(fs: RootedFs, group: IgnitionGroup): { outcome: Outcome; detail?: string } {
  const groups = readGroups(fs);
  const existing = groups.find((g) => g.name === group.name);
  const unfinishedGroup = existing && groupWithoutShadowLine(fs, group.name, groups);
  if (existing && !unfinishedGroup) {
    const detail = group.gid !== undefined && existing.gid !== group.gid ? `it exists with gid ${existing.gid}, not ${group.gid}; left as it is` : undefined;
    return { outcome: 'unchanged', ...(detail ? { detail } : {}) };
  }
  clearStaleShadowLocks(fs);
  if (unfinishedGroup) run(commands.groupdel, [...rootArgs(fs), '--force', group.name]);
  const args = [...rootArgs(fs)];
  const gid = unfinishedGroup?.gid ?? group.gid;
  if (gid !== undefined) args.push('--gid', String(gid));
  if (group.passwordHash !== undefined) args.push('--password', group.passwordHash);
  if (group.system) args.push('--system');
  run(commands.groupadd, [...args, group.name]);
  return { outcome: 'changed' };
}
