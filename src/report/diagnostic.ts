/**
 * A diagnostic: one finding about one place in a file. Validation returns these as data and never
 * throws; only `error` diagnostics are fatal.
 */

/** How bad a finding is. Only errors make validation fail (warnings too under --strict). */
export type Severity = 'error' | 'warning' | 'info';

/** A step in a JSON path: a mapping key or a sequence index. */
export type PathSegment = string | number;

/** A finding as rules produce it: positions are offsets into the user-data text, `[start, end)`. */
export interface Finding {
  severity: Severity;
  /** Stable identifier of the rule; tests and tools match on this, never on the message. */
  code: string;
  message: string;
  /** Where in the document: `['coreos', 'units', 0, 'name']`. Empty for the whole file. */
  path: PathSegment[];
  range: [number, number];
}

/** A finding placed in its file: 1-based line and column of the start (and end) of its range. */
export interface Diagnostic {
  severity: Severity;
  code: string;
  message: string;
  path: PathSegment[];
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

const severityRank: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/** The deterministic order of a report: by position, then severity, then code and message. */
export function compareDiagnostics(a: Diagnostic, b: Diagnostic): number {
  return (
    a.line - b.line ||
    a.column - b.column ||
    severityRank[a.severity] - severityRank[b.severity] ||
    (a.code < b.code ? -1 : a.code > b.code ? 1 : 0) ||
    (a.message < b.message ? -1 : a.message > b.message ? 1 : 0)
  );
}

/** Renders a path as `coreos.units[0].name` (the form messages use). */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

/** A JSON Pointer (RFC 6901, as ajv gives `instancePath`) as path segments; array indexes as numbers. */
export function decodePointer(pointer: string): PathSegment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((seg) => {
      const s = seg.replace(/~1/g, '/').replace(/~0/g, '~');
      return /^\d+$/.test(s) ? Number(s) : s;
    });
}
