/**
 * One update attempt as update_engine's UpdateAttempter runs it, as an explicit state machine:
 * IDLE → CHECKING_FOR_UPDATE → (IDLE: no update) | UPDATE_AVAILABLE → DOWNLOADING → VERIFYING →
 * FINALIZING → UPDATED_NEED_REBOOT; any failure → REPORTING_ERROR_EVENT → IDLE. Omaha events
 * go out as the reference sends them: the previous boot's outcome with the check (3/2, or 3/0
 * code 44 after a rollback), 13/1 when the download starts, 14/1 when it is done, 3/1 when staged,
 * 3/0 with the action code on failure. Settings are read anew for every check, so a changed GROUP
 * moves the machine to the other channel.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from '../datasource/http';
import type { FetchError } from '../datasource/http';
import { join } from 'node:path';
import { PayloadError } from './payload-format';
import { httpSource } from './payload-source';
import { finalizeStaged, stage } from './engine';
import type { Machine } from './engine';
import type { EngineSettings } from './engine-config';
import { buildRequest, errorCode, eventResult, eventType, OmahaError, parseResponse } from './omaha';
import type { Identity, RequestBody } from './omaha';

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
  post?: (url: string, body: string) => Promise<string>;
  log?: (line: string) => void;
}

export class UpdateAttempter extends EventEmitter {
  private snapshot: StatusSnapshot = { lastCheckedTime: 0, progress: 0, currentOperation: 'UPDATE_STATUS_IDLE', newVersion: '0.0.0', newSize: 0 };
  private readonly post: (url: string, body: string) => Promise<string>;

  constructor(private readonly opts: AttempterOptions) {
    super();
    this.post = opts.post ?? ((url, body) => postOmaha(url, body));
    // An update staged before a restart of the daemon still needs its reboot.
    if (this.marker() !== undefined) this.snapshot.currentOperation = 'UPDATE_STATUS_UPDATED_NEED_REBOOT';
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

  private setPref(name: string, value: string | undefined): void {
    const f = join(this.opts.prefsDir, name);
    if (value === undefined) rmSync(f, { force: true });
    else {
      mkdirSync(this.opts.prefsDir, { recursive: true });
      writeFileSync(f, `${value}\n`);
    }
  }

  private marker(): string | undefined {
    return this.pref('need-reboot');
  }

  private async send(server: string, id: Identity, body: RequestBody, interactive: boolean): Promise<string> {
    return this.post(server, buildRequest(id, body, interactive));
  }

  /** Events are best effort: a failure to send one is logged, not fatal. */
  private async event(server: string, id: Identity, type: number, result: number, code?: number): Promise<void> {
    try {
      await this.send(server, id, { kind: 'event', type, result, ...(code !== undefined ? { errorCode: code } : {}) }, false);
    } catch (err) {
      this.opts.log?.(`event ${type}/${result} not sent: ${(err as Error).message}`);
    }
  }

  /**
   * One check, and the update if there is one. Ignored unless IDLE; in UPDATED_NEED_REBOOT only
   * pings. Resolves when the attempt is over (its outcome is in the status).
   */
  async check(interactive = false): Promise<void> {
    const now = this.snapshot.currentOperation;
    const settings = this.opts.settings();
    if (!settings.server) {
      this.opts.log?.('SERVER is not a URL: update checks are off');
      return;
    }
    const id = this.opts.identity(settings);
    if (now === 'UPDATE_STATUS_UPDATED_NEED_REBOOT') {
      await this.send(settings.server, id, { kind: 'ping' }, interactive).catch((err: Error) => this.opts.log?.(`ping failed: ${err.message}`));
      return;
    }
    if (now !== 'UPDATE_STATUS_IDLE') return;
    this.set('UPDATE_STATUS_CHECKING_FOR_UPDATE', { lastCheckedTime: Math.floor(Date.now() / 1000), progress: 0 });
    const previous = this.pref('previous-version');
    let answer;
    try {
      answer = parseResponse(await this.send(settings.server, id, { kind: 'check', previousVersion: previous, rolledBack: previous !== undefined && previous === id.version }, interactive), settings.appId);
      this.setPref('previous-version', undefined);
    } catch (err) {
      return this.fail(settings.server, id, err instanceof OmahaError ? err.code : errorCode.omahaRequestError, err as Error);
    }
    if (answer.kind === 'noupdate') {
      this.set('UPDATE_STATUS_IDLE');
      return;
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
      return this.fail(settings.server, id, err instanceof PayloadError ? payloadErrorCode(err) : errorCode.error, err as Error);
    }
    if (this.snapshot.currentOperation !== 'UPDATE_STATUS_VERIFYING') this.set('UPDATE_STATUS_VERIFYING', { progress: 1 });
    await this.event(settings.server, id, eventType.downloadFinished, eventResult.success);
    this.set('UPDATE_STATUS_FINALIZING');
    if (this.opts.finalizeAfterStaging) {
      try {
        await finalizeStaged(this.opts.machine(), this.opts.stateDir);
      } catch (err) {
        return this.fail(settings.server, id, errorCode.postinstallRunnerError, err as Error);
      }
    }
    await this.event(settings.server, id, eventType.updateComplete, eventResult.success);
    this.setPref('previous-version', id.version);
    this.setPref('need-reboot', answer.version);
    this.set('UPDATE_STATUS_UPDATED_NEED_REBOOT');
    this.opts.log?.(`${answer.version} is staged; a reboot is needed`);
  }

  private async fail(server: string, id: Identity, code: number, err: Error): Promise<void> {
    this.opts.log?.(`update failed (code ${code}): ${err.message}`);
    this.set('UPDATE_STATUS_REPORTING_ERROR_EVENT');
    await this.event(server, id, eventType.updateComplete, eventResult.error, code);
    this.set('UPDATE_STATUS_IDLE', { progress: 0 });
    this.emit('failed', { code, message: err.message });
  }

  /** ResetStatus: a no-op when IDLE; from NEED_REBOOT forgets the staged update (the flags stay); otherwise refused. */
  resetStatus(): void {
    const now = this.snapshot.currentOperation;
    if (now === 'UPDATE_STATUS_IDLE') return;
    if (now !== 'UPDATE_STATUS_UPDATED_NEED_REBOOT') throw new Error(`ResetStatus is not allowed in ${now}`);
    this.setPref('need-reboot', undefined);
    this.set('UPDATE_STATUS_IDLE', { progress: 0, newVersion: '0.0.0', newSize: 0 });
  }
}
