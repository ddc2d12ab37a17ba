/**
 * Installing the boot units (units/ in the package) into a root: each written with the command
 * that runs coreos-cloudinit, then enabled by the links `systemctl enable` would make:
 * user-config.target always, and the platform's unit for `--oem`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Executor } from './execute';
import type { ActionResult } from './execute';
import type { Action } from './plan';
import { unitDirs } from '../system/paths';

/** The package's units/ directory, found upwards from this module (src/apply in tests, dist/ when bundled). */
export function packageUnitsDir(from = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'units/user-config.target'))) return join(dir, 'units');
    if (dirname(dir) === dir) throw new Error(`the boot units (units/) are not installed beside ${from}`);
  }
}

export const oemUnits: Record<string, string> = {
  'ec2-compat': 'oem-cloudinit-ec2.service',
  openstack: 'oem-cloudinit-openstack.service',
  digitalocean: 'oem-cloudinit-digitalocean.service',
  gce: 'oem-cloudinit-gce.service',
  packet: 'oem-cloudinit-packet.service',
};

export interface InstallOptions {
  root: string;
  /** Where the units go. Default /etc/systemd/system. */
  unitDir: string;
  /** The command line that runs coreos-cloudinit in the units. Default /usr/bin/coreos-cloudinit. */
  exec: string;
  /** A platform whose datasource unit is enabled too: a key of oemUnits. */
  oem: string | undefined;
  dryRun: boolean;
}

export async function installUnits(options: InstallOptions): Promise<ActionResult[]> {
  const source = packageUnitsDir();
  const actions: Action[] = readdirSync(source)
    .sort()
    .map((name) => ({
      kind: 'file' as const,
      origin: 'boot units',
      path: `${options.unitDir}/${name}`,
      content: Buffer.from(readFileSync(join(source, name), 'utf8').replace(/@COREOS_CLOUDINIT@/g, options.exec)),
      mode: 0o644,
      owner: undefined,
    }));
  const enable = ['user-config.target', ...(options.oem ? [oemUnits[options.oem]!] : [])];
  for (const unit of enable) actions.push({ kind: 'enable', origin: 'boot units', unit, runtime: false, dir: options.unitDir });
  const dirs = { ...unitDirs, system: { ...unitDirs.system, persistent: options.unitDir } };
  return new Executor({ root: options.root, dryRun: options.dryRun, systemd: undefined, unitDirs: dirs }).run(actions);
}
