/**
 * bootsmith-update-server as operators run it: an access log line per Omaha request (info level:
 * method, path, status, the machine id cut short, version, track, result, duration), and TLS with
 * --tls-cert and --tls-key (a self-signed certificate made by openssl here, the client trusting it).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRelease } from '../../images/make';
import { buildRequest } from '../../src/update/omaha';
import type { Identity } from '../../src/update/omaha';
import { sample, until } from '../support/metrics';
import { keyPair, updateTools } from '../support/update';

const bins = join(__dirname, '../../bin');
const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

const machine = (machineId: string, version: string): Identity => ({
  appId: '{e96281a6-d1af-4bde-9a0a-97b76e56dc57}', version, track: 'stable', machineId, bootId: 'b', alephVersion: version, board: 'amd64-usr', arch: 'x86_64',
});
const check = (id: Identity) => buildRequest(id, { kind: 'check', previousVersion: undefined, rolledBack: false }, false);

interface Running {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

/** The program, once it says where it serves. */
function startServer(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [join(bins, 'bootsmith-update-server.js'), '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /serving .* at (https?:\/\/127\.0\.0\.1:\d+)\/v1\/update\//.exec(stderr);
      if (m) resolve({ child, url: m[1]!, stderr: () => stderr });
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
}

/** An HTTPS request trusting `ca` only. */
function httpsRequest(url: string, ca: string, method = 'GET', body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca, headers: body ? { 'content-type': 'text/xml' } : {} }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

(updateTools ? describe : describe.skip)('bootsmith-update-server for operators', () => {
  let dir: string;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-ops-'));
    await makeRelease(join(dir, 'channels'), 'stable', '1001.0.0', [keyPair().privateKey], dir);
    if (haveOpenssl) {
      const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { encoding: 'utf8' });
      if (made.status !== 0) throw new Error(made.stderr);
    }
  }, 60_000);
  afterAll(() => {
    for (const c of children) c.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  test('one access log line per Omaha request, at info level, with the machine id cut short', async () => {
    const s = await startServer(['--tree', join(dir, 'channels'), '--log-format', 'json']);
    children.push(s.child);
    const post = (body: string) => fetch(`${s.url}/v1/update/`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body });
    expect((await post(check(machine('0123456789abcdef0123456789abcdef', '1000.0.0')))).status).toBe(200);
    await post(check(machine('short-id', '1001.0.0')));
    await post(check(machine('bad\u001bid', '1001.0.0'))); // refused: the id is not one
    await post('not xml <');
    const records = () =>
      s
        .stderr()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((r) => r.message === 'POST /v1/update/ 200');
    await until(() => records().length === 4, 10_000, 'four access log lines');
    const [first, second, third, fourth] = records();
    expect(first).toMatchObject({ level: 'info', program: 'bootsmith-update-server', machine: '0123456789abcdef…', version: '1000.0.0', track: 'stable', result: 'update' });
    expect(typeof first!.duration_ms).toBe('number');
    expect(second).toMatchObject({ machine: 'short-id', version: '1001.0.0', result: 'noupdate' });
    expect(third).toMatchObject({ machine: '-', version: '-', track: '-', result: 'invalid machineid' });
    expect(fourth).toMatchObject({ machine: '-', result: 'malformed' });
  }, 30_000);

  (haveOpenssl ? test : test.skip)('--tls-cert and --tls-key: Omaha and /metrics over HTTPS; one without the other is an error naming it', async () => {
    const s = await startServer(['--tree', join(dir, 'channels'), '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]);
    children.push(s.child);
    expect(s.url).toMatch(/^https:\/\//);
    const ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
    const answer = await httpsRequest(`${s.url}/v1/update/`, ca, 'POST', check(machine('tls-machine', '1000.0.0')));
    expect(answer.status).toBe(200);
    // The payload URL offered is https too, on the same server.
    const codebase = /codebase="([^"]+)"/.exec(answer.body)![1]!;
    expect(codebase.startsWith(`${s.url}/`)).toBe(true);
    expect((await httpsRequest(`${codebase}flatcar_production_update.gz`, ca)).status).toBe(200);
    expect(sample((await httpsRequest(`${s.url}/metrics`, ca)).body, 'bootsmith_omaha_checks_total', { result: 'update' })).toBe(1);
    // A client that does not trust the certificate is refused by TLS itself.
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();

    for (const [given, missing] of [['--tls-cert', '--tls-key'], ['--tls-key', '--tls-cert']] as const) {
      const r = spawnSync(process.execPath, [join(bins, 'bootsmith-update-server.js'), '--tree', join(dir, 'channels'), given, join(dir, 'cert.pem')], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`${given} needs ${missing}`);
    }
    const unreadable = spawnSync(process.execPath, [join(bins, 'bootsmith-update-server.js'), '--tree', join(dir, 'channels'), '--tls-cert', join(dir, 'nope.pem'), '--tls-key', join(dir, 'key.pem')], { encoding: 'utf8' });
    expect(unreadable.status).toBe(2);
    expect(unreadable.stderr).toMatch(/nope\.pem/);
  }, 30_000);
});
