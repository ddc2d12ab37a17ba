/**
 * update_engine's D-Bus service on a real dbus-daemon, driven through locksmithd's own client:
 * AttemptUpdate leads to StatusUpdate signals up to UPDATED_NEED_REBOOT, GetStatus reports it,
 * Finalize switches the boot flags, refusals come back as D-Bus errors and the service goes on.
 */
import * as dbus from 'dbus-next';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRelease } from '../../images/make';
import { UpdateEngineService, serveUpdateEngine, busName, objectPath, interfaceName } from '../../src/update/dbus-service';
import { finalizeStaged, markGood } from '../../src/update/engine';
import { updateEngineClient } from '../../src/lock/dbus-ports';
import { UpdateServer } from '../../src/update/server';
import { startDbusDaemon } from '../support/dbus';
import type { DbusDaemon } from '../support/dbus';
import { attempterFor, cgptFlags, keyPair, updateMachine, updateTools } from '../support/update';

const haveDbus = !spawnSync('dbus-daemon', ['--version']).error;
const ready = updateTools && haveDbus;
if (!ready) test.skip('needs dbus-daemon, bzip2, e2fsprogs, gdisk and cgpt', () => undefined);

(ready ? describe : describe.skip)('com.coreos.update1', () => {
  let dir: string;
  let server: UpdateServer;
  let daemon: DbusDaemon;
  const buses: dbus.MessageBus[] = [];
  let disk = '';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bootsmith-dbus-update-'));
    const key = keyPair();
    await makeRelease(join(dir, 'channels'), 'stable', '1001.0.0', [key.privateKey], dir);
    server = new UpdateServer({ tree: join(dir, 'channels') });
    const url = await server.listen(0);
    daemon = await startDbusDaemon();
    const m = updateMachine(dir, 'dbus-one', url);
    const attempter = attempterFor(m.root, m.disk, [key.publicKey]);
    const machine = { disk: m.disk, active: { label: 'USR-A' } };
    const serviceBus = dbus.sessionBus({ busAddress: daemon.address });
    buses.push(serviceBus);
    await serveUpdateEngine(
      serviceBus,
      new UpdateEngineService(attempter, {
        finalize: async () => void (await finalizeStaged(machine, join(m.root, 'var/lib/update_engine'))),
        markSuccessful: async () => void markGood(machine),
      }),
    );
    disk = m.disk;
  }, 60_000);
  afterAll(async () => {
    for (const b of buses) b.disconnect();
    daemon.stop();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("AttemptUpdate → StatusUpdate signals → UPDATED_NEED_REBOOT; Finalize through locksmithd's client", async () => {
    const bus = dbus.sessionBus({ busAddress: daemon.address });
    buses.push(bus);
    const client = await updateEngineClient(bus);
    expect(await client.currentOperation()).toBe('UPDATE_STATUS_IDLE');
    // Finalize with nothing staged is refused with the reason; the service keeps going.
    await expect(client.finalize()).rejects.toThrow(/no verified update is staged in USR-B/);
    const ops: string[] = [];
    const done = new Promise<void>((resolve) =>
      client.onStatus((op) => {
        if (ops.at(-1) !== op) ops.push(op);
        if (op === 'UPDATE_STATUS_UPDATED_NEED_REBOOT') resolve();
      }),
    );
    const manager = (await bus.getProxyObject(busName, objectPath)).getInterface(interfaceName) as dbus.ClientInterface & {
      AttemptUpdate(): Promise<void>;
      GetStatus(): Promise<[bigint, number, string, string, bigint]>;
      ResetStatus(): Promise<void>;
    };
    await manager.AttemptUpdate();
    await done;
    expect(ops).toEqual(['UPDATE_STATUS_CHECKING_FOR_UPDATE', 'UPDATE_STATUS_UPDATE_AVAILABLE', 'UPDATE_STATUS_DOWNLOADING', 'UPDATE_STATUS_VERIFYING', 'UPDATE_STATUS_FINALIZING', 'UPDATE_STATUS_UPDATED_NEED_REBOOT']);
    const [checked, progress, op, version, size] = await manager.GetStatus();
    expect([typeof checked, progress, op, version, typeof size]).toEqual(['bigint', 1, 'UPDATE_STATUS_UPDATED_NEED_REBOOT', '1001.0.0', 'bigint']);
    expect(cgptFlags(disk, 4)).toEqual([0, 0, 0]);
    await client.finalize();
    expect(cgptFlags(disk, 4)).toEqual([2, 1, 0]);
    expect(cgptFlags(disk, 3)).toEqual([1, 0, 1]);
    await manager.ResetStatus();
    expect((await manager.GetStatus())[2]).toBe('UPDATE_STATUS_IDLE');
  }, 60_000);
});
