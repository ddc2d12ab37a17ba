/**
 * Applying user data: validate (errors stop here), read the settings, plan, execute. Scripts run
 * with their own interpreter; Ignition configs are not ours to apply.
 */
import { statSync } from 'node:fs';
import { toCloudConfig } from '../cloudconfig/config';
import { validateUserData } from '../cloudconfig/validate';
import type { ValidationReport } from '../cloudconfig/validate';
import { unitDirs as defaultUnitDirs } from '../system/paths';
import type { UnitDirs } from '../system/paths';
import { connectSystemd } from '../system/systemd';
import type { Systemd } from '../system/systemd';
import { Executor, touchesSystemd } from './execute';
import type { ActionResult } from './execute';
import { plan } from './plan';
import type { Action } from './plan';

export interface ApplyOptions {
  /** Apply under this directory instead of `/`. */
  root: string;
  /** Report what would change; change nothing. */
  dryRun: boolean;
  /**
   * systemd's D-Bus: `system`, a D-Bus address, or `none` to apply offline (links written
   * directly, unit commands skipped). Default: `system` for `/`, `none` under another root.
   */
  systemdBus: string | undefined;
  unitDirs: UnitDirs;
  /** update-ssh-keys' name for the keys from user data. Default coreos-cloudinit. */
  sshKeyName: string;
  /** Largest user data accepted, in bytes. */
  maxSize?: number;
}

export const defaultApplyOptions: ApplyOptions = { root: '/', dryRun: false, systemdBus: undefined, unitDirs: defaultUnitDirs, sshKeyName: 'coreos-cloudinit' };

export interface ApplyReport {
  validation: ValidationReport;
  /** False when validation found errors, so nothing was applied. */
  applied: boolean;
  results: ActionResult[];
}

/** The actions for validated user data: none for empty data and Ignition configs. */
function actionsFor(report: ValidationReport, options: ApplyOptions): Action[] {
  if (report.kind === 'script') return [{ kind: 'script', origin: 'user data', content: Buffer.from(report.text) }];
  if (report.kind !== 'cloud-config') return [];
  return plan(toCloudConfig(report.root), { live: options.root === '/', unitDirs: options.unitDirs, sshKeyName: options.sshKeyName });
}

export async function applyUserData(bytes: Uint8Array, opts: Partial<ApplyOptions> = {}): Promise<ApplyReport> {
  const options = { ...defaultApplyOptions, ...opts };
  const validation = validateUserData(bytes, options.maxSize === undefined ? {} : { maxSize: options.maxSize });
  if (validation.diagnostics.some((d) => d.severity === 'error')) return { validation, applied: false, results: [] };
  if (!statSync(options.root, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`--root ${options.root} is not a directory`);
  const actions = actionsFor(validation, options);
  const bus = options.systemdBus ?? (options.root === '/' ? 'system' : 'none');
  let systemd: Systemd | undefined;
  if (bus !== 'none' && touchesSystemd(actions, options.unitDirs)) systemd = await connectSystemd(bus);
  try {
    const results = await new Executor({ root: options.root, dryRun: options.dryRun, systemd, unitDirs: options.unitDirs }).run(actions);
    return { validation, applied: true, results };
  } finally {
    systemd?.close();
  }
}
