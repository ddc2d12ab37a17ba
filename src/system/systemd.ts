/**
 * systemd's manager over D-Bus (org.freedesktop.systemd1), with dbus-next: reload, enable, mask,
 * and unit commands that wait for their job's result. The bus is configurable: the system bus by
 * default, or any address (a user manager's bus in tests).
 */
import * as dbus from 'dbus-next';
import type { UnitCommand } from '../cloudconfig/config';

/** What a unit command came to: the job's result (`done`, `failed`, `canceled`, ...) or `unchanged`. */
export interface CommandResult {
  result: string;
  /** The unit's ActiveState before and after. */
  before: string;
  after: string;
}

export interface Systemd {
  reload(): Promise<void>;
  /** Enables unit files; returns whether anything changed. */
  enable(unit: string, runtime: boolean): Promise<boolean>;
  mask(unit: string, runtime: boolean): Promise<boolean>;
  unmask(unit: string, runtime: boolean): Promise<boolean>;
  activeState(unit: string): Promise<string>;
  /** enabled, disabled, masked, masked-runtime, static ...; `missing` when there is no unit file. */
  unitFileState(unit: string): Promise<string>;
  run(command: UnitCommand, unit: string): Promise<CommandResult>;
  close(): void;
}

const methods: Record<UnitCommand, string> = {
  start: 'StartUnit',
  stop: 'StopUnit',
  restart: 'RestartUnit',
  reload: 'ReloadUnit',
  'try-restart': 'TryRestartUnit',
  'reload-or-restart': 'ReloadOrRestartUnit',
  'reload-or-try-restart': 'ReloadOrTryRestartUnit',
};

/** How long a unit command may take before it is reported as timed out. */
const jobTimeoutMs = 90_000;

interface ManagerInterface extends dbus.ClientInterface {
  Subscribe(): Promise<void>;
  Reload(): Promise<void>;
  EnableUnitFiles(files: string[], runtime: boolean, force: boolean): Promise<[boolean, unknown[]]>;
  MaskUnitFiles(files: string[], runtime: boolean, force: boolean): Promise<unknown[]>;
  UnmaskUnitFiles(files: string[], runtime: boolean): Promise<unknown[]>;
  LoadUnit(name: string): Promise<string>;
  GetUnitFileState(name: string): Promise<string>;
}

/** Connects to systemd at `address`: `system` for the system bus, or a D-Bus address such as `unix:path=/run/user/0/bus`. */
export async function connectSystemd(address: string): Promise<Systemd> {
  const bus = address === 'system' ? dbus.systemBus() : dbus.sessionBus({ busAddress: address });
  // A bus that cannot be reached reports it as an 'error' event; unheard, that would end the process.
  let failed: (err: Error) => void = () => undefined;
  const broken = new Promise<never>((_, reject) => (failed = reject));
  broken.catch(() => undefined);
  bus.on('error', (err: Error) => failed(err));
  try {
    const obj = await Promise.race([bus.getProxyObject('org.freedesktop.systemd1', '/org/freedesktop/systemd1'), broken]);
    const manager = obj.getInterface('org.freedesktop.systemd1.Manager') as ManagerInterface;
    await manager.Subscribe();
    const finished = new Map<string, string>();
    const waiting = new Map<string, (result: string) => void>();
    manager.on('JobRemoved', (_id: number, job: string, _unit: string, result: string) => {
      const resolve = waiting.get(job);
      if (resolve) {
        waiting.delete(job);
        resolve(result);
      } else finished.set(job, result);
    });
    const waitFor = (job: string) =>
      new Promise<string>((resolve) => {
        const done = finished.get(job);
        if (done !== undefined) {
          finished.delete(job);
          resolve(done);
          return;
        }
        const timer = setTimeout(() => {
          waiting.delete(job);
          resolve('timeout');
        }, jobTimeoutMs);
        waiting.set(job, (r) => {
          clearTimeout(timer);
          resolve(r);
        });
      });
    const activeState = async (unit: string): Promise<string> => {
      const path = await manager.LoadUnit(unit);
      const unitObj = await bus.getProxyObject('org.freedesktop.systemd1', path);
      const props = unitObj.getInterface('org.freedesktop.DBus.Properties') as dbus.ClientInterface & {
        Get(iface: string, name: string): Promise<dbus.Variant>;
      };
      return String((await props.Get('org.freedesktop.systemd1.Unit', 'ActiveState')).value);
    };
    return {
      reload: () => manager.Reload(),
      enable: async (unit, runtime) => (await manager.EnableUnitFiles([unit], runtime, true))[1].length > 0,
      mask: async (unit, runtime) => (await manager.MaskUnitFiles([unit], runtime, true)).length > 0,
      unmask: async (unit, runtime) => (await manager.UnmaskUnitFiles([unit], runtime)).length > 0,
      activeState,
      unitFileState: (unit) => manager.GetUnitFileState(unit).catch(() => 'missing'),
      run: async (command, unit) => {
        const before = await activeState(unit);
        const call = (manager as unknown as Record<string, (name: string, mode: string) => Promise<string>>)[methods[command]]!;
        const job = await call.call(manager, unit, 'replace');
        const result = await waitFor(job);
        return { result, before, after: await activeState(unit) };
      },
      close: () => bus.disconnect(),
    };
  } catch (err) {
    bus.disconnect();
    throw new Error(`cannot talk to systemd on ${address === 'system' ? 'the system bus' : address}: ${(err as Error).message}`, { cause: err });
  }
}
