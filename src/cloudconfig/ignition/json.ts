/**
 * A JSON reader that keeps where every key and value is: it gives the same tree the YAML reader
 * gives (tree.ts), so findings land on the key or value itself. Syntax errors are findings, never
 * throws; the first one ends the reading, as in every JSON parser, since what follows has no sure
 * meaning. Repeated keys are kept (the last wins, as in Go's encoding/json) and reported.
 */
import type { Finding, PathSegment } from '../../report/diagnostic';
import type { MapNode, Pair, ScalarNode, SeqNode, YNode } from '../tree';

export interface ParsedJson {
  root: YNode | undefined;
  findings: Finding[];
}

/** Deepest nesting read; deeper input is an error rather than a stack overflow. */
export const maxJsonDepth = 256;

class SyntaxProblem extends Error {
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(message);
  }
}

const escapes: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** Parses `text` as one JSON value with positions. */
export function parseJson(text: string): ParsedJson {
  const findings: Finding[] = [];
  let pos = 0;
  /** Where the reader is, as keys and indexes: copied only into findings. */
  const path: PathSegment[] = [];

  const describe = (at: number): string => (at >= text.length ? 'end of input' : `character ${JSON.stringify(text[at])}`);
  const fail = (what: string, at = pos): never => {
    throw new SyntaxProblem(`unexpected ${describe(at)} ${what}`, at);
  };

  function skipBlanks(): void {
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++;
      else break;
    }
  }

  function readString(): { value: string; range: [number, number] } {
    const start = pos;
    pos++; // the opening quote
    let value = '';
    let run = pos;
    for (;;) {
      if (pos >= text.length) throw new SyntaxProblem('unterminated string', start);
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        value += text.slice(run, pos);
        pos++;
        return { value, range: [start, pos] };
      }
      if (c < 0x20) throw new SyntaxProblem('control character in a string: write it as an escape such as \\n', pos);
      if (c === 0x5c) {
        value += text.slice(run, pos);
        const e = text[pos + 1];
        if (e === 'u') {
          const hex = text.slice(pos + 2, pos + 6);
          if (!/^[0-9A-Fa-f]{4}$/.test(hex)) throw new SyntaxProblem('invalid \\u escape: want four hex digits', pos);
          value += String.fromCharCode(parseInt(hex, 16));
          pos += 6;
        } else if (e !== undefined && escapes[e] !== undefined) {
          value += escapes[e];
          pos += 2;
        } else throw new SyntaxProblem(`invalid escape \\${e ?? ''} in a string`, pos);
        run = pos;
        continue;
      }
      pos++;
    }
  }

  function readValue(depth: number): YNode {
    if (depth > maxJsonDepth) throw new SyntaxProblem(`nested more than ${maxJsonDepth} levels deep`, pos);
    skipBlanks();
    const c = text[pos];
    if (c === '{') return readObject(depth);
    if (c === '[') return readArray(depth);
    if (c === '"') {
      const s = readString();
      return { kind: 'scalar', value: s.value, source: s.value, plain: false, range: s.range };
    }
    const start = pos;
    const word = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(pos, pos + 400));
    if (!word) fail('looking for the beginning of a value');
    const source = word![0];
    pos += source.length;
    const value = source === 'true' ? true : source === 'false' ? false : source === 'null' ? null : Number(source);
    const node: ScalarNode = { kind: 'scalar', value, source, plain: true, range: [start, pos] };
    return node;
  }

  function readObject(depth: number): MapNode {
    const start = pos;
    pos++;
    let pairs: Pair[] = [];
    const seen = new Set<string>();
    let repeated = false;
    skipBlanks();
    if (text[pos] === '}') {
      pos++;
      return { kind: 'map', pairs, range: [start, pos] };
    }
    for (;;) {
      skipBlanks();
      if (text[pos] !== '"') fail('looking for the beginning of an object key string');
      const key = readString();
      skipBlanks();
      if (text[pos] !== ':') fail('after an object key: want ":"');
      pos++;
      path.push(key.value);
      const value = readValue(depth + 1);
      path.pop();
      if (seen.has(key.value)) {
        repeated = true;
        findings.push({
          severity: 'warning',
          code: 'duplicate-key',
          message: `key "${key.value}" is repeated in this object; the last one is used`,
          path: [...path, key.value],
          range: key.range,
        });
      }
      seen.add(key.value);
      pairs.push({ key: key.value, rawKey: key.value, keyRange: key.range, value });
      skipBlanks();
      if (text[pos] === ',') {
        pos++;
        continue;
      }
      if (text[pos] === '}') {
        pos++;
        if (repeated) pairs = lastOfEachKey(pairs);
        return { kind: 'map', pairs, range: [start, pos] };
      }
      fail('after an object value: want "," or "}"');
    }
  }

  function readArray(depth: number): SeqNode {
    const start = pos;
    pos++;
    const items: YNode[] = [];
    skipBlanks();
    if (text[pos] === ']') {
      pos++;
      return { kind: 'seq', items, range: [start, pos] };
    }
    for (;;) {
      path.push(items.length);
      items.push(readValue(depth + 1));
      path.pop();
      skipBlanks();
      if (text[pos] === ',') {
        pos++;
        continue;
      }
      if (text[pos] === ']') {
        pos++;
        return { kind: 'seq', items, range: [start, pos] };
      }
      fail('after an array element: want "," or "]"');
    }
  }

  try {
    const root = readValue(0);
    skipBlanks();
    if (pos < text.length) fail('after the top-level value');
    return { root, findings };
  } catch (err) {
    if (!(err instanceof SyntaxProblem)) throw err;
    findings.push({
      severity: 'error',
      code: 'json-syntax',
      message: `invalid JSON: ${err.message}`,
      path: [],
      range: [err.at, Math.min(text.length, err.at + 1)],
    });
    return { root: undefined, findings };
  }
}

/** The pairs with only the last of each repeated key kept, in their order. */
function lastOfEachKey(pairs: Pair[]): Pair[] {
  const last = new Map<string, number>();
  pairs.forEach((p, i) => last.set(p.key, i));
  return pairs.filter((p, i) => last.get(p.key) === i);
}

/**
 * The source offsets of `[start, end)` in a JSON string's decoded value, given the string literal's
 * range in `text`: escapes (`\n`, `\u0041`) take more source than value.
 */
export function rangeInJsonString(text: string, literal: [number, number], start: number, end: number): [number, number] {
  let valueAt = 0;
  let from = -1;
  let i = literal[0] + 1;
  const close = literal[1] - 1;
  while (i < close) {
    if (valueAt === start && from === -1) from = i;
    if (valueAt === end) return [from, i];
    i += text[i] === '\\' ? (text[i + 1] === 'u' ? 6 : 2) : 1;
    valueAt++;
  }
  if (from === -1) from = Math.min(i, close);
  return [from, Math.max(from + 1, i)];
}
