/**
 * The update attempt against the update server on loopback: statuses in order, the events the
 * server records, the staged slot, a failed payload reported with its code, GROUP changes, and the
 * rollback report after a boot back into the old version.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRelease } from '../../images/make';
import { UpdateAttempter } from '../../src/update/attempter';
import type { Status } from '../../src/update/attempter';
import { machineIdentity, readEngineSettings } from '../../src/update/engine-config';
import { UpdateServer } from '../../src/update/server';
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
    server.resume('stable', '1001.0.0'); // the error halted the version; the next tests want it
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

  test('after a boot back into the old version, the next check reports the rollback (3/0, code 44)', async () => {
    const m = machine('four');
    await m.attempter.check();
    // The machine rebooted, the new slot failed, and it came back on 1000.0.0: a fresh daemon.
    rmSync(join(m.root, 'var/lib/update_engine/prefs/need-reboot'));
    const again = attempter(m);
    await again.check();
    const record = server.machines.get(m.machineId)!;
    expect(record.events.find((e) => e.errorCode === 44)).toMatchObject({ type: 3, result: 0 });
    expect(server.halted.has('stable/1001.0.0')).toBe(true);
    expect(again.status().currentOperation).toBe('UPDATE_STATUS_IDLE'); // halted: noupdate
    server.resume('stable', '1001.0.0');
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

  test('a need-reboot marker from another boot is stale', async () => {
    const m = machine('six');
    const booted = (bootId: string) =>
      new UpdateAttempter({
        settings: () => readEngineSettings(m.root),
        identity: (s) => machineIdentity(s, { root: m.root, prefsDir: join(m.root, 'var/lib/update_engine/prefs'), bootIdFile: join(m.root, 'boot_id') }),
        machine: () => ({ disk: m.disk, active: { label: 'USR-A' } }),
        stateDir: join(m.root, 'var/lib/update_engine'),
        prefsDir: join(m.root, 'var/lib/update_engine/prefs'),
        publicKeys: [key.publicKey],
        bootId: () => bootId,
      });
    await booted('boot-1').check();
    // The daemon restarted in the same boot: the update still needs its reboot.
    expect(booted('boot-1').status()).toMatchObject({ currentOperation: 'UPDATE_STATUS_UPDATED_NEED_REBOOT', newVersion: '1001.0.0' });
    // After a reboot the marker is stale, and removed.
    expect(booted('boot-2').status().currentOperation).toBe('UPDATE_STATUS_IDLE');
    expect(existsSync(join(m.root, 'var/lib/update_engine/prefs/need-reboot'))).toBe(false);
  }, 60_000);
});
