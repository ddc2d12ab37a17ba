/**
 * The reboot-coordination benchmark: agents on 5 slots, each holding its slot a fixed time,
 * through one real etcd. Two algorithms on the same fleet of 200:
 *  - ours: take a slot; when all are held, wait on a watch that wakes the waiters when a slot is
 *    freed, each after a random pause that doubles with each race it lost (the first to wake
 *    takes it; the others' wakes are cancelled when the watch shows the slots full again);
 *  - locksmith's: poll and compare-and-swap, a failed try (full or lost race) retried after 5 s,
 *    doubling up to 5 min.
 * Then ours at fleet scale, 1,000 and 10,000 agents: finding the update spread over a check
 * interval as update_engine's are (each within 45 min ± 10 min), and all at once (the herd).
 * Time is simulated (a discrete-event clock), so minutes of holding cost no real time; every lock
 * operation is a real request to etcd, counted from etcd's own /metrics, and etcd's CPU is read
 * from /proc. A watch event reaches the other agents when the request that caused it has been
 * answered: the simulated clock counts that request's real time there, so a wake that fires in
 * that gap still tries (and finds the slots full), as on a real fleet. etcd keeps its data in
 * /dev/shm: its fsyncs are not what is measured.
 * Not simulated: the agents' timer retries while waiting (locksmithd looks again after at most
 * 5 min even when its watch said nothing).
 */
import { existsSync, readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { maxWakeJitterMs, wakeJitterAfter } from '../src/lock/daemon';
import { Semaphore } from '../src/lock/semaphore';
import { EtcdCluster } from '../test/support/etcd';

const slots = 5;
/** How long an agent holds its slot: reboot and come back healthy (simulated). */
const holdMs = 60_000;
/** The watch's wake pauses, as locksmithd's: by races lost, up to the longest (src/lock/daemon.ts). */
const levels = (() => {
  let n = 0;
  while (wakeJitterAfter(n) < maxWakeJitterMs) n++;
  return n + 1;
})();
/** update_engine's check interval and its fuzz: a machine finds an update within one interval. */
const checkMs = 45 * 60_000;
const checkFuzzMs = 10 * 60_000;
/** The target: the whole fleet within this much of the lower bound. */
const boundSlack = 0.05;
/** The target: at most this many etcd requests per acquisition (its lock and its unlock together). */
const requestsPerAcquisition = 10;

/** A discrete-event clock: events run in time order; those at one instant run together. */
class Simulation {
  now = 0;
  private heap: Array<{ at: number; seq: number; run: () => Promise<void> }> = [];
  private seq = 0;

  at(at: number, run: () => Promise<void>): void {
    const h = this.heap;
    h.push({ at, seq: this.seq++, run });
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private less(a: number, b: number): boolean {
    const x = this.heap[a]!;
    const y = this.heap[b]!;
    return x.at < y.at || (x.at === y.at && x.seq < y.seq);
  }

  private pop(): { at: number; run: () => Promise<void> } {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(l, m)) m = l;
        if (r < h.length && this.less(r, m)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  async run(): Promise<void> {
    while (this.heap.length > 0) {
      const first = this.pop();
      this.now = first.at;
      const batch = [first.run];
      while (this.heap.length > 0 && this.heap[0]!.at === first.at) batch.push(this.pop().run);
      await Promise.all(batch.map((run) => run()));
    }
  }
}

/** Unary KV requests etcd has served so far (its grpc_server_handled_total), and its database size. */
async function etcdMetrics(url: string): Promise<{ requests: number; dbBytes: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let requests = 0;
  let dbBytes = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('grpc_server_handled_total{') && line.includes('grpc_service="etcdserverpb.KV"')) requests += Number(line.split(' ').pop());
    if (line.startsWith('etcd_mvcc_db_total_size_in_bytes ')) dbBytes = Number(line.split(' ').pop());
  }
  return { requests, dbBytes };
}

const ticks = 100; // USER_HZ on Linux
/** CPU seconds a process has used (utime + stime of /proc/PID/stat). */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3, state
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}

type Start = 'spread' | 'at once';

interface Outcome {
  agents: number;
  start: Start;
  /** Simulated time until every agent has rebooted, in ms. */
  doneMs: number;
  /** The lower bound for any algorithm: agents / slots x hold. */
  boundMs: number;
  requests: number;
  /** etcd's CPU seconds over the run. */
  etcdCpu: number;
  /** The real time the run took, in seconds. */
  realSeconds: number;
  /** The semaphore value's size when all slots are held, in bytes; its version (writes) at the end. */
  valueBytes: number;
  version: number;
  /** etcd's database at the end (no compaction: every version kept). */
  dbBytes: number;
}

interface Etcd {
  client: Etcd3;
  url: string;
  pid: number;
}

/** When each agent finds the update: at 0, or within one check interval of 45 min ± 10 min. */
function startTimes(agents: number, start: Start): number[] {
  return Array.from({ length: agents }, () => (start === 'at once' ? 0 : Math.floor(Math.random() * (checkMs + (Math.random() * 2 - 1) * checkFuzzMs))));
}

async function fleet(etcd: Etcd, group: string, algorithm: 'ours' | 'locksmith', agents: number, start: Start): Promise<Outcome> {
  const { client, url } = etcd;
  const admin = new Semaphore(client, group);
  await admin.setMax(slots);
  const before = await etcdMetrics(url);
  const cpu0 = cpuOf(etcd.pid);
  const t0 = performance.now();
  const sim = new Simulation();
  let done = 0;
  let doneAt = 0;
  let held = 0; // slots held now, as the watch events would tell each agent
  let valueBytes = 0;
  // Both take a slot in one try: locksmith's as it does, ours as locksmithd's (a race lost is waited out).
  const sem = new Semaphore(client, group, { maxAttempts: 1 });

  // ours: the agents waiting for a wake, by races lost (which sets each one's pause). When a
  // slot is freed, each waiter wakes at a random point of [freed, freed + its pause]; the wakes
  // are drawn lazily in time order (the next order statistic of each group of waiters not yet
  // woken), since all but the first few are cancelled by the watch event of the slot taken.
  let waiters: string[][] = Array.from({ length: levels }, () => []);
  interface Group {
    ids: string[];
    last: number;
    end: number;
  }
  let wakes: { groups: Group[]; cancelAt: number } | undefined;
  const lost = new Map<string, number>();
  /** Ends the wakes of a freed slot: those not woken wait again. */
  const endWakes = () => {
    wakes!.groups.forEach((g) => waiters[lost.get(g.ids[0] ?? '') ?? 0]!.push(...g.ids));
    wakes = undefined;
  };
  /** Schedules the next wake of group `g` (each group its own chain of wakes). */
  const nextWake = (g: Group) => {
    if (g.ids.length === 0) return;
    const w = wakes!;
    const at = g.last + (g.end - g.last) * (1 - Math.random() ** (1 / g.ids.length));
    g.last = at;
    sim.at(at, async () => {
      if (wakes !== w) return;
      if (sim.now >= w.cancelAt) return endWakes();
      const k = Math.floor(Math.random() * g.ids.length);
      const id = g.ids[k]!;
      g.ids[k] = g.ids[g.ids.length - 1]!;
      g.ids.pop();
      nextWake(g);
      await attempt(id, true);
    });
  };
  /** A put showing a free slot: every waiter without a wake pending schedules one. */
  const slotFreed = () => {
    if (wakes && sim.now >= wakes.cancelAt) endWakes();
    wakes ??= { groups: [], cancelAt: Infinity };
    waiters.forEach((ids, level) => {
      if (ids.length === 0) return;
      const g: Group = { ids, last: sim.now, end: sim.now + wakeJitterAfter(level) };
      wakes!.groups.push(g);
      nextWake(g);
    });
    waiters = Array.from({ length: levels }, () => []);
  };

  const finish = (id: string) =>
    sim.at(sim.now + holdMs, async () => {
      await new Semaphore(client, group).unlock(id);
      held--;
      done++;
      doneAt = sim.now;
      if (algorithm === 'ours') slotFreed();
    });
  const attempt = async (id: string, woken = false): Promise<void> => {
    const started = performance.now();
    if (algorithm === 'ours' && !woken && held >= slots) {
      // Its watch shows every slot held: no try is sent (locksmithd's acquire).
      waiters[lost.get(id) ?? 0]!.push(id);
      return;
    }
    try {
      await sem.lock(id);
      if (++held < slots) {
        if (algorithm === 'ours') slotFreed(); // the watch event shows a slot still free
      } else {
        // The others' watches see the slots full once this request is answered: wakes until
        // then still fire.
        if (wakes) wakes.cancelAt = sim.now + (performance.now() - started);
        if (valueBytes === 0) valueBytes = (await client.get(sem.key).exec()).kvs[0]!.value.length;
      }
      finish(id);
    } catch (err) {
      // A race lost: woken by a freed slot to find it taken, or beaten to the write.
      const raceLost = woken || (err as { kind?: string }).kind === 'semaphore_conflict';
      const level = raceLost ? Math.min(levels - 1, (lost.get(id) ?? 0) + 1) : (lost.get(id) ?? 0);
      lost.set(id, level);
      waiters[level]!.push(id);
      // A slot free now: the watch event that showed it is in this agent's hands too.
      if (held < slots) slotFreed();
    }
  };
  const locksmith = (id: string, backoff: number) => async () => {
    try {
      await sem.lock(id);
      held++;
      finish(id);
    } catch {
      sim.at(sim.now + backoff, locksmith(id, Math.min(backoff * 2, 300_000)));
    }
  };

  startTimes(agents, start).forEach((at, i) => {
    const id = `agent-${i}`;
    sim.at(at, algorithm === 'locksmith' ? locksmith(id, 5_000) : () => attempt(id));
  });
  await sim.run();
  if (done !== agents) throw new Error(`${algorithm}: only ${done} of ${agents} agents rebooted`);
  const realSeconds = (performance.now() - t0) / 1000;
  const etcdCpu = cpuOf(etcd.pid) - cpu0;
  const after = await etcdMetrics(url);
  const version = Number((await client.get(sem.key).exec()).kvs[0]!.version);
  return { agents, start, doneMs: doneAt, boundMs: (agents / slots) * holdMs, requests: after.requests - before.requests, etcdCpu, realSeconds, valueBytes, version, dbBytes: after.dbBytes };
}

async function main(): Promise<void> {
  // etcd's data in memory where /dev/shm is: the benchmark counts requests and etcd's CPU, and
  // 10,000 agents' writes one after another would otherwise spend minutes waiting on fsync.
  const tmp = process.env.TMPDIR;
  if (existsSync('/dev/shm')) process.env.TMPDIR = '/dev/shm';
  const cluster = await EtcdCluster.start().finally(() => (tmp === undefined ? delete process.env.TMPDIR : (process.env.TMPDIR = tmp)));
  const etcd: Etcd = { client: new Etcd3({ hosts: cluster.endpoints }), url: cluster.endpoints[0]!, pid: cluster.members[0]!.process!.pid! };
  try {
    const agents = 200;
    const ours = await fleet(etcd, 'bench-ours', 'ours', agents, 'at once');
    const locksmith = await fleet(etcd, 'bench-locksmith', 'locksmith', agents, 'at once');
    const minutes = (ms: number) => `${(ms / 60_000).toFixed(1)} min`;
    console.log(`\n6. reboot coordination: ${agents} agents, ${slots} slots, each holding its slot ${holdMs / 1000} s, one real etcd (simulated time, real requests)`);
    console.log(`   ours (watch, one wake per freed slot)   all rebooted after ${minutes(ours.doneMs)}, ${(ours.requests / agents).toFixed(1)} etcd requests per acquisition`);
    console.log(`   locksmith (poll + CAS, 5 s doubling)    all rebooted after ${minutes(locksmith.doneMs)}, ${(locksmith.requests / agents).toFixed(1)} etcd requests per acquisition`);
    console.log(`   ratio                                   ${(locksmith.doneMs / ours.doneMs).toFixed(2)}x faster, ${(locksmith.requests / ours.requests).toFixed(2)}x the requests for locksmith`);
    console.log(`   (lower bound for any algorithm: ${minutes((agents / slots) * holdMs)})`);

    console.log(`   at fleet scale, ours: agents finding the update within ${checkMs / 60_000} min ± ${checkFuzzMs / 60_000} min (spread), or all at once`);
    const outcomes: Outcome[] = [];
    for (const n of [1_000, 10_000]) {
      for (const start of ['spread', 'at once'] as const) {
        const o = await fleet(etcd, `bench-${n}-${start === 'spread' ? 'spread' : 'herd'}`, 'ours', n, start);
        outcomes.push(o);
        console.log(
          `   ${String(n).padStart(6)} agents, ${start.padEnd(7)}  ${minutes(o.doneMs)} (${((o.doneMs / o.boundMs - 1) * 100).toFixed(2)}% over the bound ${minutes(o.boundMs)}), ` +
            `${(o.requests / n).toFixed(2)} requests per acquisition, etcd CPU ${o.etcdCpu.toFixed(1)} s (${((o.etcdCpu / n) * 1000).toFixed(2)} ms per acquisition), ` +
            `value ${o.valueBytes} bytes when full, version ${o.version}, etcd db ${(o.dbBytes / 1e6).toFixed(1)} MB; ${o.realSeconds.toFixed(0)} s real`,
        );
      }
    }
    const worst = (f: (o: Outcome) => number) => Math.max(...outcomes.map(f));
    const over = worst((o) => o.doneMs / o.boundMs - 1);
    const perAcq = worst((o) => o.requests / o.agents);
    console.log(`   target: 1,000 and 10,000 agents, spread or at once, within ${boundSlack * 100}% of the lower bound (worst ${(over * 100).toFixed(2)}%): ${over <= boundSlack ? 'met' : 'MISSED'}`);
    console.log(`   target: at most ${requestsPerAcquisition} etcd requests per acquisition at every size (worst ${perAcq.toFixed(2)}): ${perAcq <= requestsPerAcquisition ? 'met' : 'MISSED'}`);
  } finally {
    etcd.client.close();
    cluster.stop();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
