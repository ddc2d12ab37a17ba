/**
 * Planning: validated settings in, an ordered list of actions out, in the order coreos-cloudinit
 * applies them (hostname, users, SSH keys, files, units, then systemd). Pure: it reads nothing
 * and changes nothing, so `--dry-run` and re-runs come for free.
 */
import type { CloudConfig, Environment, Unit, UnitCommand, User } from '../cloudconfig/config';
import type { IgnitionGroup, NodeOwner } from '../cloudconfig/ignition/config';
import { dropInNameProblem } from '../cloudconfig/rules/units';
import { hostnameProblem } from '../cloudconfig/values';
import { unitDirs, files } from '../system/paths';
import type { UnitDirs } from '../system/paths';
import type { NetworkConfig } from '../system/network-config';
import { networkdFiles } from './netconf/networkd';
import { settingLine } from '../system/env-file';

/** A file to make exactly so. */
export interface FileAction {
  kind: 'file';
  /** Where it comes from, for the report: `write_files[2]`, `coreos.update`, `coreos.units[0]`. */
  origin: string;
  path: string;
  content: Buffer;
  mode: number;
  /**
   * Owner spec (`user`, `user:group`, ids), or Ignition's user and group (each by id or name, root
   * when missing); undefined: the user running the apply (root).
   */
  owner: string | NodeOwner | undefined;
  /**
   * False: something at the path that is not already exactly this file is an error, not replaced
   * (Ignition's `overwrite: false`). Default true.
   */
  overwrite?: boolean;
}

export type Action =
  | { kind: 'hostname'; origin: string; hostname: string }
  | { kind: 'user'; origin: string; user: User }
  | { kind: 'ssh-keys'; origin: string; user: string; keyName: string; keys: string[] }
  | FileAction
  /** Merge settings into /etc/coreos/update.conf, keeping its other lines. */
  | { kind: 'update-conf'; origin: string; settings: Environment }
  /** Merge KEY=value settings into an environment file, keeping its other lines. */
  | { kind: 'merge-env'; origin: string; path: string; settings: Environment }
  /** Link a unit to /dev/null (mask), or remove such a link (unmask). */
  | { kind: 'mask'; origin: string; unit: string; path: string; runtime: boolean; mask: boolean }
  | { kind: 'enable'; origin: string; unit: string; runtime: boolean; dir: string }
  | { kind: 'unit-command'; origin: string; unit: string; command: UnitCommand }
  /** Restart systemd-networkd, when a network unit changed. */
  | { kind: 'networkd-restart'; origin: string }
  | { kind: 'script'; origin: string; content: Buffer }
  /** Make the group exist (groupadd); an existing group is left as it is. */
  | { kind: 'group'; origin: string; group: IgnitionGroup }
  /**
   * A regular file whose contents are kept (Ignition's file without a source): created empty when
   * there is none, then `append` added to its end unless it already ends with it. `mode`
   * undefined keeps an existing file's mode (0644 for a new one).
   */
  | { kind: 'keep-file'; origin: string; path: string; append: Buffer; mode: number | undefined; owner: NodeOwner | undefined }
  /**
   * A directory with this mode (undefined: an existing one's, else 0755) and owner. Something else
   * at the path is an error, or removed first when `overwrite` (a file or link; never a tree).
   */
  | { kind: 'directory'; origin: string; path: string; mode: number | undefined; owner: NodeOwner | undefined; overwrite: boolean }
  /**
   * A symbolic link (with its owner) or a hard link to `target`. Something else at the path is an
   * error, or replaced when `overwrite` (a file or link; never a directory).
   */
  | { kind: 'link'; origin: string; path: string; target: string; hard: boolean; owner: NodeOwner | undefined; overwrite: boolean }
  /** Remove the links enabling a unit (`systemctl disable`). */
  | { kind: 'disable'; origin: string; unit: string; runtime: boolean; dir: string }
  /**
   * Something the user data asks for that this run does not do: reported as skipped with `why`,
   * or as failed when `failed` (a source that could not be fetched or verified).
   */
  | { kind: 'not-applied'; origin: string; what: string; target: string; why: string; failed: boolean };

export interface PlanOptions {
  /** Applying to the running system (root `/`): the kernel's hostname is set too. */
  live: boolean;
  /** Unit directories; the user manager's in tests. Default /etc/systemd/system and /run/systemd/system. */
  unitDirs: UnitDirs;
  /** The name under which SSH keys from user data are kept (update-ssh-keys' key name). */
  sshKeyName: string;
  /**
   * The network configuration from the metadata: written as networkd files into the runtime
   * network directory (/run/systemd/network) before the units, and systemd-networkd restarted once
   * after them, as the reference does. Default none.
   */
  network?: NetworkConfig;
}

export const defaultPlanOptions: PlanOptions = { live: true, unitDirs, sshKeyName: 'coreos-cloudinit' };

const networkSuffixes = ['.network', '.netdev', '.link'];

function isNetworkUnit(name: string): boolean {
  return networkSuffixes.some((s) => name.endsWith(s));
}

/**
 * `[Service]` and one `Environment="NAME=value"` line a setting, as the reference writes drop-ins,
 * with `\` and `"` escaped for systemd's quoting (the reference wrote them as they were, so a quote
 * ended the quoting). `%` stays a systemd specifier, as with the reference.
 */
function serviceDropIn(env: Environment): Buffer {
  return Buffer.from(`[Service]\n${env.map(([k, v]) => `Environment="${settingLine(k, v).replace(/[\\"]/g, (c) => `\\${c}`)}"\n`).join('')}`);
}

/** Go's %q for the quoted fields of /etc/oem-release. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** The generated units: etcd, etcd2, fleet and locksmithd drop-ins, and what coreos.update asks of locksmithd and update-engine. */
function generatedUnits(config: CloudConfig): Unit[] {
  const out: Unit[] = [];
  const services: Array<[string, Environment, string]> = [
    ['etcd.service', config.etcd, 'coreos.etcd'],
    ['etcd2.service', config.etcd2, 'coreos.etcd2'],
    ['fleet.service', config.fleet, 'coreos.fleet'],
    ['locksmithd.service', config.locksmith, 'coreos.locksmith'],
  ];
  for (const [name, env, origin] of services) {
    if (env.length === 0) continue;
    out.push({ origin, name, content: undefined, runtime: true, enable: false, mask: false, command: undefined, dropIns: [{ name: '20-cloudinit.conf', content: serviceDropIn(env).toString() }] });
  }
  const strategy = config.update.find(([k]) => k === 'REBOOT_STRATEGY')?.[1];
  if (strategy !== undefined) {
    // The reboot strategy restarts locksmithd, or for "off" masks and stops it; one unit with the drop-in above.
    const off = strategy === 'off';
    const existing = out.find((u) => u.name === 'locksmithd.service');
    const locksmithd = existing ?? { origin: 'coreos.update', name: 'locksmithd.service', content: undefined, runtime: true, enable: false, mask: false, command: undefined, dropIns: [] };
    locksmithd.mask = off;
    locksmithd.command = off ? 'stop' : 'restart';
    if (!existing) out.push(locksmithd);
  }
  if (config.update.some(([k]) => k === 'GROUP' || k === 'SERVER')) {
    out.push({ origin: 'coreos.update', name: 'update-engine.service', content: undefined, runtime: true, enable: false, mask: false, command: 'restart', dropIns: [] });
  }
  return out;
}

/** A plan that would break what validation promises (a multi-line /etc/hostname, a drop-in outside its directory). */
export class PlanError extends Error {}

/**
 * The second guard behind validation: the hostname is written as one line of /etc/hostname and
 * /etc/hosts, so anything but a host name (a newline above all) would add lines. Validation
 * reports it (hostname-syntax) and metadata is parsed at the datasource; this holds whatever the
 * caller passes.
 */
function checkedHostname(hostname: string): string {
  const problem = hostnameProblem(hostname);
  if (problem) throw new PlanError(`hostname ${JSON.stringify(hostname)} is not a host name (${problem}): /etc/hostname and /etc/hosts are not written`);
  return hostname;
}

/** The same guard for drop-in names, which are joined to the unit's NAME.d path. */
export function checkedDropIn(unit: string, name: string): string {
  const problem = dropInNameProblem(name);
  if (problem) throw new PlanError(`${unit}: drop-in ${JSON.stringify(name)} ${problem}`);
  return name;
}

/** Plans the actions; throws a PlanError when the config breaks an invariant validation reports (see checkedHostname). */
export function plan(config: CloudConfig, options: PlanOptions = defaultPlanOptions): Action[] {
  const actions: Action[] = [];
  const hostname = config.hostname ? checkedHostname(config.hostname) : undefined;
  if (hostname) {
    if (options.live) actions.push({ kind: 'hostname', origin: 'hostname', hostname });
    actions.push({ kind: 'file', origin: 'hostname', path: files.hostname, content: Buffer.from(`${hostname}\n`), mode: 0o644, owner: undefined });
  }
  for (const user of config.users) actions.push({ kind: 'user', origin: user.origin, user });
  if (config.sshAuthorizedKeys.length > 0) {
    actions.push({ kind: 'ssh-keys', origin: 'ssh_authorized_keys', user: 'core', keyName: options.sshKeyName, keys: config.sshAuthorizedKeys });
  }
  for (const user of config.users) {
    if (user.sshAuthorizedKeys.length > 0) {
      actions.push({ kind: 'ssh-keys', origin: `${user.origin}.ssh_authorized_keys`, user: user.name, keyName: options.sshKeyName, keys: user.sshAuthorizedKeys });
    }
  }
  for (const f of config.writeFiles) {
    actions.push({ kind: 'file', origin: f.origin, path: f.path.startsWith('/') ? f.path : `/${f.path}`, content: f.content, mode: f.mode, owner: f.owner });
  }
  if (config.oem.length > 0) {
    const quoted = new Set(['NAME', 'HOME_URL', 'BUG_REPORT_URL']);
    const content = config.oem.map(([k, v]) => `${k}=${quoted.has(k) ? goQuote(v) : v}\n`).join('');
    actions.push({ kind: 'file', origin: 'coreos.oem', path: files.oemRelease, content: Buffer.from(content), mode: 0o644, owner: undefined });
  }
  if (config.update.length > 0) actions.push({ kind: 'update-conf', origin: 'coreos.update', settings: config.update });
  if (config.manageEtcHosts === 'localhost' && hostname) {
    const h = hostname;
    actions.push({ kind: 'file', origin: 'manage_etc_hosts', path: files.hosts, content: Buffer.from(`127.0.0.1 ${h} localhost\n::1 ${h} localhost\n`), mode: 0o644, owner: undefined });
  }
  if (config.flannel.length > 0) {
    const content = config.flannel.map(([k, v]) => `${settingLine(k, v)}\n`).join('');
    actions.push({ kind: 'file', origin: 'coreos.flannel', path: files.flannelOptions, content: Buffer.from(content), mode: 0o644, owner: undefined });
  }

  // Network configuration from the metadata, before the units (which may need the network), as the reference orders it.
  let network: string | undefined;
  if (options.network) {
    for (const file of networkdFiles(options.network)) {
      actions.push({ kind: 'file', origin: options.network.origin, path: `${options.unitDirs.network.runtime}/${file.name}`, content: Buffer.from(file.content), mode: 0o644, owner: undefined });
    }
    network = options.network.origin;
  }

  const units: Unit[] = [...config.units, ...generatedUnits(config)];
  const later: Action[] = [];
  for (const unit of units) {
    const net = isNetworkUnit(unit.name);
    const dirs = net ? options.unitDirs.network : options.unitDirs.system;
    const dir = unit.runtime ? dirs.runtime : dirs.persistent;
    const unitPath = `${dir}/${unit.name}`;
    if (unit.mask) actions.push({ kind: 'mask', origin: unit.origin, unit: unit.name, path: unitPath, runtime: unit.runtime, mask: true });
    else {
      if (unit.content !== undefined) {
        actions.push({ kind: 'file', origin: unit.origin, path: unitPath, content: Buffer.from(unit.content), mode: 0o644, owner: undefined });
      } else if (unit.runtime) {
        // As the reference does, a runtime unit without content is unmasked.
        actions.push({ kind: 'mask', origin: unit.origin, unit: unit.name, path: unitPath, runtime: true, mask: false });
      }
      for (const d of unit.dropIns) {
        actions.push({ kind: 'file', origin: unit.origin, path: `${unitPath}.d/${checkedDropIn(unit.name, d.name)}`, content: Buffer.from(d.content), mode: 0o644, owner: undefined });
      }
    }
    if (net) {
      network ??= 'coreos.units';
      continue; // network units are not enabled and take no command: networkd is restarted instead
    }
    if (unit.enable && !unit.mask) later.push({ kind: 'enable', origin: unit.origin, unit: unit.name, runtime: unit.runtime, dir });
    if (unit.command) later.push({ kind: 'unit-command', origin: unit.origin, unit: unit.name, command: unit.command });
  }
  const enables = later.filter((a) => a.kind === 'enable');
  const commands = later.filter((a) => a.kind === 'unit-command');
  actions.push(...enables);
  if (network !== undefined) actions.push({ kind: 'networkd-restart', origin: network });
  actions.push(...commands);
  return actions;
}
