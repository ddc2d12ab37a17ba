/**
 * The update server over a channel tree built by images/: Omaha answers read by our own client
 * rules, the payload fetched with Range and applied, events recorded, a version halted by an error
 * or a rollback and resumed by an operator.
 */
import { existsSync, mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDisk, makeRelease, makeUsrImage } from '../../images/make';
import { buildRequest, coreosAppId, parseResponse, OmahaError } from '../../src/update/omaha';
import type { Identity, RequestBody } from '../../src/update/omaha';
import { UpdateServer, compareVersions } from '../../src/update/server';
import { applyPayload } from '../../src/update/apply-payload';
import { httpSource } from '../../src/update/payload-source';
import { keyPair, updateTools, usrSlot, slotVersion } from '../support/update';

if (!updateTools) test.skip('needs bzip2, e2fsprogs, gdisk and cgpt', () => undefined);

function post(url: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'text/xml' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    })
      .on('error', reject)
      .end();
  });
}

test('versions compare numerically', () => {
  expect(compareVersions('1001.10.0', '1001.9.0')).toBeGreaterThan(0);
  expect(compareVersions('1002.0.0', '1002.0')).toBe(0);
  expect(compareVersions('999.9.9', '1000.0.0')).toBeLessThan(0);
});

(updateTools ? describe : describe.skip)('update server', () => {
  let dir: string;
  let server: UpdateServer;
  let url: string;
  let key: { privateKey: string; publicKey: string };
  const log: string[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-server-'));
    key = keyPair();
    await makeRelease(join(dir, 'channels'), 'stable', '1001.0.0', [key.privateKey], dir);
    await makeRelease(join(dir, 'channels'), 'beta', '1002.0.0', [key.privateKey], dir);
    server = new UpdateServer({ tree: join(dir, 'channels'), stateDir: join(dir, 'state'), log: (l) => log.push(l) });
    url = await server.listen(0);
  }, 60_000);
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const machine = (n: number, version: string, track = 'stable'): Identity => ({
    appId: coreosAppId, version, track, board: 'amd64-usr', machineId: `machine-${n}`, bootId: '{b}', alephVersion: '1000.0.0', arch: 'x86_64',
  });
  const ask = async (id: Identity, body: RequestBody = { kind: 'check', previousVersion: undefined, rolledBack: false }) => parseResponse((await post(`${url}/v1/update/`, buildRequest(id, body, false))).body);

  test('an older machine is offered the channel\'s newest; the payload downloads with Range and applies', async () => {
    const answer = await ask(machine(1, '1000.0.0'));
    if (answer.kind !== 'update') throw new Error('expected an update');
    const file = join(dir, 'channels/stable/amd64-usr/1001.0.0/flatcar_production_update.gz');
    expect(answer).toMatchObject({ version: '1001.0.0', urls: [`${url}/stable/amd64-usr/1001.0.0/flatcar_production_update.gz`], size: readFileSync(file).length });
    expect(answer.sha256.toString('hex')).toBe(readFileSync(`${file}.sha256`, 'utf8').split(' ')[0]);
    const part = await get(answer.urls[0]!, { range: 'bytes=100-199' });
    expect(part.status).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 100-199/${answer.size}`);
    expect(part.body).toEqual(readFileSync(file).subarray(100, 200));
    const installed = join(dir, 'usr-1000.img');
    makeUsrImage(installed, '1000.0.0');
    const disk = join(dir, 'disk.img');
    makeDisk(disk, 32, installed);
    const r = await applyPayload({ source: httpSource(answer.urls[0]!), disk, target: usrSlot(disk, 'USR-B'), publicKeys: [key.publicKey], sha256: answer.sha256, size: answer.size });
    expect(r.keyIndex).toBe(0);
    expect(slotVersion(disk, usrSlot(disk, 'USR-B'), dir)).toBe('1001.0.0');
  }, 60_000);

  test('up to date, unknown channel: noupdate; beta gets beta', async () => {
    expect(await ask(machine(2, '1001.0.0'))).toEqual({ kind: 'noupdate' });
    expect(await ask(machine(2, '1000.0.0', 'nightly'))).toEqual({ kind: 'noupdate' });
    expect(await ask(machine(2, '1001.0.0', 'beta'))).toMatchObject({ kind: 'update', version: '1002.0.0' });
  });

  test('a rollback report halts the version for everyone until it is resumed', async () => {
    await makeRelease(join(dir, 'channels'), 'stable', '1003.0.0', [key.privateKey], dir);
    expect(await ask(machine(3, '1001.0.0'))).toMatchObject({ kind: 'update', version: '1003.0.0' });
    // Machine 3 came back on 1001.0.0: its next check carries the rollback event.
    await ask(machine(3, '1001.0.0'), { kind: 'check', previousVersion: '1001.0.0', rolledBack: true });
    expect(log).toContain('halted stable/1003.0.0: machine machine-3 rolled back to 1001.0.0');
    expect(await ask(machine(4, '1001.0.0'))).toEqual({ kind: 'noupdate' });
    expect(await ask(machine(5, '1000.0.0'))).toMatchObject({ kind: 'update', version: '1001.0.0' });
    const status = JSON.parse((await get(`${url}/admin/status`)).body.toString()) as { halted: string[]; machines: { machineId: string; lastEvent?: { errorCode?: number } }[] };
    expect(status.halted).toEqual(['stable/1003.0.0']);
    expect(status.machines.find((m) => m.machineId === 'machine-3')?.lastEvent?.errorCode).toBe(44);
    // Halts survive a restart of the server.
    expect(new UpdateServer({ tree: join(dir, 'channels'), stateDir: join(dir, 'state') }).halted.has('stable/1003.0.0')).toBe(true);
    expect((await post(`${url}/admin/resume?channel=stable&version=1003.0.0`, '')).status).toBe(200);
    expect(await ask(machine(4, '1001.0.0'))).toMatchObject({ kind: 'update', version: '1003.0.0' });
    expect((await post(`${url}/admin/resume?channel=stable&version=1003.0.0`, '')).status).toBe(404);
  }, 60_000);

  test('an install error halts the version offered to that machine', async () => {
    await makeRelease(join(dir, 'channels'), 'beta', '1004.0.0', [key.privateKey], dir);
    expect(await ask(machine(6, '1002.0.0', 'beta'))).toMatchObject({ version: '1004.0.0' });
    // An event's reply body is ignored, as update_engine does.
    expect((await post(`${url}/v1/update/`, buildRequest(machine(6, '1002.0.0', 'beta'), { kind: 'event', type: 3, result: 0, errorCode: 12 }, false))).body).toContain('<event status="ok"></event>');
    expect(log).toContain('halted beta/1004.0.0: machine machine-6 reported error 12');
    expect(readFileSync(join(dir, 'state/events.jsonl'), 'utf8')).toContain('"machineId":"machine-6","track":"beta","at"');
  }, 60_000);

  test('the bootsmith-update-server program serves the same tree and stops on SIGTERM', async () => {
    const bin = join(__dirname, '../../bin/bootsmith-update-server.js');
    if (!existsSync(join(__dirname, '../../dist/update-server.js'))) return; // npm test builds first
    const child = spawn(process.execPath, [bin, '--tree', join(dir, 'channels'), '--listen', '127.0.0.1:0']);
    let stderr = '';
    const served = await new Promise<string>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /serving .* at (http:\/\/127\.0\.0\.1:\d+)\/v1\/update\//.exec(stderr);
        if (m) resolve(m[1]!);
      });
    });
    const answer = parseResponse((await post(`${served}/v1/update/`, buildRequest(machine(8, '1000.0.0'), { kind: 'check', previousVersion: undefined, rolledBack: false }, false))).body);
    expect(answer).toMatchObject({ kind: 'update', version: '1003.0.0' });
    child.kill('SIGTERM');
    expect(await new Promise((r) => child.on('close', r))).toBe(0);
    const bad = spawnSync(process.execPath, [bin, '--tree', join(dir, 'nope')], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/the channel tree .*nope does not exist/);
  }, 30_000);

  test('wrong application, bad XML, paths outside the tree', async () => {
    let err: unknown;
    try {
      await ask({ ...machine(7, '1000.0.0'), appId: '{00000000-0000-0000-0000-000000000000}' });
    } catch (e) {
      err = e;
    }
    expect((err as OmahaError).message).toBe("invalid update response: the app's status is error-unknownApplication");
    expect((await post(`${url}/v1/update/`, '<request><app')).status).toBe(200);
    expect((await get(`${url}/../../etc/passwd`)).status).toBe(404);
    expect((await get(`${url}/stable/amd64-usr/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd`)).status).toBe(404);
    expect((await get(`${url}/stable/amd64-usr/1001.0.0/flatcar_production_update.gz`, { range: 'bytes=999999999-' })).status).toBe(416);
  });
});
