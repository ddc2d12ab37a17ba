/**
 * locksmithd put together: the agent with its ports on D-Bus (update_engine, logind, systemd) and
 * etcd (the semaphore, a presence lease). The agent's waits end early when something it waits for
 * may have changed: a StatusUpdate from update_engine, or a change of the semaphore (watched, not
 * polled).
 */
import type { MessageBus } from 'dbus-next';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import * as dbus from 'dbus-next';
import { FinalizeRefused, runAgent } from './agent';
import type { AgentOptions, Ports, State } from './agent';
import type { Settings } from './config';
import { logindReboot, needReboot, updateEngineClient, updateEngineError } from './dbus-ports';
import { isHealthy } from '../system/systemd';
import type { Systemd } from '../system/systemd';
import { liveness, reportAlive } from './presence';
import { Semaphore, checkHolderId, parseSemaphoreValue } from './semaphore';
import type { SemaphoreValue } from './semaphore';
import type { LogFn } from '../report/log';
import type { LockMetrics } from '../report/metrics';

/** Time for the agent; tests give one that jumps instead of waiting. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`, or when `wake` is called, whichever is first. */
  sleep(ms: number, wake: { wake?: () => void }): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, wake) =>
    new Promise((resolve) => {
      const timer = ms === Infinity ? undefined : setTimeout(resolve, ms);
      wake.wake = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
    }),
};

export interface DaemonDeps {
  /** The bus of update_engine and logind (the system bus on a machine). */
  bus: MessageBus;
  /** systemd, for the health gate; undefined: the machine counts as healthy at once. */
  systemd: Systemd | undefined;
  /** etcd, for the etcd-lock strategy. */
  etcd: Etcd3 | undefined;
  machineId: string;
  clock?: Clock;
  log: LogFn;
  /** Counts lock attempts and etcd errors (--metrics-listen). */
  metrics?: LockMetrics;
  /** Port time limits (tests shorten them). */
  agent?: Pick<AgentOptions, 'timeouts'>;
}

export interface Daemon {
  /** Resolves with the final state: `reboot-requested` once logind accepted the reboot. Never rejects. */
  done: Promise<State>;
  stop(): Promise<void>;
}

/** Frees the holders that are not alive and were last seen more than `ageMs` ago (or never); how many. */
export async function reclaimStale(etcd: Etcd3, semaphore: Semaphore, ageMs: number, now: number, log: LogFn): Promise<number> {
  const { value } = await semaphore.read();
  let freed = 0;
  for (const l of await liveness(etcd, semaphore.group, value.holders)) {
    if (l.alive || (l.lastSeen && now - l.lastSeen.getTime() <= ageMs)) continue;
    if (await semaphore.unlockIfHeld(l.id)) {
      freed++;
      log(`reclaimed the reboot slot of ${l.id}: ${l.lastSeen ? `silent since ${l.lastSeen.toISOString()}` : 'never seen'}`, 'warning');
    }
  }
  return freed;
}

/**
 * Longest random pause before a waiter goes for a freed slot, in ms, while it has not lost a
 * race for one. Each race lost (woken by a freed slot, it finds the slots full again) doubles
 * that agent's pause, up to maxWakeJitterMs; taking a slot resets it. So a large fleet spreads
 * its tries out by itself: the agents that keep losing (a crowd) wake across a longer stretch,
 * so those that try in the moment between the winner's write and its watch event stay few
 * whatever the fleet's size, while the first of many wakes still comes early (the earliest of
 * many random pauses). A lone waiter never loses a race, and wakes within wakeJitterMs.
 */
export const wakeJitterMs = 250;
/** The longest pause a waiter's wake grows to, in ms. */
export const maxWakeJitterMs = 60_000;

/** The wake pause after `losses` races lost in a row: wakeJitterMs doubled, capped. */
export function wakeJitterAfter(losses: number): number {
  return Math.min(maxWakeJitterMs, wakeJitterMs * 2 ** Math.min(losses, 30));
}

/** How often the last-seen time is refreshed, in ms; the presence lease lives 3 times as long. */
const aliveEvery = 60_000;

export async function startDaemon(settings: Settings, deps: DaemonDeps): Promise<Daemon> {
  const clock = deps.clock ?? realClock;
  const waker: { wake?: () => void } = {};
  const wake = () => waker.wake?.();
  const engine = await updateEngineClient(deps.bus);
  engine.onStatus((op) => {
    if (op === needReboot) wake();
  });

  let lease: Lease | undefined;
  let watcher: Watcher | undefined;
  let alive: NodeJS.Timeout | undefined;
  let lockPort: Ports['lock'];
  let stopped = false;
  let stopWatching = () => undefined as void;
  const strategy = settings.strategy;
  if (strategy.kind === 'etcd-lock') {
    if (!deps.etcd) throw new Error('the etcd-lock strategy needs etcd');
    checkHolderId(deps.machineId); // an id the semaphore cannot hold is a configuration error, found now
    const etcd = deps.etcd;
    const semaphore = new Semaphore(etcd, strategy.group);
    // Taking a slot: a race lost is not retried at once but waited out like a full semaphore
    // (the watch wakes the agent when a slot is free), so a fleet starting at once does not race
    // round after round for the last slots.
    const racer = new Semaphore(etcd, strategy.group, { maxAttempts: 1 });
    const metrics = deps.metrics;
    metrics?.watch(strategy.group);
    /** Races for a slot lost in a row (see wakeJitterMs), and whether this try follows a wake. */
    let losses = 0;
    let racing = false;
    /**
     * The semaphore as the watch last showed it; undefined until it has, and from a corrupt
     * value, a delete or a lost connection on. A try it shows must fail (every slot held by
     * others) is not sent: the watch wakes the agent when a slot is freed. Unless stale holders
     * may be reclaimed, which needs the try.
     */
    let seen: SemaphoreValue | undefined;
    lockPort = {
      holds: async () => (await semaphore.read()).value.holders.includes(deps.machineId),
      acquire: async () => {
        const raced = racing;
        racing = false;
        if (!raced && seen && seen.holders.length >= seen.total_slots && !seen.holders.includes(deps.machineId) && strategy.reclaimStaleAfterMs === undefined) {
          metrics?.request('lock', 'refused', 'failed_lock_semaphore_full');
          return false;
        }
        try {
          await racer.lock(deps.machineId);
          metrics?.request('lock', 'ok');
          losses = 0;
          return true;
        } catch (err) {
          const kind = (err as { kind?: string }).kind;
          if (kind === 'semaphore_conflict') {
            metrics?.request('lock', 'refused', kind);
            losses++;
            return false;
          }
          metrics?.request('lock', kind === 'failed_lock_semaphore_full' ? 'refused' : 'failed', kind ?? 'etcd');
          if (kind !== 'failed_lock_semaphore_full') throw err;
          if (raced) losses++;
          // Opt-in: free holders whose agents have been silent for too long, then try once more.
          if (strategy.reclaimStaleAfterMs !== undefined && (await reclaimStale(etcd, semaphore, strategy.reclaimStaleAfterMs, clock.now(), deps.log)) > 0) {
            return await semaphore.lock(deps.machineId).then(
              () => ((losses = 0), true),
              () => false,
            );
          }
          return false;
        }
      },
      release: async () => {
        try {
          await semaphore.unlockIfHeld(deps.machineId);
          metrics?.request('unlock', 'ok');
        } catch (err) {
          metrics?.request('unlock', 'failed', (err as { kind?: string }).kind ?? 'etcd');
          throw err;
        }
      },
    };
    // Signs of life: a presence key on a lease, and a last-seen time. Best effort: etcd may be down.
    const say = async () => {
      try {
        if (!lease || lease.revoked()) {
          lease = etcd.lease(Math.round((3 * aliveEvery) / 1000));
          lease.on('lost', () => (lease = undefined));
        }
        await reportAlive(etcd, strategy.group, deps.machineId, await lease.grant());
      } catch (err) {
        metrics?.etcdError('presence');
        deps.log(`could not report this machine alive to etcd: ${(err as Error).message}`, 'warning');
      }
    };
    // Neither waits for etcd: the agent starts at once and finds out for itself, with time limits.
    void say();
    alive = setInterval(() => void say(), aliveEvery);
    // The event carries the new value: wake only when a slot is free, after a random pause so the
    // waiters of a fleet do not all race for it at once. A later event showing the slots full
    // again cancels a pending wake: someone took the slot. A corrupt value wakes the agent, whose
    // own read then fails closed and says why.
    let pending: NodeJS.Timeout | undefined;
    const onPut = (kv: { value: Buffer }) => {
      seen = undefined;
      try {
        const v = parseSemaphoreValue(kv.value, semaphore.key);
        seen = v;
        if (v.holders.length >= v.total_slots) {
          clearTimeout(pending);
          pending = undefined;
          return;
        }
      } catch {
        // corrupt: let the agent look for itself
      }
      if (!pending) pending = setTimeout(() => ((pending = undefined), (racing = true), wake()), Math.random() * wakeJitterAfter(losses));
    };
    void etcd
      .watch()
      .key(semaphore.key)
      .create()
      .then((w) => {
        watcher = w;
        w.on('put', onPut);
        w.on('delete', () => ((seen = undefined), wake()));
        w.on('disconnected', () => (seen = undefined));
        w.on('error', () => (seen = undefined));
        if (stopped) void w.cancel().catch(() => undefined);
      })
      .catch((err: Error) => {
        metrics?.etcdError('watch');
        deps.log(`cannot watch the semaphore (${err.message}); retrying on a timer instead`, 'warning');
      });
    stopWatching = () => clearTimeout(pending);
  }

  const stopFlag = { stopped: false };
  const ports: Ports = {
    now: () => clock.now(),
    sleep: (ms) => clock.sleep(ms, waker),
    log: deps.log,
    updateStaged: async () => (await engine.currentOperation()) === needReboot,
    healthy: async () => !deps.systemd || (await isHealthy(deps.systemd, settings.healthUnits)),
    finalize: () =>
      engine.finalize().catch((err: unknown) => {
        // Only update_engine's own error answer means "not switched"; no answer leaves it unknown.
        if (err instanceof dbus.DBusError && (err.type === updateEngineError || err.type === 'org.freedesktop.DBus.Error.UnknownMethod')) {
          throw new FinalizeRefused(err.text || err.type, { cause: err });
        }
        throw err;
      }),
    settleBoot: () => engine.markSuccessful(),
    reboot: () => logindReboot(deps.bus),
    ...(lockPort ? { lock: lockPort } : {}),
  };
  const done = runAgent(settings, ports, stopFlag, deps.agent ?? {});
  const cleanup = () => {
    stopped = true;
    if (alive) clearInterval(alive);
    stopWatching();
    // Not awaited: with etcd unreachable these may not settle, and nothing waits on them.
    void watcher?.cancel().catch(() => undefined);
    // The lease is left to expire (not revoked): a reboot should not look like a clean stop.
    lease?.release();
  };
  void done.finally(cleanup).catch((err: Error) => deps.log(`stopping: ${err.message}`, 'error'));
  return {
    done,
    stop: async () => {
      stopFlag.stopped = true;
      wake();
      await done.catch(() => undefined);
    },
  };
}
