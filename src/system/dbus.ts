/** Connecting to a D-Bus bus: the system bus, or an address such as `unix:path=/run/user/0/bus`. */
import * as dbus from 'dbus-next';

/**
 * Opens a bus and waits until it is connected. A bus that cannot be reached rejects here; later
 * connection errors surface in the calls that fail (an unheard 'error' event would end the process).
 */
export async function openBus(address: string): Promise<dbus.MessageBus> {
  dbus.setBigIntCompat(true); // int64 values (update_engine's times and sizes) as native BigInt
  const bus = address === 'system' ? dbus.systemBus() : dbus.sessionBus({ busAddress: address });
  await new Promise<void>((resolve, reject) => {
    bus.once('error', reject);
    bus.once('connect', () => {
      bus.off('error', reject);
      resolve();
    });
  });
  bus.on('error', () => undefined);
  return bus;
}
