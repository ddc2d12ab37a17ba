/**
 * The update attempt against the update server on loopback: statuses in order, the events the
 * server records, the staged slot, a failed payload reported with its code, GROUP changes, and the
 * rollback report after a boot back into the old version.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRelease } from '../../images/make';
import { postOmaha, UpdateAttempter } from '../../src/update/attempter';
import type { Status } from '../../src/update/attempter';
import { readStaged } from '../../src/update/engine';
import { machineIdentity, readEngineSettings } from '../../src/update/engine-config';
import { errorCode, OmahaError } from '../../src/update/omaha';
import { UpdateServer } from '../../src/update/server';
import { bootNext } from '../../src/update/slots';
import { attempterFor, cgptFlags, keyPair, slotVersion, updateMachine, updateTools, usrSlot } from '../support/update';

if (!updateTools) test.skip('needs bzip2, e2fsprogs, gdisk and cgpt', () => undefined);

(updateTools ? describe : describe.skip)('update attempt', () => {
  let dir: string;
  let server: UpdateServer;
  let url: string;
  let key: { privateKey: string; publicKey: string };
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-attempt-'));
    key = keyPair();
    await makeRelease(join(dir, 'channels'), 'stable', '1001.0.0', [key.privateKey], dir);
    server = new UpdateServer({ tree: join(dir, 'channels') });
    url = await server.listen(0);
  }, 60_000);
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A machine (see updateMachine) and its attempter, with the statuses it went through. */
  function machine(name: string, group = 'stable', publicKeys = [key.publicKey]) {
    const m = updateMachine(dir, name, url, group);
    const seen: Status[] = [];
    const attempter = attempterFor(m.root, m.disk, publicKeys);
    attempter.on('status', (s: { currentOperation: Status }) => {
      if (seen.at(-1) !== s.currentOperation) seen.push(s.currentOperation);
    });
    return { ...m, attempter, seen };
  }
  const attempter = (m: { root: string; disk: string }) => attempterFor(m.root, m.disk, [key.publicKey]);

  interface Booted {
    bootId: string;
    active?: string;
    post?: (url: string, body: string) => Promise<string>;
    logs?: string[];
  }
  /** The attempter of a daemon started in boot `bootId` of `m`, on the slot `active` (USR-A unless said). */
  const daemonAt = (m: { root: string; disk: string }, b: Booted) => {
    const prefsDir = join(m.root, 'var/lib/update_engine/prefs');
    return new UpdateAttempter({
      settings: () => readEngineSettings(m.root),
      identity: (s) => machineIdentity(s, { root: m.root, prefsDir, bootIdFile: join(m.root, 'boot_id') }),
      machine: () => ({ disk: m.disk, active: { label: b.active ?? 'USR-A' } }),
      stateDir: join(m.root, 'var/lib/update_engine'),
      prefsDir,
      publicKeys: [key.publicKey],
      bootId: () => b.bootId,
      ...(b.post ? { post: b.post } : {}),
      log: (l) => b.logs?.push(l),
    });
  };
  /** A reboot: gptprio picks the slot (using up a try), and the root's release shows that slot's version. */
  const reboot = (m: { root: string; disk: string }) => {
    const choice = bootNext(m.disk);
    const version = slotVersion(m.disk, usrSlot(m.disk, choice.label as 'USR-A' | 'USR-B'), m.root);
    writeFileSync(join(m.root, 'usr/share/coreos/release'), `COREOS_RELEASE_VERSION=${version}\nCOREOS_RELEASE_BOARD=amd64-usr\n`);
    return { active: choice.label, version };
  };
  /** The Omaha events the server recorded for a machine, as "type/result[/code] version". */
  const events = (m: { machineId: string }) => (server.machines.get(m.machineId)?.events ?? []).map((e) => `${e.type}/${e.result}${e.errorCode !== undefined ? `/${e.errorCode}` : ''} ${e.version}`);
  const stateFile = (m: { root: string }, f: string) => join(m.root, 'var/lib/update_engine', f);

  test('an update: statuses in order, events 13/1, 14/1, 3/1 at the server, USR-B staged', async () => {
    const m = machine('one');
    await m.attempter.check();
    expect(m.seen).toEqual([
      'UPDATE_STATUS_CHECKING_FOR_UPDATE',
      'UPDATE_STATUS_UPDATE_AVAILABLE',
      'UPDATE_STATUS_DOWNLOADING',
      'UPDATE_STATUS_VERIFYING',
      'UPDATE_STATUS_FINALIZING',
      'UPDATE_STATUS_UPDATED_NEED_REBOOT',
    ]);
    expect(m.attempter.status()).toMatchObject({ currentOperation: 'UPDATE_STATUS_UPDATED_NEED_REBOOT', newVersion: '1001.0.0', progress: 1 });
    // The check's own 3/2 (previousversion 0.0.0.0: nothing to report) is answered, not kept.
    const events = server.machines.get(m.machineId)!.events.map((e) => `${e.type}/${e.result}`);
    expect(events).toEqual(['13/1', '14/1', '3/1']);
    expect(server.counts.events).toBeGreaterThanOrEqual(4);
    expect(slotVersion(m.disk, usrSlot(m.disk, 'USR-B'), dir)).toBe('1001.0.0');
    expect(cgptFlags(m.disk, 4)).toEqual([0, 0, 0]); // staged, not finalized: locksmithd does that
    // A check while a reboot is needed only pings.
    const checks = server.counts.checks;
    await m.attempter.check();
    expect(server.counts.checks).toBe(checks);
    // ResetStatus forgets the staged update (the flags are not touched).
    m.attempter.resetStatus();
    expect(m.attempter.status().currentOperation).toBe('UPDATE_STATUS_IDLE');
    expect(cgptFlags(m.disk, 4)).toEqual([0, 0, 0]);
  }, 60_000);

  test('a payload that fails its signature: 3/0 with code 12, back to IDLE, USR-B unbootable', async () => {
    const m = machine('two', 'stable', [keyPair().publicKey]);
    const failures: { code: number }[] = [];
    m.attempter.on('failed', (f: { code: number }) => failures.push(f));
    await m.attempter.check();
    expect(m.seen).toEqual(['UPDATE_STATUS_CHECKING_FOR_UPDATE', 'UPDATE_STATUS_UPDATE_AVAILABLE', 'UPDATE_STATUS_DOWNLOADING', 'UPDATE_STATUS_VERIFYING', 'UPDATE_STATUS_REPORTING_ERROR_EVENT', 'UPDATE_STATUS_IDLE']);
    expect(failures.map((f) => f.code)).toEqual([12]);
    expect(server.machines.get(m.machineId)!.events.at(-1)).toMatchObject({ type: 3, result: 0, errorCode: 12 });
    expect(cgptFlags(m.disk, 4)).toEqual([0, 0, 0]);
    expect(cgptFlags(m.disk, 3)).toEqual([1, 0, 1]);
    await server.resume('stable', '1001.0.0'); // the error halted the version; the next tests want it
  }, 60_000);

  test('GROUP is read for every check: nothing newer on beta, then the update once moved to stable', async () => {
    const m = machine('three', 'beta');
    await m.attempter.check();
    expect(m.seen).toEqual(['UPDATE_STATUS_CHECKING_FOR_UPDATE', 'UPDATE_STATUS_IDLE']);
    writeFileSync(join(m.root, 'etc/coreos/update.conf'), `GROUP=stable\nSERVER=${url}/v1/update/\n`);
    await m.attempter.check();
    expect(m.attempter.status()).toMatchObject({ currentOperation: 'UPDATE_STATUS_UPDATED_NEED_REBOOT', newVersion: '1001.0.0' });
    expect(server.machines.get(m.machineId)!.track).toBe('stable');
    // A daemon started again while the reboot is pending starts in UPDATED_NEED_REBOOT.
    const restarted = attempter(m);
    expect(restarted.status().currentOperation).toBe('UPDATE_STATUS_UPDATED_NEED_REBOOT');
    expect(() => restarted.resetStatus()).not.toThrow();
  }, 60_000);

  test('a reboot before Finalize is no rollback: nothing is reported, the update stays staged, Finalize then boots it and 3/2 follows', async () => {
    const m = machine('four');
    await daemonAt(m, { bootId: 'boot-1' }).check();
    expect(cgptFlags(m.disk, 4)).toEqual([0, 0, 0]);
    // A reboot (or power loss) before locksmithd asked for Finalize: the boot loader picks USR-A again.
    expect(reboot(m)).toEqual({ active: 'USR-A', version: '1000.0.0' });
    const logs: string[] = [];
    const after = daemonAt(m, { bootId: 'boot-2', logs });
    expect(after.status()).toMatchObject({ currentOperation: 'UPDATE_STATUS_UPDATED_NEED_REBOOT', newVersion: '1001.0.0' });
    expect(logs.join('\n')).toMatch(/1001\.0\.0 is still staged in USR-B \(not booted yet\); a reboot is needed/);
    await after.reportBoot(); // as when the boot is marked good
    await after.check(); // NEED_REBOOT: a ping only
    expect(events(m)).toEqual(['13/1 1000.0.0', '14/1 1000.0.0', '3/1 1000.0.0']);
    expect(server.halted.has('stable/1001.0.0')).toBe(false);
    // The update is still there to finalize, and after its boot the update is reported.
    await after.finalize();
    expect(cgptFlags(m.disk, 4)).toEqual([2, 1, 0]);
    expect(reboot(m)).toEqual({ active: 'USR-B', version: '1001.0.0' });
    const updated = daemonAt(m, { bootId: 'boot-3', active: 'USR-B' });
    expect(updated.status().currentOperation).toBe('UPDATE_STATUS_IDLE');
    await updated.reportBoot();
    expect(events(m)).toEqual(['13/1 1000.0.0', '14/1 1000.0.0', '3/1 1000.0.0', '3/2 1001.0.0']);
    expect(existsSync(stateFile(m, 'prefs/previous-version'))).toBe(false);
    expect(existsSync(stateFile(m, 'finalized.json'))).toBe(false);
  }, 60_000);

  test('a boot of the old slot after a finalize is a rollback: 3/0 code 44, and the rollout halts; a daemon restart before the reboot reports nothing', async () => {
    const m = machine('rollback');
    const first = daemonAt(m, { bootId: 'boot-1' });
    await first.check();
    await first.finalize();
    expect(cgptFlags(m.disk, 4)).toEqual([2, 1, 0]);
    // Finalize recorded what it switched, on disk, before the flags.
    expect(JSON.parse(readFileSync(stateFile(m, 'finalized.json'), 'utf8'))).toMatchObject({ label: 'USR-B', uniqueGuid: usrSlot(m.disk, 'USR-B').uniqueGuid });
    // update_engine restarts in the same boot: still waiting for the reboot, not a rollback.
    const restarted = daemonAt(m, { bootId: 'boot-1' });
    expect(restarted.status()).toMatchObject({ currentOperation: 'UPDATE_STATUS_UPDATED_NEED_REBOOT', newVersion: '1001.0.0' });
    await restarted.reportBoot();
    expect(events(m)).toEqual(['13/1 1000.0.0', '14/1 1000.0.0', '3/1 1000.0.0']);
    // The new slot boots once and is never marked good; the next boot falls back to USR-A.
    expect(reboot(m)).toEqual({ active: 'USR-B', version: '1001.0.0' });
    expect(reboot(m)).toEqual({ active: 'USR-A', version: '1000.0.0' });
    const back = daemonAt(m, { bootId: 'boot-3' });
    expect(back.status().currentOperation).toBe('UPDATE_STATUS_IDLE');
    await back.reportBoot();
    expect(events(m)).toEqual(['13/1 1000.0.0', '14/1 1000.0.0', '3/1 1000.0.0', '3/0/44 1000.0.0']);
    expect(server.halted.has('stable/1001.0.0')).toBe(true);
    // Reported once: the next check does not repeat it.
    expect(existsSync(stateFile(m, 'prefs/previous-version'))).toBe(false);
    expect(existsSync(stateFile(m, 'finalized.json'))).toBe(false);
    await back.check();
    expect(events(m).filter((e) => e.startsWith('3/0/44'))).toHaveLength(1);
    expect(back.status().currentOperation).toBe('UPDATE_STATUS_IDLE'); // halted: noupdate
    await server.resume('stable', '1001.0.0');
  }, 60_000);

  test('a Finalize cut short before the flags switched (power loss): the boot after is no rollback, and the update is still staged', async () => {
    const m = machine('cut');
    await daemonAt(m, { bootId: 'boot-1' }).check();
    // As finalizeStaged leaves the disk when the power goes between its record and the GPT write.
    const staged = readStaged(stateFile(m, ''))!;
    writeFileSync(stateFile(m, 'finalized.json'), JSON.stringify({ partition: staged.partition, uniqueGuid: staged.uniqueGuid, label: staged.label, imageSha256: staged.imageSha256, finalizedAt: new Date().toISOString() }));
    expect(reboot(m).active).toBe('USR-A');
    const after = daemonAt(m, { bootId: 'boot-2' });
    expect(after.status()).toMatchObject({ currentOperation: 'UPDATE_STATUS_UPDATED_NEED_REBOOT', newVersion: '1001.0.0' });
    await after.reportBoot();
    await after.check();
    expect(events(m)).toEqual(['13/1 1000.0.0', '14/1 1000.0.0', '3/1 1000.0.0']);
    await after.finalize();
    expect(cgptFlags(m.disk, 4)).toEqual([2, 1, 0]);
  }, 60_000);

  test('Finalize asks the server first: a version replaced since the download is dropped; a server that does not answer does not stop it', async () => {
    const m = machine('five', 'replaced');
    await makeRelease(join(dir, 'channels'), 'replaced', '1001.0.0', [key.privateKey], dir);
    await m.attempter.check();
    expect(m.attempter.status().currentOperation).toBe('UPDATE_STATUS_UPDATED_NEED_REBOOT');
    await makeRelease(join(dir, 'channels'), 'replaced', '1001.5.0', [key.privateKey], dir);
    await expect(m.attempter.finalize()).rejects.toThrow('the update server no longer offers 1001.0.0 (it offers 1001.5.0 now): not finalized, the staged update is dropped');
    expect(m.attempter.status()).toMatchObject({ currentOperation: 'UPDATE_STATUS_IDLE', newVersion: '0.0.0' });
    expect(cgptFlags(m.disk, 4)).toEqual([0, 0, 0]);
    expect(existsSync(join(m.root, 'var/lib/update_engine/staged.json'))).toBe(false);
    // Nothing to report after the next boot: the machine did not update.
    expect(existsSync(join(m.root, 'var/lib/update_engine/prefs/previous-version'))).toBe(false);
    await expect(m.attempter.finalize()).rejects.toThrow('nothing to finalize: the update engine is UPDATE_STATUS_IDLE');

    // Staged again (1001.5.0); then the server goes away: the verified update is finalized.
    await m.attempter.check();
    const logs: string[] = [];
    const offline = new UpdateAttempter({
      settings: () => ({ ...readEngineSettings(m.root), server: 'http://127.0.0.1:9/v1/update/' }),
      identity: (s) => machineIdentity(s, { root: m.root, prefsDir: join(m.root, 'var/lib/update_engine/prefs'), bootIdFile: join(m.root, 'boot_id') }),
      machine: () => ({ disk: m.disk, active: { label: 'USR-A' } }),
      stateDir: join(m.root, 'var/lib/update_engine'),
      prefsDir: join(m.root, 'var/lib/update_engine/prefs'),
      publicKeys: [key.publicKey],
      log: (l) => logs.push(l),
    });
    expect(offline.status()).toMatchObject({ currentOperation: 'UPDATE_STATUS_UPDATED_NEED_REBOOT', newVersion: '1001.5.0' });
    await offline.finalize();
    expect(logs.join('\n')).toMatch(/could not confirm 1001\.5\.0 with the update server .*; finalizing the verified update/);
    expect(cgptFlags(m.disk, 4)).toEqual([2, 1, 0]);
    // Finalizing again (the compatibility switch did it already, then locksmithd asks) succeeds.
    await expect(offline.finalize()).resolves.toBeUndefined();
  }, 90_000);

  test('Finalize succeeds whenever the flags point at the unbooted slot, whatever the status; ResetStatus after a finalize switches them back', async () => {
    const m = machine('five-b');
    await m.attempter.check();
    await m.attempter.finalize();
    expect(cgptFlags(m.disk, 4)).toEqual([2, 1, 0]);
    // locksmithd lost the reply and asks again: the flags are switched, so it is a success.
    await expect(m.attempter.finalize()).resolves.toBeUndefined();
    // An operator's ResetStatus: the engine forgets the update, and the flags go back to USR-A, so
    // locksmithd's next Finalize is refused with nothing switched (it may give its slot back).
    m.attempter.resetStatus();
    expect(m.attempter.status().currentOperation).toBe('UPDATE_STATUS_IDLE');
    expect(cgptFlags(m.disk, 4)).toEqual([0, 0, 0]);
    expect(bootNext(m.disk).label).toBe('USR-A');
    await expect(m.attempter.finalize()).rejects.toThrow('nothing to finalize: the update engine is UPDATE_STATUS_IDLE');
    // Flags switched by hand while the engine is IDLE: Finalize confirms them rather than refusing.
    spawnSync('cgpt', ['add', '-i', '4', '-P', '2', '-T', '1', '-S', '0', m.disk]);
    await expect(m.attempter.finalize()).resolves.toBeUndefined();
  }, 90_000);

  test('a need-reboot marker from another boot: the update stays staged only while its slot is untouched; otherwise it is forgotten, not reported', async () => {
    const m = machine('six');
    await daemonAt(m, { bootId: 'boot-1' }).check();
    // The daemon restarted in the same boot: the update still needs its reboot.
    expect(daemonAt(m, { bootId: 'boot-1' }).status()).toMatchObject({ currentOperation: 'UPDATE_STATUS_UPDATED_NEED_REBOOT', newVersion: '1001.0.0' });
    // After a reboot, with USR-B made bootable behind update_engine's back: not what was staged.
    reboot(m);
    spawnSync('cgpt', ['add', '-i', '4', '-P', '1', '-S', '1', m.disk]);
    const logs: string[] = [];
    const after = daemonAt(m, { bootId: 'boot-2', logs });
    expect(after.status().currentOperation).toBe('UPDATE_STATUS_IDLE');
    expect(logs.join('\n')).toMatch(/1001\.0\.0 is no longer staged in USR-B: it is forgotten/);
    for (const f of ['prefs/need-reboot', 'prefs/previous-version', 'staged.json']) expect(existsSync(stateFile(m, f))).toBe(false);
    await after.reportBoot();
    expect(events(m)).toEqual(['13/1 1000.0.0', '14/1 1000.0.0', '3/1 1000.0.0']);
    await expect(after.finalize()).rejects.toThrow('nothing to finalize: the update engine is UPDATE_STATUS_IDLE');
    expect(cgptFlags(m.disk, 4)).toEqual([1, 0, 1]);
  }, 60_000);

  test("a check answered with a refusal (Nebraska's error-updatesDisabled) is no update: back to IDLE, no error event", async () => {
    const m = machine('refused');
    const sent: string[] = [];
    const a = daemonAt(m, {
      bootId: 'boot-1',
      post: async (_url, body) => {
        sent.push(body);
        return '<response protocol="3.0" server="nebraska"><daystart elapsed_seconds="0"></daystart><app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" status="error-updatesDisabled"><updatecheck status="error-internal"></updatecheck></app></response>';
      },
    });
    const seen: Status[] = [];
    a.on('status', (s: { currentOperation: Status }) => seen.push(s.currentOperation));
    await expect(a.check()).resolves.toEqual({ result: 'noupdate' });
    expect(seen).toEqual(['UPDATE_STATUS_CHECKING_FOR_UPDATE', 'UPDATE_STATUS_IDLE']);
    expect(sent).toHaveLength(1); // the check only: no 3/0 event
    expect(sent[0]).toContain('<updatecheck></updatecheck>');
  }, 30_000);

  test("Finalize's confirmation, one answer at a time: only the same version finalizes; only no answer at all falls back to the verified update", async () => {
    const m = machine('confirm');
    await daemonAt(m, { bootId: 'boot-1' }).check();
    const real = (url: string, body: string) => postOmaha(url, body);
    const answer = (xml: string) => async () => xml;
    const failing = (err: Error) => async () => Promise.reject(err);
    const refusal = (appStatus: string, checkStatus: string) => answer(`<response protocol="3.0" server="nebraska"><daystart elapsed_seconds="0"></daystart><app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" status="${appStatus}"><updatecheck status="${checkStatus}"></updatecheck></app></response>`);
    const offered = async (url: string, body: string) => (await postOmaha(url, body)).replace(/<manifest version="[^"]*"/, '<manifest version="1001.5.0"');
    const cases: [string, (url: string, body: string) => Promise<string>, boolean][] = [
      ['the same version offered', real, true],
      ['noupdate', refusal('ok', 'noupdate'), false],
      ['another version', offered, false],
      ["Nebraska's error-updatesDisabled", refusal('error-updatesDisabled', 'error-internal'), false],
      ['error-maxConcurrentUpdatesLimitReached', refusal('error-maxConcurrentUpdatesLimitReached', 'error-internal'), false],
      ['updatecheck error-internal', refusal('ok', 'error-internal'), false],
      ['an HTTP error status', failing(new OmahaError(errorCode.httpBase + 503, 'HTTP 503')), false],
      ['an empty response', answer(''), false],
      ['not XML', answer('<html><body>captive portal'), false],
      ['no answer at all', failing(new OmahaError(errorCode.omahaRequestError, 'connect ECONNREFUSED 127.0.0.1:9')), true],
    ];
    for (const [what, post, finalizes] of cases) {
      // Each answer on its own copy of the machine, as staged.
      const copy = { root: join(dir, `confirm-${cases.findIndex((c) => c[0] === what)}`), disk: '' };
      expect(spawnSync('cp', ['-a', '--sparse=always', m.root, copy.root]).status).toBe(0);
      copy.disk = join(copy.root, 'disk.img');
      const logs: string[] = [];
      const a = daemonAt(copy, { bootId: 'boot-1', post, logs });
      expect(a.status().currentOperation).toBe('UPDATE_STATUS_UPDATED_NEED_REBOOT');
      const result = await a.finalize().then(
        () => 'finalized',
        (err: Error) => err.message,
      );
      const seen = { what, result, flags: cgptFlags(copy.disk, 4), status: a.status().currentOperation, staged: existsSync(stateFile(copy, 'staged.json')) };
      if (finalizes) expect(seen).toEqual({ what, result: 'finalized', flags: [2, 1, 0], status: 'UPDATE_STATUS_UPDATED_NEED_REBOOT', staged: false });
      else expect(seen).toEqual({ what, result: expect.stringMatching(/^the update server no longer offers 1001\.0\.0 \(.+\): not finalized, the staged update is dropped$/), flags: [0, 0, 0], status: 'UPDATE_STATUS_IDLE', staged: false });
      expect(existsSync(stateFile(copy, 'finalized.json'))).toBe(finalizes);
    }
  }, 90_000);
});
