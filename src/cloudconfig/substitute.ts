/**
 * Metadata variables: `$private_ipv4`, `$public_ipv4`, `$private_ipv6`, `$public_ipv6` in the
 * user-data text are replaced before it is parsed, as coreos-cloudinit does, without its bugs: a
 * variable ends at a word boundary (`$private_ipv4x` is left alone) and variables side by side are
 * all replaced. `\$name` is the literal `$name`.
 */
/** The variables coreos-cloudinit substitutes from metadata. */
export const metadataVariables = ['private_ipv4', 'public_ipv4', 'private_ipv6', 'public_ipv6'] as const;

export type VariableValues = Partial<Record<(typeof metadataVariables)[number], string>>;

const reference = new RegExp(`(\\\\?)\\$(${metadataVariables.join('|')})(?![A-Za-z0-9_])`, 'g');

/** The values for the variables: from metadata, else the COREOS_* environment variable, else empty. */
export function variableValues(
  metadata: { privateIpv4?: string; publicIpv4?: string; privateIpv6?: string; publicIpv6?: string },
  env: Record<string, string | undefined>,
): VariableValues {
  return {
    private_ipv4: metadata.privateIpv4 ?? env.COREOS_PRIVATE_IPV4,
    public_ipv4: metadata.publicIpv4 ?? env.COREOS_PUBLIC_IPV4,
    private_ipv6: metadata.privateIpv6 ?? env.COREOS_PRIVATE_IPV6,
    public_ipv6: metadata.publicIpv6 ?? env.COREOS_PUBLIC_IPV6,
  };
}

export function substitute(text: string, values: VariableValues): string {
  if (!text.includes('$')) return text;
  return text.replace(reference, (_m, escape: string, name: keyof VariableValues) => (escape ? `$${name}` : (values[name] ?? '')));
}

/** The variables the text uses (not escaped), for warnings about ones that would be empty. */
export function usedVariables(text: string): Array<{ name: keyof VariableValues; index: number; length: number }> {
  const out: Array<{ name: keyof VariableValues; index: number; length: number }> = [];
  for (const m of text.matchAll(reference)) if (!m[1]) out.push({ name: m[2] as keyof VariableValues, index: m.index!, length: m[0].length });
  return out;
}
