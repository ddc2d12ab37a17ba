/** Small helpers the Ignition rules share: typed field access on the JSON tree, and spec versions. */
import type { PathSegment } from '../../report/diagnostic';
import { getPair } from '../tree';
import type { MapNode, Pair, ScalarNode, YNode } from '../tree';

/** The Ignition spec versions validated, oldest first in each line. */
export const supportedVersions = ['3.0.0', '3.1.0', '3.2.0', '3.3.0', '3.4.0', '3.5.0', '2.0.0', '2.1.0', '2.2.0', '2.3.0'] as const;

/** A spec version as numbers, for "since" comparisons. */
export interface Spec {
  version: string;
  major: number;
  minor: number;
}

/** Does `spec` have what version `major.minor` brought (same major line only)? */
export function since(spec: Spec, major: number, minor: number): boolean {
  return spec.major === major && spec.minor >= minor;
}

/** A string field of an object: its text and node, when the field is a JSON string. */
export function str(entry: YNode | undefined, key: string): { text: string; node: ScalarNode; pair: Pair } | undefined {
  const pair = getPair(entry, key);
  const node = pair?.value;
  if (node?.kind !== 'scalar' || typeof node.value !== 'string') return undefined;
  return { text: node.value, node, pair: pair! };
}

/** An integer field of an object. */
export function int(entry: YNode | undefined, key: string): { value: number; node: ScalarNode } | undefined {
  const node = getPair(entry, key)?.value;
  if (node?.kind !== 'scalar' || typeof node.value !== 'number' || !Number.isInteger(node.value)) return undefined;
  return { value: node.value, node };
}

/** A boolean field is true. */
export function isTrue(entry: YNode | undefined, key: string): boolean {
  const node = getPair(entry, key)?.value;
  return node?.kind === 'scalar' && node.value === true;
}

/** A field that is there and not null. */
export function isSet(entry: YNode | undefined, key: string): boolean {
  const node = getPair(entry, key)?.value;
  return node !== undefined && !(node.kind === 'scalar' && node.value === null);
}

/** The object at a path of keys, when every step is an object. */
export function objectAt(root: YNode | undefined, keys: string[]): MapNode | undefined {
  let node = root;
  for (const key of keys) node = getPair(node, key)?.value;
  return node?.kind === 'map' ? node : undefined;
}

/** The object entries of the list under `key` of `parent`, with their paths. */
export function entries(parent: YNode | undefined, key: string, path: PathSegment[]): Array<{ entry: MapNode; path: PathSegment[] }> {
  const list = getPair(parent, key)?.value;
  if (list?.kind !== 'seq') return [];
  const out: Array<{ entry: MapNode; path: PathSegment[] }> = [];
  list.items.forEach((item, i) => {
    if (item.kind === 'map') out.push({ entry: item, path: [...path, key, i] });
  });
  return out;
}

/** The string items of the list under `key` of `parent`, with their paths. */
export function stringItems(parent: YNode | undefined, key: string, path: PathSegment[]): Array<{ text: string; node: ScalarNode; path: PathSegment[] }> {
  const list = getPair(parent, key)?.value;
  if (list?.kind !== 'seq') return [];
  const out: Array<{ text: string; node: ScalarNode; path: PathSegment[] }> = [];
  list.items.forEach((item, i) => {
    if (item.kind === 'scalar' && typeof item.value === 'string') out.push({ text: item.value, node: item, path: [...path, key, i] });
  });
  return out;
}
