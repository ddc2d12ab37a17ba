/**
 * VMware guestinfo, read as open-vm-tools reads it: `vmware-rpctool "info-get guestinfo.KEY"` asks
 * the hypervisor over the backdoor and prints the value and a newline (exit 0); for a key that is
 * not set it prints `No value found` on stderr, and outside a VMware virtual machine `Failed
 * sending message to VMware.` (exit 1 both). The tool is run without a shell, with a time limit
 * (the hypervisor may never answer) and an output limit (a value is as long as the VM's owner
 * made it). It is one process, so killing it on the time limit ends the call.
 */
import { execFile } from 'node:child_process';
import type { ExecFileException } from 'node:child_process';
import { quoteValue } from '../cloudconfig/values';
import { commands } from './paths';

export interface RpctoolOptions {
  /** Time allowed for one call, in ms. */
  timeoutMs: number;
  /** Largest output accepted from one call, in bytes. */
  maxOutputBytes: number;
  /** The environment the tool runs with: its PATH is where the tool is looked up. Default: this process's. */
  env?: NodeJS.ProcessEnv;
}

/** The limits of one call: 10 s (as an HTTP request's), 16 MiB (as an HTTP body's). */
export const defaultRpctoolLimits = { timeoutMs: 10_000, maxOutputBytes: 16 * 1024 * 1024 };

/**
 * What one read gave: the value; `unset` for a key that is not set; `no-tool` when vmware-rpctool
 * is not installed and `not-vmware` when this is no VMware virtual machine (no guestinfo at all).
 */
export type GuestinfoAnswer = { kind: 'value'; text: string } | { kind: 'unset' } | { kind: 'no-tool' } | { kind: 'not-vmware' };

/** What vmware-rpctool says on stderr for a key that is not set. */
export const unsetMessage = 'No value found';
/** What vmware-rpctool says on stderr outside a VMware virtual machine. */
export const notVmwareMessage = 'Failed sending message to VMware.';

/** Reads `guestinfo.KEY`. Rejects, naming the call, on a timeout, too much output or any other failure. */
export function readGuestinfo(key: string, options: RpctoolOptions): Promise<GuestinfoAnswer> {
  const request = `info-get guestinfo.${key}`;
  const call = `${commands.vmwareRpctool} "${request}"`;
  const settings = { env: options.env, timeout: options.timeoutMs, killSignal: 'SIGKILL' as const, maxBuffer: options.maxOutputBytes, encoding: 'utf8' as const };
  return new Promise((resolve, reject) => {
    execFile(commands.vmwareRpctool, [request], settings, (err: ExecFileException | null, stdout: string, stderr: string) => {
      if (!err) {
        resolve({ kind: 'value', text: stdout.endsWith('\n') ? stdout.slice(0, -1) : stdout });
        return;
      }
      const said = stderr.trim();
      if (err.code === 'ENOENT') resolve({ kind: 'no-tool' });
      else if (err.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') reject(new Error(`${call}: more than ${options.maxOutputBytes} bytes of output`, { cause: err }));
      else if (err.killed) reject(new Error(`${call}: no answer within ${options.timeoutMs} ms`, { cause: err }));
      else if (err.code === 1 && said === unsetMessage) resolve({ kind: 'unset' });
      else if (err.code === 1 && said === notVmwareMessage) resolve({ kind: 'not-vmware' });
      else {
        const how = typeof err.code === 'number' ? `exit ${err.code}` : err.signal ? `killed by ${err.signal}` : err.message;
        reject(new Error(`${call} failed (${how}): ${said ? quoteValue(said) : 'nothing on stderr'}`, { cause: err }));
      }
    });
  });
}
