/**
 * A fast reader for the plain block YAML that nearly all cloud-config is written in: block
 * mappings and sequences, plain and quoted one-line scalars, `|` and `>` block scalars, one-line
 * flow lists. It gives the same tree as the full reader (parse-yaml.ts; test/unit/fast-yaml.test.ts
 * checks that on every sample and on random input) and returns undefined for anything else
 * (anchors, tags, multi-line flow, duplicate keys, syntax errors ...), which the full reader then
 * handles. Why it exists: on the 1.7 MB benchmark config the `yaml` package takes about 900 ms
 * (most of it allocation and GC); this reader takes about 120 ms.
 */
import { normalizeKey } from './tree';
import type { MapNode, Pair, ScalarNode, SeqNode, YNode } from './tree';

class Unsupported extends Error {}

/** Gives up on this input: the full reader takes it from here. */
function bail(): never {
  throw new Unsupported();
}

/**
 * Whether a plain scalar could be anything but a string in YAML 1.1: empty, a number or timestamp
 * (digit, sign, dot; or `e`/`E`, as the float `e5` begins), `~`, `<<`, or one of the short null and
 * boolean words (`null`, `false`, `Off`).
 */
function maybeTyped(text: string): boolean {
  if (text.length === 0) return true;
  const c = text.charCodeAt(0);
  const letter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
  return letter ? (text.length <= 5 && 'NnYyTtFfOo'.includes(text[0]!)) || c === 101 || c === 69 : !(c === 95 || c === 47 || c === 36);
}

// YAML 1.1's implicit types, as the `yaml` package's yaml-1.1 schema reads them, tried in its order.
// Read here by hand, not with its patterns: reading plain YAML does not load that package (about
// 2 ms of a start), and eleven patterns compiled twice each (V8 compiles a pattern again, to machine
// code, on its second use) were a tenth of reading a first file. test/unit/fast-yaml.test.ts holds
// the two to the same answers.
const words = new Map<string, null | boolean>([
  ...['', '~', 'null', 'Null', 'NULL'].map((w): [string, null] => [w, null]),
  ...['Y', 'y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON'].map((w): [string, boolean] => [w, true]),
  ...['N', 'n', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF'].map((w): [string, boolean] => [w, false]),
]);
const specialFloats = new Map([
  ['.inf', Infinity], ['.Inf', Infinity], ['.INF', Infinity], ['+.inf', Infinity], ['+.Inf', Infinity], ['+.INF', Infinity],
  ['-.inf', -Infinity], ['-.Inf', -Infinity], ['-.INF', -Infinity], ['.nan', NaN], ['.NaN', NaN], ['.NAN', NaN],
]);

const isDigit = (c: number) => c >= 48 && c <= 57;
const isDigitOr_ = (c: number) => isDigit(c) || c === 95;
const isOctalOr_ = (c: number) => (c >= 48 && c <= 55) || c === 95;
const isBinaryOr_ = (c: number) => c === 48 || c === 49 || c === 95;
const isHexOr_ = (c: number) => isDigitOr_(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);

/** Where the run of characters `ok` takes, from `i`, ends. */
function span(text: string, i: number, ok: (c: number) => boolean): number {
  while (i < text.length && ok(text.charCodeAt(i))) i++;
  return i;
}

/** Whether `text` from `i` is one or more characters `ok` takes, to its end. */
const allFrom = (text: string, i: number, ok: (c: number) => boolean) => i < text.length && span(text, i, ok) === text.length;

/** An integer after its sign and `skip` prefix characters, underscores ignored. */
function integer(text: string, skip: number, radix: number): number {
  const signed = text[0] === '-' || text[0] === '+';
  const n = parseInt(text.substring(skip + (signed ? 1 : 0)).replaceAll('_', ''), radix);
  return text[0] === '-' ? -1 * n : n;
}

/** A base-60 number (`190:20:30`, `1:30.5`). */
function sexagesimal(text: string): number {
  const signed = text[0] === '-' || text[0] === '+';
  const n = (signed ? text.substring(1) : text)
    .replaceAll('_', '')
    .split(':')
    .reduce((total, part) => total * 60 + Number(part), 0);
  return text[0] === '-' ? -1 * n : n;
}

/** `[-+]?([0-9][0-9_]*)?(\.[0-9_]*)?[eE][-+]?[0-9]+` from `i` (after the sign) to the end. */
function isExponentFloat(text: string, i: number): boolean {
  if (isDigit(text.charCodeAt(i))) i = span(text, i + 1, isDigitOr_);
  if (text[i] === '.') i = span(text, i + 1, isDigitOr_);
  if (text[i] !== 'e' && text[i] !== 'E') return false;
  i++;
  if (text[i] === '-' || text[i] === '+') i++;
  return allFrom(text, i, isDigit);
}

/** `([0-9][0-9_]*)?\.[0-9_]*` from `i` (after the sign) to the end. */
function isFloat(text: string, i: number): boolean {
  if (isDigit(text.charCodeAt(i))) i = span(text, i + 1, isDigitOr_);
  return text[i] === '.' && span(text, i + 1, isDigitOr_) === text.length;
}

/** `[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?` from `i` (after the sign) to the end. */
function isSexagesimal(text: string, i: number): boolean {
  if (!isDigit(text.charCodeAt(i))) return false;
  i = span(text, i + 1, isDigitOr_);
  let groups = 0;
  while (text[i] === ':') {
    const a = text.charCodeAt(i + 1);
    if (a >= 48 && a <= 53 && isDigit(text.charCodeAt(i + 2))) i += 3;
    else if (isDigit(a)) i += 2;
    else return false;
    groups++;
  }
  if (groups === 0) return false;
  if (text[i] === '.') i = span(text, i + 1, isDigitOr_);
  return i === text.length;
}

/** The value of a plain scalar as YAML 1.1 types it; timestamps and the like read as their text, as in parse-yaml.ts. */
export function plainValue(text: string): ScalarNode['value'] {
  if (!maybeTyped(text)) return text;
  const word = words.get(text);
  if (word !== undefined) return word;
  const i = text[0] === '-' || text[0] === '+' ? 1 : 0;
  if (text[i] === '0' && text[i + 1] === 'b' && allFrom(text, i + 2, isBinaryOr_)) return integer(text, 2, 2);
  if (text[i] === '0' && allFrom(text, i + 1, isOctalOr_)) return integer(text, 1, 8);
  if (isDigit(text.charCodeAt(i)) && span(text, i + 1, isDigitOr_) === text.length) return integer(text, 0, 10);
  if (text[i] === '0' && text[i + 1] === 'x' && allFrom(text, i + 2, isHexOr_)) return integer(text, 2, 16);
  const special = specialFloats.get(text);
  if (special !== undefined) return special;
  if (isExponentFloat(text, i) || isFloat(text, i)) return parseFloat(text.replaceAll('_', ''));
  if (isSexagesimal(text, i)) return sexagesimal(text);
  return text;
}

/** A plain scalar node. */
function plainScalar(text: string, start: number): ScalarNode {
  return { kind: 'scalar', value: plainValue(text), source: text, plain: true, range: [start, start + text.length] };
}

function nullAt(pos: number): ScalarNode {
  return { kind: 'scalar', value: null, source: '', plain: true, range: [pos, pos] };
}

const simpleEscapes: Record<string, string> = { '\\': '\\', '"': '"', '/': '/', n: '\n', t: '\t', r: '\r', '0': '\0' };

class FastParser {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  /** Leading spaces of each line. Counted once here: a small function called for every line is one
   * V8 optimizes at once, and a short run then waits at exit for that compile (about 2 ms). */
  private readonly indents: number[] = [];
  private depth = 0;

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
  ) {
    let pos = 0;
    while (pos <= text.length) {
      const nl = text.indexOf('\n', pos);
      const end = nl === -1 ? text.length : nl;
      let p = pos;
      while (p < end && text.charCodeAt(p) === 32) p++;
      this.starts.push(pos);
      this.ends.push(end);
      this.indents.push(p - pos);
      if (nl === -1) break;
      pos = nl + 1;
    }
  }

  private get lineCount(): number {
    return this.starts.length;
  }

  /** Leading spaces of line `i`. */
  private indentOf(i: number): number {
    return this.indents[i]!;
  }

  /** True for a line with nothing but spaces, or a comment. Tabs send the input to the full reader. */
  private isBlankOrComment(i: number): boolean {
    const s = this.starts[i]! + this.indentOf(i);
    const e = this.ends[i]!;
    if (s === e) return true;
    const c = this.text.charCodeAt(s);
    if (c === 9) bail();
    return c === 35; // #
  }

  /** The next line from `i` on that holds content, or lineCount. */
  private nextContent(i: number): number {
    while (i < this.lineCount && this.isBlankOrComment(i)) i++;
    return i;
  }

  parseDocument(): YNode | undefined {
    const text = this.text;
    if (text.includes('\r')) bail();
    const first = this.nextContent(0);
    if (first >= this.lineCount) return undefined;
    const lineText = text.slice(this.starts[first]!, this.ends[first]!);
    if (lineText.startsWith('---') || lineText.startsWith('...') || lineText.startsWith('%')) bail();
    const indent = this.indentOf(first);
    const { node, next } = this.parseCollection(first, indent);
    if (this.nextContent(next) < this.lineCount) bail();
    return node;
  }

  /** A block collection whose first entry is on line `i` at column `col`. */
  private parseCollection(i: number, col: number): { node: YNode; next: number } {
    if (++this.depth > this.maxDepth) bail(); // the full reader reports it
    const at = this.starts[i]! + col;
    const result = this.isSeqIndicator(at) ? this.parseSeq(i, col) : this.parseMap(i, col, col);
    this.depth--;
    return result;
  }

  private isSeqIndicator(pos: number): boolean {
    if (this.text.charCodeAt(pos) !== 45) return false; // -
    const n = this.text.charCodeAt(pos + 1);
    return Number.isNaN(n) || n === 32 || n === 10;
  }

  /**
   * A block mapping at column `col`; its first key is on line `i` at column `firstCol` (after
   * `- ` in a list item; otherwise the same as col).
   */
  private parseMap(i: number, col: number, firstCol: number): { node: MapNode; next: number } {
    const pairs: Pair[] = [];
    const seen = new Set<string>();
    let line = i;
    let keyCol = firstCol;
    for (;;) {
      const lineStart = this.starts[line]!;
      const keyStart = lineStart + keyCol;
      const lineEnd = this.ends[line]!;
      const colon = this.findKeyColon(keyStart, lineEnd);
      if (colon === -1) bail();
      const rawKey = this.text.slice(keyStart, colon);
      const key = normalizeKey(rawKey);
      if (seen.has(key)) bail(); // duplicates are reported by the full reader
      seen.add(key);
      const keyNode = plainScalar(rawKey, keyStart);
      if (keyNode.value === null || rawKey === '<<') bail();
      const { node: value, next } = this.parseValue(line, colon + 1, col, true);
      pairs.push({ key, rawKey, keyRange: keyNode.range, value });
      const n = this.nextContent(next);
      if (n >= this.lineCount) return { node: this.map(pairs), next: n };
      const ind = this.indentOf(n);
      if (ind < col) return { node: this.map(pairs), next: n };
      if (ind > col || this.isSeqIndicator(this.starts[n]! + ind)) bail();
      line = n;
      keyCol = col;
    }
  }

  private map(pairs: Pair[]): MapNode {
    const first = pairs[0]!;
    const last = pairs[pairs.length - 1]!;
    return { kind: 'map', pairs, range: [first.keyRange[0], last.value.range[1]] };
  }

  /** The colon ending a plain key starting at `start`, or -1 when the line is not `key: ...`. */
  private findKeyColon(start: number, end: number): number {
    const text = this.text;
    const c = text[start];
    if (c === undefined || '-?:,[]{}#&*!|>\'"%@`'.includes(c) || c === ' ') return -1;
    for (let p = start; p < end; p++) {
      const ch = text.charCodeAt(p);
      if (ch === 58 /* : */) {
        const n = text.charCodeAt(p + 1);
        if (p + 1 === end || n === 32) {
          if (text.charCodeAt(p - 1) === 32) return -1;
          return p;
        }
      } else if (ch === 35 /* # */ && text.charCodeAt(p - 1) === 32) return -1;
      else if (ch === 9) return -1;
    }
    return -1;
  }

  /** A block sequence at column `col` starting on line `i`. */
  private parseSeq(i: number, col: number): { node: SeqNode; next: number } {
    const items: YNode[] = [];
    let line = i;
    const start = this.starts[i]! + col;
    for (;;) {
      const dash = this.starts[line]! + col;
      const { node: item, next } = this.parseValue(line, dash + 1, col, false);
      items.push(item);
      const n = this.nextContent(next);
      if (n >= this.lineCount) break;
      const ind = this.indentOf(n);
      if (ind < col) return { node: this.seq(items, start), next: n };
      if (ind > col || !this.isSeqIndicator(this.starts[n]! + ind)) {
        if (ind === col) return { node: this.seq(items, start), next: n }; // a map key: the parent's
        bail();
      }
      line = n;
    }
    return { node: this.seq(items, start), next: this.lineCount };
  }

  private seq(items: YNode[], start: number): SeqNode {
    return { kind: 'seq', items, range: [start, items[items.length - 1]!.range[1]] };
  }

  /**
   * The value after an indicator (`:` of a key, or `-` of an item) at offset `pos` on line `line`,
   * in a collection at column `col`. Returns the node and the line after it.
   */
  private parseValue(line: number, pos: number, col: number, inMap: boolean): { node: YNode; next: number } {
    const text = this.text;
    const lineEnd = this.ends[line]!;
    let p = pos;
    while (p < lineEnd && text.charCodeAt(p) === 32) p++;
    if (p < lineEnd && p === pos) bail(); // `key:value` or `-x` here means something else
    const c = text[p];
    if (p === lineEnd || c === '#') {
      if (c === '#' && text.charCodeAt(p - 1) !== 32) bail();
      // The value is on the following lines, or there is none.
      const n = this.nextContent(line + 1);
      if (n < this.lineCount) {
        const ind = this.indentOf(n);
        const nested = ind > col || (inMap && ind === col && this.isSeqIndicator(this.starts[n]! + ind));
        if (nested) return this.parseCollection(n, ind);
      }
      return { node: nullAt(p), next: line + 1 };
    }
    if (!inMap) {
      if (this.isSeqIndicator(p)) bail(); // `- - x`
      if (this.findKeyColon(p, lineEnd) !== -1) {
        if (++this.depth > this.maxDepth) bail();
        const result = this.parseMap(line, p - this.starts[line]!, p - this.starts[line]!);
        this.depth--;
        return result;
      }
    }
    if (c === '|' || c === '>') return this.parseBlockScalar(line, p, col);
    let node: ScalarNode | SeqNode | MapNode;
    let after: number;
    if (c === '"' || c === "'") ({ node, after } = this.quoted(p, lineEnd));
    else if (c === '[') ({ node, after } = this.flowSeq(p, lineEnd));
    else if (c === '{') {
      if (text[p + 1] !== '}') bail();
      node = { kind: 'map', pairs: [], range: [p, p + 2] };
      after = p + 2;
    } else {
      if ('&*!%@`?:-,]}'.includes(c!)) {
        if (c !== '-' || this.isSeqIndicator(p)) bail();
      }
      const end = this.plainEnd(p, lineEnd);
      node = plainScalar(text.slice(p, end), p);
      after = end;
    }
    this.expectLineEnd(after, lineEnd);
    // A plain scalar may go on over more-indented lines; those are for the full reader.
    const n = this.nextContent(line + 1);
    if (n < this.lineCount && this.indentOf(n) > col) bail();
    return { node, next: line + 1 };
  }

  /** The end of a plain scalar starting at `p`: before a ` #` comment, trailing blanks dropped. */
  private plainEnd(p: number, lineEnd: number): number {
    const text = this.text;
    let end = lineEnd;
    for (let q = p; q < lineEnd; q++) {
      const ch = text.charCodeAt(q);
      if (ch === 35 && text.charCodeAt(q - 1) === 32) {
        end = q;
        break;
      }
      if (ch === 58 && (q + 1 === lineEnd || text.charCodeAt(q + 1) === 32)) bail(); // `a: b: c`
      if (ch === 9) bail();
    }
    while (end > p && text.charCodeAt(end - 1) === 32) end--;
    return end;
  }

  /** Only blanks or a comment may follow a value on its line. */
  private expectLineEnd(p: number, lineEnd: number): void {
    const text = this.text;
    let q = p;
    while (q < lineEnd && text.charCodeAt(q) === 32) q++;
    if (q === lineEnd) return;
    if (text.charCodeAt(q) === 35 && q > p) return;
    bail();
  }

  private quoted(p: number, lineEnd: number): { node: ScalarNode; after: number } {
    const text = this.text;
    const quote = text[p];
    let out = '';
    let q = p + 1;
    for (;;) {
      if (q >= lineEnd) bail(); // multi-line quoted scalars fold lines: the full reader's job
      const ch = text[q]!;
      if (quote === "'" && ch === "'") {
        if (text[q + 1] === "'") {
          out += "'";
          q += 2;
          continue;
        }
        break;
      }
      if (quote === '"' && ch === '"') break;
      if (quote === '"' && ch === '\\') {
        const esc = text[q + 1]!;
        if (esc in simpleEscapes) {
          out += simpleEscapes[esc];
          q += 2;
          continue;
        }
        const len = esc === 'x' ? 2 : esc === 'u' ? 4 : esc === 'U' ? 8 : 0;
        const hex = text.slice(q + 2, q + 2 + len);
        if (len === 0 || !/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) bail();
        const code = parseInt(hex, 16);
        if (code > 0x10ffff) bail();
        out += String.fromCodePoint(code);
        q += 2 + len;
        continue;
      }
      if (ch === '\t') bail();
      out += ch;
      q++;
    }
    const after = q + 1;
    return { node: { kind: 'scalar', value: out, source: out, plain: false, range: [p, after] }, after };
  }

  /** A one-line flow list of plain or quoted scalars: `[a, "b"]`. */
  private flowSeq(p: number, lineEnd: number): { node: SeqNode; after: number } {
    const text = this.text;
    const items: YNode[] = [];
    let q = p + 1;
    const skip = () => {
      while (q < lineEnd && text.charCodeAt(q) === 32) q++;
    };
    skip();
    if (text[q] === ']') return { node: { kind: 'seq', items, range: [p, q + 1] }, after: q + 1 };
    for (;;) {
      skip();
      const c = text[q];
      if (c === '"' || c === "'") {
        const { node, after } = this.quoted(q, lineEnd);
        items.push(node);
        q = after;
      } else {
        const start = q;
        while (q < lineEnd && !',[]{}#"\'\t'.includes(text[q]!)) {
          if (text[q] === ':' && ' ,]'.includes(text[q + 1] ?? ' ')) bail();
          q++;
        }
        let end = q;
        while (end > start && text.charCodeAt(end - 1) === 32) end--;
        if (end === start || '&*!%@`?:-|>'.includes(text[start]!)) bail();
        items.push(plainScalar(text.slice(start, end), start));
      }
      skip();
      if (text[q] === ',') {
        q++;
        skip();
        if (text[q] === ']') bail(); // a trailing comma
        continue;
      }
      if (text[q] === ']') return { node: { kind: 'seq', items, range: [p, q + 1] }, after: q + 1 };
      bail();
    }
  }

  /**
   * A `|` or `>` block scalar whose header is at `p` on line `line`, in a collection at column
   * `col`. Keep chomping (`+`), indentation indicators, leading blank lines and folded text with
   * blank or more-indented lines go to the full reader.
   */
  private parseBlockScalar(line: number, p: number, col: number): { node: YNode; next: number } {
    const text = this.text;
    const lineEnd = this.ends[line]!;
    const literal = text[p] === '|';
    let q = p + 1;
    let strip = false;
    if (text[q] === '-') {
      strip = true;
      q++;
    }
    this.expectLineEnd(q, lineEnd);
    const first = line + 1;
    if (first >= this.lineCount) bail();
    const indent = this.indentOf(first);
    if (indent <= col || this.starts[first]! + indent === this.ends[first]!) bail();
    const lines: string[] = [];
    let lastContent = first;
    let i = first;
    for (; i < this.lineCount; i++) {
      const s = this.starts[i]!;
      const e = this.ends[i]!;
      const ind = this.indentOf(i);
      if (s + ind === e) {
        // A blank line is empty; spaces past the indentation are content (so the line is not trailing).
        if (e - s > indent) {
          lines.push(text.slice(s + indent, e));
          lastContent = i;
        } else lines.push('');
        continue;
      }
      if (ind < indent) break;
      lines.push(text.slice(s + indent, e));
      lastContent = i;
    }
    lines.length = lastContent - first + 1;
    let value: string;
    if (literal) value = lines.join('\n');
    else {
      for (let k = first; k <= lastContent; k++) if (this.indentOf(k) !== indent || this.starts[k]! + indent === this.ends[k]!) bail();
      value = lines.join(' ');
    }
    const endOfLast = this.ends[lastContent]!;
    const hasNewline = endOfLast < text.length;
    if (!strip) value += '\n';
    const end = hasNewline ? endOfLast + 1 : endOfLast;
    const node: ScalarNode = { kind: 'scalar', value, source: value, plain: false, range: [p, end] };
    return { node, next: lastContent + 1 };
  }
}

/** The tree of `text` when it is plain block YAML this reader handles; undefined otherwise. */
export function parseFast(text: string, maxDepth: number): { root: YNode | undefined } | undefined {
  try {
    return { root: new FastParser(text, maxDepth).parseDocument() };
  } catch (err) {
    if (err instanceof Unsupported) return undefined;
    throw err;
  }
}
