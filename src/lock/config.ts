/**
 * locksmithd's settings, read in tiers: raw values (update.conf files in order, then the
 * environment, each later one winning), defaults filled in one place, then validated into
 * settings. Anything malformed is an error at start, with every problem listed.
 */
import { splitEndpoints } from './etcd';
import type { EtcdSettings } from './etcd';
import { parseDuration } from './presence';
import { defaultGroup, groupPattern } from './semaphore';
import { checkTimeZone, parseWindow } from './window';
import type { RebootWindow } from './window';
import { parseEnvFile } from '../system/env-file';

/** What decides a reboot: a tagged union, one variant a strategy (zincati's shape). */
export type Strategy =
  | { kind: 'off' }
  /** Reboot as soon as an update is staged (inside the window, if there is one). */
  | { kind: 'reboot' }
  /** Take a slot of the group's semaphore first. */
  | { kind: 'etcd-lock'; etcd: EtcdSettings; group: string; reclaimStaleAfterMs: number | undefined };

export interface Settings {
  strategy: Strategy;
  /** No windows: any time. */
  windows: RebootWindow[];
  /** IANA zone of the windows; undefined: the machine's. */
  timeZone: string | undefined;
  /** The holder id; default the contents of /etc/machine-id. */
  machineId: string | undefined;
  /** Units that must be active before the slot is given back after a reboot; none: systemd reports running. */
  healthUnits: string[];
}

/** The raw tier: every key as written, later sources winning. */
export function rawSettings(fileTexts: string[], env: Record<string, string | undefined>): Map<string, string> {
  const raw = new Map<string, string>();
  for (const text of fileTexts) for (const [k, v] of parseEnvFile(text)) raw.set(k, v);
  for (const [k, v] of Object.entries(env)) if (v !== undefined && (k.startsWith('LOCKSMITHD_') || k.startsWith('REBOOT_'))) raw.set(k, v);
  return raw;
}

/** Defaults and validation: the settings, or an Error listing every problem. */
export function settingsFrom(raw: Map<string, string>): Settings {
  const problems: string[] = [];
  const get = (...keys: string[]) => keys.map((k) => raw.get(k)).find((v) => v !== undefined && v !== '');
  const strategyName = get('REBOOT_STRATEGY') ?? 'reboot';

  const windows: RebootWindow[] = [];
  const start = get('LOCKSMITHD_REBOOT_WINDOW_START', 'REBOOT_WINDOW_START');
  const length = get('LOCKSMITHD_REBOOT_WINDOW_LENGTH', 'REBOOT_WINDOW_LENGTH');
  if (!start !== !length) problems.push('either both or neither of REBOOT_WINDOW_START and REBOOT_WINDOW_LENGTH must be set');
  else if (start && length) {
    try {
      windows.push(parseWindow(start, length));
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  // Several windows: "Mon 04:00 1h, Thu 23:00 1h30m".
  for (const entry of (get('LOCKSMITHD_REBOOT_WINDOWS') ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
    const fields = entry.split(/\s+/);
    try {
      windows.push(parseWindow(fields.slice(0, -1).join(' '), fields[fields.length - 1]!));
    } catch (err) {
      problems.push(`LOCKSMITHD_REBOOT_WINDOWS "${entry}": ${(err as Error).message}`);
    }
  }
  const timeZone = get('LOCKSMITHD_REBOOT_WINDOW_TIMEZONE');
  if (timeZone) {
    try {
      checkTimeZone(timeZone);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }

  let strategy: Strategy | undefined;
  if (strategyName === 'off') strategy = { kind: 'off' };
  else if (strategyName === 'reboot') strategy = { kind: 'reboot' };
  else if (strategyName === 'etcd-lock') {
    const group = get('LOCKSMITHD_GROUP') ?? defaultGroup;
    if (!groupPattern.test(group)) problems.push(`invalid LOCKSMITHD_GROUP "${group}": use letters, digits, "." and "-"`);
    const reclaim = get('LOCKSMITHD_RECLAIM_STALE_AFTER');
    const reclaimMs = reclaim === undefined ? undefined : parseDuration(reclaim);
    if (reclaim !== undefined && reclaimMs === undefined) problems.push(`invalid LOCKSMITHD_RECLAIM_STALE_AFTER "${reclaim}": want a duration such as 2h`);
    const etcd: EtcdSettings = { endpoints: splitEndpoints([get('LOCKSMITHD_ENDPOINT') ?? ''].filter(Boolean)) };
    const optional: Array<[keyof EtcdSettings, string]> = [
      ['caFile', 'LOCKSMITHD_ETCD_CAFILE'],
      ['certFile', 'LOCKSMITHD_ETCD_CERTFILE'],
      ['keyFile', 'LOCKSMITHD_ETCD_KEYFILE'],
      ['username', 'LOCKSMITHD_ETCD_USERNAME'],
      ['password', 'LOCKSMITHD_ETCD_PASSWORD'],
    ];
    for (const [field, key] of optional) {
      const v = get(key);
      if (v !== undefined) (etcd as unknown as Record<string, string>)[field] = v;
    }
    strategy = { kind: 'etcd-lock', etcd, group, reclaimStaleAfterMs: reclaimMs };
  } else problems.push(`unknown REBOOT_STRATEGY "${strategyName}": use etcd-lock, reboot or off`);

  if (problems.length > 0 || !strategy) throw new Error(`invalid locksmithd configuration:\n  ${problems.join('\n  ')}`);
  const health = get('LOCKSMITHD_HEALTH_UNITS');
  return {
    strategy,
    windows,
    timeZone,
    machineId: get('LOCKSMITHD_MACHINE_ID'),
    healthUnits: health ? health.split(/[\s,]+/).filter(Boolean) : [],
  };
}
