/**
 * The update server over a channel tree built by images/: Omaha answers read by our own client
 * rules, the payload fetched with Range and applied, events recorded, a version halted by an error
 * or a rollback and resumed by an operator holding the admin token. Who may halt a rollout (only a
 * machine it was offered to, only for errors that mean the version is bad), and the bounds on what
 * a client can make the server hold (bodies, attributes, events, machines), the program's memory
 * measured under a 400 MB body.
 */
import { existsSync, mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDisk, makeRelease, makeUsrImage } from '../../images/make';
import { buildRequest, coreosAppId, errorCode, parseResponse, OmahaError } from '../../src/update/omaha';
import type { Identity, RequestBody } from '../../src/update/omaha';
import { UpdateServer, compareVersions, defaultServerLimits, tokenMatches } from '../../src/update/server';
import { applyPayload } from '../../src/update/apply-payload';
import { httpSource } from '../../src/update/payload-source';
import { keyPair, post, updateTools, usrSlot, slotVersion } from '../support/update';

if (!updateTools) test.skip('needs bzip2, e2fsprogs, gdisk and cgpt', () => undefined);

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
  const token = 'test-admin-token-0123456789';
  const admin = { authorization: `Bearer ${token}` };
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-server-'));
    key = keyPair();
    await makeRelease(join(dir, 'channels'), 'stable', '1001.0.0', [key.privateKey], dir);
    await makeRelease(join(dir, 'channels'), 'beta', '1002.0.0', [key.privateKey], dir);
    server = new UpdateServer({ tree: join(dir, 'channels'), stateDir: join(dir, 'state'), adminToken: token, log: (l) => log.push(l) });
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
    const status = JSON.parse((await get(`${url}/admin/status`, admin)).body.toString()) as { halted: string[]; machines: { machineId: string; lastEvent?: { errorCode?: number } }[] };
    expect(status.halted).toEqual(['stable/1003.0.0']);
    expect(status.machines.find((m) => m.machineId === 'machine-3')?.lastEvent?.errorCode).toBe(44);
    // Halts survive a restart of the server.
    expect(new UpdateServer({ tree: join(dir, 'channels'), stateDir: join(dir, 'state') }).halted.has('stable/1003.0.0')).toBe(true);
    expect((await post(`${url}/admin/resume?channel=stable&version=1003.0.0`, '')).status).toBe(401);
    expect(server.halted.has('stable/1003.0.0')).toBe(true);
    expect((await post(`${url}/admin/resume?channel=stable&version=1003.0.0`, '', admin)).status).toBe(200);
    expect(await ask(machine(4, '1001.0.0'))).toMatchObject({ kind: 'update', version: '1003.0.0' });
    expect((await post(`${url}/admin/resume?channel=stable&version=1003.0.0`, '', admin)).status).toBe(404);
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

/** Sends `parts` as one request body (chunked unless `content-length` is given); the status, and the body bytes written before the answer came. */
function flood(url: string, method: string, parts: Iterable<Buffer>, headers: Record<string, string | number> = {}): Promise<{ status: number; written: number; body: string }> {
  return new Promise((resolve, reject) => {
    let written = 0;
    let answered = false;
    const req = request(url, { method, headers }, (res) => {
      answered = true;
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, written, body });
        req.destroy();
      });
    });
    req.on('error', (err) => (answered ? undefined : reject(err)));
    const it = parts[Symbol.iterator]();
    const pump = () => {
      for (;;) {
        if (answered) return;
        const next = it.next();
        if (next.done) return void req.end();
        written += next.value.length;
        if (!req.write(next.value)) return void req.once('drain', pump);
      }
    };
    pump();
  });
}

function* repeat(chunk: Buffer, times: number, before = Buffer.alloc(0), after = Buffer.alloc(0)): Iterable<Buffer> {
  yield before;
  for (let i = 0; i < times; i++) yield chunk;
  yield after;
}

const MiB = 1 << 20;

(updateTools ? describe : describe.skip)('who may halt a rollout, and what a client can make the server hold', () => {
  let dir: string;
  let tree: string;
  let server: UpdateServer;
  let url: string;
  const log: string[] = [];
  const token = 'another-admin-token-9876543210';
  const admin = { authorization: `Bearer ${token}` };
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-server-'));
    tree = join(dir, 'channels');
    const key = keyPair();
    // The same version in two channels, as a promotion leaves it.
    await makeRelease(tree, 'stable', '2001.0.0', [key.privateKey], dir);
    await makeRelease(tree, 'beta', '2001.0.0', [key.privateKey], dir);
    server = new UpdateServer({ tree, adminToken: token, limits: { maxMachines: 20 }, log: (l) => log.push(l) });
    url = await server.listen(0);
  }, 60_000);
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const id = (machineId: string, version: string, track: string): Identity => ({
    appId: coreosAppId, version, track, board: 'amd64-usr', machineId, bootId: '{b}', alephVersion: '2000.0.0', arch: 'x86_64',
  });
  const check = async (i: Identity) => parseResponse((await post(`${url}/v1/update/`, buildRequest(i, { kind: 'check', previousVersion: undefined, rolledBack: false }, false))).body);
  const report = (i: Identity, code: number) => post(`${url}/v1/update/`, buildRequest(i, { kind: 'event', type: 3, result: 0, errorCode: code }, false));

  test('the admin API: 401 without a bearer token, 403 with a wrong one, off without a token configured; machine ids only for the admin', async () => {
    expect(await check(id('secret-machine-1', '2000.0.0', 'stable'))).toMatchObject({ version: '2001.0.0' });
    const cases: [Record<string, string>, number][] = [
      [{}, 401],
      [{ authorization: `Basic ${token}` }, 401],
      [{ authorization: 'Bearer' }, 401],
      [{ authorization: 'Bearer wrong-token-of-the-same-kind' }, 403],
      [{ authorization: `Bearer ${token}x` }, 403],
      [{ authorization: `Bearer ${token.slice(0, -1)}` }, 403],
    ];
    for (const [headers, status] of cases) {
      const r = await get(`${url}/admin/status`, headers);
      expect([headers, r.status]).toEqual([headers, status]);
      expect(r.body.toString()).not.toContain('secret-machine-1');
      expect((await post(`${url}/admin/resume?channel=stable&version=2001.0.0`, '', headers)).status).toBe(status);
    }
    const ok = await get(`${url}/admin/status`, admin);
    expect(ok.status).toBe(200);
    expect(ok.body.toString()).toContain('secret-machine-1');
    // Nothing else serves machine ids.
    for (const path of ['/', '/admin', '/admin/', '/admin/machines', '/status', '/stable/', '/stable/amd64-usr/2001.0.0/']) {
      expect((await get(`${url}${path}`)).body.toString()).not.toContain('secret-machine-1');
    }
    expect((await get(`${url}/admin/machines`, admin)).status).toBe(404);
    expect(tokenMatches(token, token)).toBe(true);
    expect(tokenMatches('', token)).toBe(false);

    // Without a token the admin API is off, even from loopback.
    const off = new UpdateServer({ tree });
    const offUrl = await off.listen(0);
    try {
      expect((await get(`${offUrl}/admin/status`)).status).toBe(403);
      expect((await get(`${offUrl}/admin/status`, admin)).status).toBe(403);
      expect((await post(`${offUrl}/admin/resume?channel=stable&version=2001.0.0`, '', admin)).status).toBe(403);
    } finally {
      await off.close();
    }
  });

  test('a failure event from a machine that was not offered the version does not halt it', async () => {
    // Never checked in.
    await report(id('stranger', '2000.0.0', 'stable'), errorCode.payloadVerificationError);
    expect(server.halted.size).toBe(0);
    // Offered beta's 2001.0.0, it reports an error under the stable track: it speaks for beta's only.
    expect(await check(id('beta-1', '2000.0.0', 'beta'))).toMatchObject({ version: '2001.0.0' });
    await report(id('beta-1', '2000.0.0', 'stable'), errorCode.payloadVerificationError);
    expect(server.halted.has('stable/2001.0.0')).toBe(false);
    expect([...server.halted]).toEqual(['beta/2001.0.0']);
    expect(await server.resume('beta', '2001.0.0')).toBe(true);
    // Already running the version it was offered: its error is about something else.
    expect(await check(id('stable-1', '2000.0.0', 'stable'))).toMatchObject({ version: '2001.0.0' });
    expect(await check(id('stable-1', '2001.0.0', 'stable'))).toEqual({ kind: 'noupdate' });
    await report(id('stable-1', '2001.0.0', 'stable'), errorCode.payloadVerificationError);
    expect(server.halted.size).toBe(0);
  });

  test('a transient download error is counted, not fatal; a verification error or a rollback from an offered machine halts', async () => {
    expect(await check(id('stable-2', '2000.0.0', 'stable'))).toMatchObject({ version: '2001.0.0' });
    await report(id('stable-2', '2000.0.0', 'stable'), errorCode.downloadTransferError);
    await report(id('stable-2', '2000.0.0', 'stable'), errorCode.downloadTransferError);
    expect(server.halted.size).toBe(0);
    expect((await server.state.snapshot()).failures.get('stable/2001.0.0')).toEqual({ halting: 0, other: 2 });
    expect(await check(id('stable-3', '2000.0.0', 'stable'))).toMatchObject({ version: '2001.0.0' });

    await report(id('stable-2', '2000.0.0', 'stable'), errorCode.payloadVerificationError);
    expect(log).toContain('halted stable/2001.0.0: machine stable-2 reported error 12');
    expect(await check(id('stable-4', '2000.0.0', 'stable'))).toEqual({ kind: 'noupdate' });
    const status = JSON.parse((await get(`${url}/admin/status`, admin)).body.toString()) as { channels: Record<string, { version: string; halted: boolean; failures: unknown }[]> };
    expect(status.channels.stable).toEqual([{ version: '2001.0.0', size: expect.any(Number), halted: true, failures: { halting: 1, other: 2 } }]);
    expect((await post(`${url}/admin/resume?channel=stable&version=2001.0.0`, '', admin)).status).toBe(200);

    // stable-3 was offered 2001.0.0, and comes back on 2000.0.0: its next check reports the rollback.
    await post(`${url}/v1/update/`, buildRequest(id('stable-3', '2000.0.0', 'stable'), { kind: 'check', previousVersion: '2000.0.0', rolledBack: true }, false));
    expect(log).toContain('halted stable/2001.0.0: machine stable-3 rolled back to 2000.0.0');
    await server.resume('stable', '2001.0.0');
  });

  test('events per request and per machine, and machines, are capped; a long or malformed attribute is refused and never echoed', async () => {
    const one = buildRequest(id('chatty', '2000.0.0', 'stable'), { kind: 'event', type: 13, result: 1 }, false);
    const event = /<event [^>]*><\/event>/.exec(one)![0];
    const events = server.counts.events;
    await post(`${url}/v1/update/`, one.replace(event, event.repeat(1000)));
    expect(server.counts.events - events).toBe(defaultServerLimits.maxEventsPerRequest);
    for (let i = 0; i < 5; i++) await post(`${url}/v1/update/`, one.replace(event, event.repeat(16)));
    expect(server.machines.get('chatty')!.events).toHaveLength(defaultServerLimits.maxEventsPerMachine);

    for (let i = 0; i < 30; i++) await check(id(`many-${i}`, '2001.0.0', 'stable'));
    expect(server.machines.size).toBe(20);
    expect(server.machines.has('many-9')).toBe(false);
    expect(server.machines.has('many-10')).toBe(true);

    const long = `L0NG${'x'.repeat(60_000)}`;
    for (const machineId of [long, 'a"b', 'a b', '']) {
      const r = await post(`${url}/v1/update/`, buildRequest(id(machineId, '2000.0.0', 'stable'), { kind: 'check', previousVersion: undefined, rolledBack: false }, false));
      expect(r.status).toBe(200);
      expect(r.body).toContain('status="error-invalidRequest"');
      expect(r.body).not.toContain('L0NG');
      expect(server.machines.has(machineId)).toBe(false);
    }
    expect(await check(id('fine', `2000.0.0${'.0'.repeat(100)}`, 'stable')).catch((e: Error) => e.message)).toMatch(/error-invalidRequest/);
    expect(log.join('\n')).not.toContain('L0NG');
    expect((await get(`${url}/admin/status`, admin)).body.toString()).not.toContain('L0NG');
  });

  test('the program: a 400 MB body gets 413 unread, a 50 MB machineid is never kept or echoed, and its memory stays bounded', async () => {
    const bin = join(__dirname, '../../bin/bootsmith-update-server.js');
    if (!existsSync(join(__dirname, '../../dist/update-server.js'))) return; // npm test builds first
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${token}\n`);
    const child = spawn(process.execPath, [bin, '--tree', tree, '--listen', '127.0.0.1:0', '--state-dir', join(dir, 'program-state'), '--admin-token-file', tokenFile]);
    let stderr = '';
    try {
      const served = await new Promise<string>((resolve) => {
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          const m = /serving .* at (http:\/\/127\.0\.0\.1:\d+)\/v1\/update\/ \(admin API on, with a token\)/.exec(stderr);
          if (m) resolve(m[1]!);
        });
      });
      const zeros = Buffer.alloc(MiB);
      // Announced: refused before a byte of it is read.
      const put = await flood(`${served}/v1/update/`, 'PUT', repeat(zeros, 400), { 'content-length': 400 * MiB });
      expect(put.status).toBe(413);
      expect(put.written).toBeLessThan(64 * MiB);
      // Chunked: refused once past the limit.
      const chunked = await flood(`${served}/v1/update/`, 'POST', repeat(zeros, 400), { 'content-type': 'text/xml' });
      expect(chunked.status).toBe(413);
      expect(chunked.body).toBe(`request bodies are at most ${defaultServerLimits.maxBodyBytes} bytes\n`);
      expect(chunked.written).toBeLessThan(64 * MiB);
      // A 50 MB machineid inside a well-formed request.
      const request = buildRequest(id('MACHINE-ID-PLACEHOLDER', '2000.0.0', 'stable'), { kind: 'check', previousVersion: undefined, rolledBack: false }, false);
      const [before, after] = request.split('MACHINE-ID-PLACEHOLDER') as [string, string];
      const huge = await flood(`${served}/v1/update/`, 'POST', repeat(Buffer.alloc(MiB, 'M5'), 50, Buffer.from(before), Buffer.from(after)), { 'content-type': 'text/xml' });
      expect(huge.status).toBe(413);
      expect(huge.body).not.toContain('M5M5');
      // The server still answers, and has kept none of it.
      const status = await get(`${served}/admin/status`, admin);
      expect(status.status).toBe(200);
      expect(status.body.toString()).not.toContain('M5M5');
      expect(stderr).not.toContain('M5M5');
      const hwmKb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]);
      expect(hwmKb).toBeLessThan(150 * 1024);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('close', r));
    }
  }, 60_000);
});
