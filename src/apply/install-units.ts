/**
 * Installing the units shipped in the package into a root: the boot units (units/), each written
 * with the command that runs coreos-cloudinit, then enabled by the links `systemctl enable` would
 * make: user-config.target always, and the platform's unit for `--oem` (masking the boot units it
 * replaces, oemMasks). With `daemons`, the
 * daemons' units too (services/: locksmithd, update-engine, fleetlockd, bootsmith-update-server),
 * written but not enabled (an operator picks which run where), and update_engine's bus policy.
 *
 * A shipped unit names each program by a placeholder, `@LOCKSMITHD@` for locksmithd (the name in
 * capitals, dashes as underscores), which is filled with the command that runs it where it is installed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Executor } from './execute';
import type { ActionResult } from './execute';
import type { Action } from './plan';
import { unitDirs } from '../system/paths';

/** The programs the shipped units run. */
export const unitPrograms = ['coreos-cloudinit', 'locksmithd', 'update_engine', 'fleetlockd', 'bootsmith-update-server'] as const;
export type UnitProgram = (typeof unitPrograms)[number];

/** Where update_engine's bus policy (services/com.coreos.update1.conf) goes: the local administrator's directory of the system bus. */
export const busPolicyPath = '/etc/dbus-1/system.d/com.coreos.update1.conf';

/** The package's directory that holds `marker` (units/user-config.target), found upwards from this module (src/apply in tests, dist/ when bundled). */
function packageDir(marker: string, from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, marker))) return join(dir, dirname(marker));
    if (dirname(dir) === dir) throw new Error(`${dirname(marker)}/ is not installed beside ${from}`);
  }
}

/** The package's units/ directory (the boot units). */
export function packageUnitsDir(from = __dirname): string {
  return packageDir('units/user-config.target', from);
}

/** The package's services/ directory (the daemons' units and the bus policy). */
export function packageServicesDir(from = __dirname): string {
  return packageDir('services/locksmithd.service', from);
}

/** The package's root: where package.json, bin/ and dist/ are. */
export function packageRoot(from = __dirname): string {
  return dirname(packageUnitsDir(from));
}

/**
 * A path as one argument of ExecStart=: quoted when it holds spaces or quotes, with systemd's
 * specifier (`%`), variable (`$`) and escape (`\`) characters doubled. A path with a control
 * character cannot be one (a newline would end the line); that throws.
 */
export function execArgument(path: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) throw new Error(`${JSON.stringify(path)} has a control character: it cannot be named in a unit`);
  const escaped = path.replace(/\\/g, '\\\\').replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /[\s"']/.test(escaped) ? `"${escaped.replace(/"/g, '\\"')}"` : escaped;
}

/**
 * A shipped unit with each program's placeholder replaced by `commandOf(program)`, a command line
 * in ExecStart= syntax. Throws on a placeholder that names no program (a defect in the unit).
 */
export function fillUnit(text: string, commandOf: (program: UnitProgram) => string): string {
  return text.replace(/@([A-Z][A-Z_]*)@/g, (placeholder, name: string) => {
    const program = unitPrograms.find((p) => p.toUpperCase().replace(/-/g, '_') === name);
    if (!program) throw new Error(`${placeholder} in a shipped unit names no program`);
    return commandOf(program);
  });
}

export const oemUnits: Record<string, string> = {
  'ec2-compat': 'oem-cloudinit-ec2.service',
  openstack: 'oem-cloudinit-openstack.service',
  digitalocean: 'oem-cloudinit-digitalocean.service',
  gce: 'oem-cloudinit-gce.service',
  packet: 'oem-cloudinit-packet.service',
  azure: 'oem-cloudinit-azure.service',
  cloudsigma: 'oem-cloudinit-cloudsigma.service',
  vmware: 'oem-cloudinit-vmware.service',
  'rackspace-onmetal': 'oem-cloudinit-rackspace-onmetal.service',
};

/**
 * Boot units a platform's unit replaces, masked with it: Rackspace OnMetal's reads the config
 * drive itself (with its interfaces file), so the plain config drive service, which would apply
 * the drive again with its network_data.json, must not run beside it.
 */
export const oemMasks: Record<string, string[]> = {
  'rackspace-onmetal': ['user-configdrive.service'],
};

export interface InstallOptions {
  root: string;
  /** Where the units go. Default /etc/systemd/system. */
  unitDir: string;
  /** The command line (ExecStart= syntax) that runs each program in the units: see unitCommands in cli/coreos-cloudinit.ts. */
  commandOf: (program: UnitProgram) => string;
  /** A platform whose datasource unit is enabled too: a key of oemUnits. */
  oem: string | undefined;
  /** Whether the daemons' units and the bus policy are written too (not enabled). */
  daemons: boolean;
  dryRun: boolean;
}

export async function installUnits(options: InstallOptions): Promise<ActionResult[]> {
  const file = (path: string, content: string, origin: string): Action => ({ kind: 'file', origin, path, content: Buffer.from(content), mode: 0o644, owner: undefined });
  const units = (dir: string, origin: string) =>
    readdirSync(dir)
      .filter((name) => /\.(service|target|path|mount)$/.test(name))
      .sort()
      .map((name) => file(`${options.unitDir}/${name}`, fillUnit(readFileSync(join(dir, name), 'utf8'), options.commandOf), origin));
  const masked = options.oem ? (oemMasks[options.oem] ?? []) : [];
  const actions: Action[] = units(packageUnitsDir(), 'boot units').filter((a) => !masked.some((m) => a.kind === 'file' && a.path === `${options.unitDir}/${m}`));
  for (const unit of masked) actions.push({ kind: 'mask', origin: `--oem ${options.oem}`, unit, path: `${options.unitDir}/${unit}`, runtime: false, mask: true });
  if (options.daemons) {
    const services = packageServicesDir();
    actions.push(...units(services, 'daemon units'));
    actions.push(file(busPolicyPath, readFileSync(join(services, 'com.coreos.update1.conf'), 'utf8'), 'daemon units'));
  }
  const enable = ['user-config.target', ...(options.oem ? [oemUnits[options.oem]!] : [])];
  for (const unit of enable) actions.push({ kind: 'enable', origin: 'boot units', unit, runtime: false, dir: options.unitDir });
  const dirs = { ...unitDirs, system: { ...unitDirs.system, persistent: options.unitDir } };
  return new Executor({ root: options.root, dryRun: options.dryRun, systemd: undefined, unitDirs: dirs }).run(actions);
}
