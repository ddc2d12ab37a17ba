/**
 * locksmithctl: shows and changes the fleet's reboot semaphore, and sets the reboot strategy.
 * Output, messages and exit codes are locksmith's where it has them (0 fine, 1 failed, 2 usage),
 * since scripts parse them: `status` prints `Available:`, `Max:` and, after a blank line,
 * `MACHINE ID` and one bare id per line; errors start with locksmith's words, and any detail of
 * ours comes after them. More (each holder's last sign of life) only with `--verbose` or
 * `--format json`. Global flags may come from LOCKSMITHCTL_* environment variables; flags win.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import type { Etcd3 } from 'etcd3';
import { defaultEndpoints, describeEtcdError, openEtcd, splitEndpoints } from '../lock/etcd';
import { lastSeenRecord, liveness, parseDuration } from '../lock/presence';
import { Semaphore, SemaphoreError, defaultGroup, semaphoreLimits } from '../lock/semaphore';
import { readStrategy, writeStrategy, strategies } from '../lock/strategy-file';
import { addEtcdOptions, collect, etcdEnvironment, locksmithVersion, rootDir, standardOptions } from './options';
import type { MessageBus } from 'dbus-next';

/** Sends SIGHUP to a running locksmithd; its pid, or undefined when none runs. */
function reloadDaemon(pidFile: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
    process.kill(pid, 'SIGHUP');
  } catch {
    return undefined;
  }
  return pid;
}

/** Opens a bus; D-Bus code is loaded only by the commands that use it, to keep the others quick to start. */
async function connectBus(address: string): Promise<MessageBus> {
  const { openBus } = await import('../system/dbus');
  return openBus(address);
}

export interface Io {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
}

interface Globals {
  endpoint?: string[];
  group?: string;
  etcdCafile?: string;
  etcdCertfile?: string;
  etcdKeyfile?: string;
  etcdUsername?: string;
  etcdPassword?: string;
  format: 'text' | 'json';
  machineIdFile: string;
  root: string;
  pidFile: string;
  bus: string;
}

/** The LOCKSMITHCTL_* variables read in place of the global flags. */
export const locksmithctlEnvironment = [
  { name: 'LOCKSMITHCTL_ENDPOINT', means: '--endpoint (several separated with commas)' },
  { name: 'LOCKSMITHCTL_GROUP', means: '--group' },
  ...etcdEnvironment('LOCKSMITHCTL'),
];

/** A value from the flag, else from LOCKSMITHCTL_<NAME>. */
function fromEnv(io: Io, name: string): string | undefined {
  return io.env[`LOCKSMITHCTL_${name.toUpperCase().replace(/-/g, '_')}`] || undefined;
}

/** A failure whose message is printed as it is, with no prefix. */
class Failure extends Error {}

/** A failure printed as `<prefix>: <message>`, the prefix being locksmith's words for the step. */
class StepFailure extends Error {
  constructor(
    readonly prefix: string,
    cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
  }
}

function ago(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

/**
 * grpc-js sets the TLS server name to the endpoint's host even when it is an IP address, which
 * makes Node print DEP0123 on every TLS connection to https://127.0.0.1:2379-style endpoints.
 * That one warning is noise to a user; every other warning still prints.
 */
function quietIpServerNameWarning(): void {
  const listeners = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code !== 'DEP0123') for (const l of listeners) l(w);
  });
}

export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  quietIpServerNameWarning();
  let result = 0;
  const program = addEtcdOptions(new Command('locksmithctl'))
    .description('Manage the reboot semaphore of a fleet in etcd, and the reboot strategy')
    .option('--endpoint <url>', `etcd endpoint; repeat it, or separate several with commas (default ${defaultEndpoints.join(',')})`, collect)
    .option('--group <name>', `the lock group (default "${defaultGroup}")`)
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('--machine-id-file <file>', 'where this machine\'s id is read', '/etc/machine-id')
    .option('--root <dir>', 'the root whose /etc/coreos/update.conf set-strategy and get-strategy use', rootDir, '/')
    .option('--pid-file <file>', 'locksmithd\'s pid file, to tell it to reload', '/run/locksmithd.pid')
    .option('--bus <address>', 'the bus of logind and update_engine: "system" or a D-Bus address', 'system')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError();
  standardOptions(program, { environment: locksmithctlEnvironment, subcommands: true });

  const globals = (): Globals => program.opts<Globals>();
  const group = () => globals().group ?? fromEnv(io, 'group') ?? defaultGroup;
  /**
   * locksmith's client set-up: settings, a connection, and the semaphore created if it is not
   * there yet. Any failure is `Error initializing etcd client: ...`, naming the endpoints and why.
   */
  const initialize = async (): Promise<{ client: Etcd3; semaphore: Semaphore }> => {
    const g = globals();
    const endpoints = splitEndpoints(g.endpoint ?? (fromEnv(io, 'endpoint') ? [fromEnv(io, 'endpoint')!] : []));
    let client: Etcd3 | undefined;
    try {
      client = await openEtcd({
        endpoints,
        caFile: g.etcdCafile ?? fromEnv(io, 'etcd-cafile'),
        certFile: g.etcdCertfile ?? fromEnv(io, 'etcd-certfile'),
        keyFile: g.etcdKeyfile ?? fromEnv(io, 'etcd-keyfile'),
        username: g.etcdUsername ?? fromEnv(io, 'etcd-username'),
        password: g.etcdPassword ?? fromEnv(io, 'etcd-password'),
      });
      const semaphore = new Semaphore(client, group());
      try {
        await semaphore.init();
      } catch (err) {
        throw new Error(describeEtcdError(err, endpoints), { cause: err });
      }
      return { client, semaphore };
    } catch (err) {
      client?.close();
      throw new StepFailure('Error initializing etcd client', err);
    }
  };
  const machineId = (given: string | undefined): string => {
    if (given) return given;
    try {
      return readFileSync(globals().machineIdFile, 'utf8').trim();
    } catch (err) {
      throw new Failure(`Cannot read machine-id: ${(err as Error).message}`);
    }
  };
  /** Runs a command; a failure prints `<prefix>: <message>` (locksmith's form) and exits 1. */
  const guarded = async (prefix: string, fn: () => unknown) => {
    try {
      await fn();
    } catch (err) {
      if (err instanceof Failure) io.stderr.write(`${err.message}\n`);
      else if (err instanceof StepFailure) io.stderr.write(`${err.prefix}: ${err.message}\n`);
      else io.stderr.write(`${prefix}: ${(err as Error).message}\n`);
      result = 1;
    }
  };
  /** Runs `fn` with a semaphore once etcd is initialized, guarded. */
  const withSemaphore = (prefix: string, fn: (s: Semaphore, client: Etcd3) => Promise<void>) => () =>
    guarded(prefix, async () => {
      const { client, semaphore } = await initialize();
      try {
        await fn(semaphore, client);
      } finally {
        client.close();
      }
    });
  /** locksmith's words for a refused lock or unlock, then ours. */
  const refusal = (err: unknown): Error => {
    if (!(err instanceof SemaphoreError) || !err.value) return err as Error;
    if (err.kind === 'failed_lock_semaphore_full') return new Error(`semaphore is at ${err.value.total_slots - err.value.holders.length}: ${err.message}`);
    if (err.kind === 'not_a_holder') return new Error(`holder does not exist: ${err.message}`);
    return err;
  };
  /** Takes a slot by hand, recording the time as the holder's last sign of life; a holder already: `holder exists`. */
  const lockByHand = async (s: Semaphore, id: string) => {
    const r = await s.lock(id, [lastSeenRecord(s.group, id)]).catch((err: unknown) => {
      throw refusal(err);
    });
    if (r === 'already held') throw new Error('holder exists');
  };

  program
    .command('status')
    .description('show the slots and their holders (with --verbose, each holder\'s last sign of life)')
    .option('-v, --verbose', 'add each holder\'s last sign of life')
    .action((cmd: { verbose?: boolean }) =>
      // "Error setting value" is locksmith's prefix for a status that cannot be read.
      withSemaphore('Error setting value', async (s, client) => {
        const { value } = await s.read();
        if (globals().format === 'json') {
          const lives = await liveness(client, s.group, value.holders);
          const holders = lives.map((l) => ({ id: l.id, alive: l.alive, lastSeen: l.lastSeen?.toISOString() ?? null }));
          io.stdout.write(`${JSON.stringify({ group: s.group, total_slots: value.total_slots, available: value.total_slots - value.holders.length, holders }, null, 2)}\n`);
          return;
        }
        io.stdout.write(`Available: ${value.total_slots - value.holders.length}\nMax: ${value.total_slots}\n`);
        if (value.holders.length === 0) return;
        if (!cmd.verbose) {
          io.stdout.write(`\nMACHINE ID\n${value.holders.map((id) => `${id}\n`).join('')}`);
          return;
        }
        io.stdout.write(`\n${'MACHINE ID'.padEnd(34)}LAST SIGN OF LIFE\n`);
        const now = Date.now();
        for (const l of await liveness(client, s.group, value.holders)) {
          const life = l.alive ? 'alive' : l.lastSeen ? `${l.lastSeen.toISOString()} (${ago(now - l.lastSeen.getTime())})` : 'never seen';
          io.stdout.write(`${l.id.padEnd(34)}${life}\n`);
        }
      })(),
    );

  program
    .command('lock [machine-id]')
    .description('take a slot for a machine (default: this one)')
    .action((id?: string) =>
      withSemaphore('Error locking', async (s) => {
        await lockByHand(s, machineId(id));
      })(),
    );

  program
    .command('unlock [machine-id]')
    .description('give back a machine\'s slot (default: this one)')
    .option('--stale <age>', 'instead: free every holder silent for longer than AGE (such as 2h)')
    .action((id: string | undefined, cmd: { stale?: string }) => {
      const age = cmd.stale === undefined ? undefined : parseDuration(cmd.stale);
      if (cmd.stale !== undefined && age === undefined) {
        return guarded('Error unlocking', () => {
          throw new Error(`invalid age "${cmd.stale}": use a duration such as 90m or 2h`);
        });
      }
      return withSemaphore('Error unlocking', async (s, client) => {
        if (age === undefined) {
          await s.unlock(machineId(id)).catch((err: unknown) => {
            throw refusal(err);
          });
          return;
        }
        const { value } = await s.read();
        const now = Date.now();
        for (const l of await liveness(client, s.group, value.holders)) {
          if (l.alive || (l.lastSeen && now - l.lastSeen.getTime() <= age)) continue;
          if (await s.unlockIfHeld(l.id)) io.stdout.write(`Unlocked ${l.id} (${l.lastSeen ? `last seen ${ago(now - l.lastSeen.getTime())}` : 'never seen'})\n`);
        }
      })();
    });

  program
    .command('set-max [slots]')
    .description('set how many machines may hold a slot at once')
    .action((slots: string | undefined) => {
      // locksmith's messages, and its order: the argument is checked before etcd is asked.
      if (slots === undefined) return guarded('', () => {
        throw new Failure('New maximum value must be set.');
      });
      const n = Number(slots);
      if (!/^\+?\d+$/.test(slots) || !Number.isSafeInteger(n) || n > semaphoreLimits.maxSlots) {
        return guarded('', () => {
          throw new Failure(`Invalid maximum value: ${slots}${/^\+?\d+$/.test(slots) ? ` (at most ${semaphoreLimits.maxSlots})` : ''}`);
        });
      }
      return withSemaphore('Error setting value', async (s) => {
        const r = await s.setMax(n);
        io.stdout.write(`Old-Max: ${r.old}\nMax: ${r.max}\n`);
      })();
    });

  program
    .command('set-strategy <strategy>')
    .description(`set the reboot strategy (${strategies.join(', ')}) and window in /etc/coreos/update.conf`)
    .option('--window-start <when>', 'start of the reboot window: "Thu 04:00" (weekly) or "04:00" (daily)')
    .option('--window-length <duration>', 'length of the reboot window, such as 1h or 1h30m')
    .option('--no-window', 'remove the reboot window')
    .action((strategy: string, cmd: { windowStart?: string; windowLength?: string; window: boolean }) =>
      guarded('Error setting strategy', () => {
        const changed = writeStrategy(globals().root, strategy, cmd.window === false ? null : { start: cmd.windowStart, length: cmd.windowLength });
        io.stdout.write(changed ? `Strategy: ${strategy}\n` : `Strategy: ${strategy} (unchanged)\n`);
        if (changed) {
          const pid = reloadDaemon(globals().pidFile);
          if (pid) io.stdout.write(`Told locksmithd (pid ${pid}) to reload\n`);
        }
      }),
    );

  program
    .command('reboot')
    .description('take a slot for this machine, then reboot it through logind')
    .action(() => {
      // locksmith's order and messages: root, etcd, logind, the machine id, the lock, the reboot.
      if (process.geteuid?.() !== 0) return guarded('', () => {
        throw new Failure('Must be root to initiate reboot.');
      });
      return withSemaphore('Error rebooting', async (s) => {
        const bus = await connectBus(globals().bus).catch((err: unknown) => {
          throw new StepFailure('Error initializing login connection', err);
        });
        try {
          const id = machineId(undefined);
          await lockByHand(s, id).catch((err: unknown) => {
            throw new StepFailure('Error locking', err);
          });
          try {
            const { logindReboot } = await import('../lock/dbus-ports');
            await logindReboot(bus);
          } catch (err) {
            // No reboot: leave no lock behind.
            await s.unlockIfHeld(id).catch(() => undefined);
            throw err;
          }
        } finally {
          bus.disconnect();
        }
      })();
    });

  program
    .command('send-need-reboot')
    .description('send update_engine\'s StatusUpdate signal for a staged update (for testing locksmithd)')
    .action(() =>
      guarded('error emitting signal', async () => {
        const bus = await connectBus(globals().bus).catch((err: unknown) => {
          throw new StepFailure('error connecting to system dbus', err);
        });
        try {
          const { sendNeedReboot } = await import('../lock/dbus-ports');
          await sendNeedReboot(bus);
        } finally {
          bus.disconnect();
        }
      }),
    );

  program
    .command('get-strategy')
    .description('show the reboot strategy and window from /etc/coreos/update.conf')
    .action(() =>
      guarded('Error getting strategy', () => {
        const s = readStrategy(globals().root);
        if (globals().format === 'json') io.stdout.write(`${JSON.stringify(s)}\n`);
        else io.stdout.write(`Strategy: ${s.strategy}\n${s.window ? `Window: ${s.window.start} for ${s.window.length}\n` : 'Window: none\n'}`);
      }),
    );

  // locksmith's words for an unknown subcommand, on stdout; exit 2.
  program.on('command:*', (operands: string[]) => {
    io.stdout.write(`locksmithctl: unknown subcommand: ${JSON.stringify(operands[0])}\nRun 'locksmithctl help' for usage.\n`);
    result = 2;
  });

  const referenceVersion = locksmithVersion('locksmithctl', argv);
  if (referenceVersion !== undefined) {
    io.stdout.write(referenceVersion);
    return 0;
  }
  try {
    if (argv.length === 0) {
      program.outputHelp();
      return 0;
    }
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }
  return result;
}
