/**
 * Prometheus /metrics, /healthz and /readyz, scraped over HTTP: fleetlockd (a program, on its FleetLock
 * listener), two update servers in this process (each its own registry), and locksmithd with
 * --metrics-listen. Values follow what is done: a lock through fleetlockd counts.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { makeRelease } from '../../images/make';
import { newRegistry, ServerMetrics } from '../../src/report/metrics';
import { buildRequest, errorCode } from '../../src/update/omaha';
import type { Identity } from '../../src/update/omaha';
import { UpdateServer } from '../../src/update/server';
import { serveStandIns, startDbusDaemon } from '../support/dbus';
import type { DbusDaemon } from '../support/dbus';
import { EtcdCluster, haveEtcd } from '../support/etcd';
import { startFleetlockd } from '../support/fleetlockd';
import { freePort, sample, scrape, until } from '../support/metrics';
import { keyPair, updateTools } from '../support/update';

const bins = join(__dirname, '../../bin');
const haveDbus = spawnSync('dbus-daemon', ['--version']).status === 0;
const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

/** An HTTPS request trusting `ca` only. */
function httpsRequest(url: string, ca: string, method = 'GET', body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

(haveEtcd ? describe : describe.skip)('fleetlockd /metrics', () => {
  let etcd: EtcdCluster;
  let server: ChildProcess;
  let base: string;
  beforeAll(async () => {
    etcd = await EtcdCluster.start();
    ({ server, base } = await startFleetlockd(etcd.endpoints[0]!));
  }, 60_000);
  afterAll(() => {
    server.kill();
    etcd.stop();
  });

  const preReboot = (group: string, id: string) =>
    fetch(`${base}/v1/pre-reboot`, { method: 'POST', headers: { 'fleet-lock-protocol': 'true' }, body: JSON.stringify({ client_params: { group, id } }) });

  test('/healthz answers ok; /metrics counts locks, refusals and failures, and shows slots and holders', async () => {
    expect(await (await fetch(`${base}/healthz`)).text()).toBe('ok\n');
    const before = await scrape(`${base}/metrics`);
    expect(sample(before, 'bootsmith_build_info', { program: 'fleetlockd' })).toBe(1);
    expect(sample(before, 'bootsmith_lock_requests_total', { operation: 'lock', result: 'ok' })).toBeUndefined();
    expect(before).toContain('# TYPE bootsmith_lock_requests_total counter');

    expect((await preReboot('metrics', 'node-1')).status).toBe(200);
    let text = await scrape(`${base}/metrics`);
    expect(sample(text, 'bootsmith_lock_requests_total', { operation: 'lock', result: 'ok' })).toBe(1);
    expect(sample(text, 'bootsmith_lock_slots', { group: 'metrics' })).toBe(1);
    expect(sample(text, 'bootsmith_lock_holders', { group: 'metrics' })).toBe(1);

    expect((await preReboot('metrics', 'node-2')).status).toBe(409);
    const client = new Etcd3({ hosts: etcd.endpoints });
    await client.put('com.coreos.airlock/groups/corrupt/v1/semaphore').value('{not json');
    client.close();
    expect((await preReboot('corrupt', 'node-3')).status).toBe(500);
    expect((await fetch(`${base}/v1/pre-reboot`, { method: 'POST', body: '{}' })).status).toBe(400);
    text = await scrape(`${base}/metrics`);
    expect(sample(text, 'bootsmith_lock_requests_total', { operation: 'lock', result: 'refused' })).toBe(1);
    expect(sample(text, 'bootsmith_lock_failures_total', { operation: 'lock', reason: 'failed_lock_semaphore_full' })).toBe(1);
    expect(sample(text, 'bootsmith_lock_failures_total', { operation: 'lock', reason: 'corrupt_semaphore' })).toBe(1);
    expect(sample(text, 'bootsmith_lock_failures_total', { operation: 'lock', reason: 'invalid_client_identity' })).toBe(1);
    expect(sample(text, 'bootsmith_lock_requests_total', { operation: 'lock', result: 'failed' })).toBe(2);

    const steady = await fetch(`${base}/v1/steady-state`, { method: 'POST', headers: { 'fleet-lock-protocol': 'true' }, body: JSON.stringify({ client_params: { group: 'metrics', id: 'node-1' } }) });
    expect(steady.status).toBe(200);
    text = await scrape(`${base}/metrics`);
    expect(sample(text, 'bootsmith_lock_requests_total', { operation: 'unlock', result: 'ok' })).toBe(1);
    expect(sample(text, 'bootsmith_lock_holders', { group: 'metrics' })).toBe(0);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  (haveOpenssl ? test : test.skip)('--tls-cert and --tls-key: FleetLock and /metrics over HTTPS; one without the other is an error naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bootsmith-fleetlock-tls-'));
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { encoding: 'utf8' });
    expect(made.status).toBe(0);
    const ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const port = await freePort();
    const tls = spawn(process.execPath, [join(bins, 'fleetlockd.js'), '--listen', `127.0.0.1:${port}`, '--endpoint', etcd.endpoints[0]!, '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')], { stdio: 'ignore' });
    try {
      const url = `https://127.0.0.1:${port}`;
      await until(async () => (await httpsRequest(`${url}/healthz`, ca)).status === 200, 15_000, 'fleetlockd to listen on HTTPS');
      const body = JSON.stringify({ client_params: { group: 'tls', id: 'node-tls' } });
      expect((await httpsRequest(`${url}/v1/pre-reboot`, ca, 'POST', body, { 'fleet-lock-protocol': 'true' })).status).toBe(200);
      expect(sample((await httpsRequest(`${url}/metrics`, ca)).body, 'bootsmith_lock_holders', { group: 'tls' })).toBe(1);
      await expect(fetch(`${url}/healthz`)).rejects.toThrow(); // not trusted without the certificate
    } finally {
      tls.kill();
    }
    const only = spawnSync(process.execPath, [join(bins, 'fleetlockd.js'), '--tls-key', join(dir, 'key.pem')], { encoding: 'utf8' });
    expect([only.status, only.stderr]).toEqual([2, 'fleetlockd: error: --tls-key needs --tls-cert\n']);
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  test('/readyz: ready while etcd answers; 503 and why while it does not (alive all the same); ready again once it is back', async () => {
    const readyz = async () => {
      const res = await fetch(`${base}/readyz`);
      return `${res.status} ${await res.text()}`;
    };
    expect(await readyz()).toBe('200 ready\n');
    const member = etcd.members[0]!;
    etcd.kill(member);
    await until(async () => (await readyz()).startsWith('503 not ready: '), 20_000, '/readyz to say 503');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await etcd.restart(member);
    await until(async () => (await readyz()) === '200 ready\n', 30_000, '/readyz to say ready again');
  }, 60_000);
});

(updateTools ? describe : describe.skip)('bootsmith-update-server /metrics', () => {
  let dir: string;
  const servers: UpdateServer[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-metrics-'));
    await makeRelease(join(dir, 'channels'), 'stable', '1001.0.0', [keyPair().privateKey], dir);
  }, 60_000);
  afterAll(async () => {
    for (const s of servers) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const machine = (n: number, version: string): Identity => ({
    appId: '{e96281a6-d1af-4bde-9a0a-97b76e56dc57}', version, track: 'stable', machineId: `machine-${n}`, bootId: 'b', oem: '', oemVersion: '', alephVersion: version, board: 'amd64-usr', arch: 'x86_64',
  });
  const start = async () => {
    let server: UpdateServer | undefined = undefined;
    server = new UpdateServer({ tree: join(dir, 'channels'), metrics: new ServerMetrics(newRegistry('bootsmith-update-server'), () => server?.halted.size ?? 0) });
    servers.push(server);
    return { server, url: await server.listen(0) };
  };
  const omaha = (url: string, body: string) => fetch(`${url}/v1/update/`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body });

  test('checks by channel and version, events, halts and payload bytes; each server counts its own', async () => {
    const a = await start();
    const b = await start();
    expect((await fetch(`${a.url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${a.url}/readyz`)).text()).toBe('ready\n'); // its state is in this process
    const check = (n: number, version: string) => buildRequest(machine(n, version), { kind: 'check', previousVersion: undefined, rolledBack: false }, false);
    const answer = await (await omaha(a.url, check(1, '1000.0.0'))).text();
    expect(answer).toContain('status="ok"');
    await omaha(a.url, check(2, '1001.0.0'));
    await omaha(a.url, check(3, '1001.0.0'));
    await omaha(a.url, check(4, '9.9.9-made-up'));
    await omaha(a.url, '<request><app appid="{bad"/></request>');
    // An install error from a machine it was offered to halts 1001.0.0.
    await omaha(a.url, buildRequest(machine(1, '1000.0.0'), { kind: 'event', type: 3, result: 0, errorCode: errorCode.payloadHashMismatch }, false));
    const codebase = /codebase="([^"]+)"/.exec(answer)![1]!;
    const payload = Buffer.from(await (await fetch(`${codebase}flatcar_production_update.gz`)).arrayBuffer());

    const text = await scrape(`${a.url}/metrics`);
    expect(sample(text, 'bootsmith_omaha_checks_total', { channel: 'stable', version: 'other', result: 'update' })).toBe(2); // 1000.0.0 is not in the tree, nor is the made-up one
    expect(sample(text, 'bootsmith_omaha_checks_total', { channel: 'stable', version: '1001.0.0', result: 'noupdate' })).toBe(2);
    expect(sample(text, 'bootsmith_omaha_requests_total', { result: 'ok' })).toBe(5);
    expect(sample(text, 'bootsmith_omaha_requests_total', { result: 'invalid' })).toBe(1);
    expect(sample(text, 'bootsmith_omaha_events_total', { type: 'updateComplete', result: 'error' })).toBe(1);
    expect(sample(text, 'bootsmith_update_server_halts_total', { channel: 'stable' })).toBe(1);
    expect(sample(text, 'bootsmith_update_server_halted_releases')).toBe(1);
    expect(sample(text, 'bootsmith_update_server_payload_requests_total')).toBe(1);
    expect(sample(text, 'bootsmith_update_server_payload_bytes_sent_total')).toBe(payload.length);

    const other = await scrape(`${b.url}/metrics`);
    expect(sample(other, 'bootsmith_omaha_requests_total', { result: 'ok' })).toBeUndefined();
    expect(sample(other, 'bootsmith_update_server_halted_releases')).toBe(0);
  }, 30_000);
});

(haveEtcd && haveDbus ? describe : describe.skip)('locksmithd --metrics-listen', () => {
  let etcd: EtcdCluster;
  let dbusd: DbusDaemon;
  let daemon: ChildProcess | undefined;
  beforeAll(async () => {
    etcd = await EtcdCluster.start();
    dbusd = await startDbusDaemon();
  }, 30_000);
  afterAll(() => {
    daemon?.kill();
    dbusd.stop();
    etcd.stop();
  });

  test('with --metrics-listen, the lock it takes shows on /metrics', async () => {
    const root = mkdtempSync(join(tmpdir(), 'bootsmith-lsd-metrics-'));
    mkdirSync(join(root, 'etc/coreos'), { recursive: true });
    writeFileSync(join(root, 'etc/coreos/update.conf'), `REBOOT_STRATEGY=etcd-lock\nLOCKSMITHD_ENDPOINT=${etcd.endpoints[0]}\n`);
    writeFileSync(join(root, 'machine-id'), 'machine-m\n');
    const { engine, logind, bus } = await serveStandIns(dbusd.address);
    engine.operation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
    let log = '';
    daemon = spawn(process.execPath, [join(bins, 'locksmithd.js'), '--root', root, '--bus', dbusd.address, '--systemd-bus', 'none', '--machine-id-file', join(root, 'machine-id'), '--pid-file', join(root, 'pid'), '--metrics-listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '' },
    });
    daemon.stderr!.on('data', (d: Buffer) => (log += d));
    await until(() => /serving metrics at (http:\S+)\/metrics/.test(log), 15_000, 'the metrics listener');
    const url = /serving metrics at (http:\S+)\/metrics/.exec(log)![1]!;
    await until(() => logind.reboots.length === 1, 15_000, 'the reboot');
    const text = await scrape(`${url}/metrics`);
    expect(sample(text, 'bootsmith_build_info', { program: 'locksmithd' })).toBe(1);
    expect(sample(text, 'bootsmith_lock_requests_total', { operation: 'lock', result: 'ok' })).toBe(1);
    expect(sample(text, 'bootsmith_lock_slots', { group: 'default' })).toBe(1);
    expect(sample(text, 'bootsmith_lock_holders', { group: 'default' })).toBe(1);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/other`)).status).toBe(404);
    bus.disconnect();
  }, 40_000);
});
