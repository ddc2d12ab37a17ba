/**
 * Signs of life of the machines in a group: a running agent keeps a presence key on a lease (it
 * disappears a TTL after the agent stops) and refreshes a last-seen time. A slot taken by hand
 * (`locksmithctl lock`, `reboot`) records the time it was taken as a last-seen time, in the same
 * transaction, so it counts as fresh for a while too. `status --verbose` shows them;
 * `unlock --stale AGE` frees holders that have been silent longer than AGE.
 */
import type { Etcd3 } from 'etcd3';
import { groupPrefix } from './semaphore';
import type { Alongside } from './semaphore';

export interface Liveness {
  id: string;
  /** The agent runs now (its presence key exists). */
  alive: boolean;
  /** When it last said so, if it ever did. */
  lastSeen: Date | undefined;
}

export function presenceKey(group: string, id: string): string {
  return `${groupPrefix(group)}/presence/${id}`;
}

export function seenKey(group: string, id: string): string {
  return `${groupPrefix(group)}/seen/${id}`;
}

/** Etcd reads in flight at once for `liveness`: each may return a value as large as etcd allows. */
const concurrentReads = 8;

/** Longest last-seen value read as a time (an ISO date is 24 characters); longer ones are unreadable. */
const maxSeenBytes = 64;

/**
 * Signs of life of `ids` (a validated semaphore's holders, so at most semaphoreLimits.maxSlots):
 * a few reads at a time, so memory stays small whatever the values hold.
 */
export async function liveness(client: Etcd3, group: string, ids: readonly string[]): Promise<Liveness[]> {
  const out: Liveness[] = new Array(ids.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < ids.length; i = next++) {
      const id = ids[i]!;
      const [alive, seen] = await Promise.all([client.get(presenceKey(group, id)).exists(), client.get(seenKey(group, id)).buffer()]);
      const date = seen && seen.length <= maxSeenBytes ? new Date(seen.toString('utf8')) : undefined;
      out[i] = { id, alive, lastSeen: date && !Number.isNaN(date.getTime()) ? date : undefined };
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrentReads, ids.length) }, worker));
  return out;
}

/** Records that `id` is alive now: a presence key on `leaseId`, and the time. */
export async function reportAlive(client: Etcd3, group: string, id: string, leaseId: string, now = new Date()): Promise<void> {
  await client.put(presenceKey(group, id)).value(now.toISOString()).lease(leaseId).exec();
  await client.put(seenKey(group, id)).value(now.toISOString()).exec();
}

/** The last-seen record of `id` at `now`: written with a slot taken by hand (see Semaphore.lock's `alongside`). */
export function lastSeenRecord(group: string, id: string, now = new Date()): Alongside {
  return { key: seenKey(group, id), value: now.toISOString() };
}

/** Go-style durations: 90s, 30m, 1h30m, 2h. Milliseconds, or undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const units: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let at = 0;
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * units[m[2]!]!;
    at = re.lastIndex;
  }
  return text.length > 0 ? total : undefined;
}
