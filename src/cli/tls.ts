/** `--tls-cert` and `--tls-key` for the daemons that serve HTTP (fleetlockd, bootsmith-update-server), as Airlock offers them. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from './options';

/** A server certificate chain and its key, PEM. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

/** Adds `--tls-cert` and `--tls-key`. */
export function addTlsOptions(program: Command): Command {
  return program
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM, the chain after it); needs --tls-key')
    .option('--tls-key <file>', 'the key of --tls-cert (PEM)');
}

/**
 * The certificate and key to serve HTTPS with; undefined for plain HTTP (neither given). A
 * UsageError when only one is given, or a file cannot be read (naming it).
 */
export function readTls(opts: { tlsCert?: string; tlsKey?: string }): TlsFiles | undefined {
  if (opts.tlsCert === undefined && opts.tlsKey === undefined) return undefined;
  if (opts.tlsKey === undefined) throw new UsageError('--tls-cert needs --tls-key');
  if (opts.tlsCert === undefined) throw new UsageError('--tls-key needs --tls-cert');
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new UsageError(`${flag} ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  return { cert: read('--tls-cert', opts.tlsCert), key: read('--tls-key', opts.tlsKey) };
}
