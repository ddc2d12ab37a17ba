/**
 * The update_engine daemon put together: after a boot, the health gate and marking the booted slot
 * good (or, when a freshly finalized slot fails the gate, a reboot back to the slot that worked);
 * then update checks on the reference's schedule, and the D-Bus service com.coreos.update1 for
 * update_engine_client and locksmithd. A failed check or call is logged and reported; the daemon
 * keeps running.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MessageBus } from 'dbus-next';
import { UpdateAttempter } from './attempter';
import type { CheckOutcome } from './attempter';
import { serveUpdateEngine, UpdateEngineService } from './dbus-service';
import { discoverMachine, machineSlots, markGood } from './engine';
import type { Discovery } from './engine';
import { machineIdentity, readEngineSettings } from './engine-config';
import { attr } from './gpt';
import { defaultSchedule, isServerFailure, nextCheckIn } from './schedule';
import type { SchedulePolicy, ScheduleState } from './schedule';
import { logindReboot } from '../lock/dbus-ports';
import { healthState, waitHealthy } from '../system/systemd';
import type { Systemd } from '../system/systemd';
import type { LogFn } from '../report/log';
import type { EngineMetrics } from '../report/metrics';

export interface EngineDaemonOptions {
  /** Where update.conf, the release file and /etc/machine-id are read (`/` on a machine). */
  root: string;
  /** The bus the service is offered on, and logind's (the system bus on a machine). */
  bus: MessageBus;
  /** systemd, for the health gate; undefined: every boot counts as healthy. */
  systemd: Systemd | undefined;
  discovery: Discovery;
  /** The staged record and the prefs (previous-version, aleph-version, need-reboot). */
  stateDir: string;
  publicKeys: string[];
  schedule?: SchedulePolicy;
  /** The gate before the booted slot is marked good: these units active, or (none) the system running. */
  healthUnits: string[];
  healthTimeoutMs: number;
  /** When a slot on its trial boot fails the gate, reboot so the boot loader goes back to the slot that worked. */
  rollbackOnUnhealthy: boolean;
  finalizeAfterStaging: boolean;
  bootIdFile?: string;
  log: LogFn;
  /** Follows the status, checks, errors and bytes downloaded (--metrics-listen). */
  metrics?: EngineMetrics;
}

export interface EngineDaemon {
  attempter: UpdateAttempter;
  /** How the boot went: marked good, not healthy (not marked), or rolling back (a reboot was asked for). */
  booted: Promise<'marked' | 'unhealthy' | 'rolling-back'>;
  stop(): Promise<void>;
}

export async function startEngineDaemon(o: EngineDaemonOptions): Promise<EngineDaemon> {
  const prefsDir = join(o.stateDir, 'prefs');
  const bootIdFile = o.bootIdFile ?? '/proc/sys/kernel/random/boot_id';
  const bootId = () => {
    try {
      return readFileSync(bootIdFile, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const machine = () => discoverMachine(o.discovery);
  const attempter = new UpdateAttempter({
    settings: () => readEngineSettings(o.root),
    identity: (s) => machineIdentity(s, { root: o.root, prefsDir, bootIdFile }),
    machine,
    stateDir: o.stateDir,
    prefsDir,
    publicKeys: o.publicKeys,
    finalizeAfterStaging: o.finalizeAfterStaging,
    bootId,
    log: o.log,
  });
  if (o.metrics) {
    const metrics = o.metrics;
    attempter.on('status', (s: { currentOperation: string; progress: number; newSize: number }) => metrics.update(s));
    attempter.on('failed', (f: { code: number }) => metrics.failed(f.code));
  }
  attempter.on('status', (s: { currentOperation: string; progress: number }) => {
    if (s.currentOperation !== 'UPDATE_STATUS_DOWNLOADING') o.log(`status ${s.currentOperation}`);
  });
  let stopped = false;
  const service = new UpdateEngineService(
    attempter,
    {
      finalize: () => attempter.finalize(),
      // locksmithd calls it once healthy, before it gives back its reboot slot.
      markSuccessful: async () => {
        markGood(machine());
        await attempter.reportBoot();
      },
    },
    o.log,
  );
  // Settings and identity are checked once at start, so a broken update.conf is reported at once;
  // they are read anew for every check.
  const settings = readEngineSettings(o.root);
  machineIdentity(settings, { root: o.root, prefsDir, bootIdFile });
  const slots = machineSlots(machine());
  o.log(`version ${settings.version} on ${slots.active.name}, channel ${settings.group}, server ${settings.server ?? '(none: checks are off)'}`);

  await serveUpdateEngine(o.bus, service);
  const booted = afterBoot(o, machine, () => stopped).then(async (how) => {
    if (how === 'marked') await attempter.reportBoot();
    return how;
  });

  // The schedule: the first check a while after start (once the boot is settled), then the
  // interval, with fuzz, backoff after server failures, and the server's PollInterval.
  let timer: NodeJS.Timeout | undefined;
  const state: ScheduleState = { checks: 0, failures: 0 };
  const policy = o.schedule ?? defaultSchedule;
  const plan = () => {
    if (stopped) return;
    const ms = nextCheckIn(state, policy);
    timer = setTimeout(() => void scheduled(), ms);
  };
  const scheduled = async () => {
    let outcome: CheckOutcome;
    try {
      outcome = await attempter.check(false);
    } catch (err) {
      o.log(`update check failed: ${(err as Error).message}`, 'error');
      outcome = { result: 'failed', code: 1 };
    }
    state.checks++;
    state.failures = outcome.result === 'failed' && outcome.code !== undefined && isServerFailure(outcome.code) ? state.failures + 1 : 0;
    if (outcome.pollInterval !== undefined) state.pollInterval = outcome.pollInterval;
    plan();
  };
  void booted.then((how) => {
    if (how !== 'rolling-back') plan();
  });

  return {
    attempter,
    booted,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await booted.catch(() => undefined);
    },
  };
}

/**
 * After a boot: wait for the health gate, then mark the booted slot good (the reference's
 * coreos-setgoodroot). A slot on its trial boot that stays unhealthy is not marked; when the other
 * slot can still boot, the machine is rebooted so gptprio falls back to it: the rollback the next
 * update check reports.
 */
async function afterBoot(o: EngineDaemonOptions, machine: () => ReturnType<typeof discoverMachine>, stopped: () => boolean): Promise<'marked' | 'unhealthy' | 'rolling-back'> {
  try {
    const healthy =
      !o.systemd ||
      (await waitHealthy(o.systemd, o.healthUnits, o.healthTimeoutMs, {
        stopped,
        waiting: () => o.log(`waiting for ${o.healthUnits.length ? o.healthUnits.join(', ') : 'the system'} to be healthy before marking this boot good (up to ${o.healthTimeoutMs / 1000} s)`),
      }));
    const m = machine();
    if (healthy) {
      const r = markGood(m);
      if (r.rollback) o.log(`this boot is a rollback: ${r.slots.passive.name} was finalized but did not boot successfully; running ${r.slots.active.name}`, 'warning');
      o.log(`${r.slots.active.name} ${r.changed ? 'marked successful' : 'was already marked successful'}`);
      return 'marked';
    }
    if (stopped()) return 'unhealthy';
    const state = o.systemd ? await healthState(o.systemd, o.healthUnits) : '';
    const slots = machineSlots(m);
    const trial = !attr.successful(slots.active.attributes);
    const p = slots.passive.attributes;
    const fallback = attr.priority(p) > 0 && attr.successful(p);
    if (trial && fallback && o.rollbackOnUnhealthy) {
      o.log(`not healthy after ${o.healthTimeoutMs / 1000} s on the trial boot of ${slots.active.name} (${state}): rebooting to roll back to ${slots.passive.name}`, 'error');
      await logindReboot(o.bus);
      return 'rolling-back';
    }
    o.log(`not healthy after ${o.healthTimeoutMs / 1000} s (${state}): ${slots.active.name} is not marked successful`, 'warning');
    return 'unhealthy';
  } catch (err) {
    o.log(`marking this boot good failed: ${(err as Error).message}`, 'error');
    return 'unhealthy';
  }
}
