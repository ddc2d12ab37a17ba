/**
 * locksmithd's agent as an explicit state machine: after a boot it gives back a slot it still
 * holds once the machine is healthy; then it waits for a staged update, for a reboot window, takes
 * a slot (etcd-lock), has the update engine finalize, and reboots. Transitions are pure functions,
 * one per edge; delays are a pure function of the state; the driver does the I/O through ports.
 * Any failure leads to waiting and trying again, never to a reboot.
 */
import type { Settings } from './config';
import { windowState } from './window';

export type State =
  /** Booted holding a slot from before the reboot: give it back once healthy. */
  | { name: 'releasing'; attempt: number }
  | { name: 'waiting-for-update' }
  | { name: 'waiting-for-window'; until: number }
  | { name: 'acquiring'; attempt: number }
  | { name: 'finalizing'; holding: boolean }
  /** Reboot requested: the machine goes down from here. */
  | { name: 'rebooting' }
  /** Strategy off: never reboots. */
  | { name: 'disabled' };

/** What the agent needs from the world; tests give stand-ins. */
export interface Ports {
  now(): number;
  /** Waits `ms`, or less when something the agent waits for may have changed (an update staged, a slot freed). */
  sleep(ms: number): Promise<void>;
  log(message: string): void;
  /** Whether update_engine reports UPDATE_STATUS_UPDATED_NEED_REBOOT. */
  updateStaged(): Promise<boolean>;
  /** Whether the machine is healthy after a boot (systemd running, or the named units active). */
  healthy(): Promise<boolean>;
  /** Asks update_engine to switch the boot flags to the staged update. */
  finalize(): Promise<void>;
  /** After the reboot, once healthy: has update_engine mark the boot good and report it, before the slot goes back. */
  settleBoot?(): Promise<void>;
  reboot(): Promise<void>;
  /** etcd-lock only. */
  lock?: {
    holds(): Promise<boolean>;
    /** Takes a slot; false when all are held. */
    acquire(): Promise<boolean>;
    release(): Promise<void>;
  };
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
    case 'releasing':
    case 'acquiring':
      return retryDelay(state.attempt - 1);
    case 'waiting-for-window':
      return Math.max(0, state.until - now);
    case 'waiting-for-update':
      return minute;
    default:
      return 0;
  }
}

// Transitions, one per edge.
export const transitions = {
  start(settings: Settings, holding: boolean): State {
    if (settings.strategy.kind === 'off') return { name: 'disabled' };
    return holding ? { name: 'releasing', attempt: 1 } : { name: 'waiting-for-update' };
  },
  released(): State {
    return { name: 'waiting-for-update' };
  },
  releaseFailed(s: State & { name: 'releasing' }): State {
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
  acquireFailed(s: State & { name: 'acquiring' }): State {
    return { name: 'acquiring', attempt: s.attempt + 1 };
  },
  finalized(): State {
    return { name: 'rebooting' };
  },
  /** Finalizing failed (the slot, if any, was given back): wait for the update engine again. */
  finalizeFailed(): State {
    return { name: 'waiting-for-update' };
  },
};

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs the agent until it asks for a reboot (and then returns), or forever when disabled.
 * `stop` ends the loop (SIGTERM); the slot is not given back then: the machine may be going down.
 */
export async function runAgent(settings: Settings, ports: Ports, stop: { stopped: boolean } = { stopped: false }): Promise<State> {
  let holding = false;
  try {
    holding = ports.lock ? await ports.lock.holds() : false;
  } catch (err) {
    ports.log(`could not read the semaphore at start: ${message(err)}; will look again`);
    holding = true; // assume the worst: try to release, which is harmless when not held
  }
  let state = transitions.start(settings, holding);
  ports.log(`starting: strategy ${settings.strategy.kind}, ${settings.windows.length ? `windows ${settings.windows.map((w) => w.text).join(', ')}` : 'no reboot window'}`);
  while (!stop.stopped) {
    const s = state; // this turn's state, narrowed in each case below
    switch (s.name) {
      case 'disabled':
        ports.log('reboot strategy is off: never rebooting');
        await ports.sleep(Infinity);
        return state;
      case 'releasing':
        try {
          if (!(await ports.healthy())) {
            ports.log('waiting for the machine to be healthy before giving back the reboot slot');
            state = transitions.releaseFailed(s);
          } else {
            await ports.settleBoot?.();
            await ports.lock!.release();
            ports.log('healthy after the reboot: gave back the reboot slot');
            state = transitions.released();
            continue;
          }
        } catch (err) {
          ports.log(`giving back the reboot slot failed: ${message(err)}; retrying`);
          state = transitions.releaseFailed(s);
        }
        break;
      case 'waiting-for-update':
        try {
          if (await ports.updateStaged()) {
            ports.log('an update is staged and needs a reboot');
            state = transitions.checkWindow(settings, ports.now());
            continue;
          }
        } catch (err) {
          ports.log(`cannot ask the update engine: ${message(err)}; retrying`);
        }
        break;
      case 'waiting-for-window':
        if (ports.now() >= s.until) {
          state = transitions.checkWindow(settings, ports.now());
          continue;
        }
        ports.log(`outside the reboot window: waiting until ${new Date(s.until).toISOString()}`);
        break;
      case 'acquiring': {
        // The window may have closed while the slots were full: then wait for the next one.
        const again = transitions.checkWindow(settings, ports.now());
        if (again.name === 'waiting-for-window') {
          state = again;
          continue;
        }
        try {
          if (await ports.lock!.acquire()) {
            ports.log('took a reboot slot');
            state = transitions.acquired();
            continue;
          }
          ports.log('all reboot slots are held; waiting for one');
        } catch (err) {
          ports.log(`taking a reboot slot failed: ${message(err)}; retrying`);
        }
        state = transitions.acquireFailed(s);
        break;
      }
      case 'finalizing': {
        // Re-check the window: a slot taken just as it closed is given back (locksmith rebooted late).
        if (transitions.checkWindow(settings, ports.now()).name === 'waiting-for-window') {
          if (s.holding) await releaseQuietly(ports);
          state = transitions.checkWindow(settings, ports.now());
          continue;
        }
        try {
          await ports.finalize();
          ports.log('the update engine switched the boot flags; rebooting');
          state = transitions.finalized();
          continue;
        } catch (err) {
          ports.log(`the update engine could not finalize: ${message(err)}; not rebooting`);
          if (s.holding) await releaseQuietly(ports);
          state = transitions.finalizeFailed();
        }
        break;
      }
      case 'rebooting':
        await ports.reboot();
        return state;
    }
    await ports.sleep(delayFor(state, ports.now()));
  }
  return state;
}

async function releaseQuietly(ports: Ports): Promise<void> {
  try {
    await ports.lock!.release();
    ports.log('gave back the reboot slot');
  } catch (err) {
    ports.log(`giving back the reboot slot failed: ${message(err)}; it is released after the next boot`);
  }
}
