/** The etcd v3 semaphore against a real etcd: semantics, and safety under 100 concurrent clients. */
import { Etcd3 } from 'etcd3';
import { Semaphore, SemaphoreError } from '../../src/lock/semaphore';
import type { SemaphoreValue } from '../../src/lock/semaphore';
import { EtcdCluster, haveEtcd } from '../support/etcd';

const describeWithEtcd = haveEtcd ? describe : describe.skip;
if (!haveEtcd) test.skip('semaphore tests need etcd (Debian etcd-server); CI installs it', () => undefined);

describeWithEtcd('semaphore', () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  beforeAll(async () => {
    etcd = await EtcdCluster.start();
    client = new Etcd3({ hosts: etcd.endpoints });
  }, 30_000);
  afterAll(() => {
    client.close();
    etcd.stop();
  });

  test('created as Airlock creates it, under Airlock\'s key', async () => {
    const s = new Semaphore(client, 'fresh');
    await s.init();
    expect(s.key).toBe('com.coreos.airlock/groups/fresh/v1/semaphore');
    expect(JSON.parse((await client.get(s.key).string())!)).toEqual({ total_slots: 1, holders: [] });
  });

  test('lock, lock again, full, unlock, unlock a non-holder', async () => {
    const s = new Semaphore(client, 'basics');
    expect(await s.lock('a')).toBe('acquired');
    const { version } = await s.read();
    expect(await s.lock('a')).toBe('already held');
    expect((await s.read()).version).toBe(version); // no write for a holder locking again
    await expect(s.lock('b')).rejects.toMatchObject({ kind: 'failed_lock_semaphore_full', message: 'all 1 semaphore slots are held (a)' });
    expect(await s.setMax(2)).toEqual({ old: 1, max: 2 });
    expect(await s.lock('b')).toBe('acquired');
    expect((await s.read()).value).toEqual({ total_slots: 2, holders: ['a', 'b'] });
    await s.unlock('a');
    await expect(s.unlock('a')).rejects.toMatchObject({ kind: 'not_a_holder' });
    expect(await s.unlockIfHeld('a')).toBe(false);
    expect(await s.unlockIfHeld('b')).toBe(true);
  });

  test('shares state with Airlock: reads what it wrote', async () => {
    const s = new Semaphore(client, 'shared');
    await client.put(s.key).value(JSON.stringify({ total_slots: 3, holders: ['zincati-node'] }));
    expect(await s.lock('bootsmith-node')).toBe('acquired');
    expect(JSON.parse((await client.get(s.key).string())!)).toEqual({ total_slots: 3, holders: ['bootsmith-node', 'zincati-node'] });
  });

  test('a corrupt value is a clear error', async () => {
    const s = new Semaphore(client, 'corrupt');
    await client.put(s.key).value('{not json');
    await expect(s.lock('a')).rejects.toMatchObject({ kind: 'corrupt_semaphore' });
  });

  test('group names as FleetLock allows them', () => {
    expect(() => new Semaphore(client, 'bad/group')).toThrow(SemaphoreError);
  });

  test('100 concurrent clients on 3 slots: never more holders than slots, none lost or duplicated', async () => {
    const s0 = new Semaphore(client, 'safety');
    await s0.setMax(3);
    const clients = Array.from({ length: 10 }, () => new Etcd3({ hosts: etcd.endpoints }));
    const violations: string[] = [];
    let previous: string[] = [];
    const added = new Map<string, number>();
    const removed = new Map<string, number>();
    let revisions = 0;
    const watcher = await client.watch().key(s0.key).create();
    watcher.on('put', (kv) => {
      revisions++;
      const value = JSON.parse(kv.value.toString()) as SemaphoreValue;
      if (new Set(value.holders).size !== value.holders.length) violations.push(`duplicate holder at ${kv.mod_revision}`);
      if (value.holders.length > value.total_slots) violations.push(`${value.holders.length} holders > ${value.total_slots} slots at ${kv.mod_revision}`);
      for (const h of value.holders) if (!previous.includes(h)) added.set(h, (added.get(h) ?? 0) + 1);
      for (const h of previous) if (!value.holders.includes(h)) removed.set(h, (removed.get(h) ?? 0) + 1);
      previous = value.holders;
    });
    const acquired = new Map<string, number>();
    const released = new Map<string, number>();
    // Run until 150 slots have changed hands (a safety test, not a speed test; the time cap only stops a hang).
    let total = 0;
    const target = 150;
    const cap = Date.now() + 45_000;
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const id = `machine-${i}`;
        const s = new Semaphore(clients[i % clients.length]!, 'safety');
        while (total < target && Date.now() < cap) {
          try {
            if ((await s.lock(id)) === 'acquired') {
              acquired.set(id, (acquired.get(id) ?? 0) + 1);
              total++;
            }
            await new Promise((r) => setTimeout(r, 5));
            await s.unlock(id);
            released.set(id, (released.get(id) ?? 0) + 1);
          } catch (err) {
            if (!(err instanceof SemaphoreError) || err.kind !== 'failed_lock_semaphore_full') throw err;
            await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
          }
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 300)); // let the watcher catch up
    await watcher.cancel();
    clients.forEach((c) => c.close());
    expect(violations).toEqual([]);
    expect(previous).toEqual([]);
    expect(total).toBeGreaterThanOrEqual(target);
    // Every acquisition and release the clients saw is exactly one change the watcher saw.
    expect(Object.fromEntries(added)).toEqual(Object.fromEntries(acquired));
    expect(Object.fromEntries(removed)).toEqual(Object.fromEntries(released));
    expect(revisions).toBeGreaterThan(total);
  }, 90_000);
});
