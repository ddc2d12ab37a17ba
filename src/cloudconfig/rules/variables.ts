/**
 * Metadata variables: `$private_ipv4` and friends are filled in before the user data is parsed.
 * A near miss (`$private_ip`, `$privateipv4`, `${public_ipv4}`) stays as literal text on the
 * machine, so it is worth a warning. Shell variables (`$HOME`, `$1`) are left alone.
 */
import type { Finding } from '../../report/diagnostic';
import { editDistance } from '../suggest';
import { finding } from './common';

/** The variables coreos-cloudinit substitutes from metadata. */
export const metadataVariables = ['private_ipv4', 'public_ipv4', 'private_ipv6', 'public_ipv6'];

const reference = /(\\?)\$(\{)?([A-Za-z_][A-Za-z0-9_]*)(\})?/g;

export function checkVariables(text: string): Finding[] {
  if (!text.includes('$')) return [];
  const out: Finding[] = [];
  for (const m of text.matchAll(reference)) {
    if (m[1]) continue; // \$name is an escape: the literal text
    const name = m[3]!;
    const braced = m[2] === '{' && m[4] === '}';
    const start = m.index!;
    const range: [number, number] = [start, start + m[0].length];
    const lower = name.toLowerCase();
    if (metadataVariables.includes(name)) {
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
