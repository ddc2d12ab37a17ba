/**
 * locksmithd's agent as an explicit state machine: after a boot it gives back a slot it still
 * holds once the machine is healthy; then it waits for a staged update, for a reboot window, takes
 * a slot (etcd-lock), has the update engine finalize, and reboots. Transitions are pure functions,
 * one per edge; delays are a pure function of the state; the driver does the I/O through ports.
 *
 * Every port call is bounded in time and may fail; a failure leads to waiting and trying again,
 * never to a reboot the strategy did not allow, never to an exception out of runAgent. The
 * invariants (checked by `invariantViolation`, and by the types of `giveBack`):
 *
 * 1. Never give the slot back while the boot flags may point at a version that has not booted.
 *    Once Finalize was called, the slot is held until the engine answered that it did not switch
 *    the flags (FinalizeRefused), or the machine has rebooted; a Finalize without an answer (lost
 *    reply, timeout, bus down) leaves the flags unknown, and the agent asks again, slot held.
 * 2. A reboot is requested only once the engine switched the flags; a reboot that cannot be
 *    requested (logind down) is retried with the slot held, each failure logged. (There is no way
 *    to undo a finalize over D-Bus, so retrying is the one way out that keeps the invariant.)
 * 3. The slot is otherwise held only on the way to a reboot (acquiring, then finalizing) or after
 *    one until the machine is healthy (releasing): each of those states ends by finalizing or by
 *    giving the slot back, retried until etcd answers.
 */
import type { Settings } from './config';
import { windowState } from './window';
import type { LogFn, LogLevel } from '../report/log';

export type State =
  /** etcd-lock: find out whether this machine holds a slot, and why (see transitions.started). */
  | { name: 'starting'; attempt: number }
  /** Booted holding a slot from before the reboot: give it back once healthy. */
  | { name: 'releasing'; attempt: number }
  | { name: 'waiting-for-update' }
  | { name: 'waiting-for-window'; until: number }
  | { name: 'acquiring'; attempt: number }
  /** About to ask the engine to switch the flags; they are not switched yet. */
  | { name: 'finalizing'; holding: boolean }
  /** Finalize was asked and not answered: the flags may be switched. Asks again (it is idempotent). */
  | { name: 'confirming'; holding: boolean; attempt: number }
  /** The slot was taken for a reboot that is not happening, the flags unswitched: give it back. */
  | { name: 'returning'; attempt: number }
  /** The flags are switched: request the reboot (again, after a failure). */
  | { name: 'rebooting'; attempt: number }
  /** logind accepted the reboot: the machine goes down from here. The agent returns this state. */
  | { name: 'reboot-requested' }
  /** Strategy off: never reboots. */
  | { name: 'disabled' };

/** What the agent needs from the world; tests give stand-ins. */
export interface Ports {
  now(): number;
  /** Waits `ms`, or less when something the agent waits for may have changed (an update staged, a slot freed). */
  sleep(ms: number): Promise<void>;
  log: LogFn;
  /** Whether update_engine reports UPDATE_STATUS_UPDATED_NEED_REBOOT (in this boot). */
  updateStaged(): Promise<boolean>;
  /** Whether the machine is healthy after a boot (systemd running, or the named units active). */
  healthy(): Promise<boolean>;
  /**
   * Asks update_engine to switch the boot flags to the staged update. Resolves once they are
   * switched, also when they already were (the engine's Finalize is idempotent). Rejects with
   * FinalizeRefused when the engine answered that it did not switch them; any other rejection
   * (no answer, timeout, bus error) leaves it unknown whether it did.
   */
  finalize(): Promise<void>;
  /** After the reboot, once healthy: has update_engine mark the boot good and report it, before the slot goes back. */
  settleBoot?(): Promise<void>;
  /** Asks logind to reboot; resolves once the request was accepted. */
  reboot(): Promise<void>;
  /** etcd-lock only. Each call may be repeated after a failure (all three are idempotent). */
  lock?: {
    holds(): Promise<boolean>;
    /** Takes a slot; false when all are held. */
    acquire(): Promise<boolean>;
    release(): Promise<void>;
  };
}

/** The update engine answered Finalize with an error: it did not switch the boot flags. */
export class FinalizeRefused extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FinalizeRefused';
  }
}

/** Longest wait for one port call, in ms; a call that takes longer counts as failed (no answer). */
export interface Timeouts {
  /** Finalize: the engine asks the update server and hashes the staged slot first. Default 300,000. */
  finalizeMs: number;
  /** Every other port (D-Bus, etcd). Default 60,000. */
  callMs: number;
}

export const defaultTimeouts: Timeouts = { finalizeMs: 5 * 60_000, callMs: 60_000 };

export interface AgentOptions {
  timeouts?: Partial<Timeouts>;
  /** Called with each state the agent enters (tests follow the agent with it). */
  onState?(state: State): void;
}

const second = 1000;
const minute = 60 * second;

/** Backoff of locksmith: 5 s doubling up to 5 min. */
export function retryDelay(attempt: number): number {
  return Math.min(5 * minute, 5 * second * 2 ** Math.max(0, attempt - 1));
}

/**
 * How long to wait in a state before looking again (the ports may wake the agent sooner).
 * `attempt` is the try about to be made, so the first retry waits retryDelay(1).
 */
export function delayFor(state: State, now: number): number {
  switch (state.name) {
    case 'starting':
    case 'releasing':
    case 'acquiring':
    case 'confirming':
    case 'returning':
    case 'rebooting':
      return retryDelay(state.attempt - 1);
    case 'waiting-for-window':
      return Math.max(0, state.until - now);
    case 'waiting-for-update':
      return minute;
    default:
      return 0;
  }
}

type In<N extends State['name']> = State & { name: N };

// Transitions, one per edge.
export const transitions = {
  start(settings: Settings): State {
    if (settings.strategy.kind === 'off') return { name: 'disabled' };
    return settings.strategy.kind === 'etcd-lock' ? { name: 'starting', attempt: 1 } : { name: 'waiting-for-update' };
  },
  /**
   * What holding a slot at start means. Not held: nothing to do. Held with an update staged in
   * this boot: locksmithd restarted after taking it, maybe after Finalize, so the flags may be
   * switched: ask Finalize again (confirming). Held and nothing staged: the slot is from before
   * the reboot: give it back once healthy.
   */
  started(holding: boolean, staged: boolean): State {
    if (!holding) return { name: 'waiting-for-update' };
    return staged ? { name: 'confirming', holding: true, attempt: 1 } : { name: 'releasing', attempt: 1 };
  },
  startFailed(s: In<'starting'>): State {
    return { name: 'starting', attempt: s.attempt + 1 };
  },
  released(): State {
    return { name: 'waiting-for-update' };
  },
  releaseFailed(s: In<'releasing'>): State {
    return { name: 'releasing', attempt: s.attempt + 1 };
  },
  /** An update is staged, or we look at the window again: inside it, go on; outside, wait for the next. */
  checkWindow(settings: Settings, now: number): State {
    const w = windowState(new Date(now), settings.windows, settings.timeZone);
    if (!w.inside) return { name: 'waiting-for-window', until: w.at.getTime() };
    return settings.strategy.kind === 'etcd-lock' ? { name: 'acquiring', attempt: 1 } : { name: 'finalizing', holding: false };
  },
  acquired(): State {
    return { name: 'finalizing', holding: true };
  },
  acquireFailed(s: In<'acquiring'>): State {
    return { name: 'acquiring', attempt: s.attempt + 1 };
  },
  /** The window closed before Finalize (a slot taken just as it closed): give the slot back, wait for the next. */
  windowClosed(s: In<'finalizing'>, settings: Settings, now: number): State {
    return s.holding ? { name: 'returning', attempt: 1 } : transitions.checkWindow(settings, now);
  },
  finalized(): State {
    return { name: 'rebooting', attempt: 1 };
  },
  /** The engine answered that it did not switch the flags: give the slot back, wait for an update again. */
  finalizeRefused(s: In<'finalizing' | 'confirming'>): State {
    return s.holding ? { name: 'returning', attempt: 1 } : { name: 'waiting-for-update' };
  },
  /** Finalize got no answer: the flags may be switched; keep the slot and ask again. */
  finalizeUnanswered(s: In<'finalizing' | 'confirming'>): State {
    return { name: 'confirming', holding: s.holding, attempt: s.name === 'confirming' ? s.attempt + 1 : 2 };
  },
  returned(): State {
    return { name: 'waiting-for-update' };
  },
  returnFailed(s: In<'returning'>): State {
    return { name: 'returning', attempt: s.attempt + 1 };
  },
  rebootRequested(): State {
    return { name: 'reboot-requested' };
  },
  rebootFailed(s: In<'rebooting'>): State {
    return { name: 'rebooting', attempt: s.attempt + 1 };
  },
};

/** What is true of the machine and the fleet, as a test or an auditor sees it (the agent only believes). */
export interface Facts {
  /** The boot flags point at a version that has not booted yet. */
  flagsSwitched: boolean;
  /** This machine holds a slot of the semaphore. */
  holding: boolean;
}

/**
 * The invariants above, checked in `state` against `facts`: undefined when they hold, else which
 * is broken. `usesLock`: the strategy is etcd-lock.
 */
export function invariantViolation(state: State, facts: Facts, usesLock: boolean): string | undefined {
  if (usesLock && facts.flagsSwitched && !facts.holding) return `the boot flags are switched but the slot is not held (in ${state.name})`;
  const rebooting = state.name === 'rebooting' || state.name === 'reboot-requested';
  if (rebooting && !facts.flagsSwitched) return `${state.name} although the boot flags are not switched`;
  if (usesLock && (rebooting || state.name === 'confirming') && !facts.holding) return `${state.name} without holding the slot`;
  return undefined;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `call`, or a rejection once `ms` have passed without an answer. */
function bounded<T>(what: string, ms: number, call: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
  });
  let running: Promise<T>;
  try {
    running = call();
  } catch (err) {
    running = Promise.reject(err); // a port that throws instead of rejecting
  }
  return Promise.race([running, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Runs the agent until it has requested a reboot (and then returns), or forever when disabled.
 * `stop` ends the loop (SIGTERM); the slot is not given back then: the machine may be going down.
 * Never rejects: every port failure is logged and retried.
 */
export async function runAgent(settings: Settings, ports: Ports, stop: { stopped: boolean } = { stopped: false }, options: AgentOptions = {}): Promise<State> {
  const timeouts = { ...defaultTimeouts, ...options.timeouts };
  const call = <T>(what: string, fn: () => Promise<T>) => bounded(what, what === 'finalize' ? timeouts.finalizeMs : timeouts.callMs, fn);
  const lock = ports.lock;
  const log = (m: string, level?: LogLevel) => {
    try {
      ports.log(m, level);
    } catch {
      // a log that cannot be written must not stop the agent
    }
  };
  let state = transitions.start(settings);
  const enter = (next: State) => {
    state = next;
    options.onState?.(next);
  };
  options.onState?.(state);
  /** Finalize, from either state that asks for it: the next state by how the engine answered. */
  const askFinalize = async (s: In<'finalizing' | 'confirming'>): Promise<State> => {
    try {
      await call('finalize', () => ports.finalize());
      log('the update engine switched the boot flags; rebooting');
      return transitions.finalized();
    } catch (err) {
      if (err instanceof FinalizeRefused) {
        log(`the update engine did not finalize: ${message(err)}; not rebooting`, 'warning');
        return transitions.finalizeRefused(s);
      }
      log(`finalizing got no answer: ${message(err)}; the boot flags may be switched, so the reboot slot stays held; asking again`, 'warning');
      return transitions.finalizeUnanswered(s);
    }
  };
  log(`starting: strategy ${settings.strategy.kind}, ${settings.windows.length ? `windows ${settings.windows.map((w) => w.text).join(', ')}` : 'no reboot window'}`);
  while (!stop.stopped) {
    const s = state; // this turn's state, narrowed in each case below
    switch (s.name) {
      case 'reboot-requested':
        return state;
      case 'disabled':
        log('reboot strategy is off: never rebooting');
        await ports.sleep(Infinity).catch(() => undefined);
        return state;
      case 'starting':
        try {
          const holding = await call('the semaphore', () => lock!.holds());
          enter(transitions.started(holding, holding && (await call('the update engine', () => ports.updateStaged()))));
          if (state.name === 'confirming') log('holding a reboot slot with an update staged in this boot: asking the update engine to finalize again');
          continue;
        } catch (err) {
          log(`cannot tell whether this machine holds a reboot slot: ${message(err)}; retrying`, 'warning');
          enter(transitions.startFailed(s));
        }
        break;
      case 'releasing':
        try {
          if (!(await call('the health check', () => ports.healthy()))) {
            log('waiting for the machine to be healthy before giving back the reboot slot');
            enter(transitions.releaseFailed(s));
          } else {
            if (ports.settleBoot) await call('the update engine', () => ports.settleBoot!());
            await giveBack(s, lock!, call);
            log('healthy after the reboot: gave back the reboot slot');
            enter(transitions.released());
            continue;
          }
        } catch (err) {
          log(`giving back the reboot slot failed: ${message(err)}; retrying`, 'warning');
          enter(transitions.releaseFailed(s));
        }
        break;
      case 'waiting-for-update':
        try {
          if (await call('the update engine', () => ports.updateStaged())) {
            log('an update is staged and needs a reboot');
            enter(transitions.checkWindow(settings, ports.now()));
            continue;
          }
        } catch (err) {
          log(`cannot ask the update engine: ${message(err)}; retrying`, 'warning');
        }
        break;
      case 'waiting-for-window':
        if (ports.now() >= s.until) {
          enter(transitions.checkWindow(settings, ports.now()));
          continue;
        }
        log(`outside the reboot window: waiting until ${new Date(s.until).toISOString()}`);
        break;
      case 'acquiring': {
        // The window may have closed while the slots were full: then wait for the next one.
        const again = transitions.checkWindow(settings, ports.now());
        if (again.name === 'waiting-for-window') {
          enter(again);
          continue;
        }
        try {
          if (await call('the semaphore', () => lock!.acquire())) {
            log('took a reboot slot');
            enter(transitions.acquired());
            continue;
          }
          log('all reboot slots are held; waiting for one');
        } catch (err) {
          log(`taking a reboot slot failed: ${message(err)}; retrying`, 'warning');
        }
        enter(transitions.acquireFailed(s));
        break;
      }
      case 'finalizing':
        // Re-check the window: a slot taken just as it closed is given back (locksmith rebooted late).
        if (transitions.checkWindow(settings, ports.now()).name === 'waiting-for-window') {
          log('the reboot window closed before finalizing');
          enter(transitions.windowClosed(s, settings, ports.now()));
          continue;
        }
        enter(await askFinalize(s));
        if (state.name !== 'confirming') continue;
        break;
      case 'confirming':
        enter(await askFinalize(s));
        if (state.name !== 'confirming') continue;
        break;
      case 'returning':
        try {
          await giveBack(s, lock!, call);
          log('gave back the reboot slot');
          enter(transitions.returned());
          continue;
        } catch (err) {
          log(`giving back the reboot slot failed: ${message(err)}; retrying`, 'warning');
          enter(transitions.returnFailed(s));
        }
        break;
      case 'rebooting':
        try {
          await call('logind', () => ports.reboot());
          enter(transitions.rebootRequested());
          return state;
        } catch (err) {
          log(`requesting the reboot failed: ${message(err)}; the boot flags are switched, so the reboot slot stays held; retrying`, 'warning');
          enter(transitions.rebootFailed(s));
        }
        break;
    }
    await ports.sleep(delayFor(state, ports.now())).catch(() => undefined);
  }
  return state;
}

/**
 * Gives back the slot. Only in the states where the flags are known not to be switched (after the
 * boot, or after the engine refused or before it was asked): the type keeps every other caller out.
 */
function giveBack(_: In<'releasing' | 'returning'>, lock: NonNullable<Ports['lock']>, call: <T>(what: string, fn: () => Promise<T>) => Promise<T>): Promise<void> {
  return call('the semaphore', () => lock.release());
}
