/**
 * locksmithd's D-Bus peers: update_engine (com.coreos.update1: GetStatus, the StatusUpdate signal,
 * and our Finalize), logind (Reboot), and systemd's state for the health gate.
 */
import * as dbus from 'dbus-next';
import { busName, interfaceName, objectPath } from '../update/dbus-service';

export const updateEngine = { service: busName, path: objectPath, iface: interfaceName };
export const logind = { service: 'org.freedesktop.login1', path: '/org/freedesktop/login1', iface: 'org.freedesktop.login1.Manager' };
export const needReboot = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
/** The error update_engine answers a failed call with (update/dbus-service's errorName). */
export const updateEngineError = 'com.coreos.update1.Error';

interface UpdateEngineInterface extends dbus.ClientInterface {
  GetStatus(): Promise<[unknown, number, string, string, unknown]>;
}

export interface UpdateEngineClient {
  /** The current operation, such as UPDATE_STATUS_IDLE. */
  currentOperation(): Promise<string>;
  /** Called with each StatusUpdate's current operation. */
  onStatus(listener: (operation: string) => void): void;
  /** Called without introspection, so an engine without Finalize answers UnknownMethod. */
  finalize(): Promise<void>;
  /**
   * Asks update_engine to mark this boot good and report it before the reboot slot is given back.
   * An update_engine without the method (the reference's) or none on the bus is not an error.
   */
  markSuccessful(): Promise<void>;
}

/** D-Bus errors that mean "no such method or service here", not "it failed". */
const absent = ['org.freedesktop.DBus.Error.UnknownMethod', 'org.freedesktop.DBus.Error.ServiceUnknown', 'org.freedesktop.DBus.Error.UnknownObject', 'org.freedesktop.DBus.Error.UnknownInterface', 'org.freedesktop.DBus.Error.NameHasNoOwner'];

export async function updateEngineClient(bus: dbus.MessageBus): Promise<UpdateEngineClient> {
  let iface: UpdateEngineInterface | undefined;
  const listeners: Array<(op: string) => void> = [];
  // The proxy is made on first use: update_engine may start after locksmithd.
  const get = async () => {
    if (!iface) iface = (await bus.getProxyObject(updateEngine.service, updateEngine.path)).getInterface(updateEngine.iface) as UpdateEngineInterface;
    return iface;
  };
  // StatusUpdate from any sender, as locksmith listens (locksmithctl send-need-reboot sends it from
  // its own connection); a proxy would only hear the name's owner.
  await bus.call(
    new dbus.Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'AddMatch',
      signature: 's',
      body: [`type='signal',interface='${updateEngine.iface}',member='StatusUpdate'`],
    }),
  );
  bus.on('message', (msg: dbus.Message) => {
    if (msg.type !== dbus.MessageType.SIGNAL || msg.interface !== updateEngine.iface || msg.member !== 'StatusUpdate') return;
    const op = (msg.body as unknown[])[2];
    if (typeof op === 'string') for (const l of listeners) l(op); // malformed signals are ignored
  });
  return {
    currentOperation: async () => String((await (await get()).GetStatus())[2]),
    onStatus: (l) => void listeners.push(l),
    finalize: async () => void (await bus.call(new dbus.Message({ destination: updateEngine.service, path: updateEngine.path, interface: updateEngine.iface, member: 'Finalize' }))),
    markSuccessful: async () => {
      try {
        await bus.call(new dbus.Message({ destination: updateEngine.service, path: updateEngine.path, interface: updateEngine.iface, member: 'MarkSuccessful' }));
      } catch (err) {
        if (!(err instanceof dbus.DBusError && absent.includes(err.type))) throw err;
      }
    },
  };
}

export async function logindReboot(bus: dbus.MessageBus): Promise<void> {
  const obj = await bus.getProxyObject(logind.service, logind.path);
  const iface = obj.getInterface(logind.iface) as dbus.ClientInterface & { Reboot(interactive: boolean): Promise<void> };
  await iface.Reboot(false);
}


/** Emits update_engine's StatusUpdate for a staged update from this connection, as locksmithctl send-need-reboot does. */
export async function sendNeedReboot(bus: dbus.MessageBus): Promise<void> {
  class Announcer extends dbus.interface.Interface {
    StatusUpdate(): unknown[] {
      return [BigInt(0), 0, needReboot, '', BigInt(0)];
    }
  }
  Announcer.configureMembers({ signals: { StatusUpdate: { signature: 'xdssx' } } });
  const announcer = new Announcer(updateEngine.iface);
  bus.export(updateEngine.path, announcer);
  (announcer as unknown as { StatusUpdate(): unknown }).StatusUpdate();
  // Let the signal leave before the connection closes.
  await new Promise((r) => setTimeout(r, 200));
  bus.unexport(updateEngine.path, announcer);
}
