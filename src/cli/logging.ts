/** The daemons' log options (`--log-format`, `--log-level`) and their logger on stderr. */
import { fstatSync } from 'node:fs';
import { Option } from 'commander';
import type { Command } from 'commander';
import { createLogger, defaultLogFormat, logFormats, logLevels } from '../report/log';
import type { LogFormat, Logger, LogLevel } from '../report/log';

/** Adds `--log-format` and `--log-level` to a daemon. */
export function addLogOptions(program: Command): Command {
  return program
    .addOption(new Option('--log-format <format>', 'text, journal (priority prefixes; the default when stderr is the journal) or json (one object per line)').choices(logFormats))
    .addOption(new Option('--log-level <level>', 'the least severe events logged').choices(logLevels).default('info'));
}

/** stderr's `device:inode`, as systemd writes it in JOURNAL_STREAM; undefined when it cannot be read. */
function stderrId(): string | undefined {
  try {
    const st = fstatSync(2);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** The logger of a daemon on stderr, in the format asked for or the one stderr calls for. */
export function stderrLogger(program: string, opts: { logFormat?: string; logLevel?: string }): Logger {
  const format = (opts.logFormat as LogFormat | undefined) ?? defaultLogFormat(process.env.JOURNAL_STREAM, stderrId());
  return createLogger({ program, format, level: (opts.logLevel as LogLevel | undefined) ?? 'info', sink: (line) => process.stderr.write(line) });
}

/**
 * A logger for before the options are parsed (a usage error): text unless stderr is the journal.
 */
export function earlyLogger(program: string): Logger {
  return stderrLogger(program, {});
}
