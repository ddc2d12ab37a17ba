/** The plain datasources: a file, a URL, and a URL named on the kernel command line (PXE). */
import { readFile } from 'node:fs/promises';
import { fetchWithRetry } from './http';
import type { RetryPolicy } from './http';
import { noMetadata } from './types';
import type { Datasource } from './types';

/** `--from-file PATH`: the file's bytes; an empty file is no user data; no metadata. */
export function fileSource(path: string): Datasource {
  return {
    name: 'file',
    async fetch() {
      let bytes: Buffer;
      try {
        bytes = await readFile(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
      }
      return { source: 'file', userData: bytes.length > 0 ? bytes : undefined, metadata: noMetadata() };
    },
  };
}

/** `--from-url URL`: fetched with retries; a 404 is no user data. */
export function urlSource(url: string, policy: RetryPolicy, name = 'url'): Datasource {
  return {
    name,
    async fetch() {
      const r = await fetchWithRetry({ url }, policy);
      return { source: name, userData: r.kind === 'ok' && r.body.length > 0 ? r.body : undefined, metadata: noMetadata() };
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
    async fetch() {
      const url = cmdlineUrl(await readFile(cmdlineFile, 'utf8'));
      if (url === undefined) return undefined;
      const fetched = await urlSource(url, policy, 'proc-cmdline').fetch();
      return fetched;
    },
  };
}
