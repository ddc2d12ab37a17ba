/**
 * The parsed user data as the rules see it: mappings, sequences and scalars with their source
 * ranges, keys normalized (`-` becomes `_`) and aliases and merge keys resolved.
 */

/** `[start, end)` offsets into the user-data text. */
export type Range = [number, number];

export interface ScalarNode {
  kind: 'scalar';
  /** The value under YAML 1.1 rules: `yes` is true, `0644` is 420, `!!binary` gives bytes. */
  value: null | boolean | number | string | Uint8Array;
  /** The scalar's text before tag resolution (quotes and escapes already undone). */
  source: string;
  /** True when written without quotes or block indicators, so YAML 1.1 resolution applied. */
  plain: boolean;
  /** An explicit tag such as `tag:yaml.org,2002:binary`, when one was written. */
  tag?: string;
  range: Range;
}

export interface Pair {
  /** The key with every `-` turned into `_`, as the reference matches keys. */
  key: string;
  /** The key as written. */
  rawKey: string;
  keyRange: Range;
  value: YNode;
}

export interface MapNode {
  kind: 'map';
  pairs: Pair[];
  range: Range;
}

export interface SeqNode {
  kind: 'seq';
  items: YNode[];
  range: Range;
}

export type YNode = MapNode | SeqNode | ScalarNode;

/** Normalizes a mapping key the way coreos-cloudinit does: every `-` becomes `_`. */
export function normalizeKey(key: string): string {
  return key.includes('-') ? key.replaceAll('-', '_') : key;
}

/** The value of `key` in a mapping node, if the node is a mapping and has it. */
export function getPair(node: YNode | undefined, key: string): Pair | undefined {
  if (node?.kind !== 'map') return undefined;
  return node.pairs.find((p) => p.key === key);
}

/** A scalar's text as coreos-cloudinit reads a string field: the source text, never a coerced value. */
export function scalarText(node: YNode | undefined): string | undefined {
  if (node?.kind !== 'scalar' || node.value === null) return undefined;
  if (node.value instanceof Uint8Array) return Buffer.from(node.value).toString('latin1');
  return node.source;
}

/** Key lookup for the mappings that have errors, built on first use: a file can have thousands of unknown keys in one mapping. */
const pairIndex = new WeakMap<MapNode, Map<string, Pair>>();

export function pairOf(node: MapNode, key: string): Pair | undefined {
  let index = pairIndex.get(node);
  if (!index) {
    index = new Map(node.pairs.map((p) => [p.key, p]));
    pairIndex.set(node, index);
  }
  return index.get(key);
}
