/**
 * CloudSigma's server context, read as coreos-cloudinit reads it (through CloudSigma's cepgo): over
 * the second serial port (/dev/ttyS1), the request `<\n\n>` (the key of the whole context is empty)
 * is answered with the context as JSON, ended by EOT (0x04). The source is there when the machine's
 * DMI product name begins with `CloudSigma`. The user data is meta `cloudinit-user-data`, base64 when
 * meta `base64_fields` (a comma-separated list) names it. The metadata: the server's name as host
 * name (its uuid when the name is no host name, as cloud-init does: CloudSigma names are free
 * text), meta `ssh_public_key`, the first NIC's IPv4 address (`ip_v4_conf.ip.uuid`: the public
 * IPv4) and this machine's IPv4 address on the interface whose MAC is a VLAN NIC's (the private
 * IPv4); and beyond the reference, for the instance record, the uuid.
 *
 * The reference also waited for DHCP leases, which the serial port does not need; the boot unit
 * starts after network-online.target instead, so the private address is there to be found.
 *
 * The port is set raw first (stty: no echo, no line editing, no newline translation, 115200 baud
 * as cepgo sets it), which Node cannot do itself. Every exchange is bounded as an HTTP request is
 * (http.ts): a time per attempt, retries with backoff within a deadline for silence and for
 * answers that are cut short, and a size.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import type { NetworkInterfaceInfo } from 'node:os';
import { isatty } from 'node:tty';
import { maxBody, withRetries } from './http';
import type { RetryPolicy } from './http';
import { readSourceFile } from './local-file';
import { MetadataError, hostnameValue, instanceIdValue, ipAddressValue, jsonField, jsonObjectValue, metadataOf, sshPublicKeyValue } from './metadata-values';
import type { JsonKind } from './metadata-values';
import { hostnameProblem } from '../cloudconfig/values';
import type { IpAddress } from '../cloudconfig/values';
import { commands } from '../system/paths';
import type { Datasource, Fetched } from './types';

/** How errors name this source. */
const where = 'cloudsigma server context';

/** The request for the whole server context: an empty key between `<\n` and `\n>`. */
const request = Buffer.from('<\n\n>');
/** End of transmission: what ends an answer. */
const eot = 0x04;
/** How often a port with nothing to read yet is read again, in ms. */
const pollMs = 10;

export interface CloudsigmaOptions {
  /** The serial port the server context is read from. Default /dev/ttyS1 (defaults.ts). */
  serialPort: string;
  /** Where the machine's DMI product name is read. Default /sys/class/dmi/id/product_name. */
  productNameFile: string;
  /** The largest answer accepted, in bytes. Default 16 MiB, as an HTTP body. */
  maxBytes?: number;
  /** This machine's network interfaces, where the private address is found. Default os.networkInterfaces. */
  interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
}

/** A failed exchange on the serial port: `retryable` when asking again may help (silence, an answer cut short). */
export class SerialError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sets the port raw, as cepgo's serial library does. */
function rawMode(port: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(commands.stty, ['-F', port, 'raw', '-echo', '115200'], { timeout: timeoutMs, maxBuffer: 64 * 1024 }, (err, _stdout, stderr) => {
      if (err) reject(new SerialError(`${port}: cannot set the port raw (stty: ${String(stderr).trim() || err.message})`, false));
      else resolve();
    });
  });
}

/** Reads an answer up to EOT; the port is non-blocking, so an empty one is read again a moment later, until `deadline`. */
async function readAnswer(handle: FileHandle, port: string, deadline: number, timeoutMs: number, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    let n = -1;
    try {
      n = (await handle.read(buf, 0, buf.length, null)).bytesRead;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw new SerialError(`${port}: ${(err as Error).message}`, true);
    }
    if (n === 0) throw new SerialError(`${port}: the port closed before the answer ended`, true);
    if (n > 0) {
      const end = buf.subarray(0, n).indexOf(eot);
      const part = Buffer.from(buf.subarray(0, end === -1 ? n : end));
      size += part.length;
      if (size > maxBytes) throw new SerialError(`${port}: an answer larger than ${maxBytes} bytes`, false);
      chunks.push(part);
      if (end !== -1) return Buffer.concat(chunks);
      continue;
    }
    const left = deadline - Date.now();
    if (left <= 0) throw new SerialError(`${port}: no complete answer within ${timeoutMs} ms`, true);
    await sleep(Math.min(pollMs, left));
  }
}

/** One exchange: the request written, the answer up to EOT read, all within `timeoutMs`. */
export async function askServerContext(port: string, timeoutMs: number, maxBytes: number): Promise<Buffer> {
  const deadline = Date.now() + timeoutMs;
  let handle: FileHandle;
  try {
    // Non-blocking: opening a serial port otherwise waits for its carrier, and reading for data.
    handle = await open(port, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch (err) {
    throw new SerialError(`${port}: ${(err as Error).message}`, false);
  }
  try {
    if (!isatty(handle.fd)) throw new SerialError(`${port}: not a serial port (not a terminal)`, false);
    await rawMode(port, timeoutMs);
    for (let sent = 0; sent < request.length; ) {
      try {
        sent += (await handle.write(request, sent, request.length - sent)).bytesWritten;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw new SerialError(`${port}: ${(err as Error).message}`, true);
        if (Date.now() >= deadline) throw new SerialError(`${port}: the request could not be written within ${timeoutMs} ms`, true);
        await sleep(pollMs);
      }
    }
    return await readAnswer(handle, port, deadline, timeoutMs, maxBytes);
  } finally {
    await handle.close();
  }
}

/**
 * The server context as a JSON object, asked for again (with backoff) after silence or an answer
 * that is not whole JSON, as the policy allows, as an HTTP fetch is retried (http.ts).
 */
export function serverContextWithRetry(port: string, policy: RetryPolicy, maxBytes: number = maxBody): Promise<Record<string, unknown>> {
  return withRetries(
    port,
    policy,
    async (timeoutMs) => jsonObjectValue(where, 'the answer', await askServerContext(port, timeoutMs, maxBytes)),
    (err) => {
      if (err instanceof MetadataError) return new SerialError(`${port}: ${err.message}`, true);
      if (err instanceof SerialError) return err;
      throw err;
    },
    (last) => new SerialError(`${last?.message ?? port} (gave up after retrying)`, false),
  );
}

/** The IPv4 address this machine has on the interface with `mac`; undefined when none has it. */
function localIpv4(mac: string, interfaces: () => NodeJS.Dict<NetworkInterfaceInfo[]>): IpAddress | undefined {
  const want = mac.toLowerCase();
  for (const [name, addresses] of Object.entries(interfaces())) {
    const found = addresses?.find((a) => a.mac.toLowerCase() === want && a.family === 'IPv4' && !a.internal);
    if (found) return ipAddressValue('this machine', `interface ${name}`, found.address, 4);
  }
  return undefined;
}

/**
 * The user data and metadata in a server context, each value parsed into its type or refused,
 * naming the field.
 */
export function serverContextData(doc: Record<string, unknown>, interfaces: () => NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces): Pick<Fetched, 'userData' | 'noUserData' | 'metadata'> {
  const field = <K extends JsonKind>(path: string, value: unknown, kind: K) => jsonField(where, path, value, kind);
  const meta = field('meta', doc.meta, 'object') ?? {};
  const uuid = field('uuid', doc.uuid, 'string');
  const name = field('name', doc.name, 'string');
  const hostname = name && hostnameProblem(name) === undefined ? hostnameValue(where, 'name', name) : uuid ? hostnameValue(where, 'uuid', uuid) : undefined;
  let publicIpv4: IpAddress | undefined;
  let privateIpv4: IpAddress | undefined;
  (field('nics', doc.nics, 'list') ?? []).forEach((entry, i) => {
    const nic = field(`nics[${i}]`, entry, 'object');
    if (!nic) return;
    const conf = field(`nics[${i}].ip_v4_conf`, nic.ip_v4_conf, 'object');
    const ip = field(`nics[${i}].ip_v4_conf.ip.uuid`, field(`nics[${i}].ip_v4_conf.ip`, conf?.ip, 'object')?.uuid, 'string');
    if (ip) {
      const address = ipAddressValue(where, `nics[${i}].ip_v4_conf.ip.uuid`, ip, 4);
      publicIpv4 ??= address;
    }
    const vlan = field(`nics[${i}].vlan.uuid`, field(`nics[${i}].vlan`, nic.vlan, 'object')?.uuid, 'string');
    const mac = field(`nics[${i}].mac`, nic.mac, 'string');
    if (vlan && mac) privateIpv4 ??= localIpv4(mac, interfaces);
  });
  const key = field('meta.ssh_public_key', meta.ssh_public_key, 'string')?.trim();
  const metadata = metadataOf({
    instanceId: uuid ? instanceIdValue(where, 'uuid', uuid) : undefined,
    hostname,
    publicIpv4,
    privateIpv4,
    sshPublicKeys: key ? [sshPublicKeyValue(where, 'meta.ssh_public_key', key)] : [],
  });
  const text = field('meta.cloudinit-user-data', meta['cloudinit-user-data'], 'string');
  if (!text) return { userData: undefined, noUserData: text === undefined ? 'the server context has no meta cloudinit-user-data' : 'meta cloudinit-user-data is empty', metadata };
  const base64 = (field('meta.base64_fields', meta.base64_fields, 'string') ?? '').split(',').some((f) => f.trim() === 'cloudinit-user-data');
  return { userData: base64 ? decodeBase64(text) : Buffer.from(text, 'utf8'), metadata };
}

/** Strict base64 (whitespace allowed between the characters), or a MetadataError. */
function decodeBase64(text: string): Buffer {
  const compact = text.replace(/[\t\n\r ]/g, '');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
    throw new MetadataError(`${where}: meta.cloudinit-user-data: listed in meta.base64_fields, but not base64`);
  }
  return Buffer.from(compact, 'base64');
}

/** `--from-cloudsigma-metadata`: the server context, when this is a CloudSigma machine. */
export function cloudsigmaSource(options: CloudsigmaOptions, policy: RetryPolicy): Datasource {
  return {
    name: 'cloudsigma',
    location: options.serialPort,
    async fetch() {
      const product = await readSourceFile(options.productNameFile, where, options.productNameFile, 4096);
      if (!product?.toString('utf8').startsWith('CloudSigma')) return undefined;
      const doc = await serverContextWithRetry(options.serialPort, policy, options.maxBytes);
      return { source: 'cloudsigma', location: `${options.serialPort} (server context)`, ...serverContextData(doc, options.interfaces) };
    },
  };
}
