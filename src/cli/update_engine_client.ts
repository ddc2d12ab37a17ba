/**
 * update_engine_client: asks the update_engine daemon over D-Bus, as the reference client does, and
 * does the A/B USR slot steps on this machine's disk. Flags in the reference client's style
 * (`-check_for_update` and `--check-for-update` both work).
 *
 *   --check-for-update    ask update_engine to check now (AttemptUpdate) and return
 *   --update              check now and wait for the outcome: 0 once an update is staged (reboot
 *                         needed) or when there is none, 1 when the update failed
 *   --status              LAST_CHECKED_TIME=, PROGRESS=, CURRENT_OP=, NEW_VERSION=, NEW_SIZE=
 *   --reset-status        forget a staged update (a finalized one: the boot flags go back to the running slot)
 *   --watch-for-updates   print every StatusUpdate until stopped
 *   --format json         the status as JSON (one object per line when watching)
 *
 *   --boot-next DISK      gptprio: the slot to boot, using up one of its tries (for tests and
 *                         boot loaders without the grub module)
 *   --slots               the USR slots with priority, tries and successful
 *   --apply-payload SRC   write and verify a payload (file or http(s) URL) into the passive slot
 *   --finalize            switch the boot flags to the staged slot (locksmithd does this with the
 *                         reboot slot held)
 *   --mark-successful     after a healthy boot: the running slot is good (--health-gate waits for
 *                         systemd to report the system running first)
 *
 * Exit codes: 0 done, 1 failed, 2 usage.
 */
import { Command, Option } from 'commander';
import { attr } from '../update/gpt';
import { bootNext } from '../update/slots';
import type { Slots } from '../update/slots';
import { defaultStateDir, discoverMachine, finalizeStaged, machineSlots, markGood, stage } from '../update/engine';
import type { Machine } from '../update/engine';
import type { Progress } from '../update/apply-payload';
import { PayloadError } from '../update/payload-format';
import { sourceFor } from '../update/payload-source';
import { readFileSync } from 'node:fs';
import { collect, normalizeGoFlags, numberOf, parseArgs, standardOptions, untilStopped, UsageError } from './options';
import { connectSystemd, healthState, waitHealthy } from '../system/systemd';
import { openBus } from '../system/dbus';
import { busName, interfaceName, objectPath } from '../update/dbus-service';
import type { StatusSnapshot } from '../update/attempter';
import * as dbus from 'dbus-next';
import type { MessageBus } from 'dbus-next';

export interface Io {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean; columns?: number };
}

const longFlags = ['check-for-update', 'update', 'status', 'reset-status', 'watch-for-updates', 'format', 'bus', 'wait', 'boot-next', 'slots', 'apply-payload', 'finalize', 'mark-successful', 'disk', 'active', 'public-key', 'sha256', 'size', 'state-dir', 'cmdline-file', 'progress', 'health-gate', 'health-unit', 'health-timeout', 'systemd-bus', 'help', 'version'];

interface Options {
  checkForUpdate?: boolean;
  update?: boolean;
  status?: boolean;
  resetStatus?: boolean;
  watchForUpdates?: boolean;
  format: 'text' | 'json';
  bus: string;
  wait: number;
  bootNext?: string;
  slots?: boolean;
  applyPayload?: string;
  finalize?: boolean;
  markSuccessful?: boolean;
  disk?: string;
  active?: string;
  publicKey?: string[];
  sha256?: string;
  size?: number;
  stateDir: string;
  cmdlineFile?: string;
  progress?: 'bar' | 'lines' | 'none';
  healthGate?: boolean;
  healthUnit?: string[];
  healthTimeout: number;
  systemdBus: string;
}

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
const rate = (bytesPerSecond: number) => `${mib(bytesPerSecond)}/s`;

function slotLines(s: Slots): string {
  const line = (e: Slots['active'], role: string) =>
    `${e.name}\tpartition=${e.number}\tpriority=${attr.priority(e.attributes)}\ttries=${attr.tries(e.attributes)}\tsuccessful=${attr.successful(e.attributes) ? 1 : 0}\t${role}\tPARTUUID=${e.uniqueGuid}\n`;
  return [s.active, s.passive]
    .sort((a, b) => a.number - b.number)
    .map((e) => line(e, e === s.active ? 'active' : 'passive'))
    .join('');
}

/** A progress bar on a terminal, a line per tenth otherwise: bytes of the image written to the slot, of its size, and the write rate. */
function progressReporter(io: Io, mode: 'bar' | 'lines' | 'none'): { update(p: Progress): void; done(): void } {
  let lastDraw = 0;
  let lastTenth = -1;
  return {
    update(p) {
      if (mode === 'bar') {
        const now = Date.now();
        if (now - lastDraw < 100 && p.fraction < 1) return;
        lastDraw = now;
        const width = Math.max(10, Math.min(40, (io.stderr.columns ?? 80) - 50));
        const filled = Math.round(Math.min(1, p.fraction) * width);
        io.stderr.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(p.fraction * 100).toFixed(0).padStart(3)}%  ${mib(p.written)} / ${mib(p.total)}  ${rate(p.rate)}  `);
      } else if (mode === 'lines') {
        const tenth = Math.floor(p.fraction * 10);
        if (tenth === lastTenth) return;
        lastTenth = tenth;
        io.stderr.write(`progress ${(p.fraction * 100).toFixed(0)}%: ${p.written} of ${p.total} bytes written, ${rate(p.rate)}\n`);
      }
    },
    done() {
      if (mode === 'bar' && lastDraw > 0) io.stderr.write('\n');
    },
  };
}

/** The five values of GetStatus and StatusUpdate, as the reference client prints them, or as JSON. */
function statusText(s: StatusSnapshot, format: Options['format']): string {
  if (format === 'json') return `${JSON.stringify(s)}\n`;
  return `LAST_CHECKED_TIME=${s.lastCheckedTime}\nPROGRESS=${s.progress.toFixed(6)}\nCURRENT_OP=${s.currentOperation}\nNEW_VERSION=${s.newVersion}\nNEW_SIZE=${s.newSize}\n`;
}

const snapshot = (v: unknown[]): StatusSnapshot => ({
  lastCheckedTime: Number(v[0]),
  progress: Number(v[1]),
  currentOperation: String(v[2]) as StatusSnapshot['currentOperation'],
  newVersion: String(v[3]),
  newSize: Number(v[4]),
});

interface Manager {
  AttemptUpdate(): Promise<void>;
  ResetStatus(): Promise<void>;
  GetStatus(): Promise<unknown[]>;
  /** Calls `listener` with each StatusUpdate's values from update_engine. */
  onStatus(listener: (v: unknown[]) => void): Promise<void>;
}

/** Errors that mean update_engine is not (yet) on the bus. */
const notThere = ['org.freedesktop.DBus.Error.ServiceUnknown', 'org.freedesktop.DBus.Error.NameHasNoOwner'];

/**
 * update_engine's methods as plain calls, without introspection: the reference's bus policy lets the
 * core user call AttemptUpdate, ResetStatus and GetStatus, and nothing else (introspection neither).
 * Waits up to `waitS` seconds for the daemon to appear on the bus, as the reference retries.
 */
async function manager(bus: MessageBus, waitS: number): Promise<Manager> {
  const call = async (member: string) => (await bus.call(new dbus.Message({ destination: busName, path: objectPath, interface: interfaceName, member })))?.body ?? [];
  const deadline = Date.now() + waitS * 1000;
  for (;;) {
    try {
      await call('GetStatus');
      break;
    } catch (err) {
      const absent = err instanceof dbus.DBusError && notThere.includes(err.type);
      if (!absent) throw err;
      if (Date.now() >= deadline) throw new Error(`update_engine is not on the bus (${busName}): ${err.text ?? err.message}`);
      await new Promise((r) => setTimeout(r, Math.min(10_000, Math.max(100, deadline - Date.now()))));
    }
  }
  return {
    AttemptUpdate: async () => void (await call('AttemptUpdate')),
    ResetStatus: async () => void (await call('ResetStatus')),
    GetStatus: () => call('GetStatus'),
    onStatus: async (listener) => {
      bus.on('message', (msg: dbus.Message) => {
        if (msg.type === dbus.MessageType.SIGNAL && msg.interface === interfaceName && msg.member === 'StatusUpdate') listener(msg.body as unknown[]);
      });
      await bus.call(
        new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: [`type='signal',sender='${busName}',interface='${interfaceName}',member='StatusUpdate'`] }),
      );
    },
  };
}

/** The actions that ask the daemon over D-Bus. */
async function daemonAction(opts: Options, io: Io): Promise<number> {
  const bus = await openBus(opts.bus);
  try {
    const m = await manager(bus, opts.wait);
    if (opts.status) {
      io.stdout.write(statusText(snapshot(await m.GetStatus()), opts.format));
      return 0;
    }
    if (opts.resetStatus) {
      const before = snapshot(await m.GetStatus());
      await m.ResetStatus();
      if (before.currentOperation === 'UPDATE_STATUS_UPDATED_NEED_REBOOT') {
        io.stderr.write(`the staged update ${before.newVersion} is forgotten; if it was finalized, the next boot still tries it (update_engine_client --slots shows the flags)\n`);
      }
      return 0;
    }
    if (opts.checkForUpdate) {
      await m.AttemptUpdate();
      return 0;
    }
    if (opts.watchForUpdates) {
      await m.onStatus((v) => io.stdout.write(`${statusText(snapshot(v), opts.format)}${opts.format === 'json' ? '' : '\n'}`));
      await untilStopped();
      return 0;
    }
    return await updateAndWait(m, io);
  } finally {
    bus.disconnect();
  }
}

/**
 * -update: a check, then the outcome from StatusUpdate signals and a GetStatus every 5 s (as the
 * reference polls). Staged: 0. Back to idle without an error: no update, 0 (as Flatcar's client).
 * Back to idle after REPORTING_ERROR_EVENT: the update failed, 1.
 */
async function updateAndWait(m: Manager, io: Io): Promise<number> {
  let failed = false;
  let done = false;
  let settle: (code: number) => void = () => undefined;
  const outcome = new Promise<number>((r) => (settle = r));
  const seen = (s: StatusSnapshot) => {
    if (done) return;
    done = s.currentOperation === 'UPDATE_STATUS_UPDATED_NEED_REBOOT' || s.currentOperation === 'UPDATE_STATUS_IDLE';
    if (s.currentOperation === 'UPDATE_STATUS_REPORTING_ERROR_EVENT') failed = true;
    if (s.currentOperation === 'UPDATE_STATUS_UPDATED_NEED_REBOOT') {
      io.stdout.write(`Update succeeded: ${s.newVersion} is staged; a reboot is needed.\n`);
      settle(0);
    } else if (s.currentOperation === 'UPDATE_STATUS_IDLE') {
      if (failed) io.stderr.write('update_engine_client: the update failed (the daemon\'s log says why)\n');
      else io.stdout.write('No update available.\n');
      settle(failed ? 1 : 0);
    }
  };
  await m.onStatus((v) => seen(snapshot(v)));
  const before = snapshot(await m.GetStatus());
  if (before.currentOperation === 'UPDATE_STATUS_UPDATED_NEED_REBOOT') {
    seen(before);
    return outcome;
  }
  await m.AttemptUpdate();
  const poll = setInterval(() => {
    m.GetStatus().then((v) => seen(snapshot(v)), () => undefined);
  }, 5000);
  // The first look right away: a check with no server to ask leaves the daemon idle without a signal.
  seen(snapshot(await m.GetStatus()));
  try {
    return await outcome;
  } finally {
    clearInterval(poll);
  }
}

async function run(opts: Options, io: Io): Promise<number> {
  const daemonActions = [opts.checkForUpdate, opts.update, opts.status, opts.resetStatus, opts.watchForUpdates];
  const actions = [...daemonActions, opts.bootNext, opts.slots, opts.applyPayload, opts.finalize, opts.markSuccessful].filter((a) => a !== undefined);
  if (actions.length !== 1) {
    throw new UsageError(
      `${actions.length === 0 ? 'nothing to do' : 'one thing at a time'}: give one of --check-for-update, --update, --status, --reset-status, --watch-for-updates, --boot-next, --slots, --apply-payload, --finalize, --mark-successful`,
    );
  }
  if (daemonActions.some((a) => a !== undefined)) return daemonAction(opts, io);
  if (opts.bootNext) {
    const choice = bootNext(opts.bootNext);
    io.stdout.write(`PARTITION=${choice.partition}\nLABEL=${choice.label}\nPARTUUID=${choice.uniqueGuid}\nTRIES_USED=${choice.decremented ? 1 : 0}\n`);
    return 0;
  }
  const machine: Machine = discoverMachine({
    ...(opts.disk ? { disk: opts.disk } : {}),
    ...(opts.active ? { active: opts.active } : {}),
    ...(opts.cmdlineFile ? { cmdlineFile: opts.cmdlineFile } : {}),
  });
  if (opts.slots) {
    io.stdout.write(slotLines(machineSlots(machine)));
    return 0;
  }
  if (opts.applyPayload) {
    const publicKeys = (opts.publicKey ?? []).map((path) => {
      try {
        return readFileSync(path, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read the public key ${path}: ${(err as Error).message}`);
      }
    });
    let sha256: Buffer | undefined;
    if (opts.sha256) {
      sha256 = /^[0-9a-f]{64}$/i.test(opts.sha256) ? Buffer.from(opts.sha256, 'hex') : Buffer.from(opts.sha256, 'base64');
      if (sha256.length !== 32) throw new UsageError(`--sha256 ${opts.sha256} is neither 64 hex digits nor a base64 SHA-256`);
    }
    const progress = progressReporter(io, opts.progress ?? (io.stderr.isTTY ? 'bar' : 'lines'));
    try {
      const r = await stage(machine, opts.stateDir, {
        source: sourceFor(opts.applyPayload),
        publicKeys,
        ...(sha256 ? { sha256 } : {}),
        ...(opts.size !== undefined ? { size: opts.size } : {}),
        onProgress: (p) => progress.update(p),
      });
      progress.done();
      for (const w of r.warnings) io.stderr.write(`warning: ${w}\n`);
      io.stdout.write(
        `staged ${r.slots.passive.name} (partition ${r.slots.passive.number}): ${r.imageSize} of ${r.imageSize} bytes written in ${r.writeSeconds.toFixed(2)} s ` +
          `(${rate(r.writeSeconds > 0 ? r.imageSize / r.writeSeconds : 0)}) and verified (SHA-256 ${r.imageSha256}), from a ${r.payloadBytes}-byte payload in ${r.seconds.toFixed(2)} s in all` +
          `${r.keyIndex !== undefined ? `, signed by key ${r.keyIndex + 1}` : ''}${r.resumes > 0 ? `, resumed ${r.resumes} time(s)` : ''}\n`,
      );
      return 0;
    } catch (err) {
      progress.done();
      if (err instanceof PayloadError) {
        const slot = machineSlots(machine).passive.name;
        const after = err.slotTouched ? `${slot} is marked unbootable` : `nothing was written: ${slot}, the boot flags and the staged update are as they were`;
        io.stderr.write(`update_engine_client: payload rejected (${err.check} check): ${err.message}; ${after}\n`);
        return 1;
      }
      throw err;
    }
  }
  if (opts.finalize) {
    const slots = await finalizeStaged(machine, opts.stateDir);
    io.stdout.write(`finalized: the next boot tries ${slots.passive.name}\n${slotLines(slots)}`);
    return 0;
  }
  if (opts.healthGate || opts.healthUnit) await waitUntilHealthy(opts, io);
  const r = markGood(machine);
  if (r.rollback) io.stderr.write(`warning: this boot is a rollback: ${r.slots.passive.name} was finalized but did not boot successfully; running ${r.slots.active.name}\n`);
  io.stdout.write(`${r.slots.active.name} ${r.changed ? 'marked successful' : 'was already marked successful'}\n${slotLines(r.slots)}`);
  return 0;
}


/** The health gate before marking a boot good: systemd running (or the named units active), polled each second. */
async function waitUntilHealthy(opts: Options, io: Io): Promise<void> {
  const systemd = await connectSystemd(opts.systemdBus);
  const units = opts.healthUnit ?? [];
  try {
    const waiting = () => io.stderr.write(`waiting for ${units.length > 0 ? units.join(', ') : 'the system'} to be healthy (up to ${opts.healthTimeout} s)\n`);
    if (!(await waitHealthy(systemd, units, opts.healthTimeout * 1000, { waiting }))) {
      throw new Error(`not healthy after ${opts.healthTimeout} s (${await healthState(systemd, units)}): the running slot is not marked successful`);
    }
  } finally {
    systemd.close();
  }
}

export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const program = new Command('update_engine_client')
    .description("Ask update_engine over D-Bus for its status and update checks; handle the A/B USR slots: boot selection, applying payloads, finalize, mark successful")
    .option('--check-for-update', 'ask update_engine to check for an update now, and return')
    .option('--update', 'check for an update now and wait until it is staged (0), there is none (0) or it failed (1)')
    .option('--status', "update_engine's status as KEY=value lines")
    .option('--reset-status', 'forget a staged update (a finalized one: the boot flags go back to the running slot)')
    .option('--watch-for-updates', 'print each status update until stopped')
    .addOption(new Option('--format <format>', 'how to print the status').choices(['text', 'json']).default('text'))
    .option('--bus <address>', 'update_engine\'s bus: "system" or a D-Bus address', 'system')
    .option('--wait <seconds>', 'how long to wait for update_engine to be on the bus', numberOf('--wait', 'seconds'), 40)
    .option('--boot-next <disk>', 'pick the slot to boot as gptprio does, using up one try')
    .option('--slots', 'show the USR slots')
    .option('--apply-payload <file|url>', 'write and verify a payload into the passive slot')
    .option('--finalize', 'switch the boot flags to the staged slot')
    .option('--mark-successful', 'mark the running slot good after a healthy boot')
    .option('--disk <path>', 'the disk holding USR-A and USR-B (default: the one /usr or usr=PARTUUID= is on)')
    .option('--active <slot>', 'the running slot: USR-A, USR-B or a partition UUID (default: from the kernel command line or /usr)')
    .option('--public-key <pem>', 'a public key the payload signature may verify with (repeatable, for key rotation)', collect)
    .option('--sha256 <hash>', "the payload's SHA-256 as announced (hex or base64)")
    .option('--size <bytes>', "the payload's size as announced", numberOf('--size', 'bytes'))
    .option('--state-dir <dir>', 'where the staged update is recorded', defaultStateDir)
    .option('--cmdline-file <path>', 'the kernel command line to read usr= from', undefined)
    .option('--health-gate', 'with --mark-successful: first wait until systemd reports the system running')
    .option('--health-unit <unit>', 'with --mark-successful: first wait until this unit is active (repeatable; instead of the system state)', collect)
    .option('--health-timeout <seconds>', 'how long the health gate waits', numberOf('--health-timeout', 'seconds'), 300)
    .option('--systemd-bus <address>', "systemd's bus for the health gate: system or a D-Bus address", 'system')
    .addOption(new Option('--progress <mode>', 'progress display (default: bar on a terminal, else lines)').choices(['bar', 'lines', 'none']))
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  standardOptions(program);
  let done: number | undefined;
  try {
    done = parseArgs(program, normalizeGoFlags(argv, longFlags));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`update_engine_client: ${err.message}\n`);
    return 2;
  }
  if (done !== undefined) return done;
  try {
    return await run(program.opts<Options>(), io);
  } catch (err) {
    io.stderr.write(`update_engine_client: ${(err as Error).message}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
