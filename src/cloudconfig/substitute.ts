/**
 * Metadata variables: `$private_ipv4`, `$public_ipv4`, `$private_ipv6`, `$public_ipv6` in the
 * user-data text are replaced before it is parsed, as coreos-cloudinit does, without its bugs: a
 * variable ends at a word boundary (`$private_ipv4x` is left alone) and variables side by side are
 * all replaced. `\$name` is the literal `$name`.
 *
 * Splicing text before parsing is kept for compatibility (a variable works inside a quoted
 * string, a URL, a unit file). It is safe because only IpAddress values are spliced: hex digits,
 * `.` and `:`, never a quote, a space or a newline, so a value cannot add a key or end a string.
 * The worst a valid value can do is make the YAML wrong (`key: fd00::` ends in a colon), which the
 * re-validation of the substituted text reports, and then nothing is applied.
 */
import { parseIpAddress } from './values';
import type { IpAddress } from './values';

/** The variables coreos-cloudinit substitutes from metadata. */
export const metadataVariables = ['private_ipv4', 'public_ipv4', 'private_ipv6', 'public_ipv6'] as const;

/** The value of each variable: addresses only (see above), never free text. */
export type VariableValues = Partial<Record<(typeof metadataVariables)[number], IpAddress>>;

const reference = new RegExp(`(\\\\?)\\$(${metadataVariables.join('|')})(?![A-Za-z0-9_])`, 'g');

/**
 * The values for the variables: from metadata, else the COREOS_* environment variable, else empty.
 * An environment value that is not an address of the variable's family is an error (it is the
 * operator's, but it is spliced like the metadata's): thrown, naming the variable.
 */
export function variableValues(
  metadata: { privateIpv4?: IpAddress; publicIpv4?: IpAddress; privateIpv6?: IpAddress; publicIpv6?: IpAddress },
  env: Record<string, string | undefined>,
): VariableValues {
  const fromEnv = (name: string, family: 4 | 6): IpAddress | undefined => {
    const text = env[name];
    if (text === undefined || text === '') return undefined;
    const address = parseIpAddress(text, family);
    if (!address) throw new Error(`${name}=${JSON.stringify(text.slice(0, 60))} is not an IPv${family} address`);
    return address;
  };
  return {
    private_ipv4: metadata.privateIpv4 ?? fromEnv('COREOS_PRIVATE_IPV4', 4),
    public_ipv4: metadata.publicIpv4 ?? fromEnv('COREOS_PUBLIC_IPV4', 4),
    private_ipv6: metadata.privateIpv6 ?? fromEnv('COREOS_PRIVATE_IPV6', 6),
    public_ipv6: metadata.publicIpv6 ?? fromEnv('COREOS_PUBLIC_IPV6', 6),
  };
}

/** A metadata variable's name: `private_ipv4` ... */
export type MetadataVariable = (typeof metadataVariables)[number];

/** A piece of text: plain text (escapes undone), or a variable and where its `$` is. */
export type TextPiece = string | { variable: MetadataVariable; index: number };

/** The text as plain pieces and the variables between them; `\$name` is the plain `$name`. */
export function splitVariables(text: string): TextPiece[] {
  if (!text.includes('$')) return [text];
  const out: TextPiece[] = [];
  let last = 0;
  for (const m of text.matchAll(reference)) {
    const name = m[2] as MetadataVariable;
    out.push(text.slice(last, m.index));
    out.push(m[1] ? `$${name}` : { variable: name, index: m.index! });
    last = m.index! + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

export function substitute(text: string, values: VariableValues): string {
  if (!text.includes('$')) return text;
  return splitVariables(text)
    .map((p) => (typeof p === 'string' ? p : (values[p.variable] ?? '')))
    .join('');
}

/** The variables the text uses (not escaped), for warnings about ones that would be empty. */
export function usedVariables(text: string): Array<{ name: keyof VariableValues; index: number; length: number }> {
  const out: Array<{ name: keyof VariableValues; index: number; length: number }> = [];
  for (const m of text.matchAll(reference)) if (!m[1]) out.push({ name: m[2] as keyof VariableValues, index: m.index!, length: m[0].length });
  return out;
}
