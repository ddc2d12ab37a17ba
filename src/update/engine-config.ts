/**
 * update_engine's settings as the reference reads them: each key from the first of
 * /etc/coreos/update.conf, /usr/share/coreos/update.conf and /usr/share/coreos/release that has it
 * (Flatcar's /etc/flatcar and /usr/share/flatcar names too), OEM identity from /etc/oem-release or
 * /usr/share/oem/oem-release, the machine and boot ids, and the version first installed (kept in
 * the prefs directory on first run).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { machine as unameMachine } from 'node:os';
import { join } from 'node:path';
import { parseEnvFile } from '../system/env-file';
import { RootedFs } from '../system/rooted-fs';
import { coreosAppId } from './omaha';
import type { Identity } from './omaha';

export const defaultServer = 'https://public.update.flatcar-linux.net/v1/update/';

/** Where keys are looked up, first hit winning. */
export const configFiles = [
  '/etc/coreos/update.conf',
  '/etc/flatcar/update.conf',
  '/usr/share/coreos/update.conf',
  '/usr/share/flatcar/update.conf',
  '/usr/share/coreos/release',
  '/usr/share/flatcar/release',
];

export interface EngineSettings {
  /** The channel, sent as Omaha's track. */
  group: string;
  /** The Omaha endpoint; undefined when SERVER is not a URL (e.g. `disabled`): no checks, marking good still happens. */
  server: string | undefined;
  version: string;
  board: string;
  appId: string;
  oem: string | undefined;
  oemVersion: string | undefined;
  machineAlias: string | undefined;
}

/** A host file that is ours (the prefs directory, the kernel's boot id), not the root's. */
function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** A file under the root, read inside it: a link in the image cannot reach a host file. */
function readUnder(fs: RootedFs, inRoot: string): string | undefined {
  return fs.read(inRoot)?.toString('utf8');
}

/**
 * The settings under `root` (`/` on a machine). Missing files are fine; a missing version is an
 * error, and so is a file there that is not a regular file.
 */
export function readEngineSettings(root = '/'): EngineSettings {
  const fs = new RootedFs(root);
  const tiers = configFiles.map((f) => parseEnvFile(readUnder(fs, f) ?? ''));
  const get = (...keys: string[]) => {
    for (const tier of tiers) for (const k of keys) {
      const v = tier.get(k);
      if (v !== undefined && v !== '') return v;
    }
    return undefined;
  };
  const version = get('COREOS_RELEASE_VERSION', 'FLATCAR_RELEASE_VERSION');
  if (!version) throw new Error(`no COREOS_RELEASE_VERSION in ${configFiles.filter((f) => f.endsWith('release')).join(' or ')} under ${root}`);
  const serverText = get('SERVER') ?? defaultServer;
  const oem = parseEnvFile(readUnder(fs, '/etc/oem-release') ?? readUnder(fs, '/usr/share/oem/oem-release') ?? '');
  return {
    group: get('GROUP') ?? 'stable',
    server: /^https?:\/\//i.test(serverText) ? serverText : undefined,
    version,
    board: get('COREOS_RELEASE_BOARD', 'FLATCAR_RELEASE_BOARD') ?? 'amd64-usr',
    appId: get('COREOS_RELEASE_APPID', 'FLATCAR_RELEASE_APPID') ?? coreosAppId,
    oem: oem.get('ID'),
    oemVersion: oem.get('VERSION_ID'),
    machineAlias: get('MACHINE_ALIAS'),
  };
}

export interface IdentitySources {
  root?: string;
  prefsDir: string;
  bootIdFile?: string;
}

/** The Omaha identity: settings, /etc/machine-id, the kernel's boot id, and the aleph version (recorded on first use). */
export function machineIdentity(s: EngineSettings, src: IdentitySources): Identity {
  const fs = new RootedFs(src.root ?? '/');
  const machineId = (readUnder(fs, '/etc/machine-id') ?? '').trim();
  if (!/^[0-9a-f]{32}$/.test(machineId)) throw new Error(`/etc/machine-id under ${fs.root} does not hold a machine id`);
  const bootId = (read(src.bootIdFile ?? '/proc/sys/kernel/random/boot_id') ?? '').trim();
  const alephFile = join(src.prefsDir, 'aleph-version');
  let alephVersion = read(alephFile)?.trim();
  if (!alephVersion) {
    alephVersion = s.version;
    mkdirSync(src.prefsDir, { recursive: true });
    writeFileSync(alephFile, `${alephVersion}\n`);
  }
  return {
    appId: s.appId,
    version: s.version,
    track: s.group,
    board: s.board,
    machineId,
    bootId: `{${bootId}}`,
    ...(s.oem ? { oem: s.oem } : {}),
    ...(s.oemVersion ? { oemVersion: s.oemVersion } : {}),
    alephVersion,
    ...(s.machineAlias ? { machineAlias: s.machineAlias } : {}),
    arch: unameMachine(),
  };
}
