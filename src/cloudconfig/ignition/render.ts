/**
 * Writes a conversion out: as an Ignition config (spec 3.3.0 JSON, file contents as data URLs),
 * or as a Butane config (variant flatcar, version 1.0.0) for people to keep editing: text files
 * inline, modes in octal. The YAML is written by yaml-writer.ts from the config's data, never by
 * joining text from the user data.
 */
import { toYaml } from '../yaml-writer';
import type { YamlData } from '../yaml-writer';
import type { Conversion, MachineFile, MachineUnit, Owner } from './convert';

/** The Ignition spec version written: what Butane's flatcar 1.0.0 variant produces. */
export const ignitionVersion = '3.3.0';

/** Characters a data URL keeps as they are (RFC 3986's unreserved and most sub-delims); others are %XX. */
const plainByte = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!$&'()*+,;=:@/") plainByte[c.charCodeAt(0)] = 1;
const hex = Array.from({ length: 256 }, (_, b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`);

/** Bytes as a data URL: percent-encoded, or base64 when that is shorter (as Butane chooses). */
export function dataUrl(bytes: Buffer): string {
  const base64Length = Math.ceil(bytes.length / 3) * 4 + ';base64'.length;
  let plainLength = 0;
  for (const b of bytes) plainLength += plainByte[b] ? 1 : 3;
  if (base64Length < plainLength) return `data:;base64,${bytes.toString('base64')}`;
  let out = 'data:,';
  let run = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (plainByte[bytes[i]!]) continue;
    out += bytes.toString('latin1', run, i) + hex[bytes[i]!];
    run = i + 1;
  }
  return out + bytes.toString('latin1', run);
}

function owner(o: Owner | undefined): Owner | undefined {
  return o && ('id' in o ? { id: o.id } : { name: o.name });
}

/** Only the fields that are set (Ignition's defaults are false, empty and unset). */
function compact<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== false && !(Array.isArray(v) && v.length === 0))) as Partial<T>;
}

function unit(u: MachineUnit) {
  return compact({ name: u.name, enabled: u.enabled, mask: u.mask, contents: u.contents, dropins: u.dropins.map((d) => ({ name: d.name, contents: d.contents })) });
}

/** A file as Ignition writes it: overwritten, as cloud-config's write_files does. */
function file(f: MachineFile, contents: object) {
  return compact({ path: f.path, overwrite: true, mode: f.mode, user: owner(f.user), group: owner(f.group), contents });
}

/** The conversion as an Ignition config object (spec 3.3.0). */
export function ignitionConfig(c: Conversion): object {
  return {
    ignition: { version: ignitionVersion },
    ...(c.users.length > 0 ? { passwd: { users: c.users.map(compact) } } : {}),
    ...(c.files.length > 0 ? { storage: { files: c.files.map((f) => file(f, compact({ compression: f.gzip ? 'gzip' : undefined, source: dataUrl(f.content) }))) } } : {}),
    ...(c.units.length > 0 ? { systemd: { units: c.units.map(unit) } } : {}),
  };
}

/** The Ignition config as JSON text, indented, ending in a newline. */
export function formatIgnition(c: Conversion): string {
  return `${JSON.stringify(ignitionConfig(c), null, 2)}\n`;
}

/** Butane's names for Ignition's fields: snake_case (`sshAuthorizedKeys` is `ssh_authorized_keys`). */
function snakeCase(o: unknown): unknown {
  if (Array.isArray(o)) return o.map(snakeCase);
  if (o === null || typeof o !== 'object') return o;
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), snakeCase(v)]));
}

/** Text that reads back as the same bytes: valid UTF-8 without a byte-order mark. */
function asText(bytes: Buffer): string | undefined {
  const text = bytes.toString('utf8');
  return text.charCodeAt(0) !== 0xfeff && Buffer.byteLength(text) === bytes.length && !text.includes('\uFFFD') ? text : undefined;
}

/** The conversion as a Butane config object (variant flatcar, version 1.0.0). */
export function butaneConfig(c: Conversion): object {
  const files = c.files.map((f) => {
    const text = f.gzip ? undefined : asText(f.content);
    return file(f, text !== undefined ? { inline: text } : compact({ source: dataUrl(f.content), compression: f.gzip ? 'gzip' : undefined }));
  });
  return {
    variant: 'flatcar',
    version: '1.0.0',
    ...(c.users.length > 0 ? { passwd: { users: snakeCase(c.users.map(compact)) } } : {}),
    ...(files.length > 0 ? { storage: { files } } : {}),
    ...(c.units.length > 0 ? { systemd: { units: c.units.map(unit) } } : {}),
  };
}

/**
 * The Butane config as YAML that YAML 1.1 and 1.2 readers both read back as `butaneConfig`: modes
 * written `0644` (which Butane's reader and YAML 1.1 readers both take as octal), strings such as
 * `yes` quoted, file contents as literal blocks.
 */
export function formatButane(c: Conversion): string {
  return toYaml(butaneConfig(c) as { [key: string]: YamlData });
}
