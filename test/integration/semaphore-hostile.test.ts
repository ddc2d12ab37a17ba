/**
 * Hostile semaphore values in a real etcd: whatever a client with write access put there, every
 * reader answers within seconds and small memory, and a value it does not fully understand is an
 * error naming the key and the fault: no slot is granted or given back on it, nothing is rewritten.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { Semaphore, semaphoreLimits } from '../../src/lock/semaphore';
import { EtcdCluster, haveEtcd } from '../support/etcd';

if (!haveEtcd) test.skip('semaphore tests need etcd (Debian etcd-server); CI installs it', () => undefined);

const bin = join(__dirname, '../../bin/locksmithctl.js');
/** 100,000 short holder ids: about 900 KB, under etcd's default request limit of 1.5 MiB. */
const hundredThousand = JSON.stringify({ total_slots: 1, holders: Array.from({ length: 100_000 }, (_, i) => `m${i}`) });

const hostile: Array<[string, string, RegExp]> = [
  ['100,000 holders', hundredThousand, /the value is \d+ bytes, more than the 262144 a semaphore may hold/],
  ['1,001 well-formed holders', JSON.stringify({ total_slots: 1000, holders: Array.from({ length: 1001 }, (_, i) => `h${i}`) }), /1001 holders, more than the 1000 allowed/],
  ['a number among the holders', JSON.stringify({ total_slots: 3, holders: ['a', 7] }), /holder 1 is number, not a string/],
  ['a null holder', JSON.stringify({ total_slots: 3, holders: [null] }), /holder 0 is null, not a string/],
  ['an object holder', JSON.stringify({ total_slots: 3, holders: [{ id: 'a' }] }), /holder 0 is object, not a string/],
  ['a duplicate holder', JSON.stringify({ total_slots: 3, holders: ['a', 'a'] }), /holder "a" is listed twice/],
  ['an over-long id', JSON.stringify({ total_slots: 3, holders: ['x'.repeat(semaphoreLimits.maxIdLength + 1)] }), /holder 0 "x+"\.\.\. is not a valid id/],
  ['a terminal escape in an id', JSON.stringify({ total_slots: 3, holders: ['\u001b[2Jowned'] }), /holder 0 .* is not a valid id/],
  ['negative slots', JSON.stringify({ total_slots: -1, holders: [] }), /total_slots is -1, want an integer from 0 to 1000/],
  ['a trillion slots', JSON.stringify({ total_slots: 1e12, holders: [] }), /total_slots is 1000000000000/],
  ['slots as text', JSON.stringify({ total_slots: '1', holders: [] }), /total_slots is "1"/],
  ['holders missing', JSON.stringify({ total_slots: 1 }), /holders is missing/],
  ['holders as text', JSON.stringify({ total_slots: 1, holders: 'a' }), /holders is not a list/],
  ['a list, not an object', '[]', /not a JSON object/],
  ['not JSON', '{not json', /not JSON/],
  ['300 KiB of padding', JSON.stringify({ total_slots: 1, holders: [], pad: 'x'.repeat(300 * 1024) }), /the value is \d+ bytes/],
];

(haveEtcd ? describe : describe.skip)('hostile semaphore values', () => {
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

  test.each(hostile.map(([name, value, why], i) => [name, value, why, `hostile-${i}`] as const))('%s: corrupt, named, nothing granted or rewritten', async (_name, value, why, group) => {
    const s = new Semaphore(client, group);
    await client.put(s.key).value(value);
    const corrupt = { kind: 'corrupt_semaphore', message: expect.stringMatching(new RegExp(`^${s.key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is corrupt: ${why.source}`)) };
    await expect(s.read()).rejects.toMatchObject(corrupt);
    await expect(s.lock('a')).rejects.toMatchObject(corrupt);
    await expect(s.unlockIfHeld('a')).rejects.toMatchObject(corrupt);
    await expect(s.setMax(5)).rejects.toMatchObject(corrupt);
    expect(await client.get(s.key).string()).toBe(value);
  });

  test('well-formed values that are not hostile: null holders (locksmith), unsorted holders, 1000 holders', async () => {
    const s = new Semaphore(client, 'benign');
    await client.put(s.key).value(JSON.stringify({ total_slots: 1, holders: null }));
    expect((await s.read()).value).toEqual({ total_slots: 1, holders: [] });
    await client.put(s.key).value(JSON.stringify({ total_slots: 2, holders: ['b', 'a'] }));
    expect((await s.read()).value).toEqual({ total_slots: 2, holders: ['a', 'b'] });
    const many = Array.from({ length: 1000 }, (_, i) => `a1b2c3d4e5f60718293a4b5c6d7e${String(i).padStart(4, '0')}`).sort();
    await client.put(s.key).value(JSON.stringify({ total_slots: 1000, holders: many }));
    expect((await s.read()).value.holders).toEqual(many);
  });

  test('an id the semaphore could not hold is refused before anything is written', async () => {
    const s = new Semaphore(client, 'ids');
    await s.init();
    const before = await client.get(s.key).string();
    for (const id of ['', 'a b', 'x'.repeat(semaphoreLimits.maxIdLength + 1), 'evil\nid']) {
      await expect(s.lock(id)).rejects.toMatchObject({ kind: 'invalid_holder' });
    }
    await expect(s.setMax(semaphoreLimits.maxSlots + 1)).rejects.toMatchObject({ kind: 'corrupt_semaphore' });
    expect(await client.get(s.key).string()).toBe(before);
  });

  test('locksmithctl on 100,000 holders answers within seconds: corrupt, named, exit 1', async () => {
    await client.put(new Semaphore(client, 'huge').key).value(hundredThousand);
    for (const args of [['status'], ['--format', 'json', 'status'], ['lock', 'a'], ['unlock', '--stale', '1h']]) {
      const started = Date.now();
      const r = spawnSync(process.execPath, [bin, '--endpoint', etcd.endpoints[0]!, '--group', 'huge', ...args], { encoding: 'utf8', timeout: 20_000 });
      expect({ args, status: r.status, ms: Date.now() - started }).toMatchObject({ status: 1 }); // names the command and its time when it fails
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^Error (setting value|locking|unlocking): com\.coreos\.airlock\/groups\/huge\/v1\/semaphore is corrupt: the value is \d+ bytes, more than the 262144 a semaphore may hold\n$/);
    }
    expect(await client.get(new Semaphore(client, 'huge').key).string()).toBe(hundredThousand);
  }, 90_000);

  test('locksmithctl status on 1,000 holders (the most allowed) lists them all', async () => {
    const g = new Semaphore(client, 'thousand');
    const many = Array.from({ length: 1000 }, (_, i) => `h${String(i).padStart(4, '0')}`);
    await client.put(g.key).value(JSON.stringify({ total_slots: 1000, holders: many }));
    const r = spawnSync(process.execPath, [bin, '--endpoint', etcd.endpoints[0]!, '--group', 'thousand', '--format', 'json', 'status'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(0);
    expect((JSON.parse(r.stdout) as { holders: unknown[] }).holders).toHaveLength(1000);
  }, 30_000);
});
