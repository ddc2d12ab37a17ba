/**
 * update_engine: keeps the machine on its channel. After a boot it waits for the health gate and
 * marks the booted USR slot good (a trial boot that stays unhealthy reboots back to the slot that
 * worked); then it checks the update server (SERVER, GROUP from update.conf) 7 minutes after start
 * and every 45 minutes with fuzz, downloads and verifies a new version into the passive slot, and
 * offers com.coreos.update1 on D-Bus (AttemptUpdate, ResetStatus, GetStatus, StatusUpdate,
 * Finalize, MarkSuccessful). locksmithd finalizes and reboots; --finalize-after-staging switches the
 * boot flags right after staging, for reboot managers that do not call Finalize. SIGTERM stops it.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { statuses } from '../update/attempter';
import { startEngineDaemon } from '../update/daemon';
import { defaultStateDir } from '../update/engine';
import { defaultSchedule } from '../update/schedule';
import { daemonBuses } from '../system/systemd';
import { RootedFs } from '../system/rooted-fs';
import { addLogOptions, addMetricsOption, earlyLogger, startMetrics, stderrLogger } from './logging';
import type { StartedMetrics } from './logging';
import { EngineMetrics } from '../report/metrics';
import { collect, normalizeGoFlags, numberOf, parseArgs, rootDir, standardOptions, untilStopped } from './options';

/** The reference's key, used when no --public-key is given and it exists under --root. */
const defaultKey = '/usr/share/update_engine/update-payload-key.pub.pem';

interface Options {
  root: string;
  bus: string;
  systemdBus?: string;
  disk?: string;
  active?: string;
  cmdlineFile?: string;
  stateDir: string;
  publicKey?: string[];
  healthUnit?: string[];
  healthTimeout: number;
  rollbackOnUnhealthy: boolean;
  finalizeAfterStaging?: boolean;
  firstCheck: number;
  checkInterval: number;
  checkFuzz: number;
  bootIdFile?: string;
  logFormat?: string;
  logLevel?: string;
  metricsListen?: string;
}

const seconds = (flag: string) => numberOf(flag, 'seconds', true);

const longFlags = ['root', 'bus', 'systemd-bus', 'disk', 'active', 'cmdline-file', 'state-dir', 'public-key', 'health-unit', 'health-timeout', 'finalize-after-staging', 'first-check', 'check-interval', 'check-fuzz', 'boot-id-file', 'log-format', 'log-level', 'metrics-listen', 'help', 'version'];

export async function main(argv: string[]): Promise<number> {
  const program = new Command('update_engine')
    .description('Keep this machine on its update channel: check, download and verify updates, mark good boots')
    .option('--root <dir>', 'the root whose update.conf, release and machine-id are read', rootDir, '/')
    .option('--bus <address>', 'the bus to offer com.coreos.update1 on, and logind\'s: "system" or a D-Bus address', 'system')
    .option('--systemd-bus <address>', 'systemd\'s bus for the health gate: "system", an address, or "none" (default: --bus)')
    .option('--disk <path>', 'the disk holding USR-A and USR-B (default: the one /usr or usr=PARTUUID= is on)')
    .option('--active <slot>', 'the running slot: USR-A, USR-B or a partition UUID (default: from the kernel command line or /usr)')
    .option('--cmdline-file <path>', 'the kernel command line to read usr= from')
    .option('--state-dir <dir>', 'where the staged update and the prefs are kept', defaultStateDir)
    .option('--public-key <pem>', `a key payload signatures may verify with (repeatable; default ${defaultKey})`, collect)
    .option('--health-unit <unit>', 'the health gate waits for this unit to be active (repeatable; default: the system running)', collect)
    .option('--health-timeout <seconds>', 'how long the health gate waits after a boot', seconds('--health-timeout'), 300)
    .option('--no-rollback-on-unhealthy', 'do not reboot a trial boot that fails the health gate')
    .option('--finalize-after-staging', 'switch the boot flags right after staging (for reboot managers that do not call Finalize)')
    .option('--first-check <seconds>', 'the first check, after start', seconds('--first-check'), defaultSchedule.firstMs / 1000)
    .option('--check-interval <seconds>', 'between checks (a server PollInterval replaces it)', seconds('--check-interval'), defaultSchedule.intervalMs / 1000)
    .option('--check-fuzz <seconds>', 'random spread of each check, plus or minus', seconds('--check-fuzz'), defaultSchedule.fuzzMs / 1000)
    .option('--boot-id-file <file>', "this boot's id", '/proc/sys/kernel/random/boot_id')
    .exitOverride();
  addLogOptions(program);
  addMetricsOption(program);
  standardOptions(program);
  let done: number | undefined;
  try {
    done = parseArgs(program, normalizeGoFlags(argv, longFlags));
  } catch (err) {
    earlyLogger('update_engine').error((err as Error).message);
    return 2;
  }
  if (done !== undefined) return done;
  const opts = program.opts<Options>();
  const log = stderrLogger('update_engine', opts);

  let publicKeys: string[];
  try {
    // --public-key names host files; the default key is the root's, read inside it.
    const rootKey = opts.publicKey ? undefined : new RootedFs(opts.root).read(defaultKey);
    publicKeys = opts.publicKey ? opts.publicKey.map((f) => readFileSync(f, 'utf8')) : rootKey ? [rootKey.toString('utf8')] : [];
    if (publicKeys.length === 0) log(`no payload key (${defaultKey} under ${opts.root} is missing): payload signatures are not checked`, 'warning');
  } catch (err) {
    log.error(`cannot read a public key: ${(err as Error).message}`);
    return 2;
  }
  let buses: Awaited<ReturnType<typeof daemonBuses>>;
  try {
    buses = await daemonBuses(opts.bus, opts.systemdBus);
  } catch (err) {
    log.error((err as Error).message);
    return 1;
  }
  let observed: StartedMetrics<EngineMetrics> | undefined;
  try {
    observed = await startMetrics('update_engine', opts.metricsListen, log, (registry) => new EngineMetrics(registry, statuses));
  } catch (err) {
    log.error((err as Error).message);
    buses.close();
    return 1;
  }
  let daemon;
  try {
    daemon = await startEngineDaemon({
      root: opts.root,
      bus: buses.bus,
      systemd: buses.systemd,
      discovery: {
        ...(opts.disk ? { disk: opts.disk } : {}),
        ...(opts.active ? { active: opts.active } : {}),
        ...(opts.cmdlineFile ? { cmdlineFile: opts.cmdlineFile } : {}),
      },
      stateDir: opts.stateDir,
      publicKeys,
      schedule: { ...defaultSchedule, firstMs: opts.firstCheck * 1000, intervalMs: opts.checkInterval * 1000, fuzzMs: opts.checkFuzz * 1000 },
      healthUnits: opts.healthUnit ?? [],
      healthTimeoutMs: opts.healthTimeout * 1000,
      rollbackOnUnhealthy: opts.rollbackOnUnhealthy,
      finalizeAfterStaging: opts.finalizeAfterStaging ?? false,
      ...(opts.bootIdFile ? { bootIdFile: opts.bootIdFile } : {}),
      log,
      ...(observed ? { metrics: observed.metrics } : {}),
    });
  } catch (err) {
    log.error((err as Error).message);
    observed?.close();
    buses.close();
    return 1;
  }
  await untilStopped();
  await daemon.stop();
  observed?.close();
  buses.close();
  const op = daemon.attempter.status().currentOperation;
  if (op !== 'UPDATE_STATUS_IDLE' && op !== 'UPDATE_STATUS_UPDATED_NEED_REBOOT') {
    // An update being written is given up, as a crash would: its slot stays unbootable until a
    // later attempt writes and verifies it in full.
    log(`stopping in ${op}: the update in progress is abandoned`, 'warning');
    process.exit(0);
  }
  return 0;
}
