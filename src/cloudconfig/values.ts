/**
 * Values that come from outside (metadata, the environment) and end up in the user data or in
 * files: parsed into their type once, at the boundary, so that what is spliced later is known to
 * be a plain address or a plain host name. The branded types below can only be made by the
 * parsers here (or by a cast, which a reviewer sees), so a new datasource cannot hand raw text on.
 */

declare const brand: unique symbol;

/** An IPv4 or IPv6 address in its usual text form, without a zone (`%eth0`): only hex digits, `.` and `:`. */
export type IpAddress = string & { readonly [brand]: 'ip-address' };

/** A host name of RFC 1123 labels (letters, digits, `-`), dot-separated: no space, newline or other character. */
export type Hostname = string & { readonly [brand]: 'hostname' };

/** Longest host name: 253 characters (RFC 1035's 255 octets on the wire, less the length bytes). */
export const maxHostnameLength = 253;

const label = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Why `text` is not a host name (RFC 1123: labels of 1 to 63 letters, digits and `-`, not at either end; at most 253 in all), or undefined. */
export function hostnameProblem(text: string): string | undefined {
  if (text.length === 0) return 'it is empty';
  if (text.length > maxHostnameLength) return `it is ${text.length} characters long, more than ${maxHostnameLength}`;
  const bad = /[^A-Za-z0-9.-]/.exec(text);
  if (bad) return `it holds ${JSON.stringify(bad[0])}: a host name is letters, digits, "-" and "."`;
  for (const part of text.split('.')) {
    if (part.length === 0) return 'it has an empty label (two dots in a row, or a dot at either end)';
    if (part.length > 63) return `its label "${part.slice(0, 20)}..." is longer than 63 characters`;
    if (!label.test(part)) return `its label "${part}" starts or ends with "-"`;
  }
  return undefined;
}

/** `text` as a Hostname, or undefined when it is not one. */
export function parseHostname(text: string): Hostname | undefined {
  return hostnameProblem(text) === undefined ? (text as Hostname) : undefined;
}

/**
 * `text` as an IpAddress, or undefined. node:net is loaded on first use: validation alone never
 * needs it, and it costs a few milliseconds of start-up.
 */
export function parseIpAddress(text: string, family?: 4 | 6): IpAddress | undefined {
  if (!/^[0-9A-Fa-f.:]+$/.test(text)) return undefined; // no zone, space, quote or newline: nothing but an address
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { isIP } = require('node:net') as typeof import('node:net');
  const got = isIP(text);
  return got !== 0 && (family === undefined || got === family) ? (text as IpAddress) : undefined;
}

/** The family of an address already parsed. */
export function ipFamily(address: IpAddress): 4 | 6 {
  return address.includes(':') ? 6 : 4;
}

/** A value for the report: JSON-quoted (newlines and quotes escaped) and cut short. */
export function quoteValue(text: string, max = 60): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text);
}
