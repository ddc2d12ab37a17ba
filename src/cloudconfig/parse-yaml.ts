/**
 * YAML text to a {@link YNode} tree, the way coreos-cloudinit reads user data: YAML 1.1 scalars,
 * only the first document, `-` and `_` the same in keys. Syntax problems come back as findings
 * (all of them, not just the first); nothing here throws on bad input.
 */
import { Composer, Lexer, LineCounter, Parser, isAlias, isMap, isScalar, isSeq } from 'yaml';
import type { CST, Document, Node as YamlNode } from 'yaml';
import type { Finding } from '../report/diagnostic';
import { parseFast } from './fast-yaml';
import { normalizeKey } from './tree';
import type { MapNode, Pair, Range, ScalarNode, YNode } from './tree';

/** Limits that keep hostile input within bounded time and memory. */
export interface ParseLimits {
  /** Deepest nesting of collections accepted. Default 1000. */
  maxDepth: number;
  /** Most nodes the tree may have once aliases are expanded (stops alias bombs). Default 2,000,000. */
  maxNodes: number;
}

export const defaultParseLimits: ParseLimits = { maxDepth: 1000, maxNodes: 2_000_000 };

export interface ParsedYaml {
  /** The first document's root, or undefined when it is empty or could not be read. */
  root: YNode | undefined;
  /** True when the YAML itself is broken (then the structure is not checked, to avoid noise). */
  syntaxErrors: boolean;
  findings: Finding[];
}

const composerOptions = { version: '1.1', prettyErrors: false, uniqueKeys: false, strict: true } as const;

export function parseYaml(text: string, limits: ParseLimits = defaultParseLimits): ParsedYaml {
  const fast = parseFast(text, limits.maxDepth);
  if (fast) return { root: fast.root, syntaxErrors: false, findings: [] };
  return parseFully(text, limits);
}

/** The `yaml` package's reader: any YAML, every error, but slow on large input. */
export function parseFully(text: string, limits: ParseLimits = defaultParseLimits): ParsedYaml {
  const lineCounter = new LineCounter();
  const findings: Finding[] = [];
  // The parser builds a whole flow collection before it yields it, so a deep one is caught before parsing.
  const deepFlow = tooDeepFlow(text, limits.maxDepth);
  if (deepFlow !== undefined) {
    findings.push(tooDeepFinding(deepFlow, limits.maxDepth));
    return { root: undefined, syntaxErrors: true, findings };
  }
  const parser = new Parser(lineCounter.addNewLine);
  const composer = new Composer(composerOptions);
  const docs: Document.Parsed[] = [];
  for (const token of parser.parse(text)) {
    const deep = tooDeep(token, limits.maxDepth);
    if (deep !== undefined) {
      findings.push(tooDeepFinding(deep, limits.maxDepth));
      return { root: undefined, syntaxErrors: true, findings };
    }
    for (const doc of composer.next(token)) docs.push(doc);
  }
  for (const doc of composer.end()) docs.push(doc);

  const [doc, ...rest] = docs;
  if (!doc) return { root: undefined, syntaxErrors: false, findings };
  for (const err of doc.errors) {
    const tab = err.code === 'TAB_AS_INDENT';
    findings.push({
      severity: 'error',
      code: tab ? 'tab-indent' : 'yaml-syntax',
      message: tab ? 'tabs are not allowed in indentation; indent with spaces' : lowerFirst(err.message),
      path: [],
      range: err.pos,
    });
  }
  for (const warn of doc.warnings) {
    findings.push({ severity: 'warning', code: 'yaml-warning', message: lowerFirst(warn.message), path: [], range: warn.pos });
  }
  for (const extra of rest) {
    const start = extra.range[0];
    findings.push({
      severity: 'warning',
      code: 'extra-document',
      message: 'only the first YAML document is read; this document is ignored',
      path: [],
      range: [start, Math.max(start + 1, extra.range[1])],
    });
  }
  const syntaxErrors = doc.errors.length > 0;
  if (doc.contents === null) return { root: undefined, syntaxErrors, findings };
  const builder = new TreeBuilder(text, lineCounter, findings, limits.maxNodes);
  let root: YNode | undefined;
  try {
    root = builder.build(doc.contents as YamlNode);
  } catch (err) {
    if (!(err instanceof NodeLimitExceeded)) throw err;
    findings.push({
      severity: 'error',
      code: 'alias-limit',
      message: `aliases expand to more than ${limits.maxNodes} nodes`,
      path: [],
      range: err.range,
    });
    root = undefined;
  }
  return { root, syntaxErrors, findings };
}

function tooDeepFinding(offset: number, max: number): Finding {
  return { severity: 'error', code: 'too-deep', message: `collections are nested deeper than ${max} levels`, path: [], range: [offset, offset + 1] };
}

/** Where flow collections (`[`, `{`) nest deeper than `max`, found by the lexer, which knows quotes and block scalars. */
function tooDeepFlow(text: string, max: number): number | undefined {
  let brackets = 0;
  for (let i = text.indexOf('['); i !== -1 && brackets <= max; i = text.indexOf('[', i + 1)) brackets++;
  for (let i = text.indexOf('{'); i !== -1 && brackets <= max; i = text.indexOf('{', i + 1)) brackets++;
  if (brackets <= max) return undefined; // too few brackets to nest that deep: skip the lexer pass
  let depth = 0;
  let offset = 0;
  for (const token of new Lexer().lex(text)) {
    if (token === '[' || token === '{') {
      if (++depth > max) return offset;
    } else if (token === ']' || token === '}') depth = Math.max(0, depth - 1);
    offset += token.length;
  }
  return undefined;
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/** The offset where `token` nests deeper than `max`, if it does. Iterative: the input may be hostile. */
function tooDeep(token: CST.Token, max: number): number | undefined {
  const stack: Array<[CST.Token, number]> = [[token, 0]];
  while (stack.length > 0) {
    const [tok, depth] = stack.pop()!;
    if (depth > max) return tok.offset;
    switch (tok.type) {
      case 'document':
        if (tok.value) stack.push([tok.value, depth]);
        break;
      case 'block-map':
      case 'block-seq':
      case 'flow-collection':
        for (const item of tok.items) {
          if ('key' in item && item.key) stack.push([item.key, depth + 1]);
          if (item.value) stack.push([item.value, depth + 1]);
        }
        break;
      default:
        break;
    }
  }
  return undefined;
}

class NodeLimitExceeded extends Error {
  constructor(readonly range: Range) {
    super('node limit exceeded');
  }
}

const mergeTag = 'tag:yaml.org,2002:merge';

/** Turns the `yaml` package's document into our tree, counting nodes as aliases expand them. */
class TreeBuilder {
  private nodes = 0;
  private readonly built = new Map<YamlNode, { node: YNode; size: number }>();
  private readonly building = new Set<YamlNode>();
  /**
   * Anchors seen so far, in document order, so an alias finds the latest definition before it.
   * (The `yaml` package's Alias.resolve searches the whole document for every alias: quadratic.)
   */
  private readonly anchors = new Map<string, YamlNode>();

  constructor(
    private readonly text: string,
    private readonly lineCounter: LineCounter,
    private readonly findings: Finding[],
    private readonly maxNodes: number,
  ) {}

  build(node: YamlNode): YNode {
    return this.convert(node).node;
  }

  private count(n: number, range: Range): void {
    this.nodes += n;
    if (this.nodes > this.maxNodes) throw new NodeLimitExceeded(range);
  }

  private convert(node: YamlNode): { node: YNode; size: number } {
    if (isAlias(node)) {
      const range = rangeOf(node);
      const target = this.anchors.get(node.source);
      if (!target || this.building.has(target)) {
        this.findings.push({
          severity: 'error',
          code: 'yaml-syntax',
          message: target ? `alias *${node.source} refers to a node that contains it` : `alias *${node.source} refers to no anchor &${node.source} before it`,
          path: [],
          range,
        });
        return { node: nullScalar(range), size: 1 };
      }
      const done = this.built.get(target) ?? this.convert(target);
      this.count(done.size, range);
      return done;
    }
    const cached = this.built.get(node);
    if (cached) return cached;
    const anchor = (node as { anchor?: string }).anchor;
    if (anchor) this.anchors.set(anchor, node);
    this.building.add(node);
    const before = this.nodes;
    this.count(1, rangeOf(node));
    let out: YNode;
    if (isMap(node)) out = this.convertMap(node.items as Array<{ key: unknown; value: unknown }>, rangeOf(node), node.flow === true);
    else if (isSeq(node)) {
      const items = node.items.map((item) => this.child(item, rangeOf(node)));
      const last = items[items.length - 1];
      const range: Range = !node.flow && last ? [rangeOf(node)[0], last.range[1]] : rangeOf(node);
      out = { kind: 'seq', items, range };
    } else if (isScalar(node)) out = convertScalar(node);
    else out = nullScalar(rangeOf(node));
    this.building.delete(node);
    const result = { node: out, size: this.nodes - before };
    this.built.set(node, result);
    return result;
  }

  private child(value: unknown, fallback: Range): YNode {
    if (value === null || value === undefined) return nullScalar([fallback[1], fallback[1]]);
    return this.convert(value as YamlNode).node;
  }

  /**
   * A block mapping spans from its first key to the end of its last value (so trailing comments
   * are not part of it, in this reader and in fast-yaml.ts alike); a flow mapping keeps its braces.
   */
  private convertMap(items: Array<{ key: unknown; value: unknown }>, range: Range, flow: boolean): MapNode {
    const pairs: Pair[] = [];
    let lastValue: YNode | undefined;
    const index = new Map<string, number>();
    const merged: Pair[] = [];
    for (const item of items) {
      const keyNode = item.key as YamlNode | null;
      if (keyNode && isScalar(keyNode) && (typeof keyNode.value === 'symbol' || keyNode.tag === mergeTag)) {
        for (const pair of this.mergeSources(item.value as YamlNode | null)) merged.push(pair);
        continue;
      }
      const keyRange: Range = keyNode ? rangeOf(keyNode) : [range[0], range[0]];
      const rawKey = keyNode && isScalar(keyNode) ? scalarSource(keyNode) : this.sourceText(keyRange);
      const key = normalizeKey(rawKey);
      const pair: Pair = { key, rawKey, keyRange, value: this.child(item.value, keyRange) };
      lastValue = pair.value;
      const seen = index.get(key);
      if (seen !== undefined) {
        const first = pairs[seen]!;
        const at = this.lineCounter.linePos(first.keyRange[0]).line;
        const same = first.rawKey === rawKey;
        this.findings.push({
          severity: 'error',
          code: 'duplicate-key',
          message: same
            ? `duplicate key "${rawKey}" (first set at line ${at}); the last one wins`
            : `key "${rawKey}" repeats "${first.rawKey}" (line ${at}): - and _ are the same in keys; the last one wins`,
          path: [],
          range: keyRange,
        });
        pairs[seen] = pair;
      } else {
        index.set(key, pairs.length);
        pairs.push(pair);
      }
    }
    // Merged keys never override keys written in the mapping itself, and earlier sources win.
    for (const pair of merged) {
      if (index.has(pair.key)) continue;
      index.set(pair.key, pairs.length);
      pairs.push(pair);
    }
    return { kind: 'map', pairs, range: !flow && lastValue ? [range[0], lastValue.range[1]] : range };
  }

  private mergeSources(value: YamlNode | null): Pair[] {
    if (!value) return [];
    const converted = this.convert(value).node;
    const sources = converted.kind === 'seq' ? converted.items : [converted];
    const out: Pair[] = [];
    for (const src of sources) {
      if (src.kind === 'map') for (const pair of src.pairs) out.push(pair);
      else {
        this.findings.push({
          severity: 'error',
          code: 'yaml-syntax',
          message: 'a merge key (<<) takes a mapping or a sequence of mappings',
          path: [],
          range: src.range,
        });
      }
    }
    return out;
  }

  private sourceText(range: Range): string {
    return this.text.slice(range[0], range[1]);
  }
}

function rangeOf(node: { range?: readonly number[] | null }): Range {
  const r = node.range;
  return r ? [r[0]!, r[1]!] : [0, 0];
}

function nullScalar(range: Range): ScalarNode {
  return { kind: 'scalar', value: null, source: '', plain: true, range };
}

function scalarSource(node: { source?: string; value: unknown }): string {
  if (typeof node.source === 'string') return node.source;
  return String(node.value);
}

function convertScalar(node: import('yaml').Scalar): ScalarNode {
  const raw = node.value;
  let value: ScalarNode['value'];
  if (raw === null || raw === undefined) value = null;
  else if (typeof raw === 'boolean' || typeof raw === 'number' || typeof raw === 'string') value = raw;
  else if (typeof raw === 'bigint') value = Number(raw);
  else if (raw instanceof Uint8Array) value = raw;
  else value = scalarSource(node); // timestamps and other 1.1 types read as their text
  const out: ScalarNode = { kind: 'scalar', value, source: scalarSource(node), plain: node.type === 'PLAIN', range: rangeOf(node) };
  if (node.tag) out.tag = node.tag;
  return out;
}
