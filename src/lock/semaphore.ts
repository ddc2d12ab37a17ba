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

/**
 * A semaphore value as read from etcd and validated (see parseSemaphoreValue): every reader gets
 * this type, never the raw JSON.
 */
export interface SemaphoreValue {
  /** Slots: 0..semaphoreLimits.maxSlots. */
  total_slots: number;
  /** Holder ids, sorted, distinct, each matching holderIdPattern; at most semaphoreLimits.maxSlots. */
  holders: string[];
}

/**
 * What a semaphore value may hold. The value comes from etcd, which any client with write access
 * can fill with anything; these bounds keep every reader's time and memory small whatever it holds.
 */
export const semaphoreLimits = {
  /** Largest value read, in bytes: maxSlots holders of the longest id fit with room to spare. */
  maxValueBytes: 256 * 1024,
  /** Most slots, and most holders (a lowered total_slots may leave more holders than slots). */
  maxSlots: 1000,
  /** Longest holder id, in characters (machine ids are 32). */
  maxIdLength: 128,
} as const;

/**
 * Holder ids: machine ids (32 hex digits), FleetLock client ids, host-like names. Printable and
 * free of spaces, so `status` can print them as they are.
 */
export const holderIdPattern = new RegExp(`^[A-Za-z0-9._:@-]{1,${semaphoreLimits.maxIdLength}}$`);

/** Names the FleetLock protocol allows for groups. */
export const groupPattern = /^[a-zA-Z0-9.-]{1,253}$/;

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
    readonly kind: 'failed_lock_semaphore_full' | 'not_a_holder' | 'semaphore_conflict' | 'corrupt_semaphore' | 'invalid_group' | 'invalid_holder',
    message: string,
    /** The value the refusal was decided on (full, not a holder), so a caller can say more. */
    readonly value?: SemaphoreValue,
  ) {
    super(message);
  }
}

/** A key and value written in the same transaction as a change to the semaphore. */
export interface Alongside {
  key: string;
  value: string;
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
    return { value: parseSemaphoreValue(kv.value, this.key), version: kv.version };
  }

  /**
   * Applies `change` to the value and writes it if the key has not changed since it was read;
   * otherwise retries. `change` returns undefined for "no write needed". A first lost race costs
   * one request, not two: the transaction that fails returns the key as it is now, so a racer
   * for the last slot finds it taken without reading again.
   */
  private async update<T>(change: (v: SemaphoreValue) => { next?: SemaphoreValue; result: T }, alongside: readonly Alongside[] = []): Promise<T> {
    let current = await this.read();
    for (let attempt = 1; ; attempt++) {
      const { next, result } = change(current.value);
      if (!next) return result;
      const puts = [this.client.put(this.key).value(JSON.stringify(next)), ...alongside.map((a) => this.client.put(a.key).value(a.value))];
      const txn = await this.client.if(this.key, 'Version', '==', current.version).then(...puts).else(this.client.get(this.key)).commit();
      if (txn.succeeded) return result;
      if (attempt >= this.maxAttempts) {
        throw new SemaphoreError('semaphore_conflict', `${this.key} kept changing under ${attempt} attempts; try again`);
      }
      // The first race lost is tried again at once on the value that won (fresh: one request);
      // later ones after a random pause, so the racers spread out, and a read (the value that
      // won is stale by then). The key gone (deleted under us): read again, which creates it.
      const kv = txn.responses[0]?.response_range?.kvs[0];
      if (attempt === 1 && kv) {
        current = { value: parseSemaphoreValue(kv.value, this.key), version: kv.version };
      } else {
        await sleep(Math.random() * Math.min(this.maxBackoffMs, 10 * 2 ** attempt));
        current = await this.read();
      }
    }
  }

  /**
   * Takes a slot for `id`. Already a holder: success without a write. No slot free: SemaphoreError
   * full. `alongside` is written in the same transaction as the slot, only when the slot is taken.
   */
  async lock(id: string, alongside: readonly Alongside[] = []): Promise<'acquired' | 'already held'> {
    checkHolderId(id);
    return this.update((v) => {
      if (v.holders.includes(id)) return { result: 'already held' as const };
      if (v.holders.length >= v.total_slots) {
        throw new SemaphoreError('failed_lock_semaphore_full', `all ${v.total_slots} semaphore slots are held (${v.holders.join(', ')})`, v);
      }
      return { next: { ...v, holders: [...v.holders, id].sort() }, result: 'acquired' as const };
    }, alongside);
  }

  /** Gives back `id`'s slot; an error when `id` holds none. */
  async unlock(id: string): Promise<void> {
    checkHolderId(id);
    return this.update((v) => {
      if (!v.holders.includes(id)) throw new SemaphoreError('not_a_holder', `${id} does not hold a slot`, v);
      return { next: { ...v, holders: v.holders.filter((h) => h !== id) }, result: undefined };
    });
  }

  /** Gives back `id`'s slot if it holds one (FleetLock's steady-state); true when it did. */
  unlockIfHeld(id: string): Promise<boolean> {
    return this.update((v) => (v.holders.includes(id) ? { next: { ...v, holders: v.holders.filter((h) => h !== id) }, result: true } : { result: false }));
  }

  /** Sets the number of slots; holders stay (there may be more than slots until some unlock). */
  async setMax(max: number): Promise<{ old: number; max: number }> {
    if (!Number.isSafeInteger(max) || max < 0 || max > semaphoreLimits.maxSlots) {
      throw new SemaphoreError('corrupt_semaphore', `invalid number of slots: ${max} (want 0 to ${semaphoreLimits.maxSlots})`);
    }
    return this.update((v) => ({ next: v.total_slots === max ? undefined : { ...v, total_slots: max }, result: { old: v.total_slots, max } }));
  }
}

/** Refuses an id that the semaphore could not hold (it would make the value corrupt). */
export function checkHolderId(id: string): void {
  if (!holderIdPattern.test(id)) {
    throw new SemaphoreError('invalid_holder', `invalid holder id ${JSON.stringify(id.slice(0, semaphoreLimits.maxIdLength + 1))}: use 1 to ${semaphoreLimits.maxIdLength} letters, digits, ".", "_", ":", "@" or "-"`);
  }
}

/**
 * The one parser of a semaphore value from etcd. Size is checked before the text is parsed, the
 * holder count before the holders are looked at, so a hostile value costs at most
 * semaphoreLimits.maxValueBytes of parsing. Anything but a well-formed value is a
 * SemaphoreError corrupt_semaphore naming `key` and what is wrong: no holder is dropped or
 * guessed, so a caller never grants a slot on a value it did not fully understand.
 * `holders: null` (locksmith's fresh value) is no holders; unsorted holders are sorted.
 */
export function parseSemaphoreValue(raw: Buffer | string, key: string): SemaphoreValue {
  const corrupt = (what: string) => new SemaphoreError('corrupt_semaphore', `${key} is corrupt: ${what}`);
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
  if (size > semaphoreLimits.maxValueBytes) throw corrupt(`the value is ${size} bytes, more than the ${semaphoreLimits.maxValueBytes} a semaphore may hold`);
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw corrupt(`not JSON (${(err as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw corrupt('not a JSON object');
  const o = v as { total_slots?: unknown; holders?: unknown };
  const slots = o.total_slots;
  if (typeof slots !== 'number' || !Number.isSafeInteger(slots) || slots < 0 || slots > semaphoreLimits.maxSlots) {
    throw corrupt(`total_slots is ${JSON.stringify(slots)?.slice(0, 40) ?? 'missing'}, want an integer from 0 to ${semaphoreLimits.maxSlots}`);
  }
  if (o.holders !== null && !Array.isArray(o.holders)) throw corrupt(`holders is ${o.holders === undefined ? 'missing' : 'not a list'}`);
  const list: unknown[] = o.holders ?? [];
  if (list.length > semaphoreLimits.maxSlots) throw corrupt(`${list.length} holders, more than the ${semaphoreLimits.maxSlots} allowed`);
  const seen = new Set<string>();
  list.forEach((h, i) => {
    if (typeof h !== 'string') throw corrupt(`holder ${i} is ${h === null ? 'null' : typeof h}, not a string`);
    if (!holderIdPattern.test(h)) throw corrupt(`holder ${i} ${JSON.stringify(h.slice(0, 40))}${h.length > 40 ? '...' : ''} is not a valid id`);
    if (seen.has(h)) throw corrupt(`holder ${JSON.stringify(h)} is listed twice`);
    seen.add(h);
  });
  return { total_slots: slots, holders: [...seen].sort() };
}
