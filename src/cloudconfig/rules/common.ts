/** Small helpers the rules share: walking list entries and making findings. */
import type { Finding, PathSegment, Severity } from '../../report/diagnostic';
import { getPair, scalarText } from '../tree';
import type { MapNode, Pair, Range, YNode } from '../tree';

/** The mapping entries of the list at `node` (non-mappings are the schema's business). */
export function mapEntries(node: YNode | undefined, path: PathSegment[]): Array<{ entry: MapNode; path: PathSegment[] }> {
  if (node?.kind !== 'seq') return [];
  const out: Array<{ entry: MapNode; path: PathSegment[] }> = [];
  node.items.forEach((item, i) => {
    if (item.kind === 'map') out.push({ entry: item, path: [...path, i] });
  });
  return out;
}

/** A string field: its text and where it is, when the field is a non-empty scalar. */
export function stringField(entry: MapNode, key: string): { text: string; pair: Pair } | undefined {
  const pair = getPair(entry, key);
  const text = scalarText(pair?.value);
  return pair && text !== undefined ? { text, pair } : undefined;
}

export function finding(severity: Severity, code: string, message: string, path: PathSegment[], range: Range): Finding {
  return { severity, code, message, path, range };
}

/** Appends without spreading: a hostile file can produce more findings than a call takes arguments. */
export function append<T>(out: T[], items: readonly T[]): void {
  for (const item of items) out.push(item);
}
