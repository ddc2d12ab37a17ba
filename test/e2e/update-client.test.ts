/**
 * update_engine_client as a user runs it: the bundled program on a disk image built by the images
 * tools, the whole cycle (apply with a progress bar, finalize, boot-next, mark-successful) and its
 * errors and exit codes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/update_engine_client';
import { cgptFlags, diskCopy, fixture, sgdiskVerify, sha256, updateTools } from '../support/update';
import type { Fixture } from '../support/update';
import { serveFakeSystemd, startDbusDaemon } from '../support/dbus';
import type { DbusDaemon } from '../support/dbus';

const root = join(__dirname, '../..');
const cli = join(root, 'bin/update_engine_client.js');
const ready = updateTools && existsSync(join(root, 'dist/update_engine_client.js'));
if (!ready) test.skip('needs bzip2, e2fsprogs, gdisk, cgpt and a build', () => undefined);

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** In-process, with a terminal-like stderr, to see the progress bar; `onStderr` sees each write as it happens. */
async function runTty(args: string[], onStderr: (text: string) => void = () => undefined): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => ((stderr += s), onStderr(s)), isTTY: true, columns: 100 } });
  return { code, stdout, stderr };
}

(ready ? describe : describe.skip)('update_engine_client', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await fixture();
  }, 60_000);
  afterAll(() => rmSync(f.dir, { recursive: true, force: true }));

  test('apply (progress bar on a terminal), finalize, boot-next, mark-successful', async () => {
    const disk = diskCopy(f, 'cycle');
    const state = join(f.dir, 'state');
    const p = f.payloads['1001.0.0']!;
    const common = ['--disk', disk, '--state-dir', state];
    expect(run(['--slots', ...common, '--active', 'USR-A']).stdout).toMatch(/^USR-A\tpartition=3\tpriority=1\ttries=0\tsuccessful=1\tactive\tPARTUUID=[0-9A-F-]{36}\nUSR-B\tpartition=4\tpriority=0\ttries=0\tsuccessful=0\tpassive/);

    const applied = await runTty(['--apply-payload', p.path, ...common, '--active', 'USR-A', '--public-key', f.publicKeyFiles[0]!, '--sha256', p.sha256, '--size', String(p.size)]);
    expect(applied.code).toBe(0);
    // One quantity in the bar and the summary: image bytes written to the slot, of the image's size; the bar's last rate is the summary's.
    const bar = /\r\[#+\] 100%  24\.0 MiB \/ 24\.0 MiB  ([\d.]+ MiB\/s)  \n$/.exec(applied.stderr);
    expect(bar).not.toBeNull();
    const summary = /^staged USR-B \(partition 4\): 25165824 of 25165824 bytes written in [\d.]+ s \(([\d.]+ MiB\/s)\) and verified \(SHA-256 [0-9a-f]{64}\), from a \d+-byte payload in [\d.]+ s in all, signed by key 1\n$/.exec(applied.stdout);
    expect(summary).not.toBeNull();
    expect(bar![1]).toBe(summary![1]);

    // Go/gflags-style spellings work as in the reference client.
    const fin = run(['-finalize', `-disk=${disk}`, '-active', 'USR-A', `-state_dir=${state}`]);
    expect(fin).toMatchObject({ code: 0, stderr: '' });
    expect(fin.stdout).toMatch(/^finalized: the next boot tries USR-B\n/);
    expect(cgptFlags(disk, 4)).toEqual([2, 1, 0]);

    const next = run(['-boot_next', disk]);
    expect(next.stdout).toMatch(/^PARTITION=4\nLABEL=USR-B\nPARTUUID=[0-9A-F-]{36}\nTRIES_USED=1\n$/);
    expect(cgptFlags(disk, 4)).toEqual([2, 0, 0]);

    // Booted from USR-B, as the kernel command line says.
    const partUuid = /PARTUUID=(\S+)/.exec(next.stdout)![1]!;
    const cmdline = join(f.dir, 'cmdline');
    writeFileSync(cmdline, `BOOT_IMAGE=/flatcar/vmlinuz-b mount.usr=PARTUUID=${partUuid.toLowerCase()} rootflags=rw\n`);
    const good = run(['--mark-successful', '--disk', disk, '--cmdline-file', cmdline]);
    expect(good).toMatchObject({ code: 0, stderr: '' });
    expect(good.stdout).toMatch(/^USR-B marked successful\n/);
    expect(cgptFlags(disk, 4)).toEqual([2, 0, 1]);
    expect(sgdiskVerify(disk)).toContain('No problems found');
    expect(run(['--boot-next', disk]).stdout).toMatch(/^PARTITION=4\n.*\nTRIES_USED=0\n$/s);
  }, 60_000);

  test('--progress lines: the same quantity as the summary, a line per tenth, the last rate the summary\'s', () => {
    const p = f.payloads['1001.0.0']!;
    const r = run(['--apply-payload', p.path, '--disk', diskCopy(f, 'lines'), '--active', 'USR-A', '--state-dir', join(f.dir, 's-lines'), '--public-key', f.publicKeyFiles[0]!, '--progress', 'lines']);
    expect(r.code).toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    for (const line of lines) expect(line).toMatch(/^progress \d+%: \d+ of 25165824 bytes written, [\d.]+ MiB\/s$/);
    const last = /^progress 100%: 25165824 of 25165824 bytes written, ([\d.]+ MiB\/s)$/.exec(lines.at(-1)!);
    expect(last).not.toBeNull();
    expect(r.stdout).toContain(`25165824 of 25165824 bytes written in `);
    expect(/ \(([\d.]+ MiB\/s)\) and verified/.exec(r.stdout)![1]).toBe(last![1]);
  }, 60_000);

  test('a rejected payload: exit 1, the check named, the slot unbootable', () => {
    const disk = diskCopy(f, 'reject');
    const r = run(['--apply-payload', f.payloads['1001.0.0']!.path, '--disk', disk, '--active', 'USR-A', '--state-dir', join(f.dir, 's2'), '--public-key', f.publicKeyFiles[1]!]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^progress .*\nupdate_engine_client: payload rejected \(signature check\): none of the payload's 1 signature\(s\) verifies with any of the 1 configured key\(s\); USR-B is marked unbootable\n$/s);
    expect(cgptFlags(disk, 4)).toEqual([0, 0, 0]);
    expect(cgptFlags(disk, 3)).toEqual([1, 0, 1]);
  }, 60_000);

  test('a payload that fails before its first write (missing file, refused URL, bad header) changes no flag, no byte and no staged record', async () => {
    const p = f.payloads['1001.0.0']!;
    // A port nothing listens on.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const notPayload = join(f.dir, 'index.html');
    writeFileSync(notPayload, '<html>Service unavailable, try again later</html>\n');
    const sources: [string, RegExp][] = [
      [join(f.dir, 'typo.gz'), /payload rejected \(download check\): reading .*typo\.gz at byte 0: ENOENT/],
      [`http://127.0.0.1:${port}/update.gz`, /payload rejected \(download check\): reading http:\/\/127\.0\.0\.1:\d+\/update\.gz at byte 0: .*ECONNREFUSED/],
      [notPayload, /payload rejected \(header check\): not an update payload: it starts with "<htm"/],
    ];
    /** Everything a failed apply could have changed: the disk's bytes, both slots' flags, the state directory. */
    const snapshot = (disk: string, state: string) => ({
      disk: sha256(readFileSync(disk)),
      flags: [cgptFlags(disk, 3), cgptFlags(disk, 4)],
      state: Object.fromEntries(readdirSync(state).map((n) => [n, readFileSync(join(state, n), 'utf8')])),
    });

    // Staged, not yet finalized: the record of what USR-B holds stays, and finalizing still works after.
    const staged = diskCopy(f, 'prewrite-staged');
    const stagedState = join(f.dir, 'state-prewrite-staged');
    const common = (disk: string, state: string) => ['--disk', disk, '--active', 'USR-A', '--state-dir', state, '--public-key', f.publicKeyFiles[0]!, '--progress', 'none'];
    expect(run(['--apply-payload', p.path, ...common(staged, stagedState)]).code).toBe(0);
    // Finalized, as after --finalize with the reboot slot held: USR-B must stay the next boot.
    const finalized = diskCopy(f, 'prewrite-finalized');
    const finalizedState = join(f.dir, 'state-prewrite-finalized');
    expect(run(['--apply-payload', p.path, ...common(finalized, finalizedState)]).code).toBe(0);
    expect(run(['--finalize', '--disk', finalized, '--active', 'USR-A', '--state-dir', finalizedState]).code).toBe(0);
    expect(cgptFlags(finalized, 4)).toEqual([2, 1, 0]);

    for (const [disk, state] of [[staged, stagedState], [finalized, finalizedState]] as const) {
      const before = snapshot(disk, state);
      for (const [source, message] of sources) {
        const r = run(['--apply-payload', source, ...common(disk, state)]);
        expect([source, r.code]).toEqual([source, 1]);
        expect(r.stderr).toMatch(message);
        expect(r.stderr).toMatch(/; nothing was written: USR-B, the boot flags and the staged update are as they were\n$/);
        expect(snapshot(disk, state)).toEqual(before);
      }
    }
    expect(cgptFlags(finalized, 4)).toEqual([2, 1, 0]);
    expect(run(['--finalize', '--disk', staged, '--active', 'USR-A', '--state-dir', stagedState])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^finalized: the next boot tries USR-B\n/) });
    expect(sgdiskVerify(staged)).toContain('No problems found');
  }, 60_000);

  test('usage and environment errors', () => {
    const disk = diskCopy(f, 'usage');
    expect(run([])).toMatchObject({ code: 2, stderr: 'update_engine_client: nothing to do: give one of --check-for-update, --update, --status, --reset-status, --watch-for-updates, --boot-next, --slots, --apply-payload, --finalize, --mark-successful\n' });
    expect(run(['--slots', '--disk', disk, '--cmdline-file', '/dev/null'])).toMatchObject({ code: 1 });
    expect(run(['--slots', '--disk', disk, '--active', 'USR-C']).stderr).toBe('update_engine_client: neither USR partition is the running one (USR-C)\n');
    expect(run(['--apply-payload', 'x', '--disk', disk, '--active', 'USR-A', '--sha256', 'abc'])).toMatchObject({ code: 2, stderr: 'update_engine_client: --sha256 abc is neither 64 hex digits nor a base64 SHA-256\n' });
    expect(run(['--apply-payload', 'x', '--disk', disk, '--active', 'USR-A', '--public-key', '/nonexistent.pem']).code).toBe(2);
    expect(run(['--size', '12k', '--slots']).code).toBe(2);
    const notGpt = join(mkdtempSync(join(tmpdir(), 'bootsmith-')), 'blank.img');
    writeFileSync(notGpt, Buffer.alloc(1 << 20));
    expect(run(['--boot-next', notGpt])).toMatchObject({ code: 1, stderr: expect.stringMatching(/has no valid GPT: no GPT signature at LBA 1; no GPT signature at LBA 2047/) });
    expect(run(['--finalize', '--disk', disk, '--active', 'USR-A', '--state-dir', join(f.dir, 'none')]).stderr).toBe('update_engine_client: no verified update is staged in USR-B: nothing to finalize\n');
  });
});

(ready ? describe : describe.skip)('update_engine_client --mark-successful --health-gate', () => {
  let f: Fixture;
  let daemon: DbusDaemon;
  let fake: Awaited<ReturnType<typeof serveFakeSystemd>>;
  beforeAll(async () => {
    f = await fixture();
    daemon = await startDbusDaemon();
    fake = await serveFakeSystemd(daemon.address);
  }, 60_000);
  afterAll(async () => {
    fake.bus.disconnect();
    daemon.stop();
    rmSync(f.dir, { recursive: true, force: true });
  });

  test('waits until systemd reports running, then marks the slot good', async () => {
    const disk = diskCopy(f, 'gate');
    spawnSync('cgpt', ['add', '-i', '3', '-S', '0', '-T', '1', disk]);
    fake.manager.state = 'starting';
    // The system comes up once the client is waiting for it (not after a fixed time: a loaded
    // machine may take longer than that to get the client there).
    const r = await runTty(['--mark-successful', '--health-gate', '--systemd-bus', daemon.address, '--disk', disk, '--active', 'USR-A'], (text) => {
      if (text.startsWith('waiting for the system')) fake.manager.state = 'running';
    });
    expect(r).toMatchObject({ code: 0, stderr: 'waiting for the system to be healthy (up to 300 s)\n' });
    expect(cgptFlags(disk, 3)).toEqual([1, 0, 1]);
  }, 30_000);

  test('not healthy in time: not marked, exit 1', async () => {
    const disk = diskCopy(f, 'gate-fail');
    spawnSync('cgpt', ['add', '-i', '3', '-S', '0', '-T', '1', disk]);
    fake.manager.state = 'degraded';
    const r = await runTty(['--mark-successful', '--health-gate', '--health-timeout', '1', '--systemd-bus', daemon.address, '--disk', disk, '--active', 'USR-A']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/update_engine_client: not healthy after 1 s \(system degraded\): the running slot is not marked successful\n$/);
    expect(cgptFlags(disk, 3)).toEqual([1, 1, 0]);
  }, 30_000);
});
