/** What a datasource gives: user data (or none) and the machine's metadata. */

/** Metadata a cloud tells the machine about itself; every field is optional. */
export interface Metadata {
  /** The cloud's id for this instance; a change means a new machine. */
  instanceId?: string;
  hostname?: string;
  privateIpv4?: string;
  publicIpv4?: string;
  privateIpv6?: string;
  publicIpv6?: string;
  /** OpenSSH public key lines, added to user core like ssh_authorized_keys. */
  sshPublicKeys: string[];
}

export interface Fetched {
  /** The datasource's name, for the record and the report: `ec2`, `openstack`, `file` ... */
  source: string;
  /** The user data; undefined when the source has none (a 404, an empty file). */
  userData: Buffer | undefined;
  metadata: Metadata;
}

/**
 * A datasource: a name and a fetch. `fetch` resolves to undefined when the source is not there
 * at all (no such file, no metadata service), and rejects when it is there but fails.
 */
export interface Datasource {
  name: string;
  fetch(): Promise<Fetched | undefined>;
}

export function noMetadata(): Metadata {
  return { sshPublicKeys: [] };
}
