/** Walking locksmithd's agent through its states with stand-in ports and a simulated clock. */
import { FinalizeRefused, delayFor, invariantViolation, retryDelay, runAgent, transitions } from '../../src/lock/agent';
import type { Ports, State } from '../../src/lock/agent';
import { rawSettings, settingsFrom } from '../../src/lock/config';

const settings = (env: Record<string, string>) => settingsFrom(rawSettings([], { LOCKSMITHD_REBOOT_WINDOW_TIMEZONE: 'UTC', ...env }));

interface World {
  ports: Ports;
  events: string[];
  time: () => string;
}

/** A world: `script` answers each port call in order (true/false, or an Error to throw). */
function world(start: string, script: Partial<Record<'staged' | 'healthy' | 'acquire' | 'finalize' | 'holds' | 'release' | 'settle', Array<boolean | Error>>>, withLock = true): World {
  let now = new Date(start).getTime();
  const events: string[] = [];
  const next = (name: keyof typeof script, fallback: boolean) => {
    const v = script[name]?.shift() ?? fallback;
    events.push(`${name}:${v instanceof Error ? 'error' : v}`);
    if (v instanceof Error) throw v;
    return v;
  };
  const ports: Ports = {
    now: () => now,
    sleep: async (ms) => {
      if (ms === Infinity) return;
      events.push(`sleep ${ms / 1000}s`);
      now += ms;
    },
    log: () => undefined,
    updateStaged: async () => next('staged', true),
    healthy: async () => next('healthy', true),
    finalize: async () => void next('finalize', true),
    ...(script.settle ? { settleBoot: async () => void next('settle', true) } : {}),
    reboot: async () => void events.push(`reboot at ${new Date(now).toISOString()}`),
    ...(withLock
      ? {
          lock: {
            holds: async () => next('holds', false),
            acquire: async () => next('acquire', true),
            release: async () => void next('release', true),
          },
        }
      : {}),
  };
  return { ports, events, time: () => new Date(now).toISOString() };
}

test('reboot strategy, no window: finalize, then reboot', async () => {
  const w = world('2026-11-19T12:00:00Z', { staged: [false, true] }, false);
  expect((await runAgent(settings({ REBOOT_STRATEGY: 'reboot' }), w.ports)).name).toBe('reboot-requested');
  expect(w.events).toEqual(['staged:false', 'sleep 60s', 'staged:true', 'finalize:true', 'reboot at 2026-11-19T12:01:00.000Z']);
});

test('etcd-lock after a boot: release once healthy, then wait for a slot with backoff, finalize, reboot', async () => {
  const w = world('2026-11-19T12:00:00Z', { holds: [true], staged: [false], healthy: [false, false, true], acquire: [false, false, true] });
  await runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock' }), w.ports);
  expect(w.events).toEqual([
    'holds:true', 'staged:false',
    'healthy:false', 'sleep 5s', 'healthy:false', 'sleep 10s', 'healthy:true', 'release:true',
    'staged:true',
    'acquire:false', 'sleep 5s', 'acquire:false', 'sleep 10s', 'acquire:true',
    'finalize:true', 'reboot at 2026-11-19T12:00:30.000Z',
  ]);
});

test('after a boot, the update engine marks and reports the boot before the slot goes back; a failure keeps the slot and retries', async () => {
  const w = world('2026-11-19T12:00:00Z', { holds: [true], settle: [new Error('GPT write failed'), true], staged: [false, false] });
  const stop = { stopped: false };
  const done = runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock' }), { ...w.ports, sleep: async (ms) => void (w.events.push(`sleep ${ms / 1000}s`), (stop.stopped = w.events.includes('release:true'))) }, stop);
  await done;
  expect(w.events).toEqual(['holds:true', 'staged:false', 'healthy:true', 'settle:error', 'sleep 5s', 'healthy:true', 'settle:true', 'release:true', 'staged:false', 'sleep 60s']);
});

test('an update outside the window waits for it', async () => {
  const w = world('2026-11-19T12:00:00Z', {});
  await runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock', REBOOT_WINDOW_START: 'Thu 23:00', REBOOT_WINDOW_LENGTH: '1h' }), w.ports);
  expect(w.events).toEqual(['holds:false', 'staged:true', 'sleep 39600s', 'acquire:true', 'finalize:true', 'reboot at 2026-11-19T23:00:00.000Z']);
});

test('the window closes while the slots are full: no late reboot; the next window is used', async () => {
  const w = world('2026-11-19T23:59:30Z', { acquire: [false, false, false, true] });
  await runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock', REBOOT_WINDOW_START: 'Thu 23:00', REBOOT_WINDOW_LENGTH: '1h' }), w.ports);
  expect(w.events).toEqual([
    'holds:false', 'staged:true',
    'acquire:false', 'sleep 5s', 'acquire:false', 'sleep 10s', 'acquire:false', 'sleep 20s',
    'sleep 601195s', // 00:00:05 on Friday: the window has closed; wait for next Thursday 23:00
    'acquire:true', 'finalize:true', 'reboot at 2026-11-26T23:00:00.000Z',
  ]);
});

test('an etcd outage never reboots: it retries until etcd answers', async () => {
  const down = new Error('etcd cluster unavailable');
  const w = world('2026-11-19T12:00:00Z', { acquire: [down, down, down, true] });
  await runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock' }), w.ports);
  expect(w.events.filter((e) => e.startsWith('acquire') || e.startsWith('reboot'))).toEqual(['acquire:error', 'acquire:error', 'acquire:error', 'acquire:true', 'reboot at 2026-11-19T12:00:35.000Z']);
});

test('a finalize the update engine refuses gives the slot back and does not reboot', async () => {
  const w = world('2026-11-19T12:00:00Z', { finalize: [new FinalizeRefused('no staged update')], staged: [true, false] });
  const stop = { stopped: false };
  const ports = { ...w.ports, sleep: async (ms: number) => ((stop.stopped = true), void w.events.push(`sleep ${ms / 1000}s`)) };
  expect((await runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock' }), ports, stop)).name).toBe('waiting-for-update');
  expect(w.events).toEqual(['holds:false', 'staged:true', 'acquire:true', 'finalize:error', 'release:true', 'staged:false', 'sleep 60s']);
});

test('a finalize without an answer keeps the slot and asks again; it is idempotent, so the answer decides', async () => {
  const w = world('2026-11-19T12:00:00Z', { finalize: [new Error('NoReply'), new Error('NoReply'), true] });
  expect((await runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock' }), w.ports)).name).toBe('reboot-requested');
  expect(w.events).toEqual(['holds:false', 'staged:true', 'acquire:true', 'finalize:error', 'sleep 5s', 'finalize:error', 'sleep 10s', 'finalize:true', 'reboot at 2026-11-19T12:00:15.000Z']);
});

test('holding a slot at start with an update staged in this boot (a restart after Finalize): finalize again, then reboot', async () => {
  const w = world('2026-11-19T12:00:00Z', { holds: [true], staged: [true] });
  expect((await runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock' }), w.ports)).name).toBe('reboot-requested');
  expect(w.events).toEqual(['holds:true', 'staged:true', 'finalize:true', 'reboot at 2026-11-19T12:00:00.000Z']);
});

test('strategy off never reboots', async () => {
  const w = world('2026-11-19T12:00:00Z', {}, false);
  expect((await runAgent(settings({ REBOOT_STRATEGY: 'off' }), w.ports)).name).toBe('disabled');
  expect(w.events).toEqual([]);
});

test('delays are a function of the state alone', () => {
  expect([1, 2, 3, 7, 8, 20].map(retryDelay)).toEqual([5000, 10000, 20000, 300000, 300000, 300000]);
  expect(delayFor({ name: 'waiting-for-window', until: 5000 }, 2000)).toBe(3000);
  expect(transitions.acquireFailed({ name: 'acquiring', attempt: 2 })).toEqual({ name: 'acquiring', attempt: 3 });
});

// Every port failing in every state: a simulated machine and fleet (the facts), an agent walked
// through its real transitions, and a fault injected into one port while the agent is in one state.

type PortName = 'holds' | 'updateStaged' | 'healthy' | 'settleBoot' | 'acquire' | 'finalize' | 'release' | 'reboot';
/** throws: fails, nothing happened. hangs: never answers (the agent's time limit ends it). lost-reply: it happened, then the call failed. refused: the engine answered no. */
type Fault = 'throws' | 'hangs' | 'lost-reply' | 'refused';

interface Scenario {
  /** The facts at start. */
  holding: boolean;
  staged: boolean;
  flagsSwitched: boolean;
}

const scenarios: Record<string, Scenario> = {
  /** An update staged, no slot held: the whole way to a reboot. */
  fresh: { holding: false, staged: true, flagsSwitched: false },
  /** Booted into the new version holding the slot: give it back once healthy. */
  afterBoot: { holding: true, staged: false, flagsSwitched: false },
  /** locksmithd restarted after Finalize switched the flags, before the reboot. */
  restartedAfterFinalize: { holding: true, staged: true, flagsSwitched: true },
  /** locksmithd restarted after taking the slot, before Finalize. */
  restartedBeforeFinalize: { holding: true, staged: true, flagsSwitched: false },
};

/** Which port each state calls, and a scenario that reaches it; `via` puts the agent there first. */
const table: Array<{ state: State['name']; port: PortName; scenario: keyof typeof scenarios; faults: Fault[]; via?: { port: PortName; fault: Fault } }> = [
  { state: 'starting', port: 'holds', scenario: 'fresh', faults: ['throws', 'hangs'] },
  { state: 'starting', port: 'updateStaged', scenario: 'restartedAfterFinalize', faults: ['throws', 'hangs'] },
  { state: 'starting', port: 'updateStaged', scenario: 'afterBoot', faults: ['throws', 'hangs'] },
  { state: 'releasing', port: 'healthy', scenario: 'afterBoot', faults: ['throws', 'hangs'] },
  { state: 'releasing', port: 'settleBoot', scenario: 'afterBoot', faults: ['throws', 'hangs', 'lost-reply'] },
  { state: 'releasing', port: 'release', scenario: 'afterBoot', faults: ['throws', 'hangs', 'lost-reply'] },
  { state: 'waiting-for-update', port: 'updateStaged', scenario: 'fresh', faults: ['throws', 'hangs'] },
  { state: 'acquiring', port: 'acquire', scenario: 'fresh', faults: ['throws', 'hangs', 'lost-reply'] },
  { state: 'finalizing', port: 'finalize', scenario: 'fresh', faults: ['throws', 'hangs', 'lost-reply', 'refused'] },
  { state: 'confirming', port: 'finalize', scenario: 'restartedAfterFinalize', faults: ['throws', 'hangs'] },
  { state: 'confirming', port: 'finalize', scenario: 'restartedBeforeFinalize', faults: ['throws', 'hangs', 'lost-reply', 'refused'] },
  { state: 'confirming', port: 'finalize', scenario: 'fresh', faults: ['throws', 'hangs', 'lost-reply', 'refused'], via: { port: 'finalize', fault: 'hangs' } },
  { state: 'returning', port: 'release', scenario: 'fresh', faults: ['throws', 'hangs', 'lost-reply'], via: { port: 'finalize', fault: 'refused' } },
  { state: 'rebooting', port: 'reboot', scenario: 'fresh', faults: ['throws', 'hangs', 'lost-reply'] },
  { state: 'rebooting', port: 'reboot', scenario: 'restartedAfterFinalize', faults: ['throws', 'hangs'] },
];

/** How many calls in a row fail: enough to go through the retry path more than once. */
const failures = 3;

async function walk(scenario: Scenario, inject: { state: State['name']; port: PortName; fault: Fault }, via?: { port: PortName; fault: Fault }) {
  const facts = { ...scenario };
  let now = new Date('2026-11-19T12:00:00Z').getTime();
  let state: State = { name: 'disabled' };
  let fired = 0;
  let viaFired = false;
  let rebootRequests = 0;
  let sleeps = 0;
  const violations: string[] = [];
  const logs: string[] = [];
  const stop = { stopped: false };
  const check = (when: string) => {
    const v = invariantViolation(state, facts, true);
    if (v) violations.push(`${when}: ${v}`);
  };
  /** Runs port `name`'s effect, unless a fault is due now. */
  const port = <T>(name: PortName, effect: () => T): Promise<T> => {
    check(`before ${name}`);
    let fault: Fault | undefined;
    if (via && !viaFired && name === via.port) {
      viaFired = true;
      fault = via.fault;
    } else if (state.name === inject.state && name === inject.port && fired < failures) {
      fired++;
      fault = inject.fault;
    }
    if (fault === 'hangs') return new Promise<T>(() => undefined);
    if (fault === 'throws') return Promise.reject(new Error(`${name} failed`));
    if (fault === 'refused') {
      facts.staged = false; // the engine drops what it will not finalize
      return Promise.reject(new FinalizeRefused('the update server no longer offers it'));
    }
    const result = effect();
    check(`after ${name}`);
    return fault === 'lost-reply' ? Promise.reject(new Error(`${name}: no reply`)) : Promise.resolve(result);
  };
  const ports: Ports = {
    now: () => now,
    sleep: async (ms) => {
      if (++sleeps > 40) stop.stopped = true;
      if (ms !== Infinity) now += ms;
    },
    log: (m) => void logs.push(m),
    updateStaged: () => port('updateStaged', () => facts.staged),
    healthy: () => port('healthy', () => true),
    finalize: () =>
      port('finalize', () => {
        if (!facts.staged) throw new Error('the stand-in engine finalizes only a staged update');
        facts.flagsSwitched = true;
      }),
    settleBoot: () => port('settleBoot', () => undefined),
    reboot: () => port('reboot', () => void rebootRequests++),
    lock: {
      holds: () => port('holds', () => facts.holding),
      acquire: () => port('acquire', () => (facts.holding = true)),
      release: () =>
        port('release', () => {
          if (facts.flagsSwitched) violations.push(`released the slot with the boot flags switched (in ${state.name})`);
          facts.holding = false;
        }),
    },
  };
  const onState = (s: State) => {
    state = s;
    check(`entering ${s.name}`);
  };
  const final = await runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock' }), ports, stop, { onState, timeouts: { callMs: 5, finalizeMs: 5 } });
  return { final, facts, fired, rebootRequests, violations, logs };
}

describe('every port failing in every state', () => {
  const cases = table.flatMap((row) => row.faults.map((fault) => [row.state, row.port, fault, row.scenario, row] as const));
  test.each(cases)('%s: %s %s (%s)', async (stateName, portName, fault, scenarioName, row) => {
    const r = await walk(scenarios[scenarioName]!, { state: stateName, port: portName, fault }, row.via);
    // The fault happened where the table says (no row is vacuous).
    expect(r.fired).toBeGreaterThan(0);
    // Never a broken invariant, never the slot given back with the flags switched.
    expect(r.violations).toEqual([]);
    // Every failure was logged.
    expect(r.logs.filter((l) => /failed|no answer|cannot|did not/.test(l)).length).toBeGreaterThanOrEqual(r.fired > 0 ? 1 : 0);
    // And the agent got out: either the reboot was requested with the flags switched and the slot
    // held, or it is back to waiting with neither.
    if (r.final.name === 'reboot-requested') {
      expect([r.facts.flagsSwitched, r.facts.holding, r.rebootRequests > 0]).toEqual([true, true, true]);
    } else {
      expect([r.final.name, r.facts.flagsSwitched, r.facts.holding]).toEqual(['waiting-for-update', false, false]);
    }
    // A refusal is the only way a staged update does not end in a reboot.
    const refused = fault === 'refused' || row.via?.fault === 'refused';
    if (scenarios[scenarioName]!.staged) expect(r.final.name).toBe(refused ? 'waiting-for-update' : 'reboot-requested');
  });

  test('the table covers every port of every state that calls one', () => {
    const covered = new Set(table.map((r) => `${r.state}:${r.port}`));
    expect([...covered].sort()).toEqual(
      [
        'starting:holds', 'starting:updateStaged',
        'releasing:healthy', 'releasing:settleBoot', 'releasing:release',
        'waiting-for-update:updateStaged', 'acquiring:acquire', 'finalizing:finalize', 'confirming:finalize',
        'returning:release', 'rebooting:reboot',
      ].sort(),
    );
  });
});

test('the invariant check names what is broken', () => {
  expect(invariantViolation({ name: 'waiting-for-update' }, { flagsSwitched: true, holding: false }, true)).toMatch(/flags are switched but the slot is not held/);
  expect(invariantViolation({ name: 'rebooting', attempt: 1 }, { flagsSwitched: false, holding: true }, true)).toMatch(/not switched/);
  expect(invariantViolation({ name: 'confirming', holding: true, attempt: 2 }, { flagsSwitched: false, holding: false }, true)).toMatch(/without holding/);
  expect(invariantViolation({ name: 'rebooting', attempt: 1 }, { flagsSwitched: true, holding: false }, false)).toBeUndefined();
});
