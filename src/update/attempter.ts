/**
 * One update attempt as update_engine's UpdateAttempter runs it, as an explicit state machine:
 * IDLE → CHECKING_FOR_UPDATE → (IDLE: no update) | UPDATE_AVAILABLE → DOWNLOADING → VERIFYING →
 * FINALIZING → UPDATED_NEED_REBOOT; any failure → REPORTING_ERROR_EVENT → IDLE. Omaha events
 * go out as the reference sends them: the previous boot's outcome (3/2, or 3/0 code 44 after a
 * rollback; as soon as the boot is marked good, else with the next check), 13/1 when the download
 * starts, 14/1 when it is done, 3/1 when staged, 3/0 with the action code on failure. Finalize asks
 * the server again before it switches the boot flags. A rollback is only a boot of the old slot
 * after a finalize (bootOutcome); a reboot before Finalize is none, and leaves the update staged.
 * Settings are read anew for every check, so a changed GROUP moves the machine to the other channel.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { request } from '../datasource/http';
import type { FetchError } from '../datasource/http';
import { join } from 'node:path';
import { PayloadError } from './payload-format';
import { httpSource } from './payload-source';
import { clearFinalized, clearStaged, finalizeStaged, machineSlots, readFinalized, readStaged, stage, writeDurably } from './engine';
import type { Finalized, Machine, Staged } from './engine';
import { attr } from './gpt';
import { isFinalized, isRollback, markUnbootable } from './slots';
import type { Slots } from './slots';
import type { EngineSettings } from './engine-config';
import { buildRequest, errorCode, eventResult, eventType, OmahaError, parseResponse } from './omaha';
import type { Answer, Identity, RequestBody } from './omaha';
import type { LogFn } from '../report/log';

export const statuses = [
  'UPDATE_STATUS_IDLE',
  'UPDATE_STATUS_CHECKING_FOR_UPDATE',
  'UPDATE_STATUS_UPDATE_AVAILABLE',
  'UPDATE_STATUS_DOWNLOADING',
  'UPDATE_STATUS_VERIFYING',
  'UPDATE_STATUS_FINALIZING',
  'UPDATE_STATUS_UPDATED_NEED_REBOOT',
  'UPDATE_STATUS_REPORTING_ERROR_EVENT',
] as const;
export type Status = (typeof statuses)[number];

/** What GetStatus returns and StatusUpdate carries. */
export interface StatusSnapshot {
  lastCheckedTime: number;
  progress: number;
  currentOperation: Status;
  newVersion: string;
  newSize: number;
}

/** The transitions the state machine allows; anything else is a bug, not a runtime condition. */
const allowed: Record<Status, Status[]> = {
  UPDATE_STATUS_IDLE: ['UPDATE_STATUS_CHECKING_FOR_UPDATE', 'UPDATE_STATUS_UPDATED_NEED_REBOOT'],
  UPDATE_STATUS_CHECKING_FOR_UPDATE: ['UPDATE_STATUS_IDLE', 'UPDATE_STATUS_UPDATE_AVAILABLE', 'UPDATE_STATUS_REPORTING_ERROR_EVENT'],
  UPDATE_STATUS_UPDATE_AVAILABLE: ['UPDATE_STATUS_DOWNLOADING', 'UPDATE_STATUS_REPORTING_ERROR_EVENT'],
  UPDATE_STATUS_DOWNLOADING: ['UPDATE_STATUS_VERIFYING', 'UPDATE_STATUS_REPORTING_ERROR_EVENT'],
  UPDATE_STATUS_VERIFYING: ['UPDATE_STATUS_FINALIZING', 'UPDATE_STATUS_REPORTING_ERROR_EVENT'],
  UPDATE_STATUS_FINALIZING: ['UPDATE_STATUS_UPDATED_NEED_REBOOT', 'UPDATE_STATUS_REPORTING_ERROR_EVENT'],
  UPDATE_STATUS_UPDATED_NEED_REBOOT: ['UPDATE_STATUS_IDLE'],
  UPDATE_STATUS_REPORTING_ERROR_EVENT: ['UPDATE_STATUS_IDLE'],
};

/** The action code update_engine reports for a payload check that failed. */
export function payloadErrorCode(err: PayloadError): number {
  const codes: Record<string, number> = {
    header: errorCode.invalidMetadataMagic,
    manifest: errorCode.manifestParseError,
    truncated: errorCode.downloadTransferError,
    download: errorCode.downloadTransferError,
    size: errorCode.payloadSizeMismatch,
    'operation-hash': errorCode.operationHashMismatch,
    operation: errorCode.downloadWriteError,
    write: errorCode.downloadWriteError,
    'payload-hash': errorCode.payloadHashMismatch,
    signature: errorCode.payloadVerificationError,
    'partition-hash': errorCode.newRootfsVerificationError,
    gpt: errorCode.installDeviceOpenError,
  };
  return codes[err.check] ?? errorCode.error;
}

/** POSTs an Omaha request; the body, or an OmahaError with 2000 + the HTTP status (or 2 when nothing answered). */
export async function postOmaha(url: string, body: string, timeoutMs = 30_000): Promise<string> {
  let result;
  try {
    result = await request({ url, method: 'POST', headers: { 'content-type': 'text/xml' }, body }, timeoutMs);
  } catch (err) {
    const status = (err as FetchError).status;
    throw new OmahaError(status ? errorCode.httpBase + status : errorCode.omahaRequestError, (err as Error).message);
  }
  if (result.kind === 'not-found') throw new OmahaError(errorCode.httpBase + 404, `${url}: HTTP 404`);
  return result.body.toString('utf8');
}

/**
 * What the boot after an update attempt is, from the version staged from (the previous-version
 * pref), the version running, the finalize record and the GPT:
 * - none: no update attempt to report;
 * - updated: another version than the one updated from runs: 3/2;
 * - rolled-back: the old version runs, Finalize switched the flags to the other slot, and that slot
 *   used its try without being marked successful (the boot loader fell back): 3/0 code 44;
 * - not-booted: the old version runs and the update has not been booted: never finalized (a reboot
 *   or power loss before Finalize), a finalize that never reached the GPT, or its boot is still to
 *   come (the daemon restarted after Finalize). Nothing to report; the update may still be staged.
 */
export type BootOutcome = 'none' | 'updated' | 'rolled-back' | 'not-booted';

export function bootOutcome(previous: string | undefined, running: string, finalized: Finalized | undefined, slots: Slots | undefined): BootOutcome {
  if (previous === undefined) return 'none';
  if (previous !== running) return 'updated';
  if (finalized && slots && finalized.uniqueGuid === slots.passive.uniqueGuid && isRollback(slots)) return 'rolled-back';
  return 'not-booted';
}

/**
 * Whether an update not yet booted can still be: the flags already point at the finalized slot (its
 * boot is to come), or the passive slot holds what was staged and has not been made bootable since
 * (staging leaves it at priority 0, no tries, not successful, and anything that writes it again
 * forgets the staged record first). Finalize hashes the slot again before it switches the flags, so
 * a slot changed behind our back is never finalized.
 */
export function stillStaged(staged: Staged | undefined, finalized: Finalized | undefined, slots: Slots): boolean {
  const p = slots.passive;
  if (finalized && finalized.uniqueGuid === p.uniqueGuid && isFinalized(slots)) return true;
  const untouched = attr.priority(p.attributes) === 0 && attr.tries(p.attributes) === 0 && !attr.successful(p.attributes);
  return staged !== undefined && staged.uniqueGuid === p.uniqueGuid && untouched;
}

/**
 * Finalize's confirmation: the server's answer to one more check, or the error instead of one.
 * Only the same version offered again confirms. No answer at all (the request failed before any
 * HTTP response: network, timeout) leaves the verified update to finalize. Anything else refuses:
 * noupdate, another version, an app or updatecheck status other than ok (a halted rollout,
 * Nebraska's error-updatesDisabled), an HTTP error status, an empty or unreadable response.
 */
export type Confirmation = { kind: 'confirmed' } | { kind: 'unanswered'; why: string } | { kind: 'refused'; why: string };

export function confirmation(staged: string, reply: { answer: Answer } | { error: Error }): Confirmation {
  if ('error' in reply) {
    const e = reply.error;
    if (e instanceof OmahaError && e.code === errorCode.omahaRequestError) return { kind: 'unanswered', why: e.message };
    return { kind: 'refused', why: e instanceof OmahaError ? `${e.message} (code ${e.code})` : e.message };
  }
  const a = reply.answer;
  if (a.kind === 'noupdate') return { kind: 'refused', why: 'its rollout is halted or withdrawn' };
  if (a.version !== staged) return { kind: 'refused', why: `it offers ${a.version || 'an update without a version'} now` };
  return { kind: 'confirmed' };
}

export interface AttempterOptions {
  /** Read for every check. */
  settings: () => EngineSettings;
  identity: (s: EngineSettings) => Identity;
  machine: () => Machine;
  /** The staged record's directory. */
  stateDir: string;
  /** previous-version and the need-reboot marker live here. */
  prefsDir: string;
  publicKeys: string[];
  /** Finalize right after staging, for reboot managers that do not call Finalize. */
  finalizeAfterStaging?: boolean;
  /** This boot's id: a need-reboot marker left by another boot is stale. */
  bootId?: () => string;
  post?: (url: string, body: string) => Promise<string>;
  log?: LogFn;
}

/** How a check ended, for the schedule: server failures back off, a PollInterval replaces the interval. */
export interface CheckOutcome {
  result: 'skipped' | 'pinged' | 'noupdate' | 'staged' | 'failed';
  code?: number;
  pollInterval?: number;
}

export class UpdateAttempter extends EventEmitter {
  private snapshot: StatusSnapshot = { lastCheckedTime: 0, progress: 0, currentOperation: 'UPDATE_STATUS_IDLE', newVersion: '0.0.0', newSize: 0 };
  private readonly post: (url: string, body: string) => Promise<string>;
  /** Boot reports, one after another. */
  private reporting: Promise<void> = Promise.resolve();

  constructor(private readonly opts: AttempterOptions) {
    super();
    this.post = opts.post ?? ((url, body) => postOmaha(url, body));
    this.resume();
  }

  /**
   * At start: an update staged before a restart of the daemon, in this boot, still needs its
   * reboot. After a reboot the marker is from another boot: a reboot (or power loss) before the
   * update was booted leaves it staged when the slot still holds it (stillStaged), and
   * UPDATED_NEED_REBOOT again; otherwise it is forgotten. A booted update (new version, or a
   * rollback) keeps previous-version and the finalize record until its boot is reported.
   */
  private resume(): void {
    const marker = this.marker();
    if (!marker) return;
    const needReboot = (version: string) => (this.snapshot = { ...this.snapshot, currentOperation: 'UPDATE_STATUS_UPDATED_NEED_REBOOT', newVersion: version });
    const bootId = this.opts.bootId?.();
    if (bootId === undefined || (marker.bootId ?? '') === bootId) return void needReboot(marker.version);
    let slots: Slots;
    let running: string;
    try {
      slots = machineSlots(this.opts.machine());
      running = this.opts.identity(this.opts.settings()).version;
    } catch (err) {
      // Nothing is decided without the disk and the version: the next start looks again.
      this.opts.log?.(`cannot tell whether ${marker.version} is still staged: ${(err as Error).message}`, 'warning');
      return;
    }
    const staged = readStaged(this.opts.stateDir);
    const finalized = readFinalized(this.opts.stateDir);
    const outcome = bootOutcome(this.pref('previous-version'), running, finalized, slots);
    if (outcome === 'not-booted' && stillStaged(staged, finalized, slots)) {
      this.setPref('need-reboot', `${marker.version}\n${bootId}`);
      this.opts.log?.(`${marker.version} is still staged in ${slots.passive.name} (not booted yet); a reboot is needed`);
      return void needReboot(marker.version);
    }
    this.setPref('need-reboot', undefined);
    if (outcome === 'not-booted') {
      // Staged but no longer intact in the slot: nothing to finalize, nothing to report later.
      this.opts.log?.(`${marker.version} is no longer staged in ${slots.passive.name}: it is forgotten; the next check downloads it again if it is offered`);
      this.setPref('previous-version', undefined);
      clearStaged(this.opts.stateDir);
      clearFinalized(this.opts.stateDir);
    }
  }

  /**
   * How this boot relates to the last update attempt; a disk that cannot be read tells nothing
   * (no rollback is reported on a guess).
   */
  private outcome(running: string): BootOutcome {
    const previous = this.pref('previous-version');
    if (previous === undefined || previous !== running) return bootOutcome(previous, running, undefined, undefined);
    let slots: Slots | undefined;
    try {
      slots = machineSlots(this.opts.machine());
    } catch (err) {
      this.opts.log?.(`cannot read the boot flags: ${(err as Error).message}`, 'warning');
    }
    return bootOutcome(previous, running, readFinalized(this.opts.stateDir), slots);
  }

  /** The boot was reported: previous-version and the finalize record have done their job. */
  private reported(): void {
    this.setPref('previous-version', undefined);
    clearFinalized(this.opts.stateDir);
  }

  status(): StatusSnapshot {
    return { ...this.snapshot };
  }

  private set(next: Status, change: Partial<StatusSnapshot> = {}): void {
    const from = this.snapshot.currentOperation;
    if (next !== from && !allowed[from].includes(next)) throw new Error(`update status cannot go from ${from} to ${next}`);
    this.snapshot = { ...this.snapshot, ...change, currentOperation: next };
    this.emit('status', this.status());
  }

  private pref(name: string): string | undefined {
    try {
      return readFileSync(join(this.opts.prefsDir, name), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  /** Durably: a pref written before a power loss (the version to report after the reboot) is there after it. */
  private setPref(name: string, value: string | undefined): void {
    writeDurably(join(this.opts.prefsDir, name), value === undefined ? undefined : `${value}\n`);
  }

  private marker(): { version: string; bootId: string | undefined } | undefined {
    const [version, bootId] = (this.pref('need-reboot') ?? '').split('\n');
    return version ? { version, bootId } : undefined;
  }

  /** Forgets a staged update: the record of what was verified, the reboot marker, and the version to report after a reboot. */
  private discard(): void {
    this.setPref('need-reboot', undefined);
    this.setPref('previous-version', undefined);
    clearStaged(this.opts.stateDir);
    clearFinalized(this.opts.stateDir);
    this.set('UPDATE_STATUS_IDLE', { progress: 0, newVersion: '0.0.0', newSize: 0 });
  }

  private async send(server: string, id: Identity, body: RequestBody, interactive: boolean): Promise<string> {
    return this.post(server, buildRequest(id, body, interactive));
  }

  /** Events are best effort: a failure to send one is logged, not fatal. */
  private async event(server: string, id: Identity, type: number, result: number, code?: number): Promise<void> {
    try {
      await this.send(server, id, { kind: 'event', type, result, ...(code !== undefined ? { errorCode: code } : {}) }, false);
    } catch (err) {
      this.opts.log?.(`event ${type}/${result} not sent: ${(err as Error).message}`, 'warning');
    }
  }

  /**
   * One check, and the update if there is one. Ignored unless IDLE; in UPDATED_NEED_REBOOT only
   * pings. Resolves when the attempt is over (its outcome is in the status).
   */
  async check(interactive = false): Promise<CheckOutcome> {
    const now = this.snapshot.currentOperation;
    const settings = this.opts.settings();
    if (!settings.server) {
      this.opts.log?.('SERVER is not a URL: update checks are off', 'warning');
      return { result: 'skipped' };
    }
    const id = this.opts.identity(settings);
    if (now === 'UPDATE_STATUS_UPDATED_NEED_REBOOT') {
      await this.send(settings.server, id, { kind: 'ping' }, interactive).catch((err: Error) => this.opts.log?.(`ping failed: ${err.message}`, 'warning'));
      return { result: 'pinged' };
    }
    if (now !== 'UPDATE_STATUS_IDLE') return { result: 'skipped' };
    this.set('UPDATE_STATUS_CHECKING_FOR_UPDATE', { lastCheckedTime: Math.floor(Date.now() / 1000), progress: 0 });
    // The previous boot's event rides on the check (3/2 with 0.0.0.0 when there is nothing to report).
    const outcome = this.outcome(id.version);
    const report = outcome === 'updated' || outcome === 'rolled-back';
    let answer;
    try {
      answer = parseResponse(await this.send(settings.server, id, { kind: 'check', previousVersion: report ? this.pref('previous-version') : undefined, rolledBack: outcome === 'rolled-back' }, interactive), settings.appId);
      if (report) this.reported();
    } catch (err) {
      if (err instanceof OmahaError && err.refusal !== undefined) {
        // A refusal (a halted group: Nebraska's error-updatesDisabled) offers no update; an error
        // event for it would count against a rollout this machine has no part in.
        if (report) this.reported();
        this.opts.log?.(`the update server offers no update (${err.refusal})`);
        this.set('UPDATE_STATUS_IDLE');
        return { result: 'noupdate' };
      }
      return this.fail(settings.server, id, err instanceof OmahaError ? err.code : errorCode.omahaRequestError, err as Error);
    }
    const poll = answer.pollInterval !== undefined ? { pollInterval: answer.pollInterval } : {};
    if (answer.kind === 'noupdate') {
      this.set('UPDATE_STATUS_IDLE');
      return { result: 'noupdate', ...poll };
    }
    this.set('UPDATE_STATUS_UPDATE_AVAILABLE', { newVersion: answer.version, newSize: answer.size });
    await this.event(settings.server, id, eventType.downloadStarted, eventResult.success);
    this.set('UPDATE_STATUS_DOWNLOADING');
    let lastProgress = 0;
    try {
      await stage(this.opts.machine(), this.opts.stateDir, {
        source: httpSource(answer.urls[0]!),
        publicKeys: this.opts.publicKeys,
        sha256: answer.sha256,
        size: answer.size,
        onProgress: (p) => {
          // Throttled as update_engine does: every whole percent. Once all is written, the checks run.
          if (p.fraction >= 1) return this.set('UPDATE_STATUS_VERIFYING', { progress: 1 });
          if (p.fraction - lastProgress < 0.01) return;
          lastProgress = p.fraction;
          this.set('UPDATE_STATUS_DOWNLOADING', { progress: p.fraction });
        },
      });
    } catch (err) {
      return this.fail(settings.server, id, err instanceof PayloadError ? payloadErrorCode(err) : errorCode.error, err as Error, poll);
    }
    if (this.snapshot.currentOperation !== 'UPDATE_STATUS_VERIFYING') this.set('UPDATE_STATUS_VERIFYING', { progress: 1 });
    await this.event(settings.server, id, eventType.downloadFinished, eventResult.success);
    this.set('UPDATE_STATUS_FINALIZING');
    if (this.opts.finalizeAfterStaging) {
      try {
        await finalizeStaged(this.opts.machine(), this.opts.stateDir);
      } catch (err) {
        return this.fail(settings.server, id, errorCode.postinstallRunnerError, err as Error, poll);
      }
    }
    await this.event(settings.server, id, eventType.updateComplete, eventResult.success);
    this.setPref('previous-version', id.version);
    this.setPref('need-reboot', `${answer.version}\n${this.opts.bootId?.() ?? ''}`);
    this.set('UPDATE_STATUS_UPDATED_NEED_REBOOT');
    this.opts.log?.(`${answer.version} is staged; a reboot is needed`);
    return { result: 'staged', ...poll };
  }

  private async fail(server: string, id: Identity, code: number, err: Error, poll: { pollInterval?: number } = {}): Promise<CheckOutcome> {
    this.opts.log?.(`update failed (code ${code}): ${err.message}`, 'error');
    this.set('UPDATE_STATUS_REPORTING_ERROR_EVENT');
    await this.event(server, id, eventType.updateComplete, eventResult.error, code);
    this.set('UPDATE_STATUS_IDLE', { progress: 0 });
    this.emit('failed', { code, message: err.message });
    return { result: 'failed', code, ...poll };
  }

  /**
   * Tells the update server how the boot after an update went, at once (the reference waits for
   * the first check): 3/2 when the new version runs, 3/0 with code 44 when the machine rolled back
   * to the version it updated from. Once reported, the next check does not repeat it; when the
   * server cannot be reached, the next check carries it. Called when the boot is marked good, before
   * locksmithd gives back the reboot slot, so the server halts a failed rollout before the next
   * machine finalizes it.
   */
  reportBoot(): Promise<void> {
    this.reporting = this.reporting.then(async () => {
      const previous = this.pref('previous-version');
      const settings = this.opts.settings();
      if (previous === undefined || !settings.server) return;
      const id = this.opts.identity(settings);
      const how = this.outcome(id.version);
      if (how !== 'updated' && how !== 'rolled-back') return; // not booted yet: nothing happened to report
      const rolledBack = how === 'rolled-back';
      try {
        const outcome = rolledBack ? { result: eventResult.error, errorCode: errorCode.rollback } : { result: eventResult.successReboot };
        await this.send(settings.server, id, { kind: 'event', type: eventType.updateComplete, previousVersion: previous, ...outcome }, false);
        this.reported();
        this.opts.log?.(rolledBack ? `reported the rollback to ${id.version}` : `reported the update from ${previous} to ${id.version}`);
      } catch (err) {
        this.opts.log?.(`could not report this boot (${(err as Error).message}); the next check will`, 'warning');
      }
    });
    return this.reporting;
  }

  /**
   * Finalize (locksmithd calls it with the reboot slot held): switch the boot flags to the staged
   * update. First the update server is asked whether it still offers that version (see
   * confirmation): any answer but that version drops the staged update (a rollout halted since the
   * download, another machine rolled back, a newer version), unbooted. Only a server that does not
   * answer at all does not stop it: the payload was verified when staged, and finalizeStaged hashes
   * the slot again.
   *
   * locksmithd's promise rests on this: Finalize succeeds whenever the flags point at the unbooted
   * slot (whatever the status: a retry after a lost reply, the compatibility switch), and refuses
   * only when they do not. So a failure after the flags switched is a success too.
   */
  async finalize(): Promise<void> {
    if (this.flagsSwitched()) return;
    try {
      await this.finalizeStaged();
    } catch (err) {
      if (this.flagsSwitched()) return;
      throw err;
    }
  }

  /** Whether the boot flags point at the passive slot, not yet booted; a disk that cannot be read says no. */
  private flagsSwitched(): boolean {
    try {
      return isFinalized(machineSlots(this.opts.machine()));
    } catch {
      return false;
    }
  }

  private async finalizeStaged(): Promise<void> {
    const now = this.snapshot.currentOperation;
    if (now !== 'UPDATE_STATUS_UPDATED_NEED_REBOOT') throw new Error(`nothing to finalize: the update engine is ${now}`);
    const machine = this.opts.machine();
    const staged = this.snapshot.newVersion;
    const settings = this.opts.settings();
    if (settings.server) {
      let reply: { answer: Answer } | { error: Error };
      try {
        reply = { answer: parseResponse(await this.send(settings.server, this.opts.identity(settings), { kind: 'check', previousVersion: undefined, rolledBack: false }, false), settings.appId) };
      } catch (err) {
        reply = { error: err as Error };
      }
      const c = confirmation(staged, reply);
      if (c.kind === 'unanswered') this.opts.log?.(`could not confirm ${staged} with the update server (${c.why}); finalizing the verified update`, 'warning');
      if (c.kind === 'refused') {
        this.discard();
        throw new Error(`the update server no longer offers ${staged} (${c.why}): not finalized, the staged update is dropped`);
      }
    }
    await finalizeStaged(machine, this.opts.stateDir);
    this.opts.log?.(`finalized ${staged}: the next boot tries it`);
  }

  /**
   * ResetStatus: a no-op when IDLE; from NEED_REBOOT forgets the staged update and, when it was
   * already finalized, switches the flags back (the passive slot made unbootable), as AOSP's
   * update_engine makes the current slot active again: an IDLE engine never leaves the flags
   * pointing at an update it no longer knows. Otherwise refused.
   */
  resetStatus(): void {
    const now = this.snapshot.currentOperation;
    if (now === 'UPDATE_STATUS_IDLE') return;
    if (now !== 'UPDATE_STATUS_UPDATED_NEED_REBOOT') throw new Error(`ResetStatus is not allowed in ${now}`);
    const machine = this.opts.machine();
    const slots = machineSlots(machine);
    if (isFinalized(slots)) {
      markUnbootable(machine.disk, slots.passive);
      this.opts.log?.(`reset: the boot flags point at ${slots.active.name} again`);
    }
    this.discard();
  }
}
