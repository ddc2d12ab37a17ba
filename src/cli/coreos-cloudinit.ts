/**
 * coreos-cloudinit: validate cloud-config user data (`--validate --from-file PATH...`).
 * The only module that reads argv, files and streams for this program; exit codes: 0 valid,
 * 1 errors (or warnings under --strict), 2 usage.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Severity } from '../report/diagnostic';
import { formatGithub, formatJson, formatText, formats } from '../report/format';
import type { FileReport, Format } from '../report/format';
import { defaultValidateOptions, validateUserData } from '../cloudconfig/validate';
import { version } from '../version';

export interface Io {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
}

/** Flags that Go's flag package lets users write with one dash (`-validate`, `-from-file=x`). */
const longFlags = ['validate', 'from-file', 'format', 'strict', 'max-size', 'version', 'help'];

/** Rewrites Go-style single-dash long flags to commander's double-dash form. */
export function normalizeGoFlags(argv: string[]): string[] {
  let options = true;
  return argv.map((arg) => {
    if (arg === '--') options = false;
    if (!options || !/^-[a-z]/.test(arg) || arg.startsWith('--')) return arg;
    const name = arg.slice(1).split('=')[0]!;
    return longFlags.includes(name) ? `-${arg}` : arg;
  });
}

interface Options {
  validate?: boolean;
  fromFile?: string[];
  format: Format;
  strict?: boolean;
  maxSize: number;
}

function program(io: Io): Command {
  return new Command('coreos-cloudinit')
    .description('Validate and apply cloud-config user data (validation: --validate --from-file PATH...)')
    .version(`coreos-cloudinit ${version}`, '--version', 'print the version and exit')
    .option('--validate', 'validate the user data and exit')
    .option('--from-file <path...>', 'read user data from files ("-" for standard input)')
    .addOption(new Option('--format <format>', 'report format').choices(formats).default('text'))
    .option('--strict', 'warnings fail validation too')
    .option('--max-size <bytes>', 'largest user data accepted, before and after gunzip', parseSize, defaultValidateOptions.maxSize)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .helpOption('-h, --help', 'show this help');
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
  const cmd = program(io);
  try {
    cmd.parse(normalizeGoFlags(argv), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }
  const opts = cmd.opts<Options>();
  const files = opts.fromFile ?? [];
  if (files.length === 0) {
    io.stderr.write('coreos-cloudinit: provide at least one --from-file PATH (or - for standard input)\n');
    return 2;
  }
  if (!opts.validate) {
    io.stderr.write('coreos-cloudinit: only --validate is available in this version; applying user data is not built yet\n');
    return 2;
  }
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
  const failsOn = (s: Severity) => s === 'error' || (opts.strict === true && s === 'warning');
  if (opts.format === 'json') io.stdout.write(formatJson(reports, failsOn));
  else if (opts.format === 'github') io.stdout.write(formatGithub(reports));
  else io.stdout.write(formatText(reports, io.stdout.isTTY === true));
  return reports.some((r) => r.diagnostics.some((d) => failsOn(d.severity))) ? 1 : 0;
}

function processIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr };
}
