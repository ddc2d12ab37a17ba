/**
 * The semaphore on a three-member etcd cluster while members fail: the leader is killed, then a
 * second member is stopped (no quorum), then both come back. Every operation either takes effect
 * once or fails with a clear error; every revision of the key, replayed from etcd's history
 * afterwards, keeps the invariant (no more holders than slots, no duplicate holder).
 */
import { Etcd3 } from 'etcd3';
import { Semaphore } from '../../src/lock/semaphore';
import type { SemaphoreValue } from '../../src/lock/semaphore';
import { EtcdCluster, haveEtcd } from '../support/etcd';

if (!haveEtcd) test.skip('fault tests need etcd; CI installs it', () => undefined);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

(haveEtcd ? describe : describe.skip)('semaphore on a failing three-member cluster', () => {
  let cluster: EtcdCluster;
  beforeAll(async () => {
    cluster = await EtcdCluster.start(3);
  }, 60_000);
  afterAll(() => cluster.stop());

  test('the invariant holds through a leader kill and a lost quorum', async () => {
    const endpoints = cluster.members.map((m) => m.clientUrl);
    const admin = new Etcd3({ hosts: endpoints, dialTimeout: 2_000 });
    const s0 = new Semaphore(admin, 'faults');
    await s0.setMax(3);
    const startRevision = (await admin.get(s0.key).exec()).kvs[0]!.mod_revision;

    const errors: string[] = [];
    let stop = false;
    let acquisitions = 0;
    const agents = Array.from({ length: 20 }, async (_, i) => {
      const id = `node-${i}`;
      const client = new Etcd3({ hosts: endpoints, dialTimeout: 2_000 });
      const s = new Semaphore(client, 'faults', { maxAttempts: 5 });
      /** What etcd says, asked until it answers: after a failed call the outcome is read, not guessed. */
      const holds = async () => {
        for (;;) {
          try {
            return (await s.read()).value.holders.includes(id);
          } catch {
            await sleep(100);
          }
        }
      };
      while (!stop) {
        try {
          if ((await s.lock(id)) === 'acquired') acquisitions++;
        } catch (err) {
          const e = err as Error & { kind?: string };
          if (e.kind !== 'failed_lock_semaphore_full') errors.push(e.message);
        }
        if (await holds()) {
          await sleep(20);
          for (;;) {
            try {
              await s.unlockIfHeld(id);
            } catch (err) {
              errors.push((err as Error).message);
            }
            if (!(await holds())) break; // released for certain, whatever the call said
            await sleep(100);
          }
        } else await sleep(10 + Math.random() * 40);
      }
      client.close();
    });

    await sleep(1_500);
    const leader = await cluster.leader();
    expect(leader).toBeDefined();
    cluster.kill(leader!);
    await sleep(2_000);
    const second = cluster.members.find((m) => m.process)!;
    cluster.kill(second); // one member left: no quorum; longer than etcd's request timeout, so writes fail
    await sleep(9_000);
    await Promise.all([cluster.restart(leader!), cluster.restart(second)]);
    await sleep(2_000);
    stop = true;
    await Promise.all(agents);

    // Replay every revision of the key from etcd's history.
    const last = (await admin.get(s0.key).exec()).kvs[0]!;
    const history: SemaphoreValue[] = [];
    const watcher = await admin.watch().key(s0.key).startRevision(startRevision).create();
    await new Promise<void>((resolve) => {
      watcher.on('put', (kv) => {
        history.push(JSON.parse(kv.value.toString()) as SemaphoreValue);
        if (kv.mod_revision === last.mod_revision) resolve();
      });
    });
    await watcher.cancel();
    admin.close();

    expect(history.length).toBeGreaterThan(20);
    const broken = history.filter((v) => v.holders.length > v.total_slots || new Set(v.holders).size !== v.holders.length);
    expect(broken).toEqual([]);
    expect(history[history.length - 1]!.holders).toEqual([]);
    expect(acquisitions).toBeGreaterThan(10);
    // Without quorum, calls failed, each for one of etcd's reasons (which one depends on timing:
    // a fresh run here once saw only connection errors), and nothing else went wrong.
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e).toMatch(/timed out|unavailable|leader|deadline|kept changing|connect/i);
  }, 120_000);
});
