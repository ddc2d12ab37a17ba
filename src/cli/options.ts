/** Option helpers the programs share. */
import { CommanderError, InvalidArgumentError } from 'commander';
import type { Command } from 'commander';
import { absoluteRoot } from '../system/rooted-fs';
import { version } from '../version';

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

/** The etcd connection options locksmithctl and fleetlockd share: each option's name and what it is. */
const etcdOptions: Array<[string, string, string]> = [
  ['cafile', 'file', 'CA certificate to verify etcd (alone: server-authenticated TLS)'],
  ['certfile', 'file', 'client certificate for etcd'],
  ['keyfile', 'file', 'key of the client certificate'],
  ['username', 'name', 'etcd user'],
  ['password', 'password', 'etcd password'],
];

/** Adds the etcd connection options (`--etcd-cafile` ...) to a program. */
export function addEtcdOptions(program: Command): Command {
  for (const [name, arg, what] of etcdOptions) program.option(`--etcd-${name} <${arg}>`, what);
  return program;
}

/**
 * Rewrites Go- and gflags-style single-dash long flags (`-from-file=x`, `-boot_next`) to commander's
 * double-dash form, underscores as dashes, for the names in `longFlags`.
 */
export function normalizeGoFlags(argv: string[], longFlags: string[]): string[] {
  let options = true;
  return argv.map((arg) => {
    if (arg === '--') options = false;
    const name = options ? flagName(arg) : undefined;
    if (name === undefined || !longFlags.includes(name)) return arg;
    const eq = arg.indexOf('=');
    return eq === -1 ? `--${name}` : `--${name}${arg.slice(eq)}`;
  });
}

/**
 * The name of a flag written `-name` or `--name`, with or without `=VALUE`, underscores as dashes
 * (`-boot_next` -> `boot-next`); undefined when `arg` does not start with one or two dashes and a
 * lower-case letter. Read by hand: every start reads its whole command line with it.
 */
function flagName(arg: string): string | undefined {
  const dashes = arg.startsWith('--') ? 2 : arg.startsWith('-') ? 1 : 0;
  const c = arg.charCodeAt(dashes);
  if (dashes === 0 || !(c >= 97 && c <= 122)) return undefined;
  const eq = arg.indexOf('=');
  return arg.slice(dashes, eq === -1 ? undefined : eq).replaceAll('_', '-');
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

/** An environment variable a program reads, and the flag it stands in for (or what it sets). */
export interface EnvironmentVariable {
  name: string;
  means: string;
}

/**
 * The options and help text every program shares, in one style: `-V, --version` prints
 * `NAME VERSION`, `-h, --help` shows the help (`help [command]` too where there are
 * subcommands), and the environment variables the program reads are listed after the options.
 * Call it after the program's own options (they come first in the help) and before its subcommands
 * (they take the same help option).
 */
export function standardOptions(program: Command, opts: { environment?: EnvironmentVariable[]; subcommands?: boolean } = {}): Command {
  program.version(`${program.name()} ${version}`, '-V, --version', 'print the version and exit');
  program.helpOption('-h, --help', 'show this help');
  if (opts.subcommands) program.helpCommand('help [command]', 'show the help of a command');
  const environment = opts.environment ?? [];
  if (environment.length > 0) {
    const width = Math.max(...environment.map((v) => v.name.length)) + 2;
    const rows = environment.map((v) => `  ${v.name.padEnd(width)}${v.means}`).join('\n');
    program.addHelpText('after', `\nEnvironment (a flag given wins over its variable):\n${rows}\n`);
  }
  return program;
}

/**
 * locksmith's own version flag, Go's single-dash `-version` (before any `--`): it prints
 * `NAME version VERSION`, as `locksmithctl -version` and `locksmithd -version` do, for scripts
 * that parse that. `-V` and `--version` print `NAME VERSION`, as every bootsmith program does.
 */
export function locksmithVersion(name: string, argv: string[]): string | undefined {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('-version') ? `${name} version ${version}\n` : undefined;
}

/** The etcd variables PREFIX_ETCD_CAFILE ...: for the `--etcd-*` flags, or (`asFlags` false) on their own. */
export function etcdEnvironment(prefix: string, asFlags = true): EnvironmentVariable[] {
  return etcdOptions.map(([name, , what]) => ({ name: `${prefix}_ETCD_${name.toUpperCase()}`, means: asFlags ? `--etcd-${name}` : what }));
}

/**
 * The first flag in `argv` that the program bootsmith replaces has and bootsmith does not, with
 * either dash style and with or without `=VALUE`: a message saying so (`unsupported` maps each
 * such flag's name to why, or what to use instead), rather than commander's "unknown option".
 */
export function unsupportedFlag(argv: string[], unsupported: Record<string, string>): string | undefined {
  for (const arg of argv) {
    if (arg === '--') return undefined;
    const name = flagName(arg);
    if (name !== undefined && Object.hasOwn(unsupported, name)) return `${arg.split('=')[0]} is not supported by bootsmith: ${unsupported[name]}`;
  }
  return undefined;
}
