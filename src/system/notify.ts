/**
 * Telling systemd that a daemon is ready (Type=notify): READY=1 on $NOTIFY_SOCKET, sent by
 * systemd-notify, since Node has no Unix datagram sockets. Only when systemd set NOTIFY_SOCKET;
 * elsewhere (a terminal, a test) nothing is sent.
 *
 * systemd-notify is a child of the daemon, not its main process. As root it sends the message with
 * the daemon's pid, so NotifyAccess=main would do; without that privilege it sends it with its own
 * pid, which systemd accepts only with NotifyAccess=all, and attributes to the unit only while the
 * sender lives: systemd-notify waits (a barrier) until systemd has read the message, so it does.
 * The units say NotifyAccess=all.
 */
import { execFile } from 'node:child_process';
import { commands } from './paths';

/** How long systemd-notify may take, barrier included, in milliseconds. */
export const notifyTimeoutMs = 30_000;

/**
 * Sends READY=1 (and STATUS=`status`) to systemd when `env` has NOTIFY_SOCKET; resolves false when
 * there is none. Rejects, saying why, when systemd-notify fails or takes longer than notifyTimeoutMs.
 */
export function notifyReady(env: Record<string, string | undefined>, status: string): Promise<boolean> {
  if (!env.NOTIFY_SOCKET) return Promise.resolve(false);
  return new Promise((resolve, reject) => {
    execFile(commands.systemdNotify, ['--ready', `--status=${status}`], { env, timeout: notifyTimeoutMs, maxBuffer: 64 * 1024 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`cannot tell systemd this daemon is ready: ${String(stderr).trim() || err.message}`, { cause: err }));
      else resolve(true);
    });
  });
}
