/**
 * update_engine's D-Bus service: com.coreos.update1 at /com/coreos/update1, interface
 * com.coreos.update1.Manager, as the reference defines it (AttemptUpdate, ResetStatus,
 * GetStatus → (x last_checked_time, d progress, s current_operation, s new_version, x new_size),
 * the StatusUpdate signal with the same five values), plus Finalize (switch the boot flags; locksmithd
 * calls it with the reboot slot held) and MarkSuccessful. A failed call is a D-Bus error with the
 * reason; the service keeps running.
 */
import * as dbus from 'dbus-next';
import type { StatusSnapshot, UpdateAttempter } from './attempter';
import type { LogFn } from '../report/log';

export const busName = 'com.coreos.update1';
export const objectPath = '/com/coreos/update1';
export const interfaceName = 'com.coreos.update1.Manager';
const errorName = 'com.coreos.update1.Error';

export interface ServiceActions {
  finalize(): Promise<void>;
  markSuccessful(): Promise<void>;
}

const tuple = (s: StatusSnapshot) => [BigInt(s.lastCheckedTime), s.progress, s.currentOperation, s.newVersion, BigInt(s.newSize)];

export class UpdateEngineService extends dbus.interface.Interface {
  constructor(
    private readonly attempter: UpdateAttempter,
    private readonly actions: ServiceActions,
    private readonly log: LogFn = () => undefined,
  ) {
    super(interfaceName);
    attempter.on('status', (s: StatusSnapshot) => this.announce(s));
  }

  /** An interactive check; returns at once, as the reference does (the outcome shows in the status). */
  AttemptUpdate(): void {
    this.attempter.check(true).catch((err: Error) => this.log(`update check failed: ${err.message}`, 'error'));
  }

  ResetStatus(): void {
    try {
      this.attempter.resetStatus();
    } catch (err) {
      throw new dbus.DBusError(errorName, (err as Error).message);
    }
  }

  GetStatus(): unknown[] {
    return tuple(this.attempter.status());
  }

  async Finalize(): Promise<void> {
    await this.actions.finalize().catch((err: Error) => {
      throw new dbus.DBusError(errorName, err.message);
    });
  }

  async MarkSuccessful(): Promise<void> {
    await this.actions.markSuccessful().catch((err: Error) => {
      throw new dbus.DBusError(errorName, err.message);
    });
  }

  StatusUpdate(s: StatusSnapshot): unknown[] {
    return tuple(s);
  }

  private announce(s: StatusSnapshot): void {
    (this as unknown as { StatusUpdate(s: StatusSnapshot): unknown }).StatusUpdate(s);
  }
}
UpdateEngineService.configureMembers({
  methods: {
    AttemptUpdate: { inSignature: '', outSignature: '' },
    ResetStatus: { inSignature: '', outSignature: '' },
    GetStatus: { inSignature: '', outSignature: 'xdssx' },
    Finalize: { inSignature: '', outSignature: '' },
    MarkSuccessful: { inSignature: '', outSignature: '' },
  },
  signals: { StatusUpdate: { signature: 'xdssx' } },
});

/** Takes the bus name and exports the service; fails when another update_engine owns the name. */
export async function serveUpdateEngine(bus: dbus.MessageBus, service: UpdateEngineService): Promise<void> {
  const reply = await bus.requestName(busName, dbus.NameFlag.DO_NOT_QUEUE);
  if (reply !== dbus.RequestNameReply.PRIMARY_OWNER && reply !== dbus.RequestNameReply.ALREADY_OWNER) {
    throw new Error(`${busName} is owned by another process on this bus`);
  }
  bus.export(objectPath, service);
}
