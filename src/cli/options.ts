/** Option helpers the programs share. */
import { CommanderError, InvalidArgumentError } from 'commander';
import type { Command } from 'commander';
import { absoluteRoot } from '../system/rooted-fs';

/** Repeatable options: each use adds to the list (not variadic: that would swallow a subcommand's name). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A mistake in how a program was called: exit code 2. */
export class UsageError extends Error {}

/** A flag's parser for a number of `unit` (whole numbers only unless `fractions`). */
export function numberOf(flag: string, unit: string, fractions = false): (v: string) => number {
  const pattern = fractions ? /^\d+(\.\d+)?$/ : /^\d+$/;
  return (v) => {
    if (!pattern.test(v)) throw new UsageError(`${flag} ${v} is not a number of ${unit}`);
    return Number(v);
  };
}

/** Parses argv; an exit code when commander is done (0 for --help and --version, 2 for usage errors), else undefined. */
export function parseArgs(program: Command, argv: string[]): number | undefined {
  try {
    program.parse(argv, { from: 'user' });
    return undefined;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }
}

/** The etcd connection options locksmithctl and fleetlockd share. */
export function addEtcdOptions(program: Command): Command {
  return program
    .option('--etcd-cafile <file>', 'CA certificate to verify etcd (alone: server-authenticated TLS)')
    .option('--etcd-certfile <file>', 'client certificate for etcd')
    .option('--etcd-keyfile <file>', 'key of the client certificate')
    .option('--etcd-username <name>', 'etcd user')
    .option('--etcd-password <password>', 'etcd password');
}

/**
 * Rewrites Go- and gflags-style single-dash long flags (`-from-file=x`, `-boot_next`) to commander's
 * double-dash form, underscores as dashes, for the names in `longFlags`.
 */
export function normalizeGoFlags(argv: string[], longFlags: string[]): string[] {
  let options = true;
  return argv.map((arg) => {
    if (arg === '--') options = false;
    if (!options || !/^--?[a-z]/.test(arg)) return arg;
    const [flag, ...value] = arg.replace(/^--?/, '').split('=');
    const name = flag!.replace(/_/g, '-');
    return longFlags.includes(name) ? [`--${name}`, ...value].join('=') : arg;
  });
}

/** A `--listen` value, `HOST:PORT`; undefined when it is not one. */
export function parseListen(value: string): { host: string; port: number } | undefined {
  const m = /^(.*):(\d+)$/.exec(value);
  return m ? { host: m[1]!, port: Number(m[2]) } : undefined;
}

/** Resolves on the first SIGTERM or SIGINT: how a server program waits to be stopped. */
export function untilStopped(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

/**
 * `--root`'s parser, for every program that takes one: the directory as an absolute path, resolved
 * once here where it is taken in, so no later step (shadow's useradd, chroot) sees a relative one.
 */
export function rootDir(value: string): string {
  if (value === '') throw new InvalidArgumentError('want a directory');
  return absoluteRoot(value);
}
