/**
 * What the daemons share at start-up: the log options (`--log-format`, `--log-level`) and logger on
 * stderr, `--metrics-listen`, and telling systemd they are ready.
 */
import { fstatSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Registry } from 'prom-client';
import { Option } from 'commander';
import type { Command } from 'commander';
import { createLogger, defaultLogFormat, logFormats, logLevels } from '../report/log';
import type { LogFormat, Logger, LogLevel } from '../report/log';
import { serveMetrics } from '../system/metrics-http';
import { newRegistry } from '../report/metrics';
import { notifyReady } from '../system/notify';
import { parseListen } from './options';

/** Adds `--log-format` and `--log-level` to a daemon. */
export function addLogOptions(program: Command): Command {
  return program
    .addOption(new Option('--log-format <format>', 'text, journal (priority prefixes; the default when stderr is the journal) or json (one object per line)').choices(logFormats))
    .addOption(new Option('--log-level <level>', 'the least severe events logged').choices(logLevels).default('info'));
}

/** stderr's `device:inode`, as systemd writes it in JOURNAL_STREAM; undefined when it cannot be read. */
function stderrId(): string | undefined {
  try {
    const st = fstatSync(2);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** The logger of a daemon on stderr, in the format asked for or the one stderr calls for. */
export function stderrLogger(program: string, opts: { logFormat?: string; logLevel?: string }): Logger {
  const format = (opts.logFormat as LogFormat | undefined) ?? defaultLogFormat(process.env.JOURNAL_STREAM, stderrId());
  return createLogger({ program, format, level: (opts.logLevel as LogLevel | undefined) ?? 'info', sink: (line) => process.stderr.write(line) });
}

/**
 * A logger for before the options are parsed (a usage error): text unless stderr is the journal.
 */
export function earlyLogger(program: string): Logger {
  return stderrLogger(program, {});
}

/** Adds `--metrics-listen` (off by default) to a daemon without an HTTP listener of its own. */
export function addMetricsOption(program: Command): Command {
  return program.option('--metrics-listen <host:port>', 'serve Prometheus /metrics and /healthz here (off by default)');
}

/** A daemon's metrics as `--metrics-listen` asks for them: the set it counts into, and the listener serving them. */
export interface StartedMetrics<T> {
  metrics: T;
  /** Stops serving /metrics. */
  close(): void;
}

/**
 * Starts what `--metrics-listen VALUE` asks for: a registry for `program`, the daemon's metrics in
 * it (`make`), and a listener serving /metrics and /healthz; undefined when VALUE is undefined (off).
 * Throws (a message naming the address) when VALUE is not HOST:PORT or cannot be listened on.
 */
export async function startMetrics<T>(program: string, value: string | undefined, log: Logger, make: (registry: Registry) => T): Promise<StartedMetrics<T> | undefined> {
  if (value === undefined) return undefined;
  const listen = parseListen(value);
  if (!listen) throw new Error(`--metrics-listen ${value}: want host:port`);
  const registry = newRegistry(program);
  const metrics = make(registry);
  let server: Server;
  try {
    let url: string;
    ({ url, server } = await serveMetrics(registry, listen.host, listen.port));
    log(`serving metrics at ${url}/metrics`);
  } catch (err) {
    throw new Error(`cannot listen on ${value} for metrics: ${(err as Error).message}`, { cause: err });
  }
  return { metrics, close: () => server.close() };
}

/**
 * Tells systemd (Type=notify, when NOTIFY_SOCKET is set) that the daemon is ready, with `status` as
 * its status text. A failure is logged and the daemon goes on: systemd, not told, times the start out.
 */
export async function announceReady(log: Logger, status: string): Promise<void> {
  try {
    if (await notifyReady(process.env, status)) log.debug('told systemd it is ready');
  } catch (err) {
    log.error((err as Error).message);
  }
}
