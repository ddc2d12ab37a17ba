/**
 * The daemons' Prometheus metrics (prom-client), one registry per process (never prom-client's
 * global one, so tests can run several servers in one process). Each daemon's set is a small
 * class whose methods the library calls at the events it counts; the libraries import only the
 * types. Names follow Prometheus conventions: `bootsmith_` prefix, `_total` for counters, units
 * in the name. Label values a client chooses (a version, a channel, a group) are bounded: only
 * values the server knows are used, the rest count as `other`.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { version } from '../version';

/** A registry with the process metrics and bootsmith_build_info{program,version}. */
export function newRegistry(program: string): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({ name: 'bootsmith_build_info', help: 'The program and its version; always 1', labelNames: ['program', 'version'], registers: [registry] }).set({ program, version }, 1);
  return registry;
}

/** A semaphore's slots and holders, as a scrape reads them; undefined when the group has no semaphore. */
export type ReadSlots = (group: string) => Promise<{ total_slots: number; holders: string[] } | undefined>;

/** The most groups whose slots are reported: fleetlockd serves any group name a client sends. */
const maxGroups = 64;

/** The reboot lock's metrics: fleetlockd (each request) and locksmithd (its own attempts). */
export class LockMetrics {
  private readonly groups = new Set<string>();
  private readonly requests: Counter<'operation' | 'result'>;
  private readonly failures: Counter<'operation' | 'reason'>;
  private readonly etcdErrors: Counter<'operation'>;

  /** `readSlots` is called at each scrape for each group seen (a failure counts as an etcd error). */
  constructor(registry: Registry, readSlots?: ReadSlots) {
    const registers = [registry];
    this.requests = new Counter({ name: 'bootsmith_lock_requests_total', help: 'Requests to take (lock) or give back (unlock) a reboot slot, by result (ok, refused: all slots held, failed)', labelNames: ['operation', 'result'], registers });
    this.failures = new Counter({ name: 'bootsmith_lock_failures_total', help: 'Lock requests that did not succeed, by reason (semaphore full, etcd error, invalid request, ...)', labelNames: ['operation', 'reason'], registers });
    // Both gauges come from one read per group per scrape (prom-client collects them at once).
    // A scrape starts every collect in the same tick; the read is shared until it is done.
    let read: Promise<Map<string, { total_slots: number; holders: string[] }>> | undefined;
    const readAll = () => {
      if (!read) read = this.readGroups(readSlots).finally(() => (read = undefined));
      return read;
    };
    for (const [name, help, value] of [
      ['bootsmith_lock_slots', 'Reboot slots of the semaphore, by group', (v: { total_slots: number }) => v.total_slots],
      ['bootsmith_lock_holders', 'Holders of reboot slots, by group', (v: { holders: string[] }) => v.holders.length],
    ] as const) {
      new Gauge({
        name,
        help,
        labelNames: ['group'],
        registers,
        async collect() {
          if (!readSlots) return;
          const values = await readAll();
          this.reset();
          for (const [group, v] of values) this.set({ group }, value(v as { total_slots: number; holders: string[] }));
        },
      });
    }
    // After the gauges: a scrape has started their read by the time this collects, and waits for
    // it, so a read that fails counts in the same scrape.
    this.etcdErrors = new Counter({
      name: 'bootsmith_etcd_errors_total',
      help: 'Calls to etcd that failed, by operation (read: a scrape\'s read of the slots)',
      labelNames: ['operation'],
      registers,
      async collect() {
        await read?.catch(() => undefined);
      },
    });
  }

  private async readGroups(readSlots: ReadSlots | undefined): Promise<Map<string, { total_slots: number; holders: string[] }>> {
    const out = new Map<string, { total_slots: number; holders: string[] }>();
    for (const group of this.groups) {
      try {
        const v = await readSlots?.(group);
        if (v) out.set(group, v);
      } catch {
        this.etcdErrors.inc({ operation: 'read' });
      }
    }
    return out;
  }

  /** Reports this group's slots from now on. */
  watch(group: string): void {
    if (this.groups.size < maxGroups) this.groups.add(group);
  }

  /** A request's outcome: ok, refused (all slots held), or failed for `reason` (`etcd` for an etcd error). */
  request(operation: 'lock' | 'unlock', result: 'ok' | 'refused' | 'failed', reason?: string): void {
    this.requests.inc({ operation, result });
    if (result !== 'ok') this.failures.inc({ operation, reason: reason ?? result });
    if (reason === 'etcd') this.etcdErrors.inc({ operation });
  }

  /** An etcd call outside a request failed (a presence report, a watch). */
  etcdError(operation: string): void {
    this.etcdErrors.inc({ operation });
  }
}

/** update_engine's metrics, fed from its status changes. */
export class EngineMetrics {
  private readonly checks: Counter<'result'>;
  private readonly errors: Counter<'code'>;
  private readonly bytes: Counter;
  private readonly status: Gauge<'status'>;
  private readonly progress: Gauge;
  private previous = 'UPDATE_STATUS_IDLE';
  /** Bytes of the current download counted so far. */
  private counted = 0;

  /** `statuses`: update_engine's statuses (the attempter's list), each a series of bootsmith_update_status. */
  constructor(
    registry: Registry,
    private readonly statuses: readonly string[],
  ) {
    const registers = [registry];
    this.checks = new Counter({ name: 'bootsmith_update_checks_total', help: 'Update checks, by result (update, noupdate, failed)', labelNames: ['result'], registers });
    this.errors = new Counter({ name: 'bootsmith_update_errors_total', help: 'Failed update attempts, by update_engine error code', labelNames: ['code'], registers });
    this.bytes = new Counter({ name: 'bootsmith_update_bytes_downloaded_total', help: 'Payload bytes downloaded and written to the passive slot (progress times payload size)', registers });
    this.status = new Gauge({ name: 'bootsmith_update_status', help: 'update_engine\'s current operation: 1 for the current one, 0 for the others', labelNames: ['status'], registers });
    this.progress = new Gauge({ name: 'bootsmith_update_progress_ratio', help: 'Progress of the update being downloaded, 0 to 1', registers });
    for (const s of this.statuses) this.status.set({ status: s }, s === this.previous ? 1 : 0);
  }

  /** A status change of the attempter (currentOperation, progress 0..1, newSize in bytes). */
  update(s: { currentOperation: string; progress: number; newSize: number }): void {
    const op = s.currentOperation;
    if (op !== this.previous) {
      if (this.previous === 'UPDATE_STATUS_CHECKING_FOR_UPDATE') {
        this.checks.inc({ result: op === 'UPDATE_STATUS_UPDATE_AVAILABLE' ? 'update' : op === 'UPDATE_STATUS_IDLE' ? 'noupdate' : 'failed' });
      }
      if (this.statuses.includes(op)) for (const x of this.statuses) this.status.set({ status: x }, x === op ? 1 : 0);
      if (op === 'UPDATE_STATUS_DOWNLOADING' || op === 'UPDATE_STATUS_UPDATE_AVAILABLE') this.counted = 0;
      this.previous = op;
    }
    if (op === 'UPDATE_STATUS_DOWNLOADING' || op === 'UPDATE_STATUS_VERIFYING') {
      const bytes = Math.round(Math.min(1, Math.max(0, s.progress)) * s.newSize);
      if (bytes > this.counted) this.bytes.inc(bytes - this.counted);
      this.counted = Math.max(this.counted, bytes);
    }
    this.progress.set(s.progress);
  }

  /** A failed update attempt, with its error code. */
  failed(code: number): void {
    this.errors.inc({ code: String(code) });
  }
}

/** bootsmith-update-server's metrics. */
export class ServerMetrics {
  private readonly requests: Counter<'result'>;
  private readonly checks: Counter<'channel' | 'version' | 'result'>;
  private readonly events: Counter<'type' | 'result'>;
  private readonly halts: Counter<'channel'>;
  private readonly bytes: Counter;
  private readonly downloads: Counter;

  /** `halted` is read at each scrape: the releases halted now. */
  constructor(
    readonly registry: Registry,
    halted: () => number,
  ) {
    const registers = [registry];
    this.requests = new Counter({ name: 'bootsmith_omaha_requests_total', help: 'Omaha requests, by result (ok, invalid, unknown_application, malformed, unavailable: the state store could not be reached)', labelNames: ['result'], registers });
    this.checks = new Counter({ name: 'bootsmith_omaha_checks_total', help: 'Update checks, by channel, the machine\'s version (other when not a release of the channel) and result (update, noupdate)', labelNames: ['channel', 'version', 'result'], registers });
    this.events = new Counter({ name: 'bootsmith_omaha_events_total', help: 'Events machines reported, by type and result', labelNames: ['type', 'result'], registers });
    this.halts = new Counter({ name: 'bootsmith_update_server_halts_total', help: 'Releases halted because a machine reported them bad, by channel', labelNames: ['channel'], registers });
    this.bytes = new Counter({ name: 'bootsmith_update_server_payload_bytes_sent_total', help: 'Payload bytes sent to machines', registers });
    this.downloads = new Counter({ name: 'bootsmith_update_server_payload_requests_total', help: 'Payload downloads started (whole or a range)', registers });
    new Gauge({
      name: 'bootsmith_update_server_halted_releases',
      help: 'Releases halted now (offered to nobody until resumed)',
      registers,
      collect() {
        this.set(halted());
      },
    });
  }

  request(result: 'ok' | 'invalid' | 'unknown_application' | 'malformed' | 'unavailable'): void {
    this.requests.inc({ result });
  }

  check(channel: string, version: string, result: 'update' | 'noupdate'): void {
    this.checks.inc({ channel, version, result });
  }

  event(type: string, result: string): void {
    this.events.inc({ type, result });
  }

  halt(channel: string): void {
    this.halts.inc({ channel });
  }

  download(): void {
    this.downloads.inc();
  }

  sent(bytes: number): void {
    this.bytes.inc(bytes);
  }
}
