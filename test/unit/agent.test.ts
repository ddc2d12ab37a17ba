/** Walking locksmithd's agent through its states with stand-in ports and a simulated clock. */
import { delayFor, retryDelay, runAgent, transitions } from '../../src/lock/agent';
import type { Ports } from '../../src/lock/agent';
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
  expect((await runAgent(settings({ REBOOT_STRATEGY: 'reboot' }), w.ports)).name).toBe('rebooting');
  expect(w.events).toEqual(['staged:false', 'sleep 60s', 'staged:true', 'finalize:true', 'reboot at 2026-11-19T12:01:00.000Z']);
});

test('etcd-lock after a boot: release once healthy, then wait for a slot with backoff, finalize, reboot', async () => {
  const w = world('2026-11-19T12:00:00Z', { holds: [true], healthy: [false, false, true], acquire: [false, false, true] });
  await runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock' }), w.ports);
  expect(w.events).toEqual([
    'holds:true',
    'healthy:false', 'sleep 5s', 'healthy:false', 'sleep 10s', 'healthy:true', 'release:true',
    'staged:true',
    'acquire:false', 'sleep 5s', 'acquire:false', 'sleep 10s', 'acquire:true',
    'finalize:true', 'reboot at 2026-11-19T12:00:30.000Z',
  ]);
});

test('after a boot, the update engine marks and reports the boot before the slot goes back; a failure keeps the slot and retries', async () => {
  const w = world('2026-11-19T12:00:00Z', { holds: [true], settle: [new Error('GPT write failed'), true], staged: [false] });
  const stop = { stopped: false };
  const done = runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock' }), { ...w.ports, sleep: async (ms) => void (w.events.push(`sleep ${ms / 1000}s`), (stop.stopped = w.events.includes('staged:false'))) }, stop);
  await done;
  expect(w.events).toEqual(['holds:true', 'healthy:true', 'settle:error', 'sleep 5s', 'healthy:true', 'settle:true', 'release:true', 'staged:false', 'sleep 60s']);
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

test('a failed finalize gives the slot back and does not reboot', async () => {
  const w = world('2026-11-19T12:00:00Z', { finalize: [new Error('no staged update')], staged: [true, false] });
  const stop = { stopped: false };
  const ports = { ...w.ports, sleep: async (ms: number) => ((stop.stopped = true), void w.events.push(`sleep ${ms / 1000}s`)) };
  expect((await runAgent(settings({ REBOOT_STRATEGY: 'etcd-lock' }), ports, stop)).name).toBe('waiting-for-update');
  expect(w.events).toEqual(['holds:false', 'staged:true', 'acquire:true', 'finalize:error', 'release:true', 'sleep 60s']);
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
