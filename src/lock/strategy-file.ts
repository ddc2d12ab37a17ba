/**
 * The reboot strategy and window in /etc/coreos/update.conf, as locksmithd reads them:
 * REBOOT_STRATEGY (etcd-lock, reboot, off; default reboot) and LOCKSMITHD_REBOOT_WINDOW_START /
 * _LENGTH (the unprefixed REBOOT_WINDOW_* are read too). Written atomically, other lines kept.
 */
import { mergeSettings, parseEnvFile } from '../system/env-file';
import { resolve } from '../cloudconfig/schema';
import { files } from '../system/paths';
import { RootedFs } from '../system/rooted-fs';
import { parseDuration } from './presence';

export const strategies = ['etcd-lock', 'reboot', 'off'] as const;
export type Strategy = (typeof strategies)[number];

export interface Window {
  /** `Thu 04:00` (weekly) or `04:00` (daily). */
  start: string;
  /** A duration such as `1h30m`. */
  length: string;
}

const locksmith = resolve({ $ref: '#/definitions/locksmith' }).properties!;
/** The schema's patterns, so the CLI and the validator accept the same windows. */
const startPattern = new RegExp(locksmith.window_start!.pattern!);
const windowKeys = ['LOCKSMITHD_REBOOT_WINDOW_START', 'LOCKSMITHD_REBOOT_WINDOW_LENGTH', 'REBOOT_WINDOW_START', 'REBOOT_WINDOW_LENGTH'];


function current(fs: RootedFs): string {
  return (fs.read(files.updateConf) ?? fs.read(files.updateConfDefaults) ?? Buffer.alloc(0)).toString('utf8');
}

export function readStrategy(root: string): { strategy: string; window: Window | null } {
  const env = parseEnvFile(current(new RootedFs(root)));
  const start = env.get('LOCKSMITHD_REBOOT_WINDOW_START') ?? env.get('REBOOT_WINDOW_START');
  const length = env.get('LOCKSMITHD_REBOOT_WINDOW_LENGTH') ?? env.get('REBOOT_WINDOW_LENGTH');
  return { strategy: env.get('REBOOT_STRATEGY') || 'reboot', window: start && length ? { start, length } : null };
}

/** Why a window is not usable, or undefined when it is. */
export function windowProblem(w: Partial<Window>): string | undefined {
  if (!w.start !== !w.length) return 'give both --window-start and --window-length, or neither';
  if (w.start && !startPattern.test(w.start)) return `invalid window start "${w.start}": want "Thu 04:00" or "04:00"`;
  if (w.length) {
    const ms = parseDuration(w.length);
    if (ms === undefined || ms <= 0) return `invalid window length "${w.length}": want a duration such as 1h30m`;
    if (ms > 7 * 86_400_000) return `window length ${w.length} is longer than a week`;
  }
  return undefined;
}

/**
 * Sets the strategy and the window (undefined fields: the window is left as it is; null: removed).
 * Returns whether the file changed.
 */
export function writeStrategy(root: string, strategy: string, window: Partial<Window> | null): boolean {
  if (!(strategies as readonly string[]).includes(strategy)) throw new Error(`unknown strategy "${strategy}": use ${strategies.join(', ')}`);
  if (window) {
    const problem = windowProblem(window);
    if (problem) throw new Error(problem);
  }
  const fs = new RootedFs(root);
  let text = current(fs);
  const settings: Array<[string, string]> = [['REBOOT_STRATEGY', strategy]];
  if (window === null || (window.start && window.length)) {
    // A new window, or none: drop the old lines in both spellings first.
    text = text
      .split('\n')
      .filter((line) => !windowKeys.includes(line.split('=', 1)[0]!.trim()))
      .join('\n');
  }
  if (window?.start && window.length) settings.push(['LOCKSMITHD_REBOOT_WINDOW_START', window.start], ['LOCKSMITHD_REBOOT_WINDOW_LENGTH', window.length]);
  const merged = mergeSettings(text.replace(/\n+$/, '\n'), settings);
  const st = fs.stat(files.updateConf);
  const attrs = { mode: st ? st.mode & 0o7777 : 0o644, uid: st?.uid ?? process.getuid?.() ?? 0, gid: st?.gid ?? process.getgid?.() ?? 0 };
  return fs.writeAtomic(files.updateConf, Buffer.from(merged), attrs) === 'changed';
}
