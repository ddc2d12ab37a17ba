/**
 * Execution: carries out planned actions against the host through system/, one by one. A failed
 * action is reported with its cause and the independent ones after it still run. A dry run
 * executes the same actions against a {@link DryRunFs}, an overlay of the changes the run would
 * have made so far, so each action sees what the ones before it would have written and says
 * whether it would change anything; only what goes outside the files (useradd, hostnamectl,
 * systemd's jobs, scripts) is predicted instead of done.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { hostname as currentHostname } from 'node:os';
import { posix } from 'node:path';
import type { Action, FileAction } from './plan';
import type { NodeOwner } from '../cloudconfig/ignition/config';
import { applyGroup, applyUser, groupWithoutShadowLine, readGroups, readPasswd, resolveOwner, userChanges } from '../system/accounts';
import { installLinks, parseInstall } from '../system/offline-units';
import { commands, files, unitSearchPath } from '../system/paths';
import type { UnitDirs } from '../system/paths';
import { RootedFs } from '../system/rooted-fs';
import { DryRunFs } from './dry-run-fs';
import type { FileAttributes } from '../system/rooted-fs';
import { mergeSettings } from '../system/env-file';
import { applySshKeys } from '../system/ssh-keys';
import type { Systemd } from '../system/systemd';

export type Outcome = 'changed' | 'unchanged' | 'failed' | 'skipped';

export interface ActionResult {
  /**
   * What was done, one word: `file`, `directory`, `link`, `user`, `group`, `ssh-keys`, `hostname`,
   * `mask`, `unmask`, `enable`, `disable`, `start` (and the other unit commands), `reload`,
   * `script`, `instance`, `network` (a network configuration that did not parse); for what was not
   * applied, what it is (`disk`, `filesystem`, ...).
   */
  action: string;
  /** What it was done to: a path, a user or unit name, `systemd`, an instance id; empty for a script. */
  target: string;
  /** Both, as people read them: `file /etc/hostname`, `user alice`, `start etcd.service`. */
  subject: string;
  /** Where in the user data it comes from. */
  origin: string;
  outcome: Outcome;
  /** Why it failed or was skipped, or what a command printed. */
  detail?: string;
}

export interface ExecuteOptions {
  /** The root everything is applied under. Default `/`. */
  root: string;
  dryRun: boolean;
  /** The systemd manager; undefined applies offline (links written directly, commands skipped). */
  systemd: Systemd | undefined;
  unitDirs: UnitDirs;
  /**
   * A new machine (first boot, or an instance id other than the recorded one): the restart-like
   * commands run even when nothing changed, as on a first boot.
   */
  newInstance?: boolean;
  /** The origin the reload of systemd is reported with: the user data's units section. Default `coreos.units`. */
  unitsOrigin?: string;
}

const restartLike = new Set(['restart', 'reload', 'try-restart', 'reload-or-restart', 'reload-or-try-restart']);

/** A result not yet decided: what is acted on, and where it comes from. */
export function resultFor(action: string, target: string, origin: string): ActionResult {
  const subject = action === 'ssh-keys' ? `ssh keys of ${target}` : action === 'reload' && target === 'systemd' ? 'reload systemd' : target ? `${action} ${target}` : action;
  return { action, target, subject, origin, outcome: 'unchanged' };
}

function describe(action: Action): [action: string, target: string] {
  switch (action.kind) {
    case 'hostname':
      return ['hostname', action.hostname];
    case 'user':
      return ['user', action.user.name];
    case 'ssh-keys':
      return ['ssh-keys', action.user];
    case 'file':
      return ['file', action.path];
    case 'update-conf':
      return ['file', files.updateConf];
    case 'merge-env':
      return ['file', action.path];
    case 'mask':
      return [action.mask ? 'mask' : 'unmask', action.unit];
    case 'enable':
      return ['enable', action.unit];
    case 'unit-command':
      return [action.command, action.unit];
    case 'networkd-restart':
      return ['restart', 'systemd-networkd.service'];
    case 'script':
      return ['script', ''];
    case 'group':
      return ['group', action.group.name];
    case 'keep-file':
      return ['file', action.path];
    case 'directory':
      return ['directory', action.path];
    case 'link':
      return ['link', action.path];
    case 'disable':
      return ['disable', action.unit];
    case 'not-applied':
      return [action.what, action.target];
  }
}

/** How often hostnamectl is tried, and the pause between tries. */
export const hostnameTries = { attempts: 3, pauseMs: 2000, timeoutMs: 60_000 };

/**
 * `hostnamectl set-hostname`, tried again when it fails: on a machine busy booting, D-Bus may give
 * up activating systemd-hostnamed (its 25 s start timeout, "Connection timed out") while the
 * service is still starting; a later try finds it running. The last failure is thrown.
 */
async function setHostname(name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      // sd-bus's own call timeout (25 s) raised to just under the try's.
      const env = { ...process.env, SYSTEMD_BUS_TIMEOUT: String(Math.floor(hostnameTries.timeoutMs / 1000) - 5) };
      execFileSync(commands.hostnamectl, ['set-hostname', name], { stdio: 'pipe', timeout: hostnameTries.timeoutMs, env });
      return;
    } catch (err) {
      if (attempt >= hostnameTries.attempts) throw err;
      await new Promise((r) => setTimeout(r, hostnameTries.pauseMs));
    }
  }
}

export class Executor {
  private readonly fs: RootedFs;
  /** Whether anything has changed so far in this run (restart-like commands run only then). */
  private changedAnything = false;
  private unitFilesChanged = false;
  private networkChanged = false;
  private reloaded = false;

  constructor(private readonly options: ExecuteOptions) {
    this.fs = options.dryRun ? new DryRunFs(options.root) : new RootedFs(options.root);
    this.changedAnything = options.newInstance === true;
  }

  async run(actions: Action[]): Promise<ActionResult[]> {
    const results: ActionResult[] = [];
    // The results of actions with staged writes, by the tag their writes carry.
    const staging = new Map<number, ActionResult>();
    const commit = () => {
      for (const failure of this.fs.commit()) {
        const result = staging.get(failure.tag)!;
        result.outcome = 'failed';
        result.detail ??= `${failure.path}: ${failure.error.message}`;
      }
      staging.clear();
    };
    for (const [index, action] of actions.entries()) {
      const result = resultFor(...describe(action), action.origin);
      // Durability is paid once for a run of actions that only write files: their writes are
      // staged, and completed before anything that may read them from outside (a command, systemd).
      if (writesFilesOnly(action)) {
        this.fs.stageWrites(index);
        staging.set(index, result);
      } else {
        commit();
      }
      try {
        if (needsReload(action)) {
          const reload = await this.reloadIfNeeded();
          if (reload) results.push(reload);
        }
        const outcome = await this.act(action, result);
        result.outcome = outcome;
        if (outcome === 'changed') {
          this.changedAnything = true;
          if (this.isUnitPath(action)) this.unitFilesChanged = true;
          if (this.isNetworkPath(action)) this.networkChanged = true;
        }
      } catch (err) {
        result.outcome = 'failed';
        result.detail = (err as Error).message;
      }
      results.push(result);
    }
    commit();
    const reload = await this.reloadIfNeeded();
    if (reload) results.push(reload);
    return results;
  }

  private isUnitPath(action: Action): boolean {
    const path = nodePath(action);
    const { system, network } = this.options.unitDirs;
    return path !== undefined && [system.persistent, system.runtime, network.persistent, network.runtime].some((d) => path.startsWith(`${d}/`));
  }

  private isNetworkPath(action: Action): boolean {
    const path = nodePath(action);
    const { network } = this.options.unitDirs;
    return path !== undefined && [network.persistent, network.runtime].some((d) => path.startsWith(`${d}/`));
  }

  /** systemd reads unit files again once, after they are all written and before the first enable or command. */
  private async reloadIfNeeded(): Promise<ActionResult | undefined> {
    if (this.reloaded || !this.unitFilesChanged || !this.options.systemd) return undefined;
    this.reloaded = true;
    const result: ActionResult = { ...resultFor('reload', 'systemd', this.options.unitsOrigin ?? 'coreos.units'), outcome: 'changed' };
    if (!this.options.dryRun) await this.options.systemd.reload();
    return result;
  }

  private attributes(action: FileAction): FileAttributes {
    return { mode: action.mode, ...this.owner(action.owner) };
  }

  /** The ids of an owner, resolved in the root; undefined: whoever applies. */
  private owner(owner: string | NodeOwner | undefined): { uid: number; gid: number } {
    return owner === undefined ? this.ownIds() : resolveOwner(this.fs, owner);
  }

  /** A dry run's overlay, or undefined in a real run. */
  private get overlay(): DryRunFs | undefined {
    return this.fs instanceof DryRunFs ? this.fs : undefined;
  }

  private write(path: string, content: Buffer, attrs: FileAttributes): 'changed' | 'unchanged' {
    return this.fs.writeAtomic(path, content, attrs);
  }

  private async act(action: Action, result: ActionResult): Promise<Outcome> {
    const { dryRun, systemd } = this.options;
    switch (action.kind) {
      case 'hostname': {
        if (currentHostname() === action.hostname) return 'unchanged';
        if (!dryRun) await setHostname(action.hostname);
        return 'changed';
      }
      case 'user': {
        const overlay = this.overlay;
        if (!overlay) return applyUser(this.fs, action.user);
        // useradd is not run: the user it would create goes into the overlay, for the actions after.
        if (!readPasswd(overlay).some((u) => u.name === action.user.name)) overlay.addUser(action.user);
        else if (userChanges(overlay, action.user).length === 0) return 'unchanged';
        return 'changed';
      }
      case 'ssh-keys':
        if (this.overlay?.isPendingUser(action.user)) result.detail = `once user ${action.user} exists`;
        return applySshKeys(this.fs, action.user, action.keyName, action.keys);
      case 'file': {
        const attrs = this.attributes(action);
        if (action.overwrite === false && this.fs.lstat(action.path) && this.fs.differs(action.path, action.content, attrs)) {
          throw new Error(`${action.path} exists and is not this file, and overwrite is false: set overwrite to true to replace it`);
        }
        return this.write(action.path, action.content, attrs);
      }
      case 'keep-file': {
        const st = this.fs.stat(action.path);
        if (st && !st.isFile()) throw new Error(`${action.path} exists and is not a regular file`);
        const current = st ? (this.fs.read(action.path) ?? Buffer.alloc(0)) : Buffer.alloc(0);
        const endsWith = current.length >= action.append.length && current.subarray(current.length - action.append.length).equals(action.append);
        const content = endsWith ? current : Buffer.concat([current, action.append]);
        return this.write(action.path, content, { mode: action.mode ?? (st ? st.mode & 0o7777 : 0o644), ...this.owner(action.owner) });
      }
      case 'directory': {
        const st = this.fs.stat(action.path);
        let removed = false;
        if (st && !st.isDirectory()) {
          if (!action.overwrite) throw new Error(`${action.path} exists and is not a directory, and overwrite is false`);
          removed = this.fs.remove(action.path) === 'changed';
        }
        const mode = action.mode ?? (st?.isDirectory() ? st.mode & 0o7777 : 0o755);
        const made = this.fs.ensureDir(action.path, { mode, ...this.owner(action.owner) });
        return removed ? 'changed' : made;
      }
      case 'link': {
        const st = this.fs.lstat(action.path);
        const isThisLink = action.hard ? this.fs.isHardLink(action.path, action.target) : st?.isSymbolicLink() === true && this.fs.readLink(action.path) === action.target;
        if (st && !isThisLink && !action.overwrite) throw new Error(`${action.path} exists and is not this link, and overwrite is false`);
        return action.hard ? this.fs.hardLink(action.path, action.target) : this.fs.symlink(action.path, action.target, this.owner(action.owner));
      }
      case 'group': {
        const overlay = this.overlay;
        if (overlay) {
          // groupadd is not run: the group it would create goes into the overlay, for the users after.
          if (readGroups(overlay).some((g) => g.name === action.group.name)) return groupWithoutShadowLine(overlay, action.group.name) ? 'changed' : 'unchanged';
          overlay.addGroup(action.group);
          return 'changed';
        }
        const { outcome, detail } = applyGroup(this.fs, action.group);
        if (detail) result.detail = detail;
        return outcome;
      }
      case 'not-applied':
        if (action.failed) throw new Error(action.why);
        result.detail = action.why;
        return 'skipped';
      case 'update-conf': {
        const current = this.fs.read(files.updateConf) ?? this.fs.read(files.updateConfDefaults) ?? Buffer.alloc(0);
        const merged = mergeSettings(current.toString('utf8'), action.settings);
        return this.write(files.updateConf, Buffer.from(merged), { mode: 0o644, ...this.ownIds() });
      }
      case 'merge-env': {
        const current = this.fs.read(action.path)?.toString('utf8') ?? '';
        const merged = mergeSettings(current, action.settings);
        if (merged === current) return 'unchanged';
        return this.write(action.path, Buffer.from(merged), { mode: 0o644, ...this.ownIds() });
      }
      case 'mask': {
        if (systemd) {
          // Through systemd, as `systemctl mask` does: MaskUnitFiles / UnmaskUnitFiles.
          const state = await systemd.unitFileState(action.unit);
          const masked = state === (action.runtime ? 'masked-runtime' : 'masked');
          if (masked === action.mask) return 'unchanged';
          if (dryRun) return 'changed';
          const changed = action.mask ? await systemd.mask(action.unit, action.runtime) : await systemd.unmask(action.unit, action.runtime);
          return changed ? 'changed' : 'unchanged';
        }
        if (action.mask) return this.fs.symlink(action.path, '/dev/null');
        // Masked as systemd sees it: a link to /dev/null (the link itself), or an empty file or a
        // device where the path leads inside the root.
        const st = this.fs.stat(action.path);
        const masked = this.fs.readLink(action.path) === '/dev/null' || (st?.isFile() === true && st.size === 0) || st?.isCharacterDevice() === true;
        if (!masked) return 'unchanged';
        return this.fs.remove(action.path);
      }
      case 'enable': {
        if (systemd) {
          if (dryRun) return 'changed';
          return (await systemd.enable(action.unit, action.runtime)) ? 'changed' : 'unchanged';
        }
        return this.enableOffline(action.unit, action.dir, result);
      }
      case 'disable': {
        if (systemd) {
          if (dryRun) return (await systemd.unitFileState(action.unit)) === 'enabled' ? 'changed' : 'unchanged';
          return (await systemd.disable(action.unit, action.runtime)) ? 'changed' : 'unchanged';
        }
        return this.disableOffline(action.unit, action.dir);
      }
      case 'networkd-restart':
        if (!this.networkChanged) return 'unchanged';
        return this.command(systemd, 'restart', 'systemd-networkd.service', result);
      case 'unit-command':
        if (restartLike.has(action.command) && !this.changedAnything) {
          result.detail = 'nothing changed in this run';
          return 'unchanged';
        }
        return this.command(systemd, action.command, action.unit, result);
      case 'script':
        return this.script(action.content, result);
    }
  }

  /** Files without an owner belong to whoever applies (root on a real machine). */
  private ownIds(): { uid: number; gid: number } {
    return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  }

  private async command(systemd: Systemd | undefined, command: Parameters<Systemd['run']>[0], unit: string, result: ActionResult): Promise<Outcome> {
    if (!systemd) {
      result.detail = 'no systemd to run it (offline apply)';
      return 'skipped';
    }
    if (command === 'start' || command === 'stop') {
      const state = await systemd.activeState(unit);
      if ((command === 'start' && state === 'active') || (command === 'stop' && (state === 'inactive' || state === 'failed'))) return 'unchanged';
    }
    if (this.options.dryRun) return 'changed';
    const r = await systemd.run(command, unit);
    if (r.result === 'done') return 'changed';
    if (r.result === 'queued') {
      result.detail = 'queued: the unit is ordered after this one and runs once it finishes';
      return 'changed';
    }
    throw new Error(`${command} ${unit}: job ${r.result}, unit is ${r.after}`);
  }

  /**
   * Creates the links `systemctl enable` would, from the unit's [Install] section, and enables its
   * Also= units. `visited` holds the units already enabled in this walk: Also= may name a unit
   * that names this one again (or itself), and each is enabled once.
   */
  private enableOffline(unit: string, dir: string, result: ActionResult, visited = new Set<string>()): Outcome {
    visited.add(unit);
    const unitPath = this.findUnit(unit, dir);
    if (!unitPath) throw new Error(`no unit file for ${unit} in ${[dir, ...unitSearchPath].join(', ')}`);
    const install = parseInstall(this.fs.read(unitPath)!.toString('utf8'));
    const links = installLinks(unit, install, unitPath, dir);
    if (links.length === 0) {
      result.detail = 'its [Install] section names nothing to enable it for';
      return 'skipped';
    }
    let changed = false;
    for (const [link, target] of links) {
      if (this.fs.symlink(link, target) === 'changed') changed = true;
    }
    for (const also of install.also) {
      if (visited.has(also)) continue;
      if (this.findUnit(also, dir) && this.enableOffline(also, dir, resultFor('enable', also, ''), visited) === 'changed') changed = true;
    }
    return changed ? 'changed' : 'unchanged';
  }

  /** Removes the links `systemctl disable` would, from the unit's [Install] section; none when there is no unit file. */
  private disableOffline(unit: string, dir: string): Outcome {
    const unitPath = this.findUnit(unit, dir);
    if (!unitPath) return 'unchanged';
    const install = parseInstall(this.fs.read(unitPath)!.toString('utf8'));
    let changed = false;
    for (const [link] of installLinks(unit, install, unitPath, dir)) {
      if (this.fs.readLink(link) !== undefined && this.fs.remove(link) === 'changed') changed = true;
    }
    return changed ? 'changed' : 'unchanged';
  }

  private findUnit(unit: string, dir: string): string | undefined {
    const { system } = this.options.unitDirs;
    for (const d of [dir, system.persistent, system.runtime, ...unitSearchPath]) {
      const p = posix.join(d, unit);
      if (this.fs.stat(p)?.isFile()) return p; // a linked unit file counts where its link leads inside the root
    }
    return undefined;
  }

  /** Runs `#!` user data with the interpreter its first line names, under the root; its output goes in the report. */
  private script(content: Buffer, result: ActionResult): Outcome {
    const name = `${files.scripts}/${createHash('sha256').update(content).digest('hex').slice(0, 16)}`;
    if (this.options.dryRun) return 'changed';
    this.fs.writeAtomic(name, content, { mode: 0o700, ...this.ownIds() });
    const argv = this.fs.root === '/' ? [name] : [commands.chroot, this.fs.root, name];
    try {
      const out = execFileSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
      result.detail = out.trim() || undefined;
    } catch (err) {
      const e = err as { status?: number; stdout?: string; stderr?: string; message: string };
      throw new Error(`the script failed (exit ${e.status ?? '?'}): ${(e.stderr || e.stdout || e.message).trim()}`);
    }
    return 'changed';
  }
}

/** Whether the actions need systemd: unit files, masks, enables or commands. */
export function touchesSystemd(actions: Action[], dirs: UnitDirs): boolean {
  const roots = [dirs.system.persistent, dirs.system.runtime, dirs.network.persistent, dirs.network.runtime].map((d) => `${d}/`);
  return actions.some((a) => {
    const path = nodePath(a);
    return a.kind === 'mask' || needsReload(a) || (path !== undefined && roots.some((r) => path.startsWith(r)));
  });
}

/** The path an action makes a file, directory or link at (or masks a unit at), if it does. */
function nodePath(action: Action): string | undefined {
  switch (action.kind) {
    case 'file':
    case 'keep-file':
    case 'directory':
    case 'link':
    case 'mask':
      return action.path;
    default:
      return undefined;
  }
}

/** Whether an action touches nothing but files through RootedFs, so its writes may be staged. */
function writesFilesOnly(action: Action): boolean {
  switch (action.kind) {
    case 'file':
    case 'keep-file':
    case 'directory':
    case 'link':
    case 'update-conf':
    case 'merge-env':
    case 'ssh-keys':
    case 'not-applied':
      return true;
    default:
      return false;
  }
}

function needsReload(action: Action): boolean {
  return action.kind === 'enable' || action.kind === 'disable' || action.kind === 'unit-command' || action.kind === 'networkd-restart';
}

