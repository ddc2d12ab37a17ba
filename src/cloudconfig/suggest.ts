/** "Did you mean" for unknown keys: a near sibling, or the one place elsewhere where the key belongs. */
import { canonicalKeys, placesOfKey } from './schema';
import type { Schema } from './schema';

/** Levenshtein distance, with an early exit once it exceeds `max`. */
export function editDistance(a: string, b: string, max = Infinity): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      cur.push(v);
      if (v < best) best = v;
    }
    if (best > max) return max + 1;
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * A hint for an unknown `key` found in a mapping with schema `parent` at `parentPath`, such as
 * `did you mean "ssh_authorized_keys"?`, or undefined when nothing is close.
 */
export function suggestKey(key: string, parent: Schema, parentPath: string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of canonicalKeys(parent)) {
    const limit = Math.min(3, Math.max(1, Math.floor(candidate.length / 2)));
    const d = editDistance(lower, candidate, limit);
    if (d <= limit && d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best !== undefined) return `did you mean "${best}"?`;
  const homes = placesOfKey(lower).filter((p) => p.slice(0, -1).join('.') !== parentPath.join('.'));
  if (homes.length >= 1 && homes.length <= 2) {
    const where = homes.map((h) => h.slice(0, -1).join('.') || 'the top level');
    return `"${lower}" belongs under ${where.join(' or ')}`;
  }
  return undefined;
}
