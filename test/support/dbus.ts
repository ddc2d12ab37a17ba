/**
 * A private D-Bus daemon for tests, and stand-ins on it for update_engine (com.coreos.update1:
 * GetStatus, Finalize, the StatusUpdate signal) and logind (Reboot, recorded: nothing reboots).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as dbus from 'dbus-next';

export interface DbusDaemon {
  address: string;
  stop(): void;
}

export function startDbusDaemon(): Promise<DbusDaemon> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn('dbus-daemon', ['--session', '--nofork', '--print-address=1'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve({ address: line.trim(), stop: () => child.kill() });
    });
    child.on('error', reject);
  });
}

/** The stand-in update_engine: set `operation`, then `announce()` to send StatusUpdate. */
export class FakeUpdateEngine extends dbus.interface.Interface {
  operation = 'UPDATE_STATUS_IDLE';
  finalized: number[] = [];
  /** When set, Finalize fails with this message. */
  failFinalize: string | undefined;
  /** When set, Finalize never answers (as a reply lost on the way). */
  hangFinalize = false;
  /** Called on Finalize, with the time it happened (the test's clock). */
  onFinalize: () => number = () => Date.now();

  GetStatus(): unknown[] {
    return [BigInt(0), 0, this.operation, '', BigInt(0)];
  }

  Finalize(): void | Promise<void> {
    if (this.hangFinalize) return new Promise(() => undefined);
    if (this.failFinalize) throw new dbus.DBusError('com.coreos.update1.Error', this.failFinalize);
    this.finalized.push(this.onFinalize());
  }

  StatusUpdate(): unknown[] {
    return [BigInt(0), 0, this.operation, '', BigInt(0)];
  }

  announce(): void {
    (this as unknown as { StatusUpdate(): unknown }).StatusUpdate();
  }
}
FakeUpdateEngine.configureMembers({
  methods: { GetStatus: { inSignature: '', outSignature: 'xdssx' }, Finalize: { inSignature: '', outSignature: '' } },
  signals: { StatusUpdate: { signature: 'xdssx' } },
});

export class FakeLogind extends dbus.interface.Interface {
  reboots: boolean[] = [];
  Reboot(interactive: boolean): void {
    this.reboots.push(interactive);
  }
}
FakeLogind.configureMembers({ methods: { Reboot: { inSignature: 'b', outSignature: '' } } });

/** Puts both stand-ins on the bus at `address` (logind only if `withLogind`); returns them and the bus connection. */
export async function serveStandIns(address: string, withLogind = true): Promise<{ engine: FakeUpdateEngine; logind: FakeLogind; bus: dbus.MessageBus }> {
  dbus.setBigIntCompat(true);
  const bus = dbus.sessionBus({ busAddress: address });
  const engine = new FakeUpdateEngine('com.coreos.update1.Manager');
  await bus.requestName('com.coreos.update1', 0);
  bus.export('/com/coreos/update1', engine);
  const logind = withLogind ? (await serveLogind(bus)) : new FakeLogind('org.freedesktop.login1.Manager');
  return { engine, logind, bus };
}

/** Puts a stand-in logind on `bus` (for a test where it appears late). */
export async function serveLogind(bus: dbus.MessageBus): Promise<FakeLogind> {
  const logind = new FakeLogind('org.freedesktop.login1.Manager');
  await bus.requestName('org.freedesktop.login1', 0);
  bus.export('/org/freedesktop/login1', logind);
  return logind;
}

/**
 * A stand-in systemd manager for the health gate: org.freedesktop.systemd1's Manager with the
 * SystemState property (set `state`), read through org.freedesktop.DBus.Properties.
 */
export class FakeSystemdManager extends dbus.interface.Interface {
  state = 'starting';
  get SystemState(): string {
    return this.state;
  }
}
FakeSystemdManager.configureMembers({ properties: { SystemState: { signature: 's', access: dbus.interface.ACCESS_READ } } });

export async function serveFakeSystemd(address: string): Promise<{ manager: FakeSystemdManager; bus: dbus.MessageBus }> {
  const bus = dbus.sessionBus({ busAddress: address });
  const manager = new FakeSystemdManager('org.freedesktop.systemd1.Manager');
  await bus.requestName('org.freedesktop.systemd1', 0);
  bus.export('/org/freedesktop/systemd1', manager);
  return { manager, bus };
}
