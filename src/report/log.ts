/**
 * The daemons' log: one line per event, with a level. Three formats: `text` for a terminal
 * (`program: message`, the level named when it is not info), `journal` for stderr under systemd
 * (the same text behind a journald priority prefix, `<4>` for a warning, so `journalctl -p
 * warning` finds it; journald adds the time and the program), and `json` for log shippers (one
 * object per line: time, level, program, message and the event's fields). Pure: the line goes to
 * a sink the caller gives (cli/ hands it stderr).
 *
 * A line never runs away: control characters are escaped, a multi-line message is folded into one
 * line, and a line longer than `maxLength` is cut, saying how much was left out.
 */

/** How bad an event is. */
export type LogLevel = 'error' | 'warning' | 'info' | 'debug';
export const logLevels: LogLevel[] = ['error', 'warning', 'info', 'debug'];

/** journald's (syslog's) priority of each level. */
export const journalPriority: Record<LogLevel, number> = { error: 3, warning: 4, info: 6, debug: 7 };

export type LogFormat = 'text' | 'journal' | 'json';
export const logFormats: LogFormat[] = ['text', 'journal', 'json'];

/** Values an event carries besides its message (`{ machine: 'x', status: 200 }`). */
export type LogFields = Record<string, string | number | boolean | undefined>;

/**
 * What the libraries log through: a message, its level (info when not given) and fields. A plain
 * `(message) => void` is one too.
 */
export type LogFn = (message: string, level?: LogLevel, fields?: LogFields) => void;

/** The longest line written by default, in characters (journald's own line limit is 48 KiB). */
export const defaultMaxLineLength = 2048;

export interface LogRecord {
  time: Date;
  level: LogLevel;
  program: string;
  message: string;
  fields?: LogFields;
}

/** Folds a multi-line message into one line and escapes control characters (a peer's text cannot forge a line). */
export function foldLine(text: string): string {
  const parts = text.split(/\s*\r?\n\s*/).filter((p) => p !== '');
  const folded = parts.reduce((out, p) => (out === '' ? p : /[:;]$/.test(out) ? `${out} ${p}` : `${out}; ${p}`), '');
  // eslint-disable-next-line no-control-regex
  return folded.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`).replace(/\t/g, ' ');
}

/** `text` cut to `max` characters, saying how many were left out. */
export function capLength(text: string, max: number): string {
  if (text.length <= max) return text;
  const note = (n: number) => `… (${n} more characters)`;
  const keep = Math.max(0, max - note(text.length).length);
  return `${text.slice(0, keep)}${note(text.length - keep)}`;
}

function fieldText(fields: LogFields | undefined): string {
  if (!fields) return '';
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      const s = foldLine(String(v));
      return ` ${k}=${s === '' || /[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
    })
    .join('');
}

/** One log line, without its newline, at most `maxLength` characters. */
export function formatLogLine(r: LogRecord, format: LogFormat, maxLength = defaultMaxLineLength): string {
  if (format === 'json') {
    const fields = Object.fromEntries(
      Object.entries(r.fields ?? {})
        .filter(([k, v]) => v !== undefined && !['time', 'level', 'program', 'message'].includes(k))
        .map(([k, v]) => [k, typeof v === 'string' ? capLength(v, 256) : v]),
    );
    const line = (message: string) => JSON.stringify({ time: r.time.toISOString(), level: r.level, program: r.program, message, ...fields });
    const whole = line(r.message);
    if (whole.length <= maxLength) return whole;
    // Shorten the message by the excess (its JSON escapes counted), keeping the line valid JSON.
    const excess = whole.length - maxLength;
    return line(capLength(r.message, Math.max(0, r.message.length - excess - 32)));
  }
  const label = r.level === 'info' ? '' : `${r.level}: `;
  const text = `${label}${foldLine(r.message)}${fieldText(r.fields)}`;
  if (format === 'journal') return capLength(`<${journalPriority[r.level]}>${text}`, maxLength);
  return capLength(`${r.program}: ${text}`, maxLength);
}

/**
 * The format for stderr when none is asked for: `journal` when stderr is systemd's journal stream
 * (JOURNAL_STREAM names its device and inode, as systemd sets it), else `text`. `stderrId` is
 * stderr's `device:inode`, when known; without it JOURNAL_STREAM alone decides.
 */
export function defaultLogFormat(journalStream: string | undefined, stderrId?: string): LogFormat {
  if (!journalStream) return 'text';
  return stderrId === undefined || journalStream === stderrId ? 'journal' : 'text';
}

/** A LogFn with a method per level. */
export interface Logger extends LogFn {
  error(message: string, fields?: LogFields): void;
  warning(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  program: string;
  format: LogFormat;
  /** Where each line goes, with its newline. */
  sink: (line: string) => void;
  /** Events below this level are dropped. Default info. */
  level?: LogLevel;
  maxLength?: number;
  now?: () => Date;
}

/** A logger writing lines in `format` to `sink`. A sink that throws loses the line, never the caller's work. */
export function createLogger(o: LoggerOptions): Logger {
  const threshold = logLevels.indexOf(o.level ?? 'info');
  const now = o.now ?? (() => new Date());
  const log = ((message: string, level: LogLevel = 'info', fields?: LogFields) => {
    if (logLevels.indexOf(level) > threshold) return;
    try {
      o.sink(`${formatLogLine({ time: now(), level, program: o.program, message, ...(fields ? { fields } : {}) }, o.format, o.maxLength)}\n`);
    } catch {
      // a log that cannot be written must not stop a daemon
    }
  }) as Logger;
  for (const level of logLevels) log[level] = (message: string, fields?: LogFields) => log(message, level, fields);
  return log;
}
