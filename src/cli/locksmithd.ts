/**
 * locksmithd: waits for a staged update and reboots the machine when the strategy, the window and
 * (etcd-lock) a slot of the fleet's semaphore allow; gives the slot back after the reboot once the
 * machine is healthy. Settings: /usr/share/coreos/update.conf, /etc/coreos/update.conf, then the
 * environment (LOCKSMITHD_*, REBOOT_*). SIGTERM stops it; SIGHUP reloads the settings.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { rawSettings, settingsFrom } from '../lock/config';
import type { Settings } from '../lock/config';
import { startDaemon } from '../lock/daemon';
import type { Daemon } from '../lock/daemon';
import { daemonBuses } from '../system/systemd';
import { connectEtcd } from '../lock/etcd';
import { files } from '../system/paths';
import { RootedFs } from '../system/rooted-fs';
import type { Logger } from '../report/log';
import { addLogOptions, addMetricsOption, announceReady, earlyLogger, startMetrics, stderrLogger } from './logging';
import type { StartedMetrics } from './logging';
import { slotsReader } from '../lock/fleetlock';
import { LockMetrics } from '../report/metrics';
import { etcdEnvironment, locksmithVersion, parseArgs, rootDir, standardOptions } from './options';

interface Options {
  root: string;
  bus: string;
  systemdBus?: string;
  machineIdFile: string;
  pidFile: string;
  reclaimStaleAfter?: string;
  logFormat?: string;
  logLevel?: string;
  metricsListen?: string;
}

/** Set once the options are read; until then (a usage error) text, or the journal's format under systemd. */
let log: Logger = earlyLogger('locksmithd');

/**
 * The last line of defence: the agent never rejects and every detached promise has its catch, so
 * these only fire on a bug. A rejection is logged and the daemon goes on (the agent's loop does not
 * depend on the promise that failed); an exception leaves the process in an unknown state, so it
 * is logged and the process exits for systemd to restart it: the slot stays held, and the agent's
 * start finds out why it holds it (see agent.ts, transitions.started).
 */
function guardProcess(): void {
  process.on('unhandledRejection', (err) => log.error(`bug: unhandled rejection: ${err instanceof Error ? err.stack ?? err.message : String(err)}`));
  process.on('uncaughtException', (err) => {
    log.error(`bug: uncaught exception, exiting: ${err.stack ?? err.message}`);
    process.exit(70);
  });
}

/** The variables locksmithd reads, after /usr/share/coreos/update.conf and /etc/coreos/update.conf (the same names there). */
export const locksmithdEnvironment = [
  { name: 'REBOOT_STRATEGY', means: 'etcd-lock, reboot or off (default reboot)' },
  { name: 'LOCKSMITHD_REBOOT_WINDOW_START', means: 'a window\'s start, such as "Thu 04:00" (also REBOOT_WINDOW_START)' },
  { name: 'LOCKSMITHD_REBOOT_WINDOW_LENGTH', means: 'its length, such as 1h30m (also REBOOT_WINDOW_LENGTH)' },
  { name: 'LOCKSMITHD_REBOOT_WINDOWS', means: 'several windows: "Mon 04:00 1h, Thu 23:00 1h30m"' },
  { name: 'LOCKSMITHD_REBOOT_WINDOW_TIMEZONE', means: 'the windows\' time zone (default the machine\'s)' },
  { name: 'LOCKSMITHD_ENDPOINT', means: 'etcd endpoints, separated with commas' },
  { name: 'LOCKSMITHD_GROUP', means: 'the lock group' },
  ...etcdEnvironment('LOCKSMITHD', false),
  { name: 'LOCKSMITHD_MACHINE_ID', means: 'the holder id (default from --machine-id-file)' },
  { name: 'LOCKSMITHD_HEALTH_UNITS', means: 'units that must be active before the slot is given back' },
  { name: 'LOCKSMITHD_RECLAIM_STALE_AFTER', means: '--reclaim-stale-after' },
];

/** The settings from the root's update.conf files (read inside the root: a link there cannot reach a host file), then the environment. */
function loadSettings(root: string, overrides: Record<string, string>): Settings {
  const fs = new RootedFs(root);
  const texts = [files.updateConfDefaults, files.updateConf].map((f) => fs.read(f)?.toString('utf8') ?? '');
  return settingsFrom(rawSettings(texts, { ...process.env, ...overrides }));
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('locksmithd')
    .description('Reboot the machine for a staged update when the strategy, window and fleet lock allow')
    .option('--root <dir>', 'the root whose update.conf files are read', rootDir, '/')
    .option('--bus <address>', 'the bus of update_engine and logind: "system" or a D-Bus address', 'system')
    .option('--systemd-bus <address>', 'systemd\'s bus for the health gate: "system", an address, or "none" (default: --bus)')
    .option('--machine-id-file <file>', 'this machine\'s id, the holder id in the semaphore', '/etc/machine-id')
    .option('--pid-file <file>', 'where locksmithd writes its pid, for locksmithctl to reach it', '/run/locksmithd.pid')
    .option('--reclaim-stale-after <age>', 'free holders silent for longer than AGE (such as 2h) when all slots are held (off by default)')
    .exitOverride();
  addLogOptions(program);
  addMetricsOption(program);
  standardOptions(program, { environment: locksmithdEnvironment });
  const referenceVersion = locksmithVersion('locksmithd', argv);
  if (referenceVersion !== undefined) {
    process.stdout.write(referenceVersion);
    return 0;
  }
  const exit = parseArgs(program, argv);
  if (exit !== undefined) return exit;
  const opts = program.opts<Options>();
  log = stderrLogger('locksmithd', opts);
  guardProcess();
  const overrides: Record<string, string> = opts.reclaimStaleAfter ? { LOCKSMITHD_RECLAIM_STALE_AFTER: opts.reclaimStaleAfter } : {};
  let settings: Settings;
  try {
    settings = loadSettings(opts.root, overrides);
  } catch (err) {
    log.error((err as Error).message);
    return 1;
  }
  let early: Awaited<ReturnType<typeof daemonBuses>> | undefined;
  if (settings.strategy.kind === 'off') {
    // As the reference locksmithd: with the strategy off there is nothing to do, and no bus or
    // systemd is needed to do it, so it says so and exits 0. With the buses there, it stays up,
    // idle, for `locksmithctl set-strategy` to wake it with SIGHUP.
    try {
      early = await daemonBuses(opts.bus, opts.systemdBus);
    } catch {
      log('Reboot strategy is "off" - locksmithd is exiting.');
      return 0;
    }
  }
  let machineId: string;
  try {
    machineId = settings.machineId ?? readFileSync(opts.machineIdFile, 'utf8').trim();
  } catch (err) {
    log.error(`cannot read this machine's id: ${(err as Error).message}`);
    early?.close();
    return 1;
  }
  let buses: Awaited<ReturnType<typeof daemonBuses>>;
  try {
    buses = early ?? (await daemonBuses(opts.bus, opts.systemdBus));
  } catch (err) {
    log.error((err as Error).message);
    return 1;
  }
  const { bus, systemd } = buses;
  // Only with --metrics-listen. The metrics outlive a reload (SIGHUP): the counters go on; slots
  // are read from the current etcd.
  let readSlots: ReturnType<typeof slotsReader> | undefined;
  let observed: StartedMetrics<LockMetrics> | undefined;
  try {
    observed = await startMetrics('locksmithd', opts.metricsListen, log, (registry) => new LockMetrics(registry, (group) => (readSlots ? readSlots(group) : Promise.resolve(undefined))));
  } catch (err) {
    log.error((err as Error).message);
    buses.close();
    return 1;
  }
  const metrics = observed?.metrics;

  let etcd: ReturnType<typeof connectEtcd> | undefined;
  let daemon: Daemon | undefined;
  let rebooting = false;
  const start = async (s: Settings) => {
    etcd?.close();
    etcd = s.strategy.kind === 'etcd-lock' ? connectEtcd(s.strategy.etcd) : undefined;
    readSlots = etcd ? slotsReader(etcd) : undefined;
    daemon = await startDaemon(s, { bus, systemd, etcd, machineId, log, ...(metrics ? { metrics } : {}) });
    void daemon.done.then(
      (state) => {
        if (state.name === 'reboot-requested') {
          rebooting = true;
          log('reboot requested; waiting for the machine to go down');
        }
      },
      (err: Error) => log.error(`bug: the agent failed: ${err.message}`),
    );
  };
  try {
    await start(settings);
  } catch (err) {
    log.error((err as Error).message);
    etcd?.close();
    observed?.close();
    buses.close();
    return 1;
  }
  const shutDown = async () => {
    await daemon?.stop().catch((err: Error) => log.error(`stopping: ${err.message}`));
    try {
      etcd?.close();
      observed?.close();
      buses.close();
      rmSync(opts.pidFile, { force: true });
    } catch (err) {
      log.error(`stopping: ${(err as Error).message}`);
    }
  };
  try {
    writeFileSync(opts.pidFile, `${process.pid}\n`);
  } catch (err) {
    log.error(`cannot write the pid file: ${(err as Error).message}`);
    await shutDown();
    return 1;
  }

  return new Promise<number>((resolve) => {
    const stop = () => void shutDown().then(() => resolve(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    // Ready: the settings read, the buses connected, the agent started (etcd is reached by the
    // agent, which waits out an etcd that is down: no reason to hold up the start).
    void announceReady(log, `strategy ${settings.strategy.kind}`);
    process.on('SIGHUP', () => {
      if (rebooting) return log.warning('not reloading: a reboot is under way');
      void (async () => {
        let next: Settings;
        try {
          next = loadSettings(opts.root, overrides);
        } catch (err) {
          log.warning(`not reloading: ${(err as Error).message}`);
          return;
        }
        log('reloading the settings');
        await daemon?.stop().catch(() => undefined);
        await start(next).catch((err: Error) => log.error(`reload failed: ${err.message}`));
      })().catch((err: Error) => log.error(`reload failed: ${err.message}`));
    });
  });
}
