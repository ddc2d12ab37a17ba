/**
 * Report formatters: text for people (with the source line and a caret on a terminal), JSON for
 * tools, and GitHub workflow annotations.
 */
import type { Diagnostic, Severity } from './diagnostic';
import { formatPath } from './diagnostic';
import { Positions } from './positions';

/** One validated file, as the formatters take it. */
export interface FileReport {
  /** The name shown: the path given, or `<stdin>`. */
  file: string;
  /** What the user data is (`cloud-config`, `script`, ...); undefined when unreadable. */
  kind: string | undefined;
  /** The text positions refer to, for excerpts. */
  text: string;
  diagnostics: Diagnostic[];
}

export type Format = 'text' | 'json' | 'github';
export const formats: Format[] = ['text', 'json', 'github'];

export interface Totals {
  error: number;
  warning: number;
  info: number;
}

export function totals(reports: FileReport[]): Totals {
  const t: Totals = { error: 0, warning: 0, info: 0 };
  for (const r of reports) for (const d of r.diagnostics) t[d.severity]++;
  return t;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * `FILE:LINE:COL: severity: message [code]`, one a line. When `excerpts()` says so, each is followed
 * by the source line and a caret under the column. Ends with a summary line when there are findings.
 * `excerpts` is asked only when there is a finding (whether output is a terminal costs a system call).
 */
export function formatText(reports: FileReport[], excerpts: () => boolean): string {
  const lines: string[] = [];
  for (const r of reports) {
    const positions = r.diagnostics.length > 0 && excerpts() ? new Positions(r.text) : undefined;
    for (const d of r.diagnostics) {
      lines.push(`${r.file}:${d.line}:${d.column}: ${d.severity}: ${d.message} [${d.code}]`);
      if (positions && r.text.length > 0) {
        const start = positions.lineStart(d.line);
        const end = r.text.indexOf('\n', start);
        const src = r.text.slice(start, end === -1 ? undefined : end).replace(/\r$/, '').replace(/\t/g, ' ');
        const width = d.endLine === d.line ? Math.max(1, d.endColumn - d.column) : 1;
        lines.push(`  ${src}`, `  ${' '.repeat(d.column - 1)}^${'~'.repeat(Math.min(width, 80) - 1)}`);
      }
    }
  }
  const t = totals(reports);
  if (t.error + t.warning + t.info > 0) {
    lines.push(`${plural(t.error, 'error')}, ${plural(t.warning, 'warning')}, ${plural(t.info, 'info')} in ${plural(reports.length, 'file')}`);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * The JSON shape (version 1), stable for tools:
 * `{ version: 1, valid, summary: {error, warning, info}, files: [{ file, kind, valid,
 *    diagnostics: [{ severity, code, message, path, pointer, line, column, endLine, endColumn }] }] }`.
 * `path` is dotted (`coreos.units[0].name`); `pointer` is the JSON Pointer (`/coreos/units/0/name`).
 * `valid` is false when there is an error (or, under --strict, a warning).
 */
export function formatJson(reports: FileReport[], failsOn: (s: Severity) => boolean): string {
  const files = reports.map((r) => jsonFile(r, failsOn));
  return `${JSON.stringify({ version: 1, valid: files.every((f) => f.valid), summary: totals(reports), files }, null, 2)}\n`;
}

/** One file of {@link formatJson}'s `files`, as an object (the apply report embeds it). */
export function jsonFile(r: FileReport, failsOn: (s: Severity) => boolean) {
  return {
    file: r.file,
    kind: r.kind ?? null,
    valid: !r.diagnostics.some((d) => failsOn(d.severity)),
    diagnostics: r.diagnostics.map((d) => ({
      severity: d.severity,
      code: d.code,
      message: d.message,
      path: formatPath(d.path),
      pointer: d.path.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join(''),
      line: d.line,
      column: d.column,
      endLine: d.endLine,
      endColumn: d.endColumn,
    })),
  };
}

function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

const githubLevel: Record<Severity, string> = { error: 'error', warning: 'warning', info: 'notice' };

/** GitHub Actions workflow commands: `::error file=F,line=L,col=C,...,title=CODE::MESSAGE`. */
export function formatGithub(reports: FileReport[]): string {
  let out = '';
  for (const r of reports) {
    for (const d of r.diagnostics) {
      const props = [
        `file=${escapeProperty(r.file)}`,
        `line=${d.line}`,
        `col=${d.column}`,
        `endLine=${d.endLine}`,
        `endColumn=${d.endColumn}`,
        `title=${escapeProperty(`${r.kind === 'ignition' ? 'ignition' : 'cloud-config'} ${d.code}`)}`,
      ];
      out += `::${githubLevel[d.severity]} ${props.join(',')}::${escapeData(d.message)}\n`;
    }
  }
  return out;
}
