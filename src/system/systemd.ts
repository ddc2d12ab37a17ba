/**
 * systemd's manager over D-Bus (org.freedesktop.systemd1), with dbus-next: reload, enable, mask,
 * and unit commands that wait for their job's result. The bus is configurable: the system bus by
 * default, or any address (a user manager's bus in tests).
 */
import * as dbus from 'dbus-next';
import type { UnitCommand } from '../cloudconfig/config';
import { openBus } from './dbus';

/**
 * What a unit command came to: the job's result (`done`, `failed`, `canceled`, ...), `timeout`, or
 * `queued` when the unit is ordered after the unit this process runs in (coreos-cloudinit's boot
 * units are Before= etcd2, locksmithd, update-engine ...): that job cannot finish until this
 * process exits, so waiting for it would only wait out the timeout.
 */
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
  /** Disables unit files (removes their [Install] links); returns whether anything changed. */
  disable(unit: string, runtime: boolean): Promise<boolean>;
  mask(unit: string, runtime: boolean): Promise<boolean>;
  unmask(unit: string, runtime: boolean): Promise<boolean>;
  activeState(unit: string): Promise<string>;
  /** The manager's SystemState: running, degraded, starting ... */
  systemState(): Promise<string>;
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
  DisableUnitFiles(files: string[], runtime: boolean): Promise<unknown[]>;
  MaskUnitFiles(files: string[], runtime: boolean, force: boolean): Promise<unknown[]>;
  UnmaskUnitFiles(files: string[], runtime: boolean): Promise<unknown[]>;
  LoadUnit(name: string): Promise<string>;
  GetUnitFileState(name: string): Promise<string>;
  GetUnitByPID(pid: number): Promise<string>;
}

/** Connects to systemd at `address`: `system` for the system bus, or a D-Bus address such as `unix:path=/run/user/0/bus`. */
export async function connectSystemd(address: string): Promise<Systemd> {
  let bus: dbus.MessageBus | undefined;
  try {
    bus = await openBus(address);
    const systemd = await systemdOn(bus);
    return { ...systemd, close: () => bus!.disconnect() };
  } catch (err) {
    bus?.disconnect();
    throw new Error(`cannot talk to systemd on ${address === 'system' ? 'the system bus' : address}: ${(err as Error).message}`, { cause: err });
  }
}

type PropertiesInterface = dbus.ClientInterface & { Get(iface: string, name: string): Promise<dbus.Variant> };

/** systemd's manager on an open bus (which the caller closes). */
export async function systemdOn(bus: dbus.MessageBus): Promise<Systemd> {
  const obj = await bus.getProxyObject('org.freedesktop.systemd1', '/org/freedesktop/systemd1');
  const manager = obj.getInterface('org.freedesktop.systemd1.Manager') as ManagerInterface;
  const finished = new Map<string, string>();
  const waiting = new Map<string, (result: string) => void>();
  // JobRemoved is sent only to subscribed clients: subscribe before the first command.
  let subscribed: Promise<void> | undefined;
  const subscribe = () => {
    if (!subscribed) {
      manager.on('JobRemoved', (_id: number, job: string, _unit: string, result: string) => {
        const resolve = waiting.get(job);
        if (resolve) {
          waiting.delete(job);
          resolve(result);
        } else finished.set(job, result);
      });
      subscribed = manager.Subscribe();
    }
    return subscribed;
  };
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
    const unitObj = await bus.getProxyObject('org.freedesktop.systemd1', await manager.LoadUnit(unit));
    const props = unitObj.getInterface('org.freedesktop.DBus.Properties') as PropertiesInterface;
    return String((await props.Get('org.freedesktop.systemd1.Unit', 'ActiveState')).value);
  };
  const unitProperty = async (unitPath: string, name: string): Promise<unknown> => {
    const unitObj = await bus.getProxyObject('org.freedesktop.systemd1', unitPath);
    const props = unitObj.getInterface('org.freedesktop.DBus.Properties') as PropertiesInterface;
    return (await props.Get('org.freedesktop.systemd1.Unit', name)).value;
  };
  // The unit this process runs in, if this manager runs it (a boot unit); looked up once.
  let ownUnit: Promise<string | undefined> | undefined;
  const self = () =>
    (ownUnit ??= manager
      .GetUnitByPID(process.pid)
      .then((path) => unitProperty(path, 'Id'))
      .then((id) => (typeof id === 'string' ? id : undefined))
      .catch(() => undefined));
  /** Whether `unit` starts only after this process's unit is done (After= on it, as Before= in ours makes). */
  const orderedAfterSelf = async (unit: string): Promise<boolean> => {
    const mine = await self();
    if (!mine || mine === unit) return false;
    const after = await unitProperty(await manager.LoadUnit(unit), 'After');
    return Array.isArray(after) && after.includes(mine);
  };
  const managerProps = obj.getInterface('org.freedesktop.DBus.Properties') as PropertiesInterface;
  return {
    reload: () => manager.Reload(),
    enable: async (unit, runtime) => (await manager.EnableUnitFiles([unit], runtime, true))[1].length > 0,
    disable: async (unit, runtime) => (await manager.DisableUnitFiles([unit], runtime)).length > 0,
    mask: async (unit, runtime) => (await manager.MaskUnitFiles([unit], runtime, true)).length > 0,
    unmask: async (unit, runtime) => (await manager.UnmaskUnitFiles([unit], runtime)).length > 0,
    activeState,
    systemState: async () => String((await managerProps.Get('org.freedesktop.systemd1.Manager', 'SystemState')).value),
    unitFileState: (unit) => manager.GetUnitFileState(unit).catch(() => 'missing'),
    run: async (command, unit) => {
      await subscribe();
      const before = await activeState(unit);
      const call = (manager as unknown as Record<string, (name: string, mode: string) => Promise<string>>)[methods[command]]!;
      const job = await call.call(manager, unit, 'replace');
      if (await orderedAfterSelf(unit)) return { result: 'queued', before, after: await activeState(unit) };
      const result = await waitFor(job);
      return { result, before, after: await activeState(unit) };
    },
    close: () => undefined,
  };
}

/** Healthy after a boot: systemd reports the system running, or, when units are named, every one of them is active. */
export async function isHealthy(systemd: Systemd, units: string[]): Promise<boolean> {
  if (units.length === 0) return (await systemd.systemState()) === 'running';
  for (const unit of units) if ((await systemd.activeState(unit)) !== 'active') return false;
  return true;
}

/** What the system looks like for the health gate: the units' states, or the system state. */
export async function healthState(systemd: Systemd, units: string[]): Promise<string> {
  if (units.length === 0) return `system ${await systemd.systemState()}`;
  return (await Promise.all(units.map(async (u) => `${u} ${await systemd.activeState(u)}`))).join(', ');
}

/**
 * The health gate after a boot: polls until healthy (true) or until `timeoutMs` passed (false).
 * `waiting` is called once, when the first look finds the machine not yet healthy.
 */
export async function waitHealthy(systemd: Systemd, units: string[], timeoutMs: number, opts: { pollMs?: number; waiting?: () => void; stopped?: () => boolean } = {}): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let first = true; ; first = false) {
    if (await isHealthy(systemd, units)) return true;
    if (Date.now() >= deadline || opts.stopped?.()) return false;
    if (first) opts.waiting?.();
    await new Promise((r) => setTimeout(r, Math.min(opts.pollMs ?? 1000, Math.max(0, deadline - Date.now()))));
  }
}

/**
 * A daemon's bus, and systemd for its health gate: on the same bus (the default), on another
 * address, or none ("none": no gate). When a part cannot be reached, what was opened is closed
 * again (an open connection would keep the process from exiting) and the error names the part.
 */
export async function daemonBuses(busAddress: string, systemdAddress = busAddress): Promise<{ bus: dbus.MessageBus; systemd: Systemd | undefined; close(): void }> {
  const bus = await openBus(busAddress).catch((err: Error) => {
    throw new Error(`cannot reach D-Bus: ${err.message}`);
  });
  if (systemdAddress === 'none') return { bus, systemd: undefined, close: () => bus.disconnect() };
  let sdBus: dbus.MessageBus | undefined;
  const close = () => {
    bus.disconnect();
    if (sdBus && sdBus !== bus) sdBus.disconnect();
  };
  try {
    sdBus = systemdAddress === busAddress ? bus : await openBus(systemdAddress);
    return { bus, systemd: await systemdOn(sdBus), close };
  } catch (err) {
    close();
    throw new Error(`cannot reach systemd: ${(err as Error).message}`);
  }
}
