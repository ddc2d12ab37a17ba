/**
 * update_engine_client: the A/B USR slots of this machine's disk, local steps. Flags in the
 * reference client's style (`-boot_next` and `--boot-next` both work).
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
import { collect, normalizeGoFlags, parseArgs } from './options';
import { version } from '../version';
import { connectSystemd, isHealthy } from '../system/systemd';

export interface Io {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean; columns?: number };
}

const longFlags = ['boot-next', 'slots', 'apply-payload', 'finalize', 'mark-successful', 'disk', 'active', 'public-key', 'sha256', 'size', 'state-dir', 'cmdline-file', 'progress', 'health-gate', 'health-unit', 'health-timeout', 'systemd-bus', 'help', 'version'];

interface Options {
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
const rate = (n: number) => `${(n / 1e6).toFixed(1)} MB/s`;

function slotLines(s: Slots): string {
  const line = (e: Slots['active'], role: string) =>
    `${e.name}\tpartition=${e.number}\tpriority=${attr.priority(e.attributes)}\ttries=${attr.tries(e.attributes)}\tsuccessful=${attr.successful(e.attributes) ? 1 : 0}\t${role}\tPARTUUID=${e.uniqueGuid}\n`;
  return [s.active, s.passive]
    .sort((a, b) => a.number - b.number)
    .map((e) => line(e, e === s.active ? 'active' : 'passive'))
    .join('');
}

/** A progress bar on a terminal, a line per tenth otherwise. */
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
        const total = p.total !== undefined ? ` / ${mib(p.total)}` : '';
        io.stderr.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(p.fraction * 100).toFixed(0).padStart(3)}%  ${mib(p.bytes)}${total}  ${rate(p.rate)}  `);
      } else if (mode === 'lines') {
        const tenth = Math.floor(p.fraction * 10);
        if (tenth === lastTenth) return;
        lastTenth = tenth;
        io.stderr.write(`progress ${(p.fraction * 100).toFixed(0)}% ${p.bytes} bytes${p.total !== undefined ? ` of ${p.total}` : ''}, ${rate(p.rate)}, ${p.written} bytes written\n`);
      }
    },
    done() {
      if (mode === 'bar' && lastDraw > 0) io.stderr.write('\n');
    },
  };
}

async function run(opts: Options, io: Io): Promise<number> {
  const actions = [opts.bootNext, opts.slots, opts.applyPayload, opts.finalize, opts.markSuccessful].filter((a) => a !== undefined);
  if (actions.length !== 1) {
    throw new UsageError(`${actions.length === 0 ? 'nothing to do' : 'one thing at a time'}: give one of --boot-next, --slots, --apply-payload, --finalize, --mark-successful`);
  }
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
        `staged ${r.slots.passive.name} (partition ${r.slots.passive.number}): ${r.imageSize} bytes verified (SHA-256 ${r.imageSha256}), ` +
          `from a ${r.payloadBytes}-byte payload in ${r.seconds.toFixed(2)} s (${rate(r.imageSize / r.seconds)} written)` +
          `${r.keyIndex !== undefined ? `, signed by key ${r.keyIndex + 1}` : ''}${r.resumes > 0 ? `, resumed ${r.resumes} time(s)` : ''}\n`,
      );
      return 0;
    } catch (err) {
      progress.done();
      if (err instanceof PayloadError) {
        io.stderr.write(`update_engine_client: payload rejected (${err.check} check): ${err.message}; ${machineSlots(machine).passive.name} is marked unbootable\n`);
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
  if (opts.healthGate || opts.healthUnit) await waitHealthy(opts, io);
  const r = markGood(machine);
  if (r.rollback) io.stderr.write(`warning: this boot is a rollback: ${r.slots.passive.name} was finalized but did not boot successfully; running ${r.slots.active.name}\n`);
  io.stdout.write(`${r.slots.active.name} ${r.changed ? 'marked successful' : 'was already marked successful'}\n${slotLines(r.slots)}`);
  return 0;
}

class UsageError extends Error {}

/** A flag's parser for a whole number of `unit`. */
const wholeNumber = (flag: string, unit: string) => (v: string) => {
  if (!/^\d+$/.test(v)) throw new UsageError(`${flag} ${v} is not a number of ${unit}`);
  return Number(v);
};

/** The health gate before marking a boot good: systemd running (or the named units active), polled each second. */
async function waitHealthy(opts: Options, io: Io): Promise<void> {
  const systemd = await connectSystemd(opts.systemdBus);
  const units = opts.healthUnit ?? [];
  const deadline = Date.now() + opts.healthTimeout * 1000;
  let told = false;
  try {
    for (;;) {
      if (await isHealthy(systemd, units)) return;
      if (Date.now() >= deadline) {
        const state = units.length > 0 ? (await Promise.all(units.map(async (u) => `${u} ${await systemd.activeState(u)}`))).join(', ') : `system ${await systemd.systemState()}`;
        throw new Error(`not healthy after ${opts.healthTimeout} s (${state}): the running slot is not marked successful`);
      }
      if (!told) io.stderr.write(`waiting for ${units.length > 0 ? units.join(', ') : 'the system'} to be healthy (up to ${opts.healthTimeout} s)\n`);
      told = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    systemd.close();
  }
}

export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const program = new Command('update_engine_client')
    .description('A/B USR slots: boot selection, applying payloads, finalize, mark successful')
    .version(version)
    .option('--boot-next <disk>', 'pick the slot to boot as gptprio does, using up one try')
    .option('--slots', 'show the USR slots')
    .option('--apply-payload <file|url>', 'write and verify a payload into the passive slot')
    .option('--finalize', 'switch the boot flags to the staged slot')
    .option('--mark-successful', 'mark the running slot good after a healthy boot')
    .option('--disk <path>', 'the disk holding USR-A and USR-B (default: the one /usr or usr=PARTUUID= is on)')
    .option('--active <slot>', 'the running slot: USR-A, USR-B or a partition UUID (default: from the kernel command line or /usr)')
    .option('--public-key <pem>', 'a public key the payload signature may verify with (repeatable, for key rotation)', collect)
    .option('--sha256 <hash>', "the payload's SHA-256 as announced (hex or base64)")
    .option('--size <bytes>', "the payload's size as announced", wholeNumber('--size', 'bytes'))
    .option('--state-dir <dir>', 'where the staged update is recorded', defaultStateDir)
    .option('--cmdline-file <path>', 'the kernel command line to read usr= from', undefined)
    .option('--health-gate', 'with --mark-successful: first wait until systemd reports the system running')
    .option('--health-unit <unit>', 'with --mark-successful: first wait until this unit is active (repeatable; instead of the system state)', collect)
    .option('--health-timeout <seconds>', 'how long the health gate waits', wholeNumber('--health-timeout', 'seconds'), 300)
    .option('--systemd-bus <address>', "systemd's bus for the health gate: system or a D-Bus address", 'system')
    .addOption(new Option('--progress <mode>', 'progress display (default: bar on a terminal, else lines)').choices(['bar', 'lines', 'none']))
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
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
