/**
 * The reboot-coordination benchmark: 200 agents, 5 slots, each holding its slot a fixed time,
 * through one real etcd. Two algorithms on the same fleet:
 *  - ours: take a slot; when all are held, wait on a watch that wakes one waiter per freed slot
 *    (the first of randomly delayed wakes; later wakes are cancelled when the slot is taken);
 *  - locksmith's: poll and compare-and-swap, a failed try (full or lost race) retried after 5 s,
 *    doubling up to 5 min.
 * Time is simulated (a discrete-event clock), so locksmith's long backoffs cost no real minutes;
 * every lock operation is a real request to etcd, counted from etcd's own /metrics.
 */
import { Etcd3 } from 'etcd3';
import { Semaphore } from '../src/lock/semaphore';
import { EtcdCluster } from '../test/support/etcd';

const agents = 200;
const slots = 5;
/** How long an agent holds its slot: reboot and come back healthy (simulated). */
const holdMs = 60_000;
/** The watch's wake jitter, as locksmithd's (src/lock/daemon.ts wakeJitterMs). */
const jitterMs = 250;

class Simulation {
  now = 0;
  private queue: Array<{ at: number; run: () => Promise<void> }> = [];

  at(at: number, run: () => Promise<void>): void {
    this.queue.push({ at, run });
  }

  async run(): Promise<void> {
    while (this.queue.length > 0) {
      const t = Math.min(...this.queue.map((e) => e.at));
      this.now = t;
      const batch = this.queue.filter((e) => e.at === t);
      this.queue = this.queue.filter((e) => e.at !== t);
      await Promise.all(batch.map((e) => e.run()));
    }
  }
}

/** Unary KV requests etcd has served so far (its grpc_server_handled_total). */
async function kvRequests(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('grpc_server_handled_total{') && line.includes('grpc_service="etcdserverpb.KV"')) total += Number(line.split(' ').pop());
  }
  return total;
}

interface Outcome {
  /** Simulated time until every agent has rebooted, in ms. */
  doneMs: number;
  requests: number;
}

async function fleet(client: Etcd3, url: string, group: string, algorithm: 'ours' | 'locksmith'): Promise<Outcome> {
  const admin = new Semaphore(client, group);
  await admin.setMax(slots);
  const before = await kvRequests(url);
  const sim = new Simulation();
  let done = 0;
  let doneAt = 0;
  // ours: waiters, and when the slots last became full (a wake scheduled before that is cancelled)
  const waiters = new Set<() => Promise<void>>();
  let fullSince = -1;
  let held = 0; // slots held now, as the watch events would tell each agent

  const sem = new Semaphore(client, group, algorithm === 'locksmith' ? { maxAttempts: 1 } : {});
  const finish = (id: string) =>
    sim.at(sim.now + holdMs, async () => {
      await new Semaphore(client, group).unlock(id);
      held--;
      done++;
      doneAt = sim.now;
      if (algorithm === 'ours') {
        // A slot was freed: every waiter's watch sees it and schedules a wake after a random pause.
        const scheduledAt = sim.now;
        for (const w of [...waiters]) {
          sim.at(sim.now + Math.random() * jitterMs, async () => {
            if (fullSince > scheduledAt || !waiters.has(w)) return; // cancelled: the slot was taken
            await w();
          });
        }
      }
    });

  for (let i = 0; i < agents; i++) {
    const id = `agent-${i}`;
    if (algorithm === 'locksmith') {
      const attempt = (backoff: number) => async () => {
        try {
          await sem.lock(id);
          held++;
          finish(id);
        } catch {
          sim.at(sim.now + backoff, attempt(Math.min(backoff * 2, 300_000)));
        }
      };
      sim.at(0, attempt(5_000));
    } else {
      const attempt = async (): Promise<void> => {
        waiters.delete(waiter);
        try {
          await sem.lock(id);
          if (++held >= slots) fullSince = sim.now;
          finish(id);
        } catch {
          waiters.add(waiter);
        }
      };
      const waiter = () => attempt();
      sim.at(0, attempt);
    }
  }
  await sim.run();
  if (done !== agents) throw new Error(`${algorithm}: only ${done} of ${agents} agents rebooted`);
  return { doneMs: doneAt, requests: (await kvRequests(url)) - before };
}

async function main(): Promise<void> {
  const etcd = await EtcdCluster.start();
  const url = etcd.endpoints[0]!;
  const client = new Etcd3({ hosts: etcd.endpoints });
  try {
    const ours = await fleet(client, url, 'bench-ours', 'ours');
    const locksmith = await fleet(client, url, 'bench-locksmith', 'locksmith');
    const minutes = (ms: number) => `${(ms / 60_000).toFixed(1)} min`;
    console.log(`\n6. reboot coordination: ${agents} agents, ${slots} slots, each holding its slot ${holdMs / 1000} s, one real etcd (simulated time, real requests)`);
    console.log(`   ours (watch, one wake per freed slot)   all rebooted after ${minutes(ours.doneMs)}, ${(ours.requests / agents).toFixed(1)} etcd requests per acquisition`);
    console.log(`   locksmith (poll + CAS, 5 s doubling)    all rebooted after ${minutes(locksmith.doneMs)}, ${(locksmith.requests / agents).toFixed(1)} etcd requests per acquisition`);
    console.log(`   ratio                                   ${(locksmith.doneMs / ours.doneMs).toFixed(2)}x faster, ${(locksmith.requests / ours.requests).toFixed(2)}x the requests for locksmith`);
    console.log(`   (lower bound for any algorithm: ${minutes((agents / slots) * holdMs)})`);
  } finally {
    client.close();
    etcd.stop();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
