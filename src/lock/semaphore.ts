/**
 * The fleet's reboot semaphore in etcd v3, stored as Airlock stores it so bootsmith, Airlock and
 * Zincati nodes share one lock: key `com.coreos.airlock/groups/<group>/v1/semaphore`, value
 * `{"total_slots":N,"holders":[ids]}`. Every change is a transaction that compares the key's
 * version with the one read; a lost race is read again and retried (bounded, with jitter).
 *
 * Beside it, each running agent keeps a presence key on a lease (gone when the agent is), and a
 * last-seen time, so `status` can tell live holders from stale ones.
 */
import type { Etcd3 } from 'etcd3';

export interface SemaphoreValue {
  total_slots: number;
  /** Holder ids, sorted. */
  holders: string[];
}

/** Names the FleetLock protocol allows for groups. */
export const groupPattern = /^[a-zA-Z0-9.-]+$/;

export const defaultGroup = 'default';

/** Go's url.QueryEscape, as Airlock escapes group names in keys. */
function queryEscape(s: string): string {
  return encodeURIComponent(s).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function groupPrefix(group: string): string {
  return `com.coreos.airlock/groups/${queryEscape(group)}/v1`;
}

/** Failures a caller branches on; `kind` is FleetLock's low-cardinality error kind. */
export class SemaphoreError extends Error {
  constructor(
    readonly kind: 'failed_lock_semaphore_full' | 'not_a_holder' | 'semaphore_conflict' | 'corrupt_semaphore' | 'invalid_group',
    message: string,
  ) {
    super(message);
  }
}

export interface SemaphoreOptions {
  /** Attempts at one change when other writers keep winning the race. Default 20. */
  maxAttempts?: number;
  /** Longest pause between attempts, in ms (full jitter). Default 200. */
  maxBackoffMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Semaphore {
  readonly key: string;
  private readonly maxAttempts: number;
  private readonly maxBackoffMs: number;

  constructor(
    private readonly client: Etcd3,
    readonly group: string = defaultGroup,
    options: SemaphoreOptions = {},
  ) {
    if (!groupPattern.test(group)) throw new SemaphoreError('invalid_group', `invalid group name "${group}": use letters, digits, "." and "-"`);
    this.key = `${groupPrefix(group)}/semaphore`;
    this.maxAttempts = options.maxAttempts ?? 20;
    this.maxBackoffMs = options.maxBackoffMs ?? 200;
  }

  /** Creates the semaphore with one slot if it does not exist yet. */
  async init(): Promise<void> {
    const fresh: SemaphoreValue = { total_slots: 1, holders: [] };
    await this.client.if(this.key, 'Version', '==', 0).then(this.client.put(this.key).value(JSON.stringify(fresh))).commit();
  }

  /** The value and the version it was read at (created first if there is none). */
  async read(): Promise<{ value: SemaphoreValue; version: string }> {
    let kv = (await this.client.get(this.key).exec()).kvs[0];
    if (!kv) {
      await this.init();
      kv = (await this.client.get(this.key).exec()).kvs[0];
      if (!kv) throw new SemaphoreError('corrupt_semaphore', `${this.key} vanished while being read`);
    }
    return { value: parse(kv.value.toString('utf8'), this.key), version: kv.version };
  }

  /**
   * Applies `change` to the value and writes it if the key has not changed since it was read;
   * otherwise reads again and retries. `change` returns undefined for "no write needed".
   */
  private async update<T>(change: (v: SemaphoreValue) => { next?: SemaphoreValue; result: T }): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const { value, version } = await this.read();
      const { next, result } = change(value);
      if (!next) return result;
      const txn = await this.client.if(this.key, 'Version', '==', version).then(this.client.put(this.key).value(JSON.stringify(next))).commit();
      if (txn.succeeded) return result;
      if (attempt >= this.maxAttempts) {
        throw new SemaphoreError('semaphore_conflict', `${this.key} kept changing under ${attempt} attempts; try again`);
      }
      await sleep(Math.random() * Math.min(this.maxBackoffMs, 10 * 2 ** attempt));
    }
  }

  /** Takes a slot for `id`. Already a holder: success without a write. No slot free: SemaphoreError full. */
  lock(id: string): Promise<'acquired' | 'already held'> {
    return this.update((v) => {
      if (v.holders.includes(id)) return { result: 'already held' as const };
      if (v.holders.length >= v.total_slots) {
        throw new SemaphoreError('failed_lock_semaphore_full', `all ${v.total_slots} semaphore slots are held (${v.holders.join(', ')})`);
      }
      return { next: { ...v, holders: [...v.holders, id].sort() }, result: 'acquired' as const };
    });
  }

  /** Gives back `id`'s slot; an error when `id` holds none. */
  unlock(id: string): Promise<void> {
    return this.update((v) => {
      if (!v.holders.includes(id)) throw new SemaphoreError('not_a_holder', `${id} does not hold a slot`);
      return { next: { ...v, holders: v.holders.filter((h) => h !== id) }, result: undefined };
    });
  }

  /** Gives back `id`'s slot if it holds one (FleetLock's steady-state); true when it did. */
  unlockIfHeld(id: string): Promise<boolean> {
    return this.update((v) => (v.holders.includes(id) ? { next: { ...v, holders: v.holders.filter((h) => h !== id) }, result: true } : { result: false }));
  }

  /** Sets the number of slots; holders stay (there may be more than slots until some unlock). */
  setMax(max: number): Promise<{ old: number; max: number }> {
    if (!Number.isSafeInteger(max) || max < 0) throw new SemaphoreError('corrupt_semaphore', `invalid number of slots: ${max}`);
    return this.update((v) => ({ next: v.total_slots === max ? undefined : { ...v, total_slots: max }, result: { old: v.total_slots, max } }));
  }
}

function parse(text: string, key: string): SemaphoreValue {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new SemaphoreError('corrupt_semaphore', `${key} does not hold JSON: ${(err as Error).message}`);
  }
  const o = v as Partial<SemaphoreValue>;
  if (typeof o !== 'object' || o === null || !Number.isSafeInteger(o.total_slots) || !(o.holders === null || Array.isArray(o.holders))) {
    throw new SemaphoreError('corrupt_semaphore', `${key} is not a semaphore: ${text.slice(0, 200)}`);
  }
  const holders = (o.holders ?? []).filter((h): h is string => typeof h === 'string');
  return { total_slots: o.total_slots!, holders: [...holders].sort() };
}
