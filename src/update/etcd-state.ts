/**
 * The update server's state in etcd, shared by replicas behind a load balancer: any replica
 * answers any machine, and a halt committed by one is seen by all.
 *
 * Keys, under a prefix (default `bootsmith/update-server/`):
 *   halted/<channel>/<version>    {"at","why"}: the release is offered to nobody
 *   machines/<machine id>         the machine's record (MachineRecord)
 *   events/<machine id>           its newest events, at most maxEventsPerMachine
 *   failures/<channel>/<version>  {"halting","other"}: failures reported against the release
 *
 * Every request's change is one transaction that compares the revisions it read (a lost race is
 * read again and decided again, a bounded number of times). An offer is committed only in a
 * transaction that finds its release not halted, so no replica offers a release after the
 * transaction that halted it, whatever its own view. That view (halted()) follows the halted/
 * keys through a watch, not a poll; while the watch is down it is unknown and each request reads
 * the halts itself.
 *
 * Bounds: every etcd call has a deadline (callTimeoutMs) and a request's attempts are counted;
 * an etcd that cannot answer makes the request fail with StateUnavailable (the server answers 503
 * and the machine asks again), never the replica. Values read back are size-checked and parsed
 * into their types; a corrupt one counts as absent and is written over. Machines are trimmed to
 * maxMachines, the least recently written first, after every maxMachines/10 new machines a
 * replica sees and every trimIntervalMs, so etcd holds at most maxMachines plus what the replicas
 * add between two trims. A machine record is written when it changes or its lastSeen is older
 * than touchMs, not on every check; etcd's history of them is etcd's to compact
 * (--auto-compaction-retention).
 */
import type { Etcd3, IKeyValue, IOperation, Namespace, Watcher } from 'etcd3';
import type { LogFn } from '../report/log';
import { sharedReadiness } from '../system/metrics-http';
import { StateUnavailable } from './server-state';
import type { Applied, Decide, Failure, FailureCounts, MachineEvent, MachineRecord, ServerState, StateSnapshot } from './server-state';

export interface EtcdStateOptions {
  /** The keys' prefix. Default `bootsmith/update-server/`. */
  prefix?: string;
  /** Events kept per machine, the newest. */
  maxEventsPerMachine: number;
  /** Machines kept; past it the least recently written are deleted. */
  maxMachines: number;
  /** Each etcd call's deadline, in ms. Default 5,000. */
  callTimeoutMs?: number;
  /** Transactions tried for one request while other writers win the race. Default 10. */
  maxAttempts?: number;
  /** A machine record whose only change is lastSeen is written at most this often, in ms. Default 60,000. */
  touchMs?: number;
  /** Machines are trimmed at least this often, in ms. Default 60,000. */
  trimIntervalMs?: number;
  log?: LogFn;
}

export const defaultEtcdPrefix = 'bootsmith/update-server/';

/** The largest value read back from etcd, in bytes: more is corrupt (a record is ~300 bytes, 50 events ~10 KiB). */
const maxValueBytes = 256 << 10;
const releaseForm = /^[A-Za-z0-9._-]{1,128}\/\d+(\.\d+){0,15}$/;
const text = (v: unknown, max = 256): v is string => typeof v === 'string' && v.length <= max;
const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function json(kv: IKeyValue | undefined): unknown {
  if (!kv || kv.value.length > maxValueBytes) return undefined;
  try {
    return JSON.parse(kv.value.toString('utf8'));
  } catch {
    return undefined;
  }
}

function parseEvent(v: unknown): MachineEvent | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const e = v as Record<string, unknown>;
  if (!text(e.at) || !count(e.type) || !count(e.result) || !text(e.version)) return undefined;
  if (e.errorCode !== undefined && !count(e.errorCode)) return undefined;
  if (e.previousVersion !== undefined && !text(e.previousVersion)) return undefined;
  return {
    at: e.at, type: e.type, result: e.result, version: e.version,
    ...(e.errorCode !== undefined ? { errorCode: e.errorCode as number } : {}),
    ...(e.previousVersion !== undefined ? { previousVersion: e.previousVersion as string } : {}),
  };
}

/** A machine record read from etcd, or undefined when it is absent or corrupt. */
export function parseRecord(kv: IKeyValue | undefined): MachineRecord | undefined {
  const v = json(kv);
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (!text(r.machineId) || !text(r.track) || !text(r.version) || !text(r.lastSeen)) return undefined;
  const record: MachineRecord = { machineId: r.machineId, track: r.track, version: r.version, lastSeen: r.lastSeen };
  if (text(r.offered) && text(r.offeredChannel)) Object.assign(record, { offered: r.offered, offeredChannel: r.offeredChannel });
  const last = parseEvent(r.lastEvent);
  if (last) record.lastEvent = last;
  return record;
}

function parseEvents(kv: IKeyValue | undefined): MachineEvent[] {
  const v = json(kv);
  if (!Array.isArray(v)) return [];
  return v.map(parseEvent).filter((e): e is MachineEvent => e !== undefined);
}

function parseCounts(kv: IKeyValue | undefined): FailureCounts {
  const v = json(kv) as Record<string, unknown> | undefined;
  return v && count(v.halting) && count(v.other) ? { halting: v.halting, other: v.other } : { halting: 0, other: 0 };
}

/** Whether writing `next` over `previous` changes more than lastSeen, or lastSeen is due. */
function worthWriting(previous: MachineRecord | undefined, next: MachineRecord, touchMs: number): boolean {
  if (!previous) return true;
  const { lastSeen: a, ...before } = previous;
  const { lastSeen: b, ...after } = next;
  return JSON.stringify(before) !== JSON.stringify(after) || Date.parse(b) - Date.parse(a) >= touchMs;
}

export class EtcdState implements ServerState {
  private readonly kv: Namespace;
  private readonly halts = new Set<string>();
  /** Whether `halts` follows etcd now (the watch is up). */
  private following = false;
  private watcher: Watcher | undefined;
  private retry: NodeJS.Timeout | undefined;
  private trimTimer: NodeJS.Timeout | undefined;
  private trimming: Promise<void> | undefined;
  private createdSinceTrim = 0;
  private closed = false;
  /** A linearizable read of etcd, at most once a second (see notReady). */
  private readonly etcdAnswers = sharedReadiness(() => this.call('a readiness read', () => this.kv.getAll().prefix('halted/').options(this.deadline()).count()).then(() => undefined));
  private readonly callTimeoutMs: number;
  private readonly maxAttempts: number;
  private readonly touchMs: number;

  constructor(
    client: Etcd3,
    private readonly opts: EtcdStateOptions,
  ) {
    this.kv = client.namespace(opts.prefix ?? defaultEtcdPrefix);
    this.callTimeoutMs = opts.callTimeoutMs ?? 5_000;
    this.maxAttempts = opts.maxAttempts ?? 10;
    this.touchMs = opts.touchMs ?? 60_000;
  }

  /** Starts following the halts (without waiting for etcd when it does not answer) and trimming machines. */
  async start(): Promise<void> {
    await this.follow();
    this.trimTimer = setInterval(() => this.trimSoon(), this.opts.trimIntervalMs ?? 60_000);
    this.trimTimer.unref();
  }

  /** The halts, listed and then watched from the revision listed; tried again every second until it works. */
  private async follow(): Promise<void> {
    if (this.closed) return;
    try {
      const listed = await this.call('listing the halted releases', () => this.kv.getAll().prefix('halted/').options(this.deadline()).exec());
      this.halts.clear();
      for (const kv of listed.kvs) this.onHalt('put', kv);
      const creating = this.kv.watch().prefix('halted/').startRevision(String(BigInt(listed.header.revision) + 1n)).create();
      const watcher = await this.call('watching the halted releases', () => creating).catch((err: unknown) => {
        // A watch that comes up after its deadline is not left running unheard.
        void creating.then((w) => w.cancel()).catch(() => undefined);
        throw err;
      });
      if (this.closed) return void watcher.cancel().catch(() => undefined);
      this.watcher = watcher;
      this.following = true;
      watcher.on('put', (kv: IKeyValue) => this.onHalt('put', kv));
      watcher.on('delete', (kv: IKeyValue) => this.onHalt('delete', kv));
      // The watcher reconnects by itself and replays what it missed; until then the view is unknown.
      watcher.on('disconnected', () => (this.following = false));
      watcher.on('connected', () => (this.following = true));
      watcher.on('error', (err: Error) => {
        this.opts.log?.(`the watch of halted releases failed (${err.message}); listing them again`, 'warning');
        this.following = false;
        this.watcher = undefined;
        void watcher.cancel().catch(() => undefined);
        this.followLater();
      });
    } catch (err) {
      this.opts.log?.(`cannot follow the halted releases in etcd yet: ${(err as Error).message}`, 'warning');
      this.following = false;
      this.followLater();
    }
  }

  private followLater(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.follow();
    }, 1000);
    this.retry.unref();
  }

  private onHalt(kind: 'put' | 'delete', kv: IKeyValue): void {
    const release = kv.key.toString('utf8').replace(/^.*?halted\//, '');
    if (!releaseForm.test(release)) return;
    if (kind === 'put') this.halts.add(release);
    else this.halts.delete(release);
  }

  halted(): ReadonlySet<string> | undefined {
    return this.following ? this.halts : undefined;
  }

  private deadline(): { deadline: number } {
    return { deadline: Date.now() + this.callTimeoutMs };
  }

  /** `fn`, failing with StateUnavailable when etcd fails or does not answer within callTimeoutMs. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StateUnavailable(`etcd did not answer ${what} within ${this.callTimeoutMs / 1000} s`)), this.callTimeoutMs);
    });
    try {
      return await Promise.race([fn(), timeout]);
    } catch (err) {
      if (err instanceof StateUnavailable) throw err;
      // gRPC's status code and its empty resolution note say nothing to an operator.
      const why = (err as Error).message.replace(/^\d+ [A-Z_]+: /, '').replace(/\.?\s*Resolution note:[\s\S]*$/, '').replace(/\s+/g, ' ').trim();
      throw new StateUnavailable(`etcd failed ${what}: ${why || 'no reason given'}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  private async readHalts(): Promise<Set<string>> {
    const keys = await this.call('listing the halted releases', () => this.kv.getAll().prefix('halted/').options(this.deadline()).keys());
    return new Set(keys.map((k) => k.replace(/^.*?halted\//, '')).filter((r) => releaseForm.test(r)));
  }

  async apply(machineId: string, decide: Decide): Promise<Applied> {
    const recordKey = `machines/${machineId}`;
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const read = await this.call('reading a machine', () => this.kv.get(recordKey).options(this.deadline()).exec());
      const kv = read.kvs[0];
      const previous = parseRecord(kv);
      const halted = this.halted() ?? (await this.readHalts());
      const decision = decide(previous, halted);
      const txn = this.kv.if(recordKey, kv ? 'Mod' : 'Version', '==', kv ? kv.mod_revision : 0).options(this.deadline());
      const ops: IOperation[] = [];
      if (decision.offer !== undefined) txn.and(`halted/${decision.offer}`, 'Version', '==', 0);
      if (decision.events.length > 0) {
        const eventsKey = `events/${machineId}`;
        const got = (await this.call('reading events', () => this.kv.get(eventsKey).options(this.deadline()).exec())).kvs[0];
        const events = [...parseEvents(got), ...decision.events].slice(-this.opts.maxEventsPerMachine);
        txn.and(eventsKey, got ? 'Mod' : 'Version', '==', got ? got.mod_revision : 0);
        ops.push(this.kv.put(eventsKey).value(JSON.stringify(events)));
      }
      const newlyHalted: Failure[] = [];
      const counts = new Map<string, { counts: FailureCounts; kv: IKeyValue | undefined; haltedKv: IKeyValue | undefined }>();
      for (const f of decision.failures) {
        let c = counts.get(f.release);
        if (!c) {
          const [got, halt] = await Promise.all([
            this.call('reading failures', () => this.kv.get(`failures/${f.release}`).options(this.deadline()).exec()),
            this.call('reading a halt', () => this.kv.get(`halted/${f.release}`).options(this.deadline()).exec()),
          ]);
          c = { counts: parseCounts(got.kvs[0]), kv: got.kvs[0], haltedKv: halt.kvs[0] };
          counts.set(f.release, c);
          txn.and(`failures/${f.release}`, c.kv ? 'Mod' : 'Version', '==', c.kv ? c.kv.mod_revision : 0);
        }
        if (!f.halting) {
          c.counts.other++;
          continue;
        }
        c.counts.halting++;
        if (!c.haltedKv && !newlyHalted.some((h) => h.release === f.release)) {
          txn.and(`halted/${f.release}`, 'Version', '==', 0);
          ops.push(this.kv.put(`halted/${f.release}`).value(JSON.stringify({ at: new Date().toISOString(), why: f.why })));
          newlyHalted.push(f);
        }
      }
      for (const [release, c] of counts) ops.push(this.kv.put(`failures/${release}`).value(JSON.stringify(c.counts)));
      if (ops.length > 0 || worthWriting(previous, decision.record, this.touchMs)) ops.push(this.kv.put(recordKey).value(JSON.stringify(decision.record)));
      // Nothing to write and nothing offered: the answer needs no transaction.
      if (ops.length === 0 && decision.offer === undefined) return { decision, halted: [] };
      const done = await this.call('committing a request', () => txn.then(...ops).commit());
      if (done.succeeded) {
        for (const f of newlyHalted) this.halts.add(f.release);
        if (!kv && ++this.createdSinceTrim >= Math.max(1, Math.floor(this.opts.maxMachines / 10))) this.trimSoon();
        return { decision, halted: newlyHalted };
      }
      // Another writer won, or the offer was halted meanwhile: read again and decide again.
      if (decision.offer !== undefined && this.following) {
        const halt = await this.call('reading a halt', () => this.kv.get(`halted/${decision.offer}`).options(this.deadline()).exec());
        if (halt.kvs[0]) this.halts.add(decision.offer);
      }
    }
    throw new StateUnavailable(`etcd: machine ${machineId}'s record kept changing under ${this.maxAttempts} attempts`);
  }

  /** Trims the machines now, unless a trim is under way; failures are logged, never thrown. */
  private trimSoon(): void {
    if (this.trimming || this.closed) return;
    this.createdSinceTrim = 0;
    this.trimming = this.trim()
      .catch((err: Error) => this.opts.log?.(`trimming the machines in etcd failed: ${err.message}`, 'warning'))
      .finally(() => (this.trimming = undefined));
  }

  /** Deletes the least recently written machines (and their events) past maxMachines. */
  private async trim(): Promise<void> {
    const machines = await this.call('counting machines', () => this.kv.getAll().prefix('machines/').options(this.deadline()).count());
    const excess = machines - this.opts.maxMachines;
    if (excess <= 0) return;
    const oldest = await this.call('listing the oldest machines', () => this.kv.getAll().prefix('machines/').sort('Mod', 'Ascend').limit(excess).options(this.deadline()).exec());
    for (const kv of oldest.kvs) {
      const key = kv.key.toString('utf8').replace(/^.*?machines\//, 'machines/');
      const id = key.slice('machines/'.length);
      // Only if it was not written since it was listed: a machine just seen stays.
      await this.call('deleting a machine', () => this.kv.if(key, 'Mod', '==', kv.mod_revision).then(this.kv.delete().key(key), this.kv.delete().key(`events/${id}`)).options(this.deadline()).commit());
    }
    this.opts.log?.(`trimmed ${oldest.kvs.length} machines seen longest ago (more than ${this.opts.maxMachines} in etcd)`);
  }

  async resume(release: string): Promise<boolean> {
    if (!releaseForm.test(release)) return false;
    const deleted = await this.call('resuming a release', () => this.kv.delete().key(`halted/${release}`).options(this.deadline()).exec());
    this.halts.delete(release);
    return Number(deleted.deleted) > 0;
  }

  async events(machineId: string): Promise<MachineEvent[]> {
    return parseEvents((await this.call('reading events', () => this.kv.get(`events/${machineId}`).options(this.deadline()).exec())).kvs[0]);
  }

  async snapshot(): Promise<StateSnapshot> {
    const [halted, failures, machines] = await Promise.all([
      this.readHalts(),
      this.call('listing failures', () => this.kv.getAll().prefix('failures/').options(this.deadline()).exec()),
      // Bounded: trimming keeps them near maxMachines.
      this.call('listing machines', () => this.kv.getAll().prefix('machines/').limit(2 * this.opts.maxMachines).options(this.deadline()).exec()),
    ]);
    return {
      halted: [...halted].sort(),
      failures: new Map(failures.kvs.map((kv) => [kv.key.toString('utf8').replace(/^.*?failures\//, ''), parseCounts(kv)] as const).filter(([r]) => releaseForm.test(r))),
      machines: machines.kvs.map((kv) => parseRecord(kv)).filter((r): r is MachineRecord => r !== undefined),
    };
  }

  /**
   * Ready while the watch of the halts is up and etcd answers a linearizable read within the
   * call deadline (without quorum the watch may stay up while every write fails). One read at a
   * time, its answer kept a second: probes, however many, cost etcd at most one read a second.
   */
  notReady(): Promise<string | undefined> {
    if (!this.following) return Promise.resolve('the halted releases are not followed: the watch of them in etcd is down');
    return this.etcdAnswers();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    clearInterval(this.trimTimer);
    this.following = false;
    // Not awaited: with etcd out of reach it may not settle.
    void this.watcher?.cancel().catch(() => undefined);
    await this.trimming;
  }
}
