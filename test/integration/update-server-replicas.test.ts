/**
 * bootsmith-update-server replicas sharing their state in a three-member etcd (--etcd-endpoint):
 * a rollout's checks and events sent to two replicas alternately, one replica and the etcd leader
 * killed midway (a client whose replica is gone or answers 503 asks another, as a load balancer
 * would send it on). No event acknowledged is lost, a halt committed through one replica reaches
 * the other through its watch before it is asked anything, and no replica offers the release
 * after the halt was acknowledged. With etcd's quorum gone a replica answers 503, does not crash,
 * and serves again once etcd is back.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { buildRequest, coreosAppId, errorCode, parseResponse } from '../../src/update/omaha';
import type { Answer, Identity, RequestBody } from '../../src/update/omaha';
import { EtcdState } from '../../src/update/etcd-state';
import { EtcdCluster, haveEtcd } from '../support/etcd';
import { sample, scrape, until } from '../support/metrics';
import { post } from '../support/update';

const bin = join(__dirname, '../../bin/bootsmith-update-server.js');
const built = existsSync(join(__dirname, '../../dist/update-server.js'));
const token = 'replica-admin-token-0123456789';

interface Replica {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

/** A channel tree with stable 1001.0.0 (a payload of random bytes: offers do not look inside). */
function makeTree(tree: string): void {
  const dir = join(tree, 'stable/amd64-usr/1001.0.0');
  mkdirSync(dir, { recursive: true });
  const payload = randomBytes(64 << 10);
  writeFileSync(join(dir, 'flatcar_production_update.gz'), payload);
  writeFileSync(join(dir, 'flatcar_production_update.gz.sha256'), `${createHash('sha256').update(payload).digest('hex')}  flatcar_production_update.gz\n`);
  symlinkSync('1001.0.0', join(tree, 'stable/amd64-usr/current'));
}

(built ? test : test.skip)('--etcd-endpoint: with --state-dir a usage error, an etcd that is not there an error at start', () => {
  const tree = mkdtempSync(join(tmpdir(), 'bootsmith-replicas-'));
  try {
    const run = (...args: string[]) => spawnSync(process.execPath, [bin, '--tree', tree, '--listen', '127.0.0.1:0', ...args], { encoding: 'utf8' });
    const both = run('--etcd-endpoint', 'http://127.0.0.1:1', '--state-dir', join(tree, 'state'));
    expect([both.status, both.stderr]).toEqual([2, 'bootsmith-update-server: error: --state-dir is for a single server: with --etcd-endpoint the state is in etcd\n']);
    const absent = run('--etcd-endpoint', 'http://127.0.0.1:1');
    expect([absent.status, absent.stderr]).toEqual([1, 'bootsmith-update-server: error: etcd cluster is unavailable or misconfigured: http://127.0.0.1:1: connection refused\n']);
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
});

(haveEtcd && built ? describe : describe.skip)('update-server replicas on a three-member etcd', () => {
  let dir: string;
  let cluster: EtcdCluster;
  const replicas: Replica[] = [];
  const started: ChildProcess[] = [];

  function startReplica(): Promise<Replica> {
    const child = spawn(process.execPath, [bin, '--tree', join(dir, 'channels'), '--listen', '127.0.0.1:0', '--etcd-endpoint', cluster.members.map((m) => m.clientUrl).join(','), '--admin-token-file', join(dir, 'token')], { stdio: ['ignore', 'ignore', 'pipe'] });
    started.push(child);
    let stderr = '';
    return new Promise((resolve, reject) => {
      child.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /serving .* at (http:\/\/127\.0\.0\.1:\d+)\/v1\/update\//.exec(stderr);
        if (m) resolve({ child, url: m[1]!, stderr: () => stderr });
      });
      child.on('exit', (code) => reject(new Error(`the replica exited ${code}: ${stderr}`)));
    });
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-replicas-'));
    makeTree(join(dir, 'channels'));
    writeFileSync(join(dir, 'token'), `${token}\n`);
    cluster = await EtcdCluster.start(3);
    replicas.push(await startReplica(), await startReplica());
  }, 60_000);
  afterAll(async () => {
    for (const child of started) child.kill('SIGKILL');
    await Promise.all(started.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.on('close', r)) : undefined)));
    cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const machine = (n: number, version: string): Identity => ({
    appId: coreosAppId, version, track: 'stable', board: 'amd64-usr', machineId: `replica-machine-${n}`, bootId: '{b}', alephVersion: '1000.0.0', arch: 'x86_64',
  });

  let turn = 0;
  /**
   * Sends one Omaha request to the replicas in turn: one that is gone or answers 503 is skipped for
   * the next, as a load balancer does, for up to 60 s. The answer and the replica that gave it.
   */
  async function send(body: string): Promise<{ answer: string; replica: Replica }> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const replica = replicas[turn++ % replicas.length]!;
      try {
        const r = await post(`${replica.url}/v1/update/`, body);
        if (r.status === 200) return { answer: r.body, replica };
        expect([r.status, r.body]).toEqual([503, expect.stringMatching(/^etcd /)]);
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toMatch(/^(ECONNREFUSED|ECONNRESET|EPIPE)$/);
      }
      if (Date.now() > deadline) throw new Error('no replica answered within 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The events each machine was told were taken ("type/result[/code] version"), in order. */
  const acknowledged = new Map<string, string[]>();
  /** Every update answer, in the order received. */
  const offers: { machineId: string; version: string; at: number }[] = [];
  let step = 0;

  async function ask(id: Identity, body: RequestBody): Promise<Answer> {
    const { answer } = await send(buildRequest(id, body, false));
    const at = ++step;
    const events = acknowledged.get(id.machineId) ?? [];
    acknowledged.set(id.machineId, events);
    if (body.kind === 'event') events.push(`${body.type}/${body.result}${body.errorCode !== undefined ? `/${body.errorCode}` : ''} ${id.version}`);
    if (body.kind === 'check' && body.previousVersion !== undefined) events.push(`3/${body.rolledBack ? `0/${errorCode.rollback}` : '2'} ${id.version}`);
    if (body.kind !== 'check') return { kind: 'noupdate' };
    const parsed = parseResponse(answer);
    if (parsed.kind === 'update') offers.push({ machineId: id.machineId, version: parsed.version, at });
    return parsed;
  }
  const check = (id: Identity, previousVersion?: string, rolledBack = false) => ask(id, { kind: 'check', previousVersion, rolledBack });
  const event = (id: Identity, type: number, result: number, code?: number) => ask(id, { kind: 'event', type, result, ...(code !== undefined ? { errorCode: code } : {}) });

  /** A replica's halted-releases gauge, from its /metrics (no Omaha request: what its watch told it). */
  const haltedGauge = async (r: Replica) => sample(await scrape(`${r.url}/metrics`), 'bootsmith_update_server_halted_releases');

  test('a rollout through two replicas survives losing one replica and the etcd leader: no event lost, nothing offered after its halt', async () => {
    for (let n = 0; n < 10; n++) {
      if (n === 5) {
        // Midway: a replica and the etcd leader die; a new replica takes the dead one's place.
        replicas[0]!.child.kill('SIGKILL');
        const leader = await cluster.leader();
        cluster.kill(leader ?? cluster.members[0]!);
        await check(machine(100, '1001.0.0')); // at once, while etcd elects a new leader
        replicas[0] = await startReplica();
      }
      expect(await check(machine(n, '1000.0.0'))).toMatchObject({ kind: 'update', version: '1001.0.0' });
      await event(machine(n, '1000.0.0'), 13, 1);
      await event(machine(n, '1000.0.0'), 14, 1);
      await event(machine(n, '1000.0.0'), 3, 1);
      expect(await check(machine(n, '1001.0.0'), '1000.0.0')).toEqual({ kind: 'noupdate' });
    }

    // Machine 10 is offered the release and fails to verify it: halted, through one replica.
    expect(await check(machine(10, '1000.0.0'))).toMatchObject({ kind: 'update', version: '1001.0.0' });
    await event(machine(10, '1000.0.0'), 3, 0, errorCode.payloadVerificationError);
    const haltAcknowledged = step;
    // At once, to both replicas (whether or not the other one's watch has told it yet): nothing offered.
    for (let n = 11; n < 17; n++) expect(await check(machine(n, '1000.0.0'))).toEqual({ kind: 'noupdate' });
    expect(offers.filter((o) => o.at > haltAcknowledged)).toEqual([]);
    // Both replicas know it without being asked anything: the watch told the other one.
    await until(async () => (await haltedGauge(replicas[0]!)) === 1 && (await haltedGauge(replicas[1]!)) === 1, 15_000, 'both replicas to see the halt');

    // Resumed through one replica: offered again by both, once the watch brought it.
    expect((await post(`${replicas[1]!.url}/admin/resume?channel=stable&version=1001.0.0`, '', { authorization: `Bearer ${token}` })).status).toBe(200);
    await until(async () => (await haltedGauge(replicas[0]!)) === 0, 15_000, 'the other replica to see the resume');
    expect(await check(machine(11, '1000.0.0'))).toMatchObject({ kind: 'update', version: '1001.0.0' });
    expect(await check(machine(12, '1000.0.0'))).toMatchObject({ kind: 'update', version: '1001.0.0' });

    // No event acknowledged was lost: etcd holds each machine's, in order.
    const client = new Etcd3({ hosts: cluster.endpoints });
    try {
      const state = new EtcdState(client, { maxEventsPerMachine: 50, maxMachines: 10_000 });
      for (const [machineId, events] of acknowledged) {
        const stored = (await state.events(machineId)).map((e) => `${e.type}/${e.result}${e.errorCode !== undefined ? `/${e.errorCode}` : ''} ${e.version}`);
        expect([machineId, stored]).toEqual([machineId, events]);
      }
      expect([...acknowledged.values()].flat()).toHaveLength(10 * 4 + 1);
    } finally {
      client.close();
    }
    for (const r of replicas) expect(r.child.exitCode).toBeNull();
  }, 180_000);

  test('without etcd\'s quorum a replica answers 503, /readyz says so, and keeps running; with it back, it serves again and is ready', async () => {
    const replica = replicas[1]!;
    const readyz = async () => {
      const res = await fetch(`${replica.url}/readyz`);
      return `${res.status} ${await res.text()}`;
    };
    expect(await readyz()).toBe('200 ready\n');
    // One member is down since the first test (or is killed now); one more and there is no quorum.
    while (cluster.members.filter((m) => m.process).length > 1) cluster.kill(cluster.members.find((m) => m.process)!);
    const body = buildRequest(machine(200, '1000.0.0'), { kind: 'check', previousVersion: undefined, rolledBack: false }, false);
    const r = await post(`${replica.url}/v1/update/`, body);
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/^etcd /);
    expect(replica.child.exitCode).toBeNull();
    // Not ready, for a load balancer to send machines elsewhere (alive all the same).
    await until(async () => /^503 not ready: etcd /.test(await readyz()), 30_000, '/readyz to say 503');
    expect((await fetch(`${replica.url}/healthz`)).status).toBe(200);
    for (const m of cluster.members.filter((x) => !x.process)) await cluster.restart(m).catch(() => undefined);
    await cluster.waitHealthy();
    await until(async () => (await post(`${replica.url}/v1/update/`, body)).status === 200, 60_000, 'the replica to serve again');
    expect(parseResponse((await post(`${replica.url}/v1/update/`, body)).body)).toMatchObject({ kind: 'update', version: '1001.0.0' });
    await until(async () => (await readyz()) === '200 ready\n', 30_000, '/readyz to say ready again');
  }, 120_000);

  test('an offer decided on a stale view of the halts is not committed: decided again, nothing offered', async () => {
    const client = new Etcd3({ hosts: cluster.endpoints });
    const state = new EtcdState(client, { prefix: 'guard-test/', maxEventsPerMachine: 50, maxMachines: 100 });
    try {
      const record = (version: string) => ({ machineId: 'guarded', track: 'stable', version, lastSeen: new Date().toISOString() });
      // Offered 2001.0.0, then reports a verification error: halted.
      await state.apply('guarded', () => ({ record: { ...record('2000.0.0'), offered: '2001.0.0', offeredChannel: 'stable' }, events: [], offer: 'stable/2001.0.0', failures: [] }));
      const halted = await state.apply('guarded', () => ({ record: record('2000.0.0'), events: [], failures: [{ release: 'stable/2001.0.0', halting: true, why: 'test' }] }));
      expect(halted.halted.map((f) => f.release)).toEqual(['stable/2001.0.0']);
      // A replica whose view does not have the halt yet decides to offer it: the transaction refuses,
      // and the second decision, on the halts read from etcd, offers nothing.
      const views: string[][] = [];
      const applied = await state.apply('another', (_previous, view) => {
        views.push([...view]);
        const stale = views.length === 1;
        return { record: { ...record('2000.0.0'), machineId: 'another' }, events: [], failures: [], ...(stale || !view.has('stable/2001.0.0') ? { offer: 'stable/2001.0.0' } : {}) };
      });
      expect(views.length).toBe(2);
      expect(views[1]).toContain('stable/2001.0.0');
      expect(applied.decision.offer).toBeUndefined();
      expect(await state.resume('stable/2001.0.0')).toBe(true);
      expect(await state.resume('stable/2001.0.0')).toBe(false);
    } finally {
      await state.close();
      client.close();
    }
  }, 60_000);
});
