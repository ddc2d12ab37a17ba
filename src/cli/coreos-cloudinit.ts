/**
 * coreos-cloudinit: validate cloud-config user data (`--validate --from-file PATH...`), or apply
 * it (`--from-file PATH [--root DIR] [--dry-run]`). The only module that reads argv, files and
 * streams for this program; exit codes: 0 fine, 1 errors (validation errors, or an action that
 * failed; warnings too under --strict), 2 usage.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { directOutput } from './stdio';
import { commanderOption, longNames, quickParse } from './fast-args';
import type { OptionSpec } from './fast-args';
import { normalizeGoFlags, parseArgs, rootDir, standardOptions, unsupportedFlag } from './options';
import type { Diagnostic, Severity } from '../report/diagnostic';
import { formatGithub, formatJson, formatText, formats, jsonFile } from '../report/format';
import type { FileReport, Format } from '../report/format';
import { defaultValidateOptions, validateUserData } from '../cloudconfig/validate';
import { unitDirs } from '../system/paths';
import { defaultDigitaloceanUrl, defaultEc2Url, defaultGceUrl, defaultOpenstackUrl, defaultPacketUrl, defaultRetryPolicy, netconfFormats } from '../datasource/defaults';
import { defaultCloudsigmaSerial, defaultDmiProductName, defaultWaagentDir } from '../datasource/defaults';
import type { NetconfFormat } from '../datasource/defaults';
import type { Fetched } from '../datasource/types';
import type { RetryPolicy } from '../datasource/defaults';
import type { UnitProgram } from '../apply/install-units';
import { millis } from '../system/clock';

export interface Io {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
}

interface Options {
  validate?: boolean;
  fromFile?: string[];
  format: Format;
  strict?: boolean;
  maxSize: number;
  root: string;
  dryRun?: boolean;
  systemdBus?: string;
  unitDir: string;
  runtimeUnitDir: string;
  sshKeyName: string;
  fromUrl?: string;
  fromEc2Metadata?: string | true;
  fromOpenstackMetadata?: string | true;
  fromGceMetadata?: string | true;
  fromDigitaloceanMetadata?: string | true;
  fromPacketMetadata?: string | true;
  fromWaagent?: string;
  fromCloudsigmaMetadata?: boolean;
  cloudsigmaSerial: string;
  dmiProductName: string;
  fromConfigdrive?: string;
  fromVmwareGuestinfo?: boolean;
  fromVmwareOvfEnv?: string;
  fromProcCmdline?: boolean;
  cmdlineFile: string;
  oem?: string;
  convertNetconf?: NetconfFormat;
  httpTimeout: number;
  httpAttempts: number;
  httpDeadline: number;
  httpBackoff: number;
  httpMaxBackoff: number;
  installUnits?: boolean;
  exec?: string;
  binDir?: string;
  withDaemons?: boolean;
  timings?: boolean;
  convertTo?: 'ignition' | 'butane';
  platform?: string;
}

/** coreos-cloudinit v1.14's flags that bootsmith does not have, and why. */
const unsupportedFlags: Record<string, string> = {
  'from-metadata-service': 'it was deprecated in favour of --from-ec2-metadata, which bootsmith has',
  'workspace': 'bootsmith keeps no workspace',
  'ignore-failure': 'failures always exit 1',
};

/** `--oem` presets: the datasources a platform's images use. */
const oemPresets: Record<string, Partial<Options>> = {
  'ec2-compat': { fromEc2Metadata: true, fromConfigdrive: '/media/configdrive' },
  openstack: { fromOpenstackMetadata: true, fromConfigdrive: '/media/configdrive' },
  digitalocean: { fromDigitaloceanMetadata: true, convertNetconf: 'digitalocean' },
  gce: { fromGceMetadata: true },
  packet: { fromPacketMetadata: true },
  azure: { fromWaagent: defaultWaagentDir },
  cloudsigma: { fromCloudsigmaMetadata: true },
  vmware: { fromVmwareGuestinfo: true, convertNetconf: 'vmware' },
  'rackspace-onmetal': { fromConfigdrive: '/media/configdrive', convertNetconf: 'debian' },
};

/** coreos-cloudinit's options (and `-V`, `-h`: standardOptions); commander is built from these only when the quick reader declines. */
export const optionSpecs: OptionSpec[] = [
  { flags: '--validate', description: 'validate the user data and exit' },
  { flags: '--from-file <path...>', description: 'read user data from files ("-" for standard input)' },
  { flags: '--from-url <url>', description: 'fetch user data from a URL' },
  { flags: '--from-ec2-metadata [url]', description: `EC2 instance metadata service (default ${defaultEc2Url})` },
  { flags: '--from-openstack-metadata [url]', description: `OpenStack metadata service (default ${defaultOpenstackUrl})` },
  { flags: '--from-gce-metadata [url]', description: `Google Compute Engine metadata server (default ${defaultGceUrl})` },
  { flags: '--from-digitalocean-metadata [url]', description: `DigitalOcean metadata service (default ${defaultDigitaloceanUrl})` },
  { flags: '--from-packet-metadata [url]', description: `Packet (Equinix Metal) metadata service (default ${defaultPacketUrl})` },
  { flags: '--from-waagent <dir>', description: `the Azure agent's directory (--oem azure: ${defaultWaagentDir})` },
  { flags: '--from-cloudsigma-metadata', description: 'CloudSigma\'s server context, over the serial port --cloudsigma-serial' },
  { flags: '--cloudsigma-serial <path>', description: 'the serial port CloudSigma\'s server context is read from', default: defaultCloudsigmaSerial },
  { flags: '--dmi-product-name <path>', description: 'where the DMI product name is read (CloudSigma\'s tells a CloudSigma machine)', default: defaultDmiProductName },
  { flags: '--from-configdrive <path>', description: 'a config drive: a mounted directory, or a config-2 image' },
  { flags: '--from-vmware-guestinfo', description: 'VMware guestinfo, read with vmware-rpctool (open-vm-tools)' },
  { flags: '--from-vmware-ovf-env <path>', description: 'a VMware OVF environment file (ovf-env.xml)' },
  { flags: '--from-proc-cmdline', description: 'fetch user data from cloud-config-url= on the kernel command line (PXE)' },
  { flags: '--cmdline-file <path>', description: 'where the kernel command line is read', default: '/proc/cmdline' },
  { flags: '--oem <name>', description: `a platform's datasources: ${Object.keys(oemPresets).join(', ')}` },
  {
    flags: '--convert-netconf <format>',
    description: 'also write the network configuration the source gives in this format as networkd files (network_data.json needs none)',
    choices: netconfFormats,
  },
  { flags: '--http-timeout <ms>', description: 'time allowed for one HTTP request', parse: parseCount, default: defaultRetryPolicy.timeoutMs },
  { flags: '--http-attempts <n>', description: 'most tries of one HTTP request', parse: parseCount, default: defaultRetryPolicy.attempts },
  { flags: '--http-deadline <ms>', description: 'total time allowed for one HTTP fetch, retries included', parse: parseCount, default: defaultRetryPolicy.deadlineMs },
  { flags: '--http-backoff <ms>', description: 'first wait before a retry, doubled each time (with full jitter)', parse: parseCount, default: defaultRetryPolicy.backoffMs },
  { flags: '--http-max-backoff <ms>', description: 'longest wait before a retry', parse: parseCount, default: defaultRetryPolicy.maxBackoffMs },
  { flags: '--timings', description: 'after applying, print how long fetching, validating and applying took' },
  { flags: '--install-units', description: 'install the boot units into --root (--unit-dir) and enable them (with --oem, its datasource too)' },
  { flags: '--exec <command>', description: 'the command the boot units run (default: this coreos-cloudinit, as installed)' },
  { flags: '--bin-dir <dir>', description: 'where the units find the programs (default: beside this coreos-cloudinit)' },
  { flags: '--with-daemons', description: 'with --install-units: the daemons\' units (not enabled) and update_engine\'s bus policy too' },
  { flags: '--format <format>', description: 'report format', choices: formats, default: 'text' },
  { flags: '--strict', description: 'warnings fail validation too' },
  { flags: '--max-size <bytes>', description: 'largest user data accepted, before and after gunzip', parse: parseSize, default: defaultValidateOptions.maxSize },
  { flags: '--root <dir>', description: 'apply under this directory instead of /', parse: rootDir, default: '/' },
  { flags: '--dry-run', description: 'print what applying would change, and change nothing' },
  {
    flags: '--systemd-bus <address>',
    description: 'systemd\'s D-Bus: "system", an address such as unix:path=/run/user/0/bus, or "none" (default: system for /, none with --root)',
  },
  { flags: '--unit-dir <dir>', description: 'where persistent units go', default: unitDirs.system.persistent },
  { flags: '--runtime-unit-dir <dir>', description: 'where runtime units go', default: unitDirs.system.runtime },
  { flags: '--ssh-key-name <name>', description: 'name for the SSH keys from user data (update-ssh-keys)', default: 'coreos-cloudinit' },
  {
    flags: '--convert-to <format>',
    description: 'write the user data of one --from-file as an Ignition config (spec 3.3.0) or a Butane config (flatcar 1.0.0)',
    choices: ['ignition', 'butane'],
  },
  {
    flags: '--platform <name>',
    description: 'with --convert-to: the cloud whose metadata agent gives $private_ipv4 and friends (ec2, openstack, azure, gce, digitalocean, packet, custom)',
  },
];

/** Flags that Go's flag package lets users write with one dash (`-validate`, `-from-file=x`). */
export const longFlags = [...longNames(optionSpecs), 'version', 'help'];

function program(io: Io): Command {
  const program = new Command('coreos-cloudinit').description('Validate and apply cloud-config user data (validation: --validate --from-file PATH...)');
  for (const spec of optionSpecs) program.addOption(commanderOption(spec));
  program.exitOverride().configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  return standardOptions(program);
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('want a positive whole number');
  return n;
}

function parseSize(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('want a whole number of bytes');
  return n;
}

/** Reads a file, or standard input for `-` (file descriptor 0: no stream set-up at start). */
function readInput(path: string): Buffer {
  return readFileSync(path === '-' ? 0 : path);
}

function unreadable(file: string, err: unknown): FileReport {
  const e = err as NodeJS.ErrnoException;
  const why = e.code === 'EISDIR' ? 'it is a directory' : e.code === 'ENOENT' ? 'no such file' : (e.message ?? String(err));
  return {
    file,
    kind: undefined,
    text: '',
    diagnostics: [
      { severity: 'error', code: 'unreadable', message: `cannot read user data: ${why}`, path: [], line: 1, column: 1, endLine: 1, endColumn: 1 },
    ],
  };
}

/** Runs coreos-cloudinit with `argv` (without node and the script) and returns the exit code. */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const unsupported = unsupportedFlag(argv, unsupportedFlags);
  if (unsupported) {
    io.stderr.write(`coreos-cloudinit: ${unsupported}\n`);
    return 2;
  }
  const args = normalizeGoFlags(argv, longFlags);
  let given = quickParse(args, optionSpecs) as Options | undefined;
  if (!given) {
    const cmd = program(io);
    const exit = parseArgs(cmd, args);
    if (exit !== undefined) return exit;
    given = cmd.opts<Options>();
  }
  let opts = given;
  if (given.oem !== undefined) {
    const preset = oemPresets[given.oem];
    if (!preset) {
      io.stderr.write(`coreos-cloudinit: --oem ${given.oem} is unknown; supported: ${Object.keys(oemPresets).join(', ')}\n`);
      return 2;
    }
    opts = { ...preset, ...given };
  }
  if (opts.convertTo !== undefined || opts.platform !== undefined) return convert(opts, io);
  if (opts.installUnits) return installBootUnits(opts, io);
  const files = opts.fromFile ?? [];
  if (files.length === 0 && !datasourceGiven(opts)) {
    io.stderr.write(
      'coreos-cloudinit: provide at least one of --from-file, --from-url, --from-ec2-metadata, --from-openstack-metadata, --from-gce-metadata, ' +
        '--from-digitalocean-metadata, --from-packet-metadata, --from-waagent, --from-cloudsigma-metadata, --from-vmware-guestinfo, --from-vmware-ovf-env, ' +
        '--from-configdrive, --from-proc-cmdline or --oem\n',
    );
    return 2;
  }
  if (!opts.validate) return datasourceGiven(opts) ? applyFromDatasources(opts, io) : apply(files, opts, io);
  const failsOn = (s: Severity) => s === 'error' || (opts.strict === true && s === 'warning');
  if (datasourceGiven(opts)) return validateFromDatasources(opts, io, failsOn);
  const reports: FileReport[] = files.map((file) => {
    const name = file === '-' ? '<stdin>' : file;
    let bytes: Buffer;
    try {
      bytes = readInput(file);
    } catch (err) {
      return unreadable(name, err);
    }
    const report = validateUserData(bytes, { maxSize: opts.maxSize });
    return { file: name, kind: report.kind, text: report.text, diagnostics: report.diagnostics };
  });
  writeReports(reports, opts, io, failsOn);
  return reports.some((r) => r.diagnostics.some((d) => failsOn(d.severity))) ? 1 : 0;
}

/** The apply module, loaded only to apply: it brings D-Bus, which validation (start-up time matters) does not need. */
function applyModule() {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('../apply/apply') as typeof import('../apply/apply');
}

/** Says so, and gives 1, when this process cannot apply as asked (not root, for `/`). */
function refusePrivilege(opts: Options, io: Io): number | undefined {
  const problem = applyModule().privilegeProblem(opts.root, opts.dryRun === true, process.getuid?.());
  if (problem === undefined) return undefined;
  io.stderr.write(`coreos-cloudinit: ${problem}\n`);
  return 1;
}

/** Applies user data from the first file given: the report, then what was done. */
async function apply(files: string[], opts: Options, io: Io): Promise<number> {
  if (files.length > 1) {
    io.stderr.write('coreos-cloudinit: applying takes one --from-file\n');
    return 2;
  }
  const refused = refusePrivilege(opts, io);
  if (refused !== undefined) return refused;
  const file = files[0]!;
  const name = file === '-' ? '<stdin>' : file;
  const readStarted = millis();
  let bytes: Buffer;
  try {
    bytes = readInput(file);
  } catch (err) {
    io.stdout.write(formatText([unreadable(name, err)], () => false));
    return 1;
  }
  const readMs = millis() - readStarted;
  try {
    const report = await applyModule().applyUserData(bytes, applyOptions(opts, io));
    return writeApplyReport(name, report, readMs, opts, io);
  } catch (err) {
    io.stderr.write(`coreos-cloudinit: ${(err as Error).message}\n`);
    return 1;
  }
}

type ApplyReport = Awaited<ReturnType<typeof import('../apply/apply')['applyFetched']>>;

/**
 * Prints what an apply did, as text (the validation, a line an action, a summary, and the timings
 * with --timings) or as one JSON document (--format json), and gives the exit code: 1 when the
 * user data had errors or an action failed. Errors found only once the metadata variables were
 * substituted are shown against that text.
 */
function writeApplyReport(name: string, report: ApplyReport, fetchMs: number, opts: Options, io: Io): number {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { formatResults, formatResultsJson } = require('../apply/report') as typeof import('../apply/report');
  const file = report.substituted ? `${name} (after substituting the metadata variables)` : name;
  const { kind, text, diagnostics } = report.validation;
  const validation: FileReport = { file, kind, text, diagnostics };
  const dryRun = opts.dryRun === true;
  const timings = { fetchMs, ...report.timings };
  const failed = !report.applied || report.results.some((r) => r.outcome === 'failed');
  if (opts.format === 'json') {
    const doc = { source: name, dryRun, applied: report.applied, validation: jsonFile(validation, (s) => s === 'error'), results: report.results };
    io.stdout.write(formatResultsJson(opts.timings ? { ...doc, timings } : doc));
    return failed ? 1 : 0;
  }
  io.stdout.write(formatText([validation], () => io.stdout.isTTY === true));
  if (!report.applied) {
    io.stdout.write(report.substituted ? 'not applied: the user data has errors once the metadata variables are substituted\n' : 'not applied: the user data has errors\n');
    return 1;
  }
  io.stdout.write(formatResults(report.results, dryRun));
  if (opts.timings) io.stdout.write(`timings: fetch ${timings.fetchMs.toFixed(1)} ms, validate ${timings.validateMs.toFixed(1)} ms, apply ${timings.applyMs.toFixed(1)} ms\n`);
  return failed ? 1 : 0;
}

/** --install-units: the boot units into the root, enabled. */
async function installBootUnits(opts: Options, io: Io): Promise<number> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { installUnits, packageRoot } = require('../apply/install-units') as typeof import('../apply/install-units');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { formatResults } = require('../apply/report') as typeof import('../apply/report');
  const refused = refusePrivilege(opts, io);
  if (refused !== undefined) return refused;
  try {
    const commandOf = unitCommands(opts, packageRoot(), process.argv[1], process.execPath);
    const results = await installUnits({ root: opts.root, unitDir: opts.unitDir, commandOf, oem: opts.oem, daemons: opts.withDaemons === true, dryRun: opts.dryRun === true });
    io.stdout.write(formatResults(results, opts.dryRun === true));
    return results.some((r) => r.outcome === 'failed') ? 1 : 0;
  } catch (err) {
    io.stderr.write(`coreos-cloudinit: ${(err as Error).message}\n`);
    return 1;
  }
}

/**
 * The command that runs each program in the units: `--exec` for coreos-cloudinit, else the program
 * in `--bin-dir`; without --bin-dir, the directory this coreos-cloudinit was run from (`script`, as
 * npm's PREFIX/bin or an image's /usr/bin link it) when the program is there too; else (run as the
 * package's bin/coreos-cloudinit.js) this node (`node`) with the package's bin/PROGRAM.js.
 */
export function unitCommands(opts: { exec?: string; binDir?: string }, pkg: string, script: string | undefined, node: string): (program: UnitProgram) => string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { execArgument } = require('../apply/install-units') as typeof import('../apply/install-units');
  if (opts.exec !== undefined && /[\r\n]/.test(opts.exec)) throw new Error('--exec must be one line');
  if (opts.binDir !== undefined && !isAbsolute(opts.binDir)) throw new Error(`--bin-dir ${opts.binDir}: want an absolute path`);
  const linkDir = script && basename(script) === 'coreos-cloudinit' ? dirname(script) : undefined;
  return (program) => {
    if (program === 'coreos-cloudinit' && opts.exec !== undefined) return opts.exec;
    if (opts.binDir !== undefined) return execArgument(join(opts.binDir, program));
    if (linkDir !== undefined && existsSync(join(linkDir, program))) return execArgument(join(linkDir, program));
    return `${execArgument(node)} ${execArgument(join(pkg, 'bin', `${program}.js`))}`;
  };
}

/** The apply options the flags give. */
function applyOptions(opts: Options, io: Io) {
  return {
    http: httpPolicy(opts, io),
    root: opts.root,
    dryRun: opts.dryRun === true,
    systemdBus: opts.systemdBus,
    unitDirs: { system: { persistent: opts.unitDir, runtime: opts.runtimeUnitDir }, network: unitDirs.network },
    sshKeyName: opts.sshKeyName,
    maxSize: opts.maxSize,
    env: process.env,
  };
}

/** Fetches from the datasources given: the first that answers wins. Loaded only then: it brings HTTP. */
function fetchFromDatasources(opts: Options, io: Io): Promise<Fetched> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { datasourcesFor } = require('../datasource') as typeof import('../datasource');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { firstAnswer } = require('../datasource/select') as typeof import('../datasource/select');
  return firstAnswer(datasourcesFor({
    files: opts.fromFile ?? [],
    url: opts.fromUrl,
    ec2: serviceUrl(opts.fromEc2Metadata, 'COREOS_CLOUDINIT_EC2_METADATA_URL', defaultEc2Url),
    openstack: serviceUrl(opts.fromOpenstackMetadata, 'COREOS_CLOUDINIT_OPENSTACK_METADATA_URL', defaultOpenstackUrl),
    gce: serviceUrl(opts.fromGceMetadata, 'COREOS_CLOUDINIT_GCE_METADATA_URL', defaultGceUrl),
    digitalocean: serviceUrl(opts.fromDigitaloceanMetadata, 'COREOS_CLOUDINIT_DIGITALOCEAN_METADATA_URL', defaultDigitaloceanUrl),
    packet: serviceUrl(opts.fromPacketMetadata, 'COREOS_CLOUDINIT_PACKET_METADATA_URL', defaultPacketUrl),
    waagent: opts.fromWaagent,
    cloudsigma: opts.fromCloudsigmaMetadata ? { serialPort: opts.cloudsigmaSerial, productNameFile: opts.dmiProductName } : undefined,
    configDrive: opts.fromConfigdrive,
    vmwareGuestinfo: opts.fromVmwareGuestinfo === true,
    vmwareOvfEnv: opts.fromVmwareOvfEnv,
    cmdlineFile: opts.fromProcCmdline ? opts.cmdlineFile : undefined,
    netconf: opts.convertNetconf,
    policy: httpPolicy(opts, io),
  }));
}

/** The --http-* flags as a retry policy: for datasources, and for an Ignition config's http(s) sources. */
function httpPolicy(opts: Options, io: Io): RetryPolicy {
  return {
    timeoutMs: opts.httpTimeout,
    attempts: opts.httpAttempts,
    deadlineMs: opts.httpDeadline,
    backoffMs: opts.httpBackoff,
    maxBackoffMs: opts.httpMaxBackoff,
    // Said as it happens: a fetch that retries for a minute is not a hang.
    onRetry: (r) => io.stderr.write(`coreos-cloudinit: ${r.cause}; retry ${r.attempt} of ${r.attempts} in ${r.waitMs} ms\n`),
  };
}

/** A metadata service's URL: the one given; without one, the one in `variable` (for tests and labs), else the cloud's default. */
function serviceUrl(given: string | true | undefined, variable: string, fallback: string): string | undefined {
  return given === true ? (process.env[variable] ?? fallback) : given;
}

/** Validates user data from a datasource, warning about metadata variables that would be empty. */
async function validateFromDatasources(opts: Options, io: Io, failsOn: (s: Severity) => boolean): Promise<number> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { substitute, variableValues } = require('../cloudconfig/substitute') as typeof import('../cloudconfig/substitute');
  let fetched: Fetched;
  let variables: ReturnType<typeof variableValues>;
  try {
    fetched = await fetchFromDatasources(opts, io);
    variables = variableValues(fetched.metadata, process.env);
  } catch (err) {
    io.stderr.write(`coreos-cloudinit: ${(err as Error).message}\n`);
    return 1;
  }
  const where = fetched.location ?? fetched.source;
  const report = validateUserData(fetched.userData ?? Buffer.alloc(0), { maxSize: opts.maxSize, variables });
  const reports: FileReport[] = [{ file: where, kind: report.kind, text: report.text, diagnostics: [...(fetched.userData ? [] : [noUserData(fetched)]), ...networkProblem(fetched), ...report.diagnostics] }];
  // As applying would: the text with the metadata's values in is checked too, and its errors shown against it.
  if (report.kind === 'cloud-config' && report.text.includes('$') && !report.diagnostics.some((d) => d.severity === 'error')) {
    const after = validateUserData(Buffer.from(substitute(report.text, variables)), { maxSize: opts.maxSize });
    const errors = after.diagnostics.filter((d) => d.severity === 'error');
    if (errors.length > 0) reports.push({ file: `${where} (after substituting the metadata variables)`, kind: after.kind, text: after.text, diagnostics: errors });
  }
  writeReports(reports, opts, io, failsOn);
  return reports.some((r) => r.diagnostics.some((d) => failsOn(d.severity))) ? 1 : 0;
}

function writeReports(reports: FileReport[], opts: Options, io: Io, failsOn: (s: Severity) => boolean): void {
  if (opts.format === 'json') io.stdout.write(formatJson(reports, failsOn));
  else if (opts.format === 'github') io.stdout.write(formatGithub(reports));
  else io.stdout.write(formatText(reports, () => io.stdout.isTTY === true));
}

/** A finding for a source that answered without user data: nothing was validated, and the user is told why. */
function noUserData(fetched: Fetched): Diagnostic {
  const message = `no user data here${fetched.noUserData ? `: ${fetched.noUserData}` : ''}`;
  return { severity: 'warning', code: 'no-user-data', message, path: [], line: 1, column: 1, endLine: 1, endColumn: 1 };
}

/** An error for a source whose network configuration does not parse: applying would not write it. */
function networkProblem(fetched: Fetched): Diagnostic[] {
  if (fetched.networkProblem === undefined) return [];
  return [{ severity: 'error', code: 'network-config', message: `the network configuration is not applied: ${fetched.networkProblem}`, path: [], line: 1, column: 1, endLine: 1, endColumn: 1 }];
}

/** Fetches from the datasources given and applies what the first to answer gave. */
async function applyFromDatasources(opts: Options, io: Io): Promise<number> {
  const refused = refusePrivilege(opts, io);
  if (refused !== undefined) return refused;
  try {
    const fetchStarted = millis();
    const fetched = await fetchFromDatasources(opts, io);
    const fetchMs = millis() - fetchStarted;
    const where = fetched.location ?? fetched.source;
    if (opts.format !== 'json') {
      io.stdout.write(fetched.userData ? `user data from ${where}\n` : `no user data at ${where}${fetched.noUserData ? ` (${fetched.noUserData})` : ''}\n`);
    }
    const report = await applyModule().applyFetched(fetched, applyOptions(opts, io));
    return writeApplyReport(where, report, fetchMs, opts, io);
  } catch (err) {
    io.stderr.write(`coreos-cloudinit: ${(err as Error).message}\n`);
    return 1;
  }
}

/**
 * --convert-to: the user data of one --from-file as an Ignition or Butane config on stdout; what
 * could not be converted (and validation's warnings) on stderr, in the --format of --validate.
 * Exit codes: 0 all converted, 1 something left out (a warning), 2 usage errors and invalid input.
 */
function convert(opts: Options, io: Io): number {
  const usage = (message: string) => {
    io.stderr.write(`coreos-cloudinit: ${message}\n`);
    return 2;
  };
  if (opts.convertTo === undefined) return usage('--platform goes with --convert-to');
  if ((opts.fromFile ?? []).length !== 1 || datasourceGiven(opts) || opts.validate || opts.installUnits) {
    return usage('--convert-to takes one --from-file (the user data to convert), and no other source or action');
  }
  // Loaded only to convert, as the apply path is.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { convertUserData, platforms, supersededByConversion } = require('../cloudconfig/ignition/convert') as typeof import('../cloudconfig/ignition/convert');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { formatButane, formatIgnition } = require('../cloudconfig/ignition/render') as typeof import('../cloudconfig/ignition/render');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { compareDiagnostics } = require('../report/diagnostic') as typeof import('../report/diagnostic');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { placeFindings } = require('../cloudconfig/validate') as typeof import('../cloudconfig/validate');
  if (opts.platform !== undefined && !platforms.includes(opts.platform)) return usage(`--platform ${opts.platform} is unknown; known: ${platforms.join(', ')}`);
  const file = opts.fromFile![0]!;
  const name = file === '-' ? '<stdin>' : file;
  let bytes: Buffer;
  try {
    bytes = readInput(file);
  } catch (err) {
    writeConvertReport(unreadable(name, err), opts, io);
    return 2;
  }
  const report = validateUserData(bytes, { maxSize: opts.maxSize });
  const validation: FileReport = { file: name, kind: report.kind, text: report.text, diagnostics: report.diagnostics };
  if (report.diagnostics.some((d) => d.severity === 'error')) {
    writeConvertReport(validation, opts, io);
    // JSON stays one document on stderr; its "valid": false says it.
    if (opts.format !== 'json') io.stderr.write(`coreos-cloudinit: ${name} is not converted: the user data has errors\n`);
    return 2;
  }
  if (report.kind === 'ignition') {
    const message = 'this is an Ignition config already: check it with --validate';
    writeConvertReport({ ...validation, diagnostics: [{ severity: 'error', code: 'already-ignition', message, path: [], line: 1, column: 1, endLine: 1, endColumn: 1 }] }, opts, io);
    return 2;
  }
  const conversion = convertUserData(report, { platform: opts.platform });
  io.stdout.write(opts.convertTo === 'butane' ? formatButane(conversion) : formatIgnition(conversion));
  const diagnostics = [...report.diagnostics.filter((d) => !supersededByConversion(d, conversion)), ...placeFindings(conversion.findings, report.text)].sort(compareDiagnostics);
  writeConvertReport({ ...validation, diagnostics }, opts, io);
  return diagnostics.some((d) => d.severity !== 'info') ? 1 : 0;
}

/** A conversion's findings on stderr: JSON always (tools parse it), text and github only when there are any. */
function writeConvertReport(report: FileReport, opts: Options, io: Io): void {
  const failsOn = (s: Severity) => s !== 'info';
  if (opts.format === 'json') io.stderr.write(formatJson([report], failsOn));
  else if (opts.format === 'github') io.stderr.write(formatGithub([report]));
  else io.stderr.write(formatText([report], () => false));
}

/** Whether a datasource other than --from-file is given (the --oem presets included). */
function datasourceGiven(opts: Options): boolean {
  const sources = [
    opts.fromUrl, opts.fromEc2Metadata, opts.fromOpenstackMetadata, opts.fromGceMetadata, opts.fromDigitaloceanMetadata, opts.fromPacketMetadata, opts.fromWaagent,
    opts.fromCloudsigmaMetadata, opts.fromVmwareGuestinfo, opts.fromVmwareOvfEnv, opts.fromConfigdrive, opts.fromProcCmdline,
  ];
  return sources.some((s) => s !== undefined);
}

function processIo(): Io {
  return { stdout: directOutput(1), stderr: directOutput(2) };
}
