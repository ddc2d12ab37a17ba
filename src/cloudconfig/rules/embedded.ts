/** Places inside a scalar's value (a unit file's lines) back in the YAML source. */
import type { Range, ScalarNode } from '../tree';

/**
 * The source range of `[start, end)` in the scalar's value. Exact for literal block scalars (`|`),
 * the usual way to write unit files; for other styles, whose lines are folded, the whole scalar.
 */
export function rangeInScalar(source: string, node: ScalarNode, start: number, end: number): Range {
  const [from, to] = node.range;
  if (source[from] !== '|') return node.range;
  const headerEnd = source.indexOf('\n', from);
  if (headerEnd === -1 || headerEnd >= to) return node.range;
  const value = node.value;
  if (typeof value !== 'string') return node.range;
  // Line number and column of `start` within the value.
  let line = 0;
  let lineStart = 0;
  for (let i = value.indexOf('\n'); i !== -1 && i < start; i = value.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  let pos = headerEnd + 1;
  for (let k = 0; k < line; k++) {
    const nl = source.indexOf('\n', pos);
    if (nl === -1 || nl >= to) return node.range;
    pos = nl + 1;
  }
  let indent = 0;
  const firstLine = source.slice(headerEnd + 1, to).match(/^( *)\S/m);
  if (firstLine) indent = firstLine[1]!.length;
  const begin = pos + indent + (start - lineStart);
  return [begin, Math.max(begin + 1, begin + (end - start))];
}
