/**
 * What Ignition fetches: source URLs (the schemes of the spec version, data URLs that decode),
 * verification hashes (`sha512-HEX`, and `sha256-HEX` from 3.1.0) and HTTP headers (http and https
 * sources only, named, each name once).
 */
import type { Finding, PathSegment } from '../../report/diagnostic';
import { finding } from '../rules/common';
import type { YNode } from '../tree';
import { entries, objectAt, since, str } from './fields';
import type { Spec } from './fields';

/** The URL schemes a spec version fetches from. */
export function schemesOf(spec: Spec): string[] {
  if (spec.major === 2) return since(spec, 2, 1) ? ['http', 'https', 'tftp', 's3', 'data'] : ['http', 'https', 'data'];
  return ['http', 'https', 'tftp', 's3', 'data', ...(since(spec, 3, 2) ? ['gs'] : []), ...(since(spec, 3, 4) ? ['arn'] : [])];
}

/** Why `url` is not a source Ignition `spec` can fetch, or undefined. */
export function urlProblem(url: string, spec: Spec): { code: string; message: string } | undefined {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url);
  const schemes = schemesOf(spec);
  if (!m) return { code: 'invalid-url', message: `source ${JSON.stringify(url)} has no URL scheme: want one of ${schemes.join(', ')}` };
  const scheme = m[1]!.toLowerCase();
  if (!schemes.includes(scheme)) {
    return { code: 'invalid-url', message: `unsupported URL scheme "${scheme}": spec ${spec.version} fetches from ${schemes.join(', ')}` };
  }
  if (scheme === 'data') {
    const problem = dataUrlProblem(url);
    return problem ? { code: 'invalid-data-url', message: `invalid data URL: ${problem}` } : undefined;
  }
  if (/\s/.test(url)) return { code: 'invalid-url', message: `source ${JSON.stringify(url)} holds white space: escape it as %20` };
  if (scheme === 'arn') {
    return /^arn:aws[a-z-]*:s3:[^:]*:[^:]*:[^/]+\/.+/.test(url)
      ? undefined
      : { code: 'invalid-url', message: `${JSON.stringify(url)} is not an S3 object ARN such as arn:aws:s3:::bucket/key` };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { code: 'invalid-url', message: `${JSON.stringify(url)} is not a valid URL` };
  }
  if (scheme !== 'tftp' && parsed.hostname === '') {
    return { code: 'invalid-url', message: `${JSON.stringify(url)} has no ${scheme === 's3' || scheme === 'gs' ? 'bucket' : 'host'}` };
  }
  return undefined;
}

/** Why a `data:` URL (RFC 2397) does not decode, or undefined. */
export function dataUrlProblem(url: string): string | undefined {
  const comma = url.indexOf(',');
  if (comma === -1) return 'no "," between the media type and the data';
  const meta = url.slice(5, comma);
  const data = url.slice(comma + 1);
  if (/%(?![0-9A-Fa-f]{2})/.test(data)) return 'a "%" that does not start a %XX escape';
  const params = meta.split(';');
  const base64 = params.length > 1 && params[params.length - 1]!.toLowerCase() === 'base64';
  if (params[0] !== '' && !/^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+$/.test(params[0]!)) return `media type ${JSON.stringify(params[0])} is not TYPE/SUBTYPE`;
  for (const p of params.slice(1, base64 ? -1 : undefined)) if (!/^[^=]+=.*$/.test(p)) return `parameter ${JSON.stringify(p)} is not NAME=VALUE`;
  if (base64) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(data);
    } catch {
      return 'the data is not percent-encoded UTF-8';
    }
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(decoded) || decoded.length % 4 !== 0) return 'the data is not valid base64';
  }
  return undefined;
}

/** Why a verification hash is not `FUNCTION-HEX` of a function the spec knows, or undefined. */
export function hashProblem(hash: string, spec: Spec): string | undefined {
  const functions: Record<string, number> = { sha512: 128, ...(spec.major === 3 && since(spec, 3, 1) ? { sha256: 64 } : {}) };
  const m = /^([^-]+)-(.*)$/.exec(hash);
  if (!m) return `malformed hash specifier: want ${Object.keys(functions).map((f) => `${f}-HEX`).join(' or ')}`;
  const size = functions[m[1]!];
  if (size === undefined) return `unrecognized hash function "${m[1]}": spec ${spec.version} knows ${Object.keys(functions).join(', ')}`;
  if (!/^[0-9A-Fa-f]*$/.test(m[2]!)) return 'the hash sum is not hexadecimal';
  if (m[2]!.length !== size) return `incorrect size for hash sum: ${m[1]} has ${size} hex digits, found ${m[2]!.length}`;
  return undefined;
}

/** Checks one resource object (source, verification, httpHeaders) at `path`. */
export function checkResource(resource: YNode | undefined, path: PathSegment[], spec: Spec): Finding[] {
  if (resource?.kind !== 'map') return [];
  const out: Finding[] = [];
  const source = str(resource, 'source');
  let scheme: string | undefined;
  if (source && source.text !== '') {
    scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(source.text)?.[1]?.toLowerCase();
    const problem = urlProblem(source.text, spec);
    if (problem) out.push(finding('error', problem.code, problem.message, [...path, 'source'], source.node.range));
  }
  const hash = str(objectAt(resource, ['verification']), 'hash');
  if (hash) {
    const problem = hashProblem(hash.text, spec);
    if (problem) out.push(finding('error', 'hash', problem, [...path, 'verification', 'hash'], hash.node.range));
    else if (!source || source.text === '') out.push(finding('error', 'hash', 'a verification hash needs a source to verify', [...path, 'verification', 'hash'], hash.node.range));
  }
  const headers = entries(resource, 'httpHeaders', path);
  if (headers.length > 0 && scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    out.push(finding('error', 'http-headers', `httpHeaders are sent only to http and https sources, not ${scheme}`, [...path, 'httpHeaders'], headers[0]!.entry.range));
  }
  const seen = new Set<string>();
  for (const { entry, path: at } of headers) {
    const name = str(entry, 'name');
    if (!name) continue;
    if (name.text === '') out.push(finding('error', 'http-headers', 'an HTTP header needs a name', [...at, 'name'], name.node.range));
    else if (seen.has(name.text.toLowerCase())) out.push(finding('error', 'duplicate-entry', `HTTP header ${name.text} is given twice`, [...at, 'name'], name.node.range));
    seen.add(name.text.toLowerCase());
  }
  return out;
}

/** Every resource of the config: merged and replacing configs, certificate authorities, file contents, LUKS key files. */
export function checkResources(root: YNode, spec: Spec): Finding[] {
  const out: Finding[] = [];
  const add = (findings: Finding[]) => {
    for (const f of findings) out.push(f);
  };
  const config = objectAt(root, ['ignition', 'config']);
  const configPath = ['ignition', 'config'];
  for (const { entry, path } of entries(config, spec.major === 3 ? 'merge' : 'append', configPath)) add(checkResource(entry, path, spec));
  add(checkResource(objectAt(config, ['replace']), [...configPath, 'replace'], spec));
  const tls = objectAt(root, ['ignition', 'security', 'tls']);
  for (const { entry, path } of entries(tls, 'certificateAuthorities', ['ignition', 'security', 'tls'])) add(checkResource(entry, path, spec));
  const storage = objectAt(root, ['storage']);
  for (const { entry, path } of entries(storage, 'files', ['storage'])) {
    add(checkResource(objectAt(entry, ['contents']), [...path, 'contents'], spec));
    for (const fragment of entries(entry, 'append', path)) add(checkResource(fragment.entry, fragment.path, spec));
  }
  for (const { entry, path } of entries(storage, 'luks', ['storage'])) add(checkResource(objectAt(entry, ['keyFile']), [...path, 'keyFile'], spec));
  const proxy = objectAt(root, ['ignition', 'proxy']);
  for (const key of ['httpProxy', 'httpsProxy']) {
    const url = str(proxy, key);
    if (url && url.text !== '' && !/^https?:\/\/[^\s/]+/.test(url.text)) {
      out.push(finding('error', 'invalid-url', `${key} ${JSON.stringify(url.text)} is not an http or https URL`, ['ignition', 'proxy', key], url.node.range));
    } else if (key === 'httpsProxy' && url && /^http:/.test(url.text)) {
      out.push(finding('warning', 'insecure-proxy', 'httpsProxy is a plain-text http:// proxy for HTTPS resources', ['ignition', 'proxy', key], url.node.range));
    }
  }
  return out;
}
