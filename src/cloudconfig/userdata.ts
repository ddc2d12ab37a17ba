/**
 * Raw user-data bytes to text and a kind, as coreos-cloudinit classifies them: gzip is unpacked
 * first; then empty, a `#!` script, an Ignition config, `#cloud-config`, or something unknown.
 */
import { isUtf8 } from 'node:buffer';
import type { Finding } from '../report/diagnostic';

export type UserDataKind = 'empty' | 'script' | 'ignition' | 'cloud-config' | 'unknown';

export interface DecodedUserData {
  /** The text, or undefined when the bytes could not be unpacked. */
  text: string | undefined;
  gzipped: boolean;
  findings: Finding[];
}

/** node:zlib, loaded on first use: it pulls in streams, a few milliseconds of every start otherwise. */
export function zlib(): typeof import('node:zlib') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('node:zlib') as typeof import('node:zlib');
}

/** Decodes user data, unpacking gzip (bounded by `maxSize` bytes of output). Never throws. */
export function decodeUserData(bytes: Uint8Array, maxSize: number): DecodedUserData {
  const findings: Finding[] = [];
  const gzipped = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  let raw: Uint8Array = bytes;
  if (bytes.length > maxSize) {
    findings.push(fileError('too-large', `user data is ${bytes.length} bytes, more than the limit of ${maxSize}`));
    return { text: undefined, gzipped, findings };
  }
  if (gzipped) {
    try {
      raw = zlib().gunzipSync(bytes, { maxOutputLength: maxSize });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const message =
        code === 'ERR_BUFFER_TOO_LARGE'
          ? `gzip-compressed user data unpacks to more than the limit of ${maxSize} bytes`
          : `gzip-compressed user data cannot be unpacked: ${(err as Error).message}`;
      findings.push(fileError('gzip', message));
      return { text: undefined, gzipped, findings };
    }
  }
  const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const text = buf.toString('utf8');
  if (!isUtf8(buf)) {
    const at = text.indexOf('\uFFFD');
    findings.push({
      severity: 'error',
      code: 'invalid-utf8',
      message: 'user data is not valid UTF-8 text',
      path: [],
      range: [Math.max(0, at), Math.max(0, at) + 1],
    });
  }
  return { text, gzipped, findings };
}

function fileError(code: string, message: string): Finding {
  return { severity: 'error', code, message, path: [], range: [0, 0] };
}

/** The first line, up to but not including the newline. */
function firstLine(text: string): string {
  const nl = text.indexOf('\n');
  return nl === -1 ? text : text.slice(0, nl);
}

/** Classifies decoded user data in the reference validator's order. */
export function classifyUserData(text: string): UserDataKind {
  if (text.length === 0) return 'empty';
  const first = firstLine(text);
  if (first.startsWith('#!')) return 'script';
  if (isIgnition(text)) return 'ignition';
  if (first.trimEnd() === '#cloud-config') return 'cloud-config';
  return 'unknown';
}

/**
 * A JSON object with an `ignition` (spec 2 and 3) or `ignitionVersion` (spec 1) key. JSON that does
 * not parse but names one of them is taken as a broken Ignition config, so its syntax error is
 * reported with its place rather than as a missing #cloud-config header.
 */
function isIgnition(text: string): boolean {
  const start = text.trimStart();
  if (!start.startsWith('{')) return false;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return /"ignition(?:Version)?"\s*:/.test(text);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return false;
  return Object.hasOwn(doc, 'ignition') || Object.hasOwn(doc, 'ignitionVersion');
}

/** Findings about the first line: a missing or misspelt header, or a script that looks like cloud-config. */
export function headerFindings(text: string, kind: UserDataKind): Finding[] {
  const first = firstLine(text);
  const range: [number, number] = [0, Math.max(1, first.length)];
  if (kind === 'script' && /^#!\s*cloud-config\s*$/.test(first)) {
    return [
      {
        severity: 'warning',
        code: 'script-header',
        message: 'this user data is run as a script because it starts with "#!"; for cloud-config write "#cloud-config"',
        path: [],
        range,
      },
    ];
  }
  if (kind !== 'unknown') return [];
  return [{ severity: 'error', code: 'bad-header', message: headerMessage(first), path: [], range }];
}

function headerMessage(first: string): string {
  const base = 'the first line must be "#cloud-config" or begin with "#!"';
  if (first.startsWith('\uFEFF')) return `${base}; this file starts with a byte-order mark: save it without one`;
  const squashed = first.replace(/[\s_-]/g, '').toLowerCase();
  if (squashed === '#cloudconfig' || squashed === '#cloudconfig:') {
    return `${base}; found "${first.trim()}", write exactly "#cloud-config" at the start of the line`;
  }
  if (/^\s*[[{]/.test(first)) return `${base}; this looks like JSON but is not an Ignition config`;
  return base;
}
