/**
 * Writes plain data (objects, arrays, strings, numbers, booleans) as block YAML that both YAML 1.1
 * and YAML 1.2 readers take back as the same data: what `--convert-to butane` prints. The `yaml`
 * package does this too, but building its document tree and printing it took four fifths of a
 * conversion of the 1.7 MB benchmark config (about 250 ms of 330); this takes a few milliseconds.
 * test/unit/yaml-writer.test.ts reads every output back with the `yaml` package, in both versions.
 *
 * Strings are written plain when nothing could read them as anything else, as a literal block
 * (`|`) when they span lines, and double-quoted (JSON's escapes, which YAML shares) otherwise.
 */
import { plainValue } from './fast-yaml';

export type YamlData = string | number | boolean | null | YamlData[] | { [key: string]: YamlData | undefined };

/** Characters no plain or block scalar may hold (YAML's non-printables, and 1.1's extra line breaks). */
const unprintable = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** Plain scalars (block context): no indicator first, no `: ` or ` #` inside, no blank at either end, one line. */
const plainSyntax = /^[^\s\-?:,[\]{}#&*!|>'"%@`]|^[-?:](?=[^\s,[\]{}])/;
const plainBreakers = /: |:$|\s#|[\n\r\t]|^\s|\s$/;
/** What YAML 1.2's core schema (Go's yaml.v3, which Butane uses) reads as other than a string. */
const core12Typed = /^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|[-+]?(?:0o[0-7]+|0x[0-9a-fA-F]+|[0-9]+)|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;

/** A YAML 1.1 timestamp's start, which the `yaml` package reads as a date (our readers keep the text). */
const timestampStart = /^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}/;

function plainOk(s: string): boolean {
  return (
    s !== '' && plainSyntax.test(s) && !plainBreakers.test(s) && !unprintable.test(s) && typeof plainValue(s) === 'string' && !core12Typed.test(s) && !timestampStart.test(s)
  );
}

/** A double-quoted scalar: JSON's string, with what YAML 1.1 also counts as a line break or BOM escaped. */
function quoted(s: string): string {
  return JSON.stringify(s).replace(/[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A literal block for text of several lines, indented to `indent`; undefined when one cannot hold it. */
function literal(s: string, indent: string): string | undefined {
  // Lines of blanks only are where readers differ (content, or an empty line): those go quoted.
  if (!s.includes('\n') || s.includes('\r') || unprintable.test(s) || /(^|\n)[ \t]+(\n|$)/.test(s)) return undefined;
  const body = s.replace(/\n+$/, '');
  if (body === '') return undefined;
  const trailing = s.length - body.length;
  const chomp = trailing === 0 ? '-' : trailing === 1 ? '' : '+';
  // A first line (after empty ones) that starts with a blank would set the block's indentation: say it instead.
  const indicator = /^\n*[ \t]/.test(body) ? '2' : '';
  const lines = s.slice(0, trailing > 1 ? s.length - 1 : body.length).split('\n');
  return `|${indicator}${chomp}\n${lines.map((l) => (l === '' ? '' : `${indent}${l}`)).join('\n')}`;
}

function scalar(value: string | number | boolean | null, key: string | undefined, indent: string): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return Number.isNaN(value) ? '.nan' : value > 0 ? '.inf' : '-.inf';
    // File modes in octal (0644), as people write them and Butane reads them.
    return key === 'mode' && Number.isInteger(value) && value >= 0 ? `0${value.toString(8)}` : String(value);
  }
  if (plainOk(value)) return value;
  return literal(value, indent) ?? quoted(value);
}

function isScalar(v: YamlData): v is string | number | boolean | null {
  return v === null || typeof v !== 'object';
}

/** The lines of a mapping's entries or a sequence's items at `indent`. */
function block(value: YamlData[] | { [key: string]: YamlData | undefined }, indent: string, out: string[]): void {
  const deeper = `${indent}  `;
  if (Array.isArray(value)) {
    for (const item of value) {
      if (isScalar(item)) out.push(`${indent}- ${scalar(item, undefined, deeper)}`);
      else if (Array.isArray(item) ? item.length === 0 : Object.keys(item).length === 0) out.push(`${indent}- ${Array.isArray(item) ? '[]' : '{}'}`);
      else {
        // The item's first line follows the dash; the rest line up under it.
        const lines: string[] = [];
        block(item, deeper, lines);
        out.push(`${indent}- ${lines[0]!.slice(deeper.length)}`, ...lines.slice(1));
      }
    }
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    if (item === undefined) continue;
    const name = plainOk(key) ? key : quoted(key);
    if (isScalar(item)) out.push(`${indent}${name}: ${scalar(item, key, deeper)}`);
    else if (Array.isArray(item) ? item.length === 0 : Object.keys(item).length === 0) out.push(`${indent}${name}: ${Array.isArray(item) ? '[]' : '{}'}`);
    else {
      out.push(`${indent}${name}:`);
      block(item, deeper, out);
    }
  }
}

/** `data` as a YAML document (a mapping or sequence at the top), ending in a newline. */
export function toYaml(data: { [key: string]: YamlData | undefined } | YamlData[]): string {
  const out: string[] = [];
  block(data, '', out);
  return out.length === 0 ? (Array.isArray(data) ? '[]\n' : '{}\n') : `${out.join('\n')}\n`;
}
