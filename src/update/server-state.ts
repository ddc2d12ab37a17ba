/**
 * What the update server remembers: halted releases, each machine's record and newest events, and
 * failure counts per offered release. One interface, two stores: FileState (memory, with halts and
 * an event log in a state directory) for a single server, and EtcdState (etcd-state.ts) for
 * replicas behind a load balancer that must answer any machine alike.
 *
 * Every change an Omaha request makes goes through `apply`: the store reads the machine's record,
 * the server decides from it (a pure function of the record, the request and the halted
 * releases), and the store commits the decision whole, or not at all. An offer is committed only
 * while its release is not halted: no store offers a release after its halt.
 */
import { appendFileSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MachineEvent {
  at: string;
  type: number;
  result: number;
  errorCode?: number;
  previousVersion?: string;
  version: string;
}

export interface MachineRecord {
  machineId: string;
  track: string;
  version: string;
  /** The version last offered to it. */
  offered?: string;
  /** The channel it was offered in. */
  offeredChannel?: string;
  lastSeen: string;
  /** Its newest event. */
  lastEvent?: MachineEvent;
}

/** Per offered release (channel/version): failures reported by machines it was offered to. */
export interface FailureCounts {
  /** Errors that halted it or would have (verification, install, rollback). */
  halting: number;
  /** Other errors: counted, not acted on. */
  other: number;
}

/** A failure a machine reported about the release it was offered ("channel/version"). */
export interface Failure {
  release: string;
  /** The error means the release is bad: halt it. */
  halting: boolean;
  /** Why, for the log: the machine and its error. */
  why: string;
}

/** What one request does to its machine's record, decided by the server from the record as read. */
export interface Decision {
  record: MachineRecord;
  /** Events to keep, oldest first (the newest is record.lastEvent). */
  events: MachineEvent[];
  /** The release offered ("channel/version"): committed only while it is not halted. */
  offer?: string;
  failures: Failure[];
}

/** The server's decision for a machine: from its record (undefined: not known) and the releases halted now. */
export type Decide = (previous: MachineRecord | undefined, halted: ReadonlySet<string>) => Decision;

/** What `apply` committed: the decision, and the releases it halted (not halted before). */
export interface Applied {
  decision: Decision;
  halted: Failure[];
}

/** Everything the admin API shows. */
export interface StateSnapshot {
  halted: string[];
  failures: Map<string, FailureCounts>;
  machines: MachineRecord[];
}

/** The store could not be reached or did not answer in time: the request is answered 503, and may be sent again. */
export class StateUnavailable extends Error {}

export interface ServerState {
  /** The releases halted as far as this server knows now; undefined when it cannot know (then `apply` finds out). */
  halted(): ReadonlySet<string> | undefined;
  /** Decides on the machine's record and commits the decision whole; StateUnavailable when the store cannot. */
  apply(machineId: string, decide: Decide): Promise<Applied>;
  /** Resumes a halted release; false when it was not halted. */
  resume(release: string): Promise<boolean>;
  /** The newest events of a machine, oldest first. */
  events(machineId: string): Promise<MachineEvent[]>;
  snapshot(): Promise<StateSnapshot>;
  /** Why this server cannot answer checks now (its /readyz), or undefined when it can. */
  notReady(): Promise<string | undefined>;
  close(): Promise<void>;
}

/** FileState's bounds. */
export interface FileStateLimits {
  /** Events kept per machine, the newest. */
  maxEventsPerMachine: number;
  /** Machines kept; past it the one seen longest ago is forgotten. */
  maxMachines: number;
  /** events.jsonl is moved to events.jsonl.1 past this size, in bytes. */
  maxEventLogBytes: number;
}

/**
 * A single server's state: machines in memory (the most recently seen maxMachines, each with its
 * newest maxEventsPerMachine events), and with a state directory, halts in halted.json (kept
 * across restarts) and every event appended to events.jsonl (rotated at maxEventLogBytes).
 */
export class FileState implements ServerState {
  /** Machines by id, the one seen longest ago first, each with its newest events. */
  readonly machines = new Map<string, MachineRecord & { events: MachineEvent[] }>();
  private readonly halts = new Set<string>();
  readonly failures = new Map<string, FailureCounts>();
  private eventLogBytes = 0;

  constructor(
    private readonly limits: FileStateLimits,
    private readonly stateDir?: string,
  ) {
    if (!stateDir) return;
    mkdirSync(stateDir, { recursive: true });
    try {
      for (const h of JSON.parse(readFileSync(join(stateDir, 'halted.json'), 'utf8')) as string[]) this.halts.add(h);
    } catch {
      // nothing halted yet
    }
    try {
      this.eventLogBytes = statSync(join(stateDir, 'events.jsonl')).size;
    } catch {
      // no events yet
    }
  }

  halted(): ReadonlySet<string> {
    return this.halts;
  }

  async apply(machineId: string, decide: Decide): Promise<Applied> {
    const known = this.machines.get(machineId);
    const decision = decide(known, this.halts);
    const events = known?.events ?? [];
    events.push(...decision.events);
    if (events.length > this.limits.maxEventsPerMachine) events.splice(0, events.length - this.limits.maxEventsPerMachine);
    this.machines.delete(machineId);
    this.machines.set(machineId, { ...decision.record, events });
    while (this.machines.size > this.limits.maxMachines) this.machines.delete(this.machines.keys().next().value!);
    for (const e of decision.events) this.logEvent(`${JSON.stringify({ machineId, track: decision.record.track, ...e })}\n`);
    const halted: Failure[] = [];
    for (const f of decision.failures) {
      const counts = this.failures.get(f.release) ?? { halting: 0, other: 0 };
      this.failures.set(f.release, counts);
      if (!f.halting) {
        counts.other++;
        continue;
      }
      counts.halting++;
      if (!this.halts.has(f.release)) {
        this.halts.add(f.release);
        halted.push(f);
      }
    }
    if (halted.length > 0) this.saveHalts();
    return { decision, halted };
  }

  async resume(release: string): Promise<boolean> {
    const had = this.halts.delete(release);
    if (had) this.saveHalts();
    return had;
  }

  async events(machineId: string): Promise<MachineEvent[]> {
    return [...(this.machines.get(machineId)?.events ?? [])];
  }

  /** Always ready: the state is in this process. */
  async notReady(): Promise<string | undefined> {
    return undefined;
  }

  async snapshot(): Promise<StateSnapshot> {
    return { halted: [...this.halts], failures: new Map(this.failures), machines: [...this.machines.values()].map(({ events, ...record }) => record) };
  }

  async close(): Promise<void> {}

  private saveHalts(): void {
    if (!this.stateDir) return;
    const f = join(this.stateDir, 'halted.json');
    writeFileSync(`${f}.tmp`, JSON.stringify([...this.halts]));
    renameSync(`${f}.tmp`, f);
  }

  /** Appends to events.jsonl, moving a full one to events.jsonl.1 first: the disk it takes is bounded too. */
  private logEvent(line: string): void {
    if (!this.stateDir) return;
    const file = join(this.stateDir, 'events.jsonl');
    if (this.eventLogBytes + line.length > this.limits.maxEventLogBytes) {
      try {
        renameSync(file, `${file}.1`);
      } catch {
        // nothing to move
      }
      this.eventLogBytes = 0;
    }
    appendFileSync(file, line);
    this.eventLogBytes += Buffer.byteLength(line);
  }
}
