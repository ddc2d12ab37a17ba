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
import type { InstanceId, SshPublicKey } from './types';

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
