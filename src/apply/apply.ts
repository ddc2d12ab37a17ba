/**
 * Applying user data: validate (errors stop here), read the settings, plan, execute. Scripts run
 * with their own interpreter; Ignition configs are applied through the same plan and executor
 * (see ignition.ts), their remote sources fetched first.
 */
import { statSync } from 'node:fs';
import { toCloudConfig } from '../cloudconfig/config';
import type { CloudConfig } from '../cloudconfig/config';
import { substitute, variableValues } from '../cloudconfig/substitute';
import type { VariableValues } from '../cloudconfig/substitute';
import { validateUserData } from '../cloudconfig/validate';
import type { Fetched, Metadata } from '../datasource/types';
import type { RetryPolicy } from '../datasource/defaults';
import type { NetworkConfig } from '../system/network-config';
import { files } from '../system/paths';
import type { ValidationReport } from '../cloudconfig/validate';
import { unitDirs as defaultUnitDirs } from '../system/paths';
import type { UnitDirs } from '../system/paths';
import { connectSystemd } from '../system/systemd';
import type { Systemd } from '../system/systemd';
import { Executor, resultFor, touchesSystemd } from './execute';
import { absoluteRoot, RootedFs } from '../system/rooted-fs';
import type { ActionResult } from './execute';
import { plan } from './plan';
import { toIgnitionConfig } from '../cloudconfig/ignition/config';
import { defaultFetchOptions, planIgnition, resolveResources } from './ignition';
import type { Action } from './plan';
import { millis } from '../system/clock';

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
  /** Where COREOS_PRIVATE_IPV4 and the like are read when metadata lacks an address. */
  env?: Record<string, string | undefined>;
  /** Timeouts, retries and deadline of each fetch of an Ignition config's http(s) sources. Default: the datasources'. */
  http?: RetryPolicy;
}

export const defaultApplyOptions: ApplyOptions = { root: '/', dryRun: false, systemdBus: undefined, unitDirs: defaultUnitDirs, sshKeyName: 'coreos-cloudinit' };

export interface ApplyReport {
  /** The validation that decided: of the user data as fetched, or of its substituted text when that has the errors. */
  validation: ValidationReport;
  /** The report is of the text after the metadata variables were substituted (its positions are in that text). */
  substituted: boolean;
  /** False when validation found errors, so nothing was applied. */
  applied: boolean;
  results: ActionResult[];
  /** Milliseconds spent validating (with substitution) and applying (planning and executing). */
  timings: { validateMs: number; applyMs: number };
}

/**
 * Why this process cannot apply as asked, or undefined when it can: changing the running system
 * (root `/`, not a dry run) needs root, and finding that out once, before fetching, beats an
 * EACCES for every action. `uid` is the process's (undefined where there are no uids).
 */
export function privilegeProblem(root: string, dryRun: boolean, uid: number | undefined): string | undefined {
  if (dryRun || uid === undefined || uid === 0 || absoluteRoot(root) !== '/') return undefined;
  return 'applying to / needs root (run as root, or use --root DIR or --dry-run)';
}

/** The metadata's hostname when the user data has none, and its SSH keys for core, as the reference merges them. */
export function withMetadata(config: CloudConfig, metadata: Metadata): CloudConfig {
  return {
    ...config,
    hostname: config.hostname ?? metadata.hostname,
    sshAuthorizedKeys: [...config.sshAuthorizedKeys, ...metadata.sshPublicKeys],
  };
}

/** /etc/environment with the addresses as COREOS_* variables, other lines kept; none when the user data writes the file itself. */
function environmentAction(config: CloudConfig, values: VariableValues): Action[] {
  if (config.writeFiles.some((f) => f.path === files.environment)) return [];
  const settings = Object.entries(values)
    .filter(([, v]) => v)
    .map(([k, v]) => [`COREOS_${k.toUpperCase()}`, v!] as [string, string]);
  return settings.length > 0 ? [{ kind: 'merge-env', origin: 'metadata', path: files.environment, settings }] : [];
}

/** The user data as fetched, and where it came from, kept for the next boot (mode 0600: it can hold secrets). */
function keepActions(fetched: Fetched, bytes: Uint8Array): Action[] {
  const record = { source: fetched.source, instanceId: fetched.metadata.instanceId ?? null };
  return [
    { kind: 'file', origin: fetched.source, path: files.userDataCopy, content: Buffer.from(bytes), mode: 0o600, owner: undefined },
    { kind: 'file', origin: fetched.source, path: files.userDataRecord, content: Buffer.from(`${JSON.stringify(record)}\n`), mode: 0o600, owner: undefined },
  ];
}

/** Whether this is a new machine: no record yet, or one with another instance id. */
function instanceResult(root: string, fetched: Fetched): ActionResult {
  const id = fetched.metadata.instanceId ?? null;
  let previous: { instanceId?: string | null } | undefined;
  try {
    previous = JSON.parse(new RootedFs(root).read(files.userDataRecord)?.toString('utf8') ?? 'null') ?? undefined;
  } catch {
    previous = undefined; // an unreadable record: as if there were none
  }
  const result = resultFor('instance', id ?? '(no id)', fetched.source);
  if (!previous) {
    result.outcome = 'changed';
    result.detail = 'first boot';
  } else if (previous.instanceId !== id) {
    result.outcome = 'changed';
    result.detail = `a new instance (was ${previous.instanceId ?? 'no id'})`;
  }
  return result;
}

/**
 * The actions of a validated Ignition config: its sources fetched and checked, then planned. The
 * metadata is not merged in (Ignition does not read it; nor is the source's network configuration)
 * and no variables are substituted.
 */
async function ignitionActions(report: ValidationReport, options: ApplyOptions): Promise<Action[]> {
  const version = report.ignitionVersion;
  if (!report.root || !version) throw new Error('the Ignition config was not validated');
  const [major, minor] = version.split('.').map(Number);
  const config = toIgnitionConfig(report.root, { version, major: major!, minor: minor! });
  const resolved = await resolveResources(config, { ...defaultFetchOptions, ...(options.http ? { policy: options.http } : {}) });
  return planIgnition(config, resolved, { unitDirs: options.unitDirs });
}

/** The actions for validated cloud-config, a script, or empty user data, with the metadata and the source's network configuration when there are some. */
function actionsFor(report: ValidationReport, options: ApplyOptions, metadata: Metadata | undefined, values: VariableValues, network?: NetworkConfig): Action[] {
  // Metadata (hostname, SSH keys, addresses) is applied whatever the user data is, even none.
  const base = toCloudConfig(report.kind === 'cloud-config' ? report.root : undefined);
  const config = metadata ? withMetadata(base, metadata) : base;
  const actions = plan(config, { live: options.root === '/', unitDirs: options.unitDirs, sshKeyName: options.sshKeyName, network });
  if (metadata) actions.push(...environmentAction(config, values));
  if (report.kind === 'script') actions.push({ kind: 'script', origin: 'user data', content: Buffer.from(report.text) });
  return actions;
}

/** A source's network configuration that did not parse, as a failed action: it is not applied, and the run fails. */
function networkProblem(fetched: Fetched): ActionResult[] {
  if (fetched.networkProblem === undefined) return [];
  return [{ ...resultFor('network', 'configuration', fetched.source), outcome: 'failed', detail: `${fetched.networkProblem}; no network files were written` }];
}

/** Applies user data read from a file (no metadata: the variables come from COREOS_* in `env`). */
export async function applyUserData(bytes: Uint8Array, opts: Partial<ApplyOptions> = {}): Promise<ApplyReport> {
  return applyFetched({ source: 'file', userData: Buffer.from(bytes), metadata: { sshPublicKeys: [] } }, opts);
}

/**
 * Applies what a datasource fetched: validates the user data as fetched (errors stop here),
 * substitutes the metadata variables, merges the metadata in, plans and executes. User data from
 * the cloud (any source but a local file) is kept, with a record of its instance.
 */
export async function applyFetched(fetched: Fetched, opts: Partial<ApplyOptions> = {}): Promise<ApplyReport> {
  const options = { ...defaultApplyOptions, ...opts };
  const started = millis();
  const bytes = fetched.userData ?? Buffer.alloc(0);
  const values = variableValues(fetched.metadata, options.env ?? {});
  const limits = options.maxSize === undefined ? {} : { maxSize: options.maxSize };
  const validation = validateUserData(bytes, { ...limits, variables: values });
  const hasErrors = (r: ValidationReport) => r.diagnostics.some((d) => d.severity === 'error');
  if (hasErrors(validation)) {
    return { validation, substituted: false, applied: false, results: [], timings: { validateMs: millis() - started, applyMs: 0 } };
  }
  if (!statSync(options.root, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`--root ${options.root} is not a directory`);
  // What is applied is the substituted text, so it is validated again, and its errors stop the
  // apply just as the original's do (an address can still make the YAML wrong: `key: fd00::`).
  // Ignition has no variables: its `$` are its own.
  const substituted = validation.kind !== 'ignition' && validation.text.includes('$') ? validateUserData(Buffer.from(substitute(validation.text, values)), limits) : validation;
  if (substituted !== validation && hasErrors(substituted)) {
    return { validation: substituted, substituted: true, applied: false, results: [], timings: { validateMs: millis() - started, applyMs: 0 } };
  }
  const fromCloud = fetched.source !== 'file';
  const validated = millis();
  const instance = fromCloud ? instanceResult(options.root, fetched) : undefined;
  const planned =
    substituted.kind === 'ignition' ? await ignitionActions(substituted, options) : actionsFor(substituted, options, fromCloud ? fetched.metadata : undefined, values, fetched.network);
  const actions = [...(fromCloud ? keepActions(fetched, bytes) : []), ...planned];
  const bus = options.systemdBus ?? (options.root === '/' ? 'system' : 'none');
  let systemd: Systemd | undefined;
  if (bus !== 'none' && touchesSystemd(actions, options.unitDirs)) systemd = await connectSystemd(bus);
  try {
    const executor = new Executor({
      root: options.root,
      dryRun: options.dryRun,
      systemd,
      unitDirs: options.unitDirs,
      newInstance: instance?.outcome === 'changed',
      unitsOrigin: substituted.kind === 'ignition' ? 'systemd.units' : 'coreos.units',
    });
    const results = [...(instance ? [instance] : []), ...networkProblem(fetched), ...(await executor.run(actions))];
    return { validation, substituted: false, applied: true, results, timings: { validateMs: validated - started, applyMs: millis() - validated } };
  } finally {
    systemd?.close();
  }
}
