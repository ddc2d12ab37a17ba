/**
 * The daemons' log as systemd sees it: fleetlockd run as a program with its stderr as the journal
 * stream (JOURNAL_STREAM naming stderr's device and inode, as systemd sets it) writes lines with
 * journald priority prefixes; with `--log-format json` one JSON object per line.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fstatSync, mkdtempSync, openSync, readFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { EtcdCluster, haveEtcd } from '../support/etcd';
import { freePort } from '../support/metrics';

const bins = join(__dirname, '../../bin');
if (!haveEtcd) test.skip('needs etcd; CI installs it', () => undefined);

function until(check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => (check() ? resolve() : Date.now() > deadline ? reject(new Error('timed out')) : setTimeout(tick, 50));
    tick();
  });
}

/** fleetlockd with stderr in a file; `journal`: JOURNAL_STREAM names that file, as systemd does for the journal's socket. */
async function startFleetlockd(endpoint: string, args: string[], journal: boolean): Promise<{ child: ChildProcess; base: string; lines: () => string[] }> {
  const file = join(mkdtempSync(join(tmpdir(), 'bootsmith-logs-')), 'stderr');
  const fd = openSync(file, 'w');
  const st = fstatSync(fd);
  const port = await freePort();
  const child = spawn(process.execPath, [join(bins, 'fleetlockd.js'), '--listen', `127.0.0.1:${port}`, '--endpoint', endpoint, ...args], {
    stdio: ['ignore', 'ignore', fd],
    env: { PATH: process.env.PATH ?? '', ...(journal ? { JOURNAL_STREAM: `${st.dev}:${st.ino}` } : {}) },
  });
  closeSync(fd);
  const lines = () => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  await until(() => lines().some((l) => l.includes('serving FleetLock')));
  return { child, base: `http://127.0.0.1:${port}`, lines };
}

(haveEtcd ? describe : describe.skip)('daemon logs', () => {
  let etcd: EtcdCluster;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    etcd = await EtcdCluster.start();
  }, 30_000);
  afterAll(() => {
    for (const c of children) c.kill();
    etcd.stop();
  });

  const preReboot = (base: string, group: string, id: string) =>
    fetch(`${base}/v1/pre-reboot`, { method: 'POST', headers: { 'fleet-lock-protocol': 'true' }, body: JSON.stringify({ client_params: { group, id } }) });

  test('under systemd: journald priority prefixes, <6> for events and <4> for failures', async () => {
    const d = await startFleetlockd(etcd.endpoints[0]!, [], true);
    children.push(d.child);
    expect((await preReboot(d.base, 'journal', 'node-1')).status).toBe(200);
    // A corrupt semaphore value: the request fails (500), and the failure is a warning.
    const client = new Etcd3({ hosts: etcd.endpoints });
    await client.put('com.coreos.airlock/groups/broken/v1/semaphore').value('{not json');
    client.close();
    expect((await preReboot(d.base, 'broken', 'node-2')).status).toBe(500);
    await until(() => d.lines().some((l) => l.startsWith('<4>')));
    const lines = d.lines();
    expect(lines[0]).toMatch(/^<6>serving FleetLock on http:\/\/127\.0\.0\.1:\d+$/);
    expect(lines).toContain('<6>pre-reboot: node-1 holds a slot of journal');
    expect(lines.find((l) => l.startsWith('<4>'))).toMatch(/^<4>warning: \/v1\/pre-reboot failed: .*broken/);
    expect(lines.every((l) => /^<[3467]>/.test(l))).toBe(true);
  });

  test('without JOURNAL_STREAM: plain text; --log-format json: one object per line', async () => {
    const text = await startFleetlockd(etcd.endpoints[0]!, [], false);
    children.push(text.child);
    expect(text.lines()[0]).toMatch(/^fleetlockd: serving FleetLock on /);
    const json = await startFleetlockd(etcd.endpoints[0]!, ['--log-format', 'json'], true);
    children.push(json.child);
    expect((await preReboot(json.base, 'json', 'node-3')).status).toBe(200);
    await until(() => json.lines().length >= 2);
    const records = json.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records[0]).toMatchObject({ level: 'info', program: 'fleetlockd', message: expect.stringMatching(/^serving FleetLock on /) });
    expect(records[1]).toMatchObject({ level: 'info', program: 'fleetlockd', message: 'pre-reboot: node-3 holds a slot of json' });
    expect(Number.isNaN(Date.parse(records[1]!.time as string))).toBe(false);
  });
});
