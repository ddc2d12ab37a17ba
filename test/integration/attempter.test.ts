/**
 * The update attempt against the update server on loopback: statuses in order, the events the
 * server records, the staged slot, a failed payload reported with its code, GROUP changes, and the
 * rollback report after a boot back into the old version.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRelease } from '../../images/make';
import type { Status } from '../../src/update/attempter';
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
});
