/**
 * The update steps on a machine's disk, as update_engine and locksmithd use them: which disk and
 * slot are running, staging a payload into the passive slot (with a record of what was verified),
 * finalizing a staged slot, and marking the booted slot good after a healthy boot.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { applyPayload, hashSlot } from './apply-payload';
import type { ApplyOptions, ApplyResult } from './apply-payload';
import { attr, readGpt, sectorSize } from './gpt';
import { findSlots, finalize, isRollback, markSuccessful, usrFromCmdline } from './slots';
import type { Slots } from './slots';

export const defaultStateDir = '/var/lib/update_engine';

export interface Machine {
  disk: string;
  /** A USR-A/USR-B label or a partition UUID naming the running slot. */
  active: { label?: string; partUuid?: string };
}

export interface Discovery {
  disk?: string;
  active?: string;
  cmdlineFile?: string;
  mountinfoFile?: string;
  sysRoot?: string;
}

/** The block device mounted at /usr, as major:minor, from mountinfo. */
function usrDevice(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f[4] === '/usr') return f[2];
  }
  return undefined;
}

/**
 * Which disk and slot run: flags first, then usr=PARTUUID= on the kernel command line, then the
 * device mounted at /usr (its partition number and parent disk, from sysfs).
 */
export function discoverMachine(d: Discovery): Machine {
  const sys = d.sysRoot ?? '/sys';
  let active: Machine['active'] | undefined;
  if (d.active) active = /^[0-9a-f-]{36}$/i.test(d.active) ? { partUuid: d.active } : { label: d.active };
  let disk = d.disk;
  if (!active) {
    let cmdline = '';
    try {
      cmdline = readFileSync(d.cmdlineFile ?? '/proc/cmdline', 'utf8');
    } catch {
      // no command line to read
    }
    const partUuid = usrFromCmdline(cmdline);
    if (partUuid) {
      active = { partUuid };
      if (!disk) {
        try {
          const part = basename(realpathSync(`/dev/disk/by-partuuid/${partUuid.toLowerCase()}`));
          disk = `/dev/${basename(dirname(realpathSync(join(sys, 'class/block', part))))}`;
        } catch {
          // the disk must be named
        }
      }
    }
  }
  if (!active || !disk) {
    let dev: string | undefined;
    try {
      dev = usrDevice(readFileSync(d.mountinfoFile ?? '/proc/self/mountinfo', 'utf8'));
    } catch {
      dev = undefined;
    }
    if (dev) {
      try {
        const node = realpathSync(join(sys, 'dev/block', dev));
        const partition = readFileSync(join(node, 'partition'), 'utf8').trim();
        disk ??= `/dev/${basename(dirname(node))}`;
        active ??= { label: `#${partition}` };
      } catch {
        // /usr is not on a partition
      }
    }
  }
  if (!disk) throw new Error('cannot tell which disk holds the USR partitions: give --disk');
  if (!active) throw new Error('cannot tell which USR partition is running (no usr=PARTUUID= on the kernel command line, /usr not on a partition): give --active');
  return { disk, active };
}

/** The USR pair of the machine; an active label "#N" names the partition number. */
export function machineSlots(m: Machine): Slots {
  const entries = readGpt(m.disk).entries;
  const byNumber = m.active.label?.startsWith('#') ? entries[Number(m.active.label.slice(1)) - 1] : undefined;
  return findSlots(entries, byNumber ? { label: byNumber.name } : m.active);
}

export interface Staged {
  disk: string;
  partition: number;
  uniqueGuid: string;
  label: string;
  imageSize: number;
  imageSha256: string;
  payloadSha256: string;
  stagedAt: string;
}

const stagedFile = (stateDir: string) => join(stateDir, 'staged.json');

export function readStaged(stateDir: string): Staged | undefined {
  return readRecord<Staged>(stagedFile(stateDir));
}

function writeStaged(stateDir: string, s: Staged | undefined): void {
  writeRecord(stagedFile(stateDir), s);
}

/** A record of the state dir (written by writeRecord), or undefined when there is none or it is unreadable. */
function readRecord<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * Writes `text` to `file` so that it survives a power loss right after: a temp file, fsync, rename,
 * then fsync of the directory (the rename is only durable once the directory is). Undefined
 * removes the file, also durably. (A plain write can leave an empty file after a power loss: ext4
 * allocates the data later than it records the file.)
 */
export function writeDurably(file: string, text: string | undefined): void {
  if (text === undefined) rmSync(file, { force: true });
  else {
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  }
  let dir: number;
  try {
    dir = openSync(dirname(file), 'r');
  } catch {
    return; // no directory: nothing was there to remove
  }
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** A record as JSON, written durably (writeDurably); undefined removes it. */
function writeRecord(file: string, value: object | undefined): void {
  writeDurably(file, value ? `${JSON.stringify(value, null, 2)}\n` : undefined);
}

/** Forgets what was staged. */
export function clearStaged(stateDir: string): void {
  writeStaged(stateDir, undefined);
}

/** Writes and verifies a payload into the passive slot and records it as staged. */
export async function stage(m: Machine, stateDir: string, opts: Omit<ApplyOptions, 'disk' | 'target'>): Promise<ApplyResult & { slots: Slots }> {
  const slots = machineSlots(m);
  // What was staged stays recorded until the slot is really about to be overwritten: a payload
  // refused before its first write (a typo, a refused URL, a bad header) leaves it as it was.
  const result = await applyPayload({ ...opts, disk: m.disk, target: slots.passive, onWriteStart: () => writeStaged(stateDir, undefined) });
  writeStaged(stateDir, {
    disk: m.disk,
    partition: slots.passive.number,
    uniqueGuid: slots.passive.uniqueGuid,
    label: slots.passive.name,
    imageSize: result.imageSize,
    imageSha256: result.imageSha256,
    payloadSha256: result.payloadSha256,
    stagedAt: new Date().toISOString(),
  });
  return { ...result, slots };
}

/**
 * The record that Finalize switched (or was about to switch) the boot flags to a slot. It is what
 * tells a rollback (the old slot runs after a finalize) from a reboot or power loss before
 * Finalize (the old slot runs, nothing was ever switched): only the first is reported as one.
 */
export interface Finalized {
  partition: number;
  uniqueGuid: string;
  label: string;
  imageSha256: string;
  finalizedAt: string;
}

const finalizedFile = (stateDir: string) => join(stateDir, 'finalized.json');

export function readFinalized(stateDir: string): Finalized | undefined {
  return readRecord<Finalized>(finalizedFile(stateDir));
}

/** Forgets the finalize record, once the boot after it has been reported (or nothing was finalized). */
export function clearFinalized(stateDir: string): void {
  writeRecord(finalizedFile(stateDir), undefined);
}

/**
 * Switches the boot flags to the staged slot, after checking it still holds what was verified.
 * Refuses when nothing is staged in the passive slot. The finalize record is on disk before the
 * flags change: after any crash, flags switched imply the record (the record without switched
 * flags is a finalize that never happened, which the boot after tells from the GPT).
 */
export async function finalizeStaged(m: Machine, stateDir: string): Promise<Slots> {
  const slots = machineSlots(m);
  const staged = readStaged(stateDir);
  if (!staged || staged.uniqueGuid !== slots.passive.uniqueGuid) {
    throw new Error(`no verified update is staged in ${slots.passive.name}: nothing to finalize`);
  }
  const fd = openSync(m.disk, 'r');
  let hash: Buffer;
  try {
    hash = await hashSlot(fd, Number(slots.passive.firstLba) * sectorSize, staged.imageSize);
  } finally {
    closeSync(fd);
  }
  if (hash.toString('hex') !== staged.imageSha256) {
    throw new Error(`${slots.passive.name} changed since it was staged (SHA-256 ${hash.toString('hex')}, staged ${staged.imageSha256}): not finalized`);
  }
  const record: Finalized = { partition: slots.passive.number, uniqueGuid: slots.passive.uniqueGuid, label: slots.passive.name, imageSha256: staged.imageSha256, finalizedAt: new Date().toISOString() };
  writeRecord(finalizedFile(stateDir), record);
  finalize(m.disk, slots);
  writeStaged(stateDir, undefined);
  return machineSlots(m);
}

export interface MarkResult {
  slots: Slots;
  rollback: boolean;
  changed: boolean;
}

/** After a healthy boot: the running slot is marked successful; says whether this boot is a rollback. */
export function markGood(m: Machine): MarkResult {
  const before = machineSlots(m);
  const a = before.active.attributes;
  const changed = !attr.successful(a) || attr.tries(a) !== 0;
  if (changed) markSuccessful(m.disk, before.active);
  return { slots: machineSlots(m), rollback: isRollback(before), changed };
}

