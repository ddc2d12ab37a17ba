/**
 * Metadata variables: `$private_ipv4` and friends are filled in before the user data is parsed.
 * A near miss (`$private_ip`, `$privateipv4`, `${public_ipv4}`) stays as literal text on the
 * machine, so it is worth a warning. Shell variables (`$HOME`, `$1`) are left alone.
 */
import type { Finding } from '../../report/diagnostic';
import { editDistance } from '../suggest';
import { finding } from './common';
import { metadataVariables, usedVariables } from '../substitute';


const reference = /(\\?)\$(\{)?([A-Za-z_][A-Za-z0-9_]*)(\})?/g;

/**
 * Near misses of the metadata variables; and, given the values the variables would take
 * (`values`), the ones that would end up empty.
 */
export function checkVariables(text: string, values?: Partial<Record<string, string>>): Finding[] {
  if (!text.includes('$')) return [];
  const out: Finding[] = [];
  if (values) {
    for (const used of usedVariables(text)) {
      if (values[used.name]) continue;
      const env = `COREOS_${used.name.toUpperCase()}`;
      out.push(
        finding('warning', 'empty-variable', `$${used.name} has no value in the metadata (nor in ${env}): it becomes empty`, [], [used.index, used.index + used.length]),
      );
    }
  }
  for (const m of text.matchAll(reference)) {
    if (m[1]) continue; // \$name is an escape: the literal text
    const name = m[3]!;
    const braced = m[2] === '{' && m[4] === '}';
    const start = m.index!;
    const range: [number, number] = [start, start + m[0].length];
    const lower = name.toLowerCase();
    if ((metadataVariables as readonly string[]).includes(name)) {
      if (braced) out.push(finding('warning', 'unknown-variable', `\${${name}} is not substituted: write $${name} without braces`, [], range));
      continue;
    }
    const near = metadataVariables.find((v) => lower.startsWith(v) || editDistance(lower, v, 3) <= 3);
    if (near || /^(private|public|local)_?ip/.test(lower)) {
      const hint = near ?? metadataVariables.find((v) => v.startsWith(lower.split('_')[0]!)) ?? 'private_ipv4';
      out.push(finding('warning', 'unknown-variable', `$${name} is not a metadata variable and stays as written; did you mean $${hint}?`, [], range));
    }
  }
  return out;
}
