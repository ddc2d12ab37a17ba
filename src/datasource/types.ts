/** What a datasource gives: user data (or none) and the machine's metadata. */
import type { Hostname, IpAddress } from '../cloudconfig/values';
import type { VmwareNetwork } from './vmware-network';
import type { NetworkConfig } from '../system/network-config';

declare const brand: unique symbol;

/** An instance id: 1 to 255 characters, no whitespace or control characters (it is printed and kept). */
export type InstanceId = string & { readonly [brand]: 'instance-id' };

/** One OpenSSH public key line, as sshd reads it: a single line, checked like ssh_authorized_keys. */
export type SshPublicKey = string & { readonly [brand]: 'ssh-public-key' };

/**
 * Metadata a cloud tells the machine about itself; every field is optional. Fields hold parsed
 * values only (see metadata-values.ts): metadata is data, never text to splice, so a value that
 * does not parse is refused at the datasource, with the source and field named.
 */
export interface Metadata {
  /** The cloud's id for this instance; a change means a new machine. */
  instanceId?: InstanceId;
  hostname?: Hostname;
  privateIpv4?: IpAddress;
  publicIpv4?: IpAddress;
  privateIpv6?: IpAddress;
  publicIpv6?: IpAddress;
  /** OpenSSH public key lines, added to user core like ssh_authorized_keys. */
  sshPublicKeys: SshPublicKey[];
  /** The network VMware's guestinfo keys describe, for a writer of networkd files. */
  vmwareNetwork?: VmwareNetwork;
}

export interface Fetched {
  /** The datasource's name, for the record and the report: `ec2`, `openstack`, `file` ... */
  source: string;
  /** Where the user data was looked for, for people: a URL or a path. */
  location?: string;
  /** The user data; undefined when the source has none (a 404, an empty file). */
  userData: Buffer | undefined;
  /** Why there is no user data, when there is none: `the server answered 404 (not found)`, `the file is empty`. */
  noUserData?: string;
  metadata: Metadata;
  /**
   * The network configuration the source gives, parsed and checked: OpenStack's network_data.json,
   * or with --convert-netconf the format asked for. Undefined when it gives none (or one without links).
   */
  network?: NetworkConfig;
  /** Why the source's network configuration was not taken (it does not parse): a failed action in the report; the rest still applies. */
  networkProblem?: string;
}

/**
 * A datasource: a name and a fetch. `fetch` resolves to undefined when the source is not there
 * at all (no such file, no metadata service), and rejects when it is there but fails.
 */
export interface Datasource {
  name: string;
  /** Where it looks, for messages: a URL, a path, a metadata service's base URL. */
  location?: string;
  fetch(): Promise<Fetched | undefined>;
}

export function noMetadata(): Metadata {
  return { sshPublicKeys: [] };
}
