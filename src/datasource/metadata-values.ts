/**
 * The one way a datasource turns metadata text into Metadata values: each value is parsed into
 * its type (an address, a host name, an instance id, an SSH key line), or refused with an error
 * that names the source and the field. Metadata services and config drives are outside us; what
 * they say reaches user data (variables) and files (/etc/hostname, /etc/hosts, authorized_keys),
 * so nothing else is let through.
 */
import { hostnameProblem, parseIpAddress, quoteValue } from '../cloudconfig/values';
import type { Hostname, IpAddress } from '../cloudconfig/values';
import { sshKeyProblem } from '../cloudconfig/rules/users';
import { NetworkConfigError } from '../system/network-config';
import type { NetworkConfig } from '../system/network-config';
import type { Fetched, InstanceId, Metadata, SshPublicKey } from './types';

/** Most SSH keys taken from one source: the list is the service's to make as long as it likes. */
export const maxPublicKeys = 100;

/** A metadata value that does not parse. */
export class MetadataError extends Error {}

/** Throws a MetadataError: `SOURCE: FIELD: WHY: "VALUE"`. */
function refuse(source: string, field: string, why: string, text: string): never {
  throw new MetadataError(`${source}: ${field}: ${why}: ${quoteValue(text)}`);
}

/** An IP address (of `family`, if given); `source` and `field` name it in the error. */
export function ipAddressValue(source: string, field: string, text: string, family?: 4 | 6): IpAddress {
  if (parseIpAddress(text) === undefined) refuse(source, field, 'not an IP address', text);
  return parseIpAddress(text, family) ?? refuse(source, field, `not an IPv${family} address`, text);
}

/** A host name (RFC 1123). */
export function hostnameValue(source: string, field: string, text: string): Hostname {
  const problem = hostnameProblem(text);
  return problem === undefined ? (text as Hostname) : refuse(source, field, `not a host name (${problem})`, text);
}

/** An instance id: printed in the report and kept in the instance record. */
export function instanceIdValue(source: string, field: string, text: string): InstanceId {
  if (text.length === 0 || text.length > 255 || /[\s\p{Cc}]/u.test(text)) refuse(source, field, 'not an instance id (1 to 255 characters, no whitespace or control characters)', text);
  return text as InstanceId;
}

/** One OpenSSH public key line. */
export function sshPublicKeyValue(source: string, field: string, text: string): SshPublicKey {
  if (/[\r\n]/.test(text)) refuse(source, field, 'an SSH key is one line', text);
  const problem = sshKeyProblem(text);
  return problem === undefined ? (text as SshPublicKey) : refuse(source, field, problem, text);
}

/** A JSON document that must be an object: the metadata documents of DigitalOcean and Packet. */
export function jsonObjectValue(source: string, field: string, bytes: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new MetadataError(`${source}: ${field}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return jsonField(source, field, value, 'object') ?? refuse(source, field, 'not a JSON object', String(value));
}

interface JsonKinds {
  string: string;
  number: number;
  boolean: boolean;
  object: Record<string, unknown>;
  list: unknown[];
}

/** The kinds of JSON value a field can be asked to hold. */
export type JsonKind = keyof JsonKinds;

const jsonKind = (value: unknown) => (Array.isArray(value) ? 'list' : value === null ? 'null' : typeof value);
/** "a list", "an object". */
const withArticle = (kind: string) => `${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind}`;

/**
 * A JSON value of the kind a field should hold; undefined when the field is absent or null. Any
 * other kind is refused, naming the source and field: a list where a host name goes is no host name.
 */
export function jsonField<K extends JsonKind>(source: string, field: string, value: unknown, kind: K): JsonKinds[K] | undefined {
  if (value === undefined || value === null) return undefined;
  if (jsonKind(value) !== kind) throw new MetadataError(`${source}: ${field}: not ${withArticle(kind)} but ${withArticle(jsonKind(value))}`);
  return value as JsonKinds[K];
}

/** A JSON list of OpenSSH public key lines (empty entries skipped), at most maxPublicKeys. */
export function sshPublicKeyList(source: string, field: string, value: unknown): SshPublicKey[] {
  const list = jsonField(source, field, value, 'list') ?? [];
  if (list.length > maxPublicKeys) throw new MetadataError(`${source}: ${field}: ${list.length} keys, more than ${maxPublicKeys}`);
  return list.flatMap((entry, i) => {
    const text = jsonField(source, `${field}[${i}]`, entry, 'string')?.trim();
    return text ? [sshPublicKeyValue(source, `${field}[${i}]`, text)] : [];
  });
}

/** Metadata from the values a source found: those it did not find (undefined) are left out. */
export function metadataOf(values: Partial<Metadata>): Metadata {
  const metadata: Metadata = { sshPublicKeys: [] };
  for (const [name, value] of Object.entries(values)) if (value !== undefined) Object.assign(metadata, { [name]: value });
  return metadata;
}

/**
 * A source's network configuration as Fetched carries it: the configuration `parse` gives (none
 * when it has no links), or, when a value does not parse, why. A network configuration that does
 * not parse is reported and not applied; it does not keep the user data and the rest from applying.
 */
export function networkOf(parse: () => NetworkConfig | undefined): Pick<Fetched, 'network' | 'networkProblem'> {
  try {
    const network = parse();
    return network && network.links.length > 0 ? { network } : {};
  } catch (err) {
    if (err instanceof MetadataError || err instanceof NetworkConfigError) return { networkProblem: err.message };
    throw err;
  }
}
