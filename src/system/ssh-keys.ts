/**
 * SSH keys kept the way update-ssh-keys keeps them: one file a source under
 * ~/.ssh/authorized_keys.d/, merged into ~/.ssh/authorized_keys; all mode 0600 (directories 0700),
 * owned by the user.
 */
import { readPasswd } from './accounts';
import type { Outcome, RootedFs } from './rooted-fs';

/** Where a user's keys live, and whose they are. */
function keyPaths(fs: RootedFs, user: string) {
  const entry = readPasswd(fs).find((u) => u.name === user);
  if (!entry) throw new Error(`no user "${user}" to add SSH keys to`);
  const ssh = `${entry.home.replace(/\/+$/, '')}/.ssh`;
  return { ssh, dir: `${ssh}/authorized_keys.d`, merged: `${ssh}/authorized_keys`, uid: entry.uid, gid: entry.gid };
}

/** Sets the keys kept under `keyName` for `user` and rebuilds the merged authorized_keys. */
export function applySshKeys(fs: RootedFs, user: string, keyName: string, keys: string[]): Outcome {
  const p = keyPaths(fs, user);
  const owner = { uid: p.uid, gid: p.gid };
  let changed = fs.ensureDir(p.ssh, { ...owner, mode: 0o700 }) === 'changed';
  // First run over keys written by hand: keep them, as update-ssh-keys does.
  const existing = fs.read(p.merged);
  if (existing && fs.list(p.dir).length === 0 && !fs.stat(p.dir)) {
    fs.ensureDir(p.dir, { ...owner, mode: 0o700 });
    fs.writeAtomic(`${p.dir}/old_authorized_keys`, existing, { ...owner, mode: 0o600 });
    changed = true;
  }
  changed = fs.ensureDir(p.dir, { ...owner, mode: 0o700 }) === 'changed' || changed;
  const content = Buffer.from(keys.map((k) => `${k.trim()}\n`).join(''));
  changed = fs.writeAtomic(`${p.dir}/${keyName}`, content, { ...owner, mode: 0o600 }) === 'changed' || changed;
  const merged = Buffer.concat(fs.list(p.dir).filter((n) => !n.startsWith('.')).map((n) => fs.read(`${p.dir}/${n}`) ?? Buffer.alloc(0)));
  changed = fs.writeAtomic(p.merged, merged, { ...owner, mode: 0o600 }) === 'changed' || changed;
  return changed ? 'changed' : 'unchanged';
}

/** Whether applying would change anything (for --dry-run). */
export function sshKeysChange(fs: RootedFs, user: string, keyName: string, keys: string[]): boolean {
  const p = keyPaths(fs, user);
  const content = Buffer.from(keys.map((k) => `${k.trim()}\n`).join(''));
  return !(fs.read(`${p.dir}/${keyName}`)?.equals(content) ?? false);
}
