/** Datasource defaults, in a module of their own so the command line can show them without loading HTTP. */

export interface RetryPolicy {
  /** Time allowed for one request, headers and body, in ms. Default 10,000 (as the reference). */
  timeoutMs: number;
  /** Most attempts per URL. Default 15 (as the reference). */
  attempts: number;
  /** First backoff, doubled each retry, in ms. Default 100. */
  backoffMs: number;
  /** Longest backoff, in ms. Default 5,000 (as the reference). */
  maxBackoffMs: number;
  /** Total time allowed for one fetch, retries included, in ms. Default 60,000. */
  deadlineMs: number;
  /** Told of each retry as it is decided, before the wait: so a caller can say why it waits. Default none. */
  onRetry?: (retry: Retry) => void;
}

/** A retry about to happen: what failed, and how long until the next attempt. */
export interface Retry {
  url: string;
  /** The attempt about to be made, 2 for the first retry. */
  attempt: number;
  /** The most attempts the policy allows. */
  attempts: number;
  /** Why the last attempt failed: the error's message, which names the URL. */
  cause: string;
  /** The wait before the attempt, in ms. */
  waitMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { timeoutMs: 10_000, attempts: 15, backoffMs: 100, maxBackoffMs: 5_000, deadlineMs: 60_000 };

/** The link-local address EC2 (and EC2-compatible clouds) serve metadata on. */
export const defaultEc2Url = 'http://169.254.169.254/';

/** OpenStack's metadata service. */
export const defaultOpenstackUrl = 'http://169.254.169.254/';

/** Google Compute Engine's metadata server (the name resolves to 169.254.169.254 on GCE). */
export const defaultGceUrl = 'http://metadata.google.internal/';

/** DigitalOcean's metadata service. */
export const defaultDigitaloceanUrl = 'http://169.254.169.254/';

/** Packet's (Equinix Metal's) metadata service. */
export const defaultPacketUrl = 'https://metadata.packet.net/';

/** Where the Azure agent (waagent) keeps what it provisioned the machine with. */
export const defaultWaagentDir = '/var/lib/waagent';

/** The serial port CloudSigma serves the server context on. */
export const defaultCloudsigmaSerial = '/dev/ttyS1';

/** Where the kernel shows the machine's DMI product name (CloudSigma's begins with CloudSigma). */
export const defaultDmiProductName = '/sys/class/dmi/id/product_name';
/**
 * The network configuration formats --convert-netconf reads, each from the source that has it:
 * debian (the config drive's interfaces file, Rackspace OnMetal), digitalocean (metadata/v1.json's
 * interfaces), packet (the `metadata` document's network) and vmware (the `interface.N.*` and
 * `dns.*` guestinfo keys, in guestinfo or an OVF environment). OpenStack's network_data.json
 * needs no flag.
 */
export const netconfFormats = ['debian', 'digitalocean', 'packet', 'vmware'] as const;
export type NetconfFormat = (typeof netconfFormats)[number];
