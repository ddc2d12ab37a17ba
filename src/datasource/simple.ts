/** The plain datasources: a file, a URL, and a URL named on the kernel command line (PXE). */
import { readFile } from 'node:fs/promises';
import { fetchWithRetry } from './http';
import type { HttpResult, RetryPolicy } from './http';
import { noMetadata } from './types';
import type { Datasource, Fetched } from './types';

/** `--from-file PATH`: the file's bytes; an empty file is no user data; no metadata. */
export function fileSource(path: string): Datasource {
  return {
    name: 'file',
    location: path,
    async fetch() {
      let bytes: Buffer;
      try {
        bytes = await readFile(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
      }
      if (bytes.length === 0) return { source: 'file', location: path, userData: undefined, noUserData: 'the file is empty', metadata: noMetadata() };
      return { source: 'file', location: path, userData: bytes, metadata: noMetadata() };
    },
  };
}

/** The user data an HTTP answer gives: its body, or none and why. */
export function userDataOf(r: HttpResult): Pick<Fetched, 'userData' | 'noUserData'> {
  if (r.kind === 'not-found') return { userData: undefined, noUserData: 'the server answered 404 (not found)' };
  if (r.body.length === 0) return { userData: undefined, noUserData: `the server answered ${r.status} with an empty body` };
  return { userData: r.body };
}

/** `--from-url URL`: fetched with retries; a 404 is no user data. */
export function urlSource(url: string, policy: RetryPolicy, name = 'url'): Datasource {
  return {
    name,
    location: url,
    async fetch() {
      const r = await fetchWithRetry({ url }, policy);
      return { source: name, location: url, ...userDataOf(r), metadata: noMetadata() };
    },
  };
}

/**
 * The URL in `cloud-config-url=` (or `cloud_config_url=`) on a kernel command line; the last one
 * wins; a bare `cloud-config-url` without a value is ignored. Undefined when there is none.
 */
export function cmdlineUrl(cmdline: string): string | undefined {
  let url: string | undefined;
  for (const token of cmdline.trim().split(/\s+/)) {
    const eq = token.indexOf('=');
    if (eq === -1) continue;
    const key = token.slice(0, eq).replace(/_/g, '-');
    if (key === 'cloud-config-url' && eq < token.length - 1) url = token.slice(eq + 1);
  }
  return url;
}

/** `--from-proc-cmdline`: the URL named on the kernel command line (`/proc/cmdline`, or a file for tests). */
export function cmdlineSource(cmdlineFile: string, policy: RetryPolicy): Datasource {
  return {
    name: 'proc-cmdline',
    location: `cloud-config-url in ${cmdlineFile}`,
    async fetch() {
      const url = cmdlineUrl(await readFile(cmdlineFile, 'utf8'));
      if (url === undefined) return undefined;
      const fetched = await urlSource(url, policy, 'proc-cmdline').fetch();
      return fetched;
    },
  };
}
