/**
 * The update server at fleet scale: bootsmith-update-server (the built program, its access log on)
 * over a channel tree, 100 concurrent clients on loopback (autocannon) posting Omaha update
 * checks from 10,000 distinct machine ids. First every machine checks in once (the server learns
 * them all), then a timed run: checks per second, p50 and p99 latency, and the server's memory
 * per machine (RSS and V8 heap growth from before the first machine to after the last, divided
 * by the machines). Then 8 payloads downloaded at once, to show they are streamed (the server's
 * peak RSS against the bytes served). Last, with etcd at hand, the same load on a replica keeping
 * its state in a one-member etcd (--etcd-endpoint): figures only, no target.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { buildRequest, coreosAppId } from '../src/update/omaha';
import { EtcdCluster, haveEtcd } from '../test/support/etcd';

const machines = 10_000;
const connections = 100;
const seconds = 15;
const payloadMiB = 64;
const root = join(__dirname, '..');

/** A channel tree: stable with three releases (the newest a 64 MiB payload), beta with one. */
function makeTree(tree: string): string {
  let newest = '';
  for (const [channel, versions] of [['stable', ['1001.0.0', '1002.0.0', '1003.0.0']], ['beta', ['1004.0.0']]] as const) {
    for (const version of versions) {
      const dir = join(tree, channel, 'amd64-usr', version);
      mkdirSync(dir, { recursive: true });
      const payload = randomBytes(version === '1003.0.0' ? payloadMiB << 20 : 1 << 20);
      const file = join(dir, 'flatcar_production_update.gz');
      writeFileSync(file, payload);
      writeFileSync(`${file}.sha256`, `${createHash('sha256').update(payload).digest('hex')}  flatcar_production_update.gz\n`);
      if (version === '1003.0.0') newest = file;
    }
    symlinkSync(versions.at(-1)!, join(tree, channel, 'amd64-usr', 'current'));
  }
  return newest;
}

/** The program over `tree`, its state in `state`: a directory, or etcd endpoints. */
function startServer(tree: string, state: { dir: string } | { etcd: string[] }, log: string): Promise<{ child: ChildProcess; url: string }> {
  const where = 'dir' in state ? ['--state-dir', state.dir] : ['--etcd-endpoint', state.etcd.join(',')];
  const child = spawn(process.execPath, [join(root, 'bin/bootsmith-update-server.js'), '--tree', tree, ...where, '--listen', '127.0.0.1:0', '--log-format', 'json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let seen = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      seen += d.toString();
      const m = /serving .* at (http:\/\/127\.0\.0\.1:\d+)\/v1\/update\//.exec(seen);
      if (m) {
        // From here on the access log goes to a file, as a journal would take it.
        child.stderr!.off('data', onData);
        const out: Buffer[] = [];
        let bytes = 0;
        child.stderr!.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes < 8 << 20) out.push(c);
        });
        child.on('exit', () => writeFileSync(log, Buffer.concat(out)));
        resolve({ child, url: m[1]! });
      }
    };
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`the update server exited ${code}: ${seen}`)));
  });
}

/** The CPU time the process has used, user and system, in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** The server's RSS (now and its peak) from /proc, and its V8 heap from its own /metrics. */
async function memory(pid: number, url: string): Promise<{ rss: number; hwm: number; heap: number }> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)![1]) * 1024;
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const heap = Number(/^nodejs_heap_size_used_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(metrics)?.[1] ?? NaN);
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), heap };
}

const body = (n: number) => buildRequest(
  { appId: coreosAppId, version: '1000.0.0', track: 'stable', board: 'amd64-usr', machineId: `bench-machine-${String(n).padStart(5, '0')}`, bootId: '{b}', alephVersion: '1000.0.0', arch: 'x86_64' },
  { kind: 'check', previousVersion: undefined, rolledBack: false },
  false,
);

/** Update checks from the 10,000 machines in turn, by 100 clients; `amount` checks, or for `duration` seconds. */
function load(url: string, run: { amount?: number; duration?: number }): Promise<autocannon.Result> {
  let next = 0;
  const bodies = Array.from({ length: machines }, (_, i) => body(i));
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${url}/v1/update/`,
        connections,
        ...run,
        requests: [{ method: 'POST', headers: { 'content-type': 'text/xml' }, setupRequest: (req) => ({ ...req, body: bodies[next++ % machines] }) }],
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
}

function download(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => resolve(n));
    })
      .on('error', reject)
      .end();
  });
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'bootsmith-bench-server-'));
  const tree = join(work, 'channels');
  makeTree(tree);
  const { child, url } = await startServer(tree, { dir: join(work, 'state') }, join(work, 'access.log'));
  try {
    // One machine first: the tree read and the newest payload hashed, then the memory baseline.
    await (await fetch(`${url}/v1/update/`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: body(machines) })).text();
    await new Promise((r) => setTimeout(r, 500));
    const before = await memory(child.pid!, url);
    const learn = await load(url, { amount: machines });
    if (learn.non2xx > 0 || learn.errors > 0) throw new Error(`checking in the machines failed: ${learn.non2xx} non-2xx answers, ${learn.errors} errors`);
    const cpuBefore = cpuMs(child.pid!);
    const run = await load(url, { duration: seconds });
    const cpu = cpuMs(child.pid!) - cpuBefore;
    if (run.non2xx > 0 || run.errors > 0) throw new Error(`the timed run failed: ${run.non2xx} non-2xx answers, ${run.errors} errors`);
    const after = await memory(child.pid!, url);
    const rate = run.requests.total / (run.duration || seconds);
    console.log(`9. ${machines} machines (update checks, each offered 1003.0.0) from ${connections} clients on loopback, ${seconds} s after each checked in once`);
    console.log(`   checks per second    ${Math.round(rate)} (${run.requests.total} checks)`);
    console.log(`   server CPU per check ${((cpu / run.requests.total) * 1000).toFixed(0)} µs (${((cpu / ((run.duration || seconds) * 1000)) * 100).toFixed(0)}% of a core; at most ${Math.round((run.requests.total / cpu) * 1000)} checks per CPU second)`);
    console.log(`   latency              p50 ${run.latency.p50} ms, p99 ${run.latency.p99} ms, max ${run.latency.max} ms`);
    console.log(`   memory per machine   RSS ${((after.rss - before.rss) / machines).toFixed(0)} bytes, heap ${((after.heap - before.heap) / machines).toFixed(0)} bytes (RSS ${(before.rss / 2 ** 20).toFixed(0)} to ${(after.rss / 2 ** 20).toFixed(0)} MiB)`);
    target(`at least 2,000 checks/s (${Math.round(rate)})`, rate >= 2000);
    target(`p99 latency under 50 ms (${run.latency.p99} ms)`, run.latency.p99 < 50);
    // Payloads are streamed: 8 downloads of the 64 MiB payload at once raise the peak RSS by far less than 8 x 64 MiB.
    const file = `${url}/stable/amd64-usr/1003.0.0/flatcar_production_update.gz`;
    const hwm = (await memory(child.pid!, url)).hwm;
    const sent = (await Promise.all(Array.from({ length: 8 }, () => download(file)))).reduce((a, b) => a + b, 0);
    const grew = (await memory(child.pid!, url)).hwm - hwm;
    console.log(`   8 downloads at once  ${(sent / 2 ** 20).toFixed(0)} MiB served, peak RSS up ${(grew / 2 ** 20).toFixed(1)} MiB`);
    target(`payloads streamed: peak RSS up less than one payload (${payloadMiB} MiB) for 8 at once`, grew < payloadMiB << 20);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('close', r));
  }
  try {
    if (haveEtcd) await withEtcd(tree, work);
    else console.log('   with etcd: skipped (needs etcd)');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The same load on a replica whose state is in etcd: each check reads the machine and commits its offer there. */
async function withEtcd(tree: string, work: string): Promise<void> {
  const cluster = await EtcdCluster.start(1);
  const { child, url } = await startServer(tree, { etcd: cluster.endpoints }, join(work, 'access-etcd.log'));
  try {
    const learn = await load(url, { amount: machines });
    if (learn.non2xx > 0 || learn.errors > 0) throw new Error(`checking in the machines (etcd) failed: ${learn.non2xx} non-2xx answers, ${learn.errors} errors`);
    const cpuBefore = cpuMs(child.pid!);
    const run = await load(url, { duration: seconds });
    const cpu = cpuMs(child.pid!) - cpuBefore;
    const rate = run.requests.total / (run.duration || seconds);
    console.log(`   with etcd (a replica, state in a one-member etcd; figures only): ${Math.round(rate)} checks/s, p50 ${run.latency.p50} ms, p99 ${run.latency.p99} ms, ` +
      `server CPU ${((cpu / Math.max(1, run.requests.total)) * 1000).toFixed(0)} µs per check, ${run.non2xx} non-2xx`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.on('close', r));
    cluster.stop();
  }
}

function target(text: string, met: boolean): void {
  console.log(`   target: ${text}: ${met ? 'met' : 'MISSED'}`);
}

main().catch((err: Error) => {
  console.error(`update-server benchmark: ${err.stack ?? err.message}`);
  process.exitCode = 1;
});
