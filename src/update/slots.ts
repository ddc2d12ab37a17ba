/**
 * USR slots and boot selection as CoreOS's grub module gptprio.next does it: among the USR
 * partitions (type 5DFBF5F4-...) with tries left or marked successful, the highest priority wins
 * (priority 0 never; on a tie the lower partition number); if it has tries left, one is used up,
 * rewriting both copies of the table.
 */
import { attr, readGpt, updateGpt } from './gpt';
import type { GptEntry } from './gpt';

/** coreos-usr / flatcar-rootfs. */
export const usrTypeGuid = '5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6';

export interface BootChoice {
  partition: number;
  uniqueGuid: string;
  label: string;
  /** Whether a try was used up (the table was written). */
  decremented: boolean;
}

/** The entry gptprio would boot, without changing anything; undefined when none can boot. */
export function bestSlot(entries: GptEntry[]): GptEntry | undefined {
  let best: GptEntry | undefined;
  for (const e of entries) {
    if (e.typeGuid !== usrTypeGuid) continue;
    const p = attr.priority(e.attributes);
    if (p === 0 || (attr.tries(e.attributes) === 0 && !attr.successful(e.attributes))) continue;
    if (!best || p > attr.priority(best.attributes)) best = e; // strictly greater: ties keep the lower number
  }
  return best;
}

/** Picks the slot to boot and uses up one of its tries, as the boot loader does. */
export function bootNext(disk: string): BootChoice {
  const chosen = bestSlot(readGpt(disk).entries);
  if (!chosen) throw new Error(`${disk}: no USR partition can boot (none has tries left or is marked successful with a priority above 0)`);
  const decremented = attr.tries(chosen.attributes) > 0;
  if (decremented) {
    updateGpt(disk, (entries) => {
      const e = entries[chosen.number - 1]!;
      e.attributes = attr.with(e.attributes, { tries: attr.tries(e.attributes) - 1 });
    });
  }
  return { partition: chosen.number, uniqueGuid: chosen.uniqueGuid, label: chosen.name, decremented };
}

export interface Slots {
  active: GptEntry;
  passive: GptEntry;
}

/**
 * The USR pair (type coreos-usr, labels USR-A and USR-B) and which one runs: the one whose unique
 * GUID `usr=PARTUUID=...` names on the kernel command line, or the one given for tests.
 */
export function findSlots(entries: GptEntry[], active: { partUuid?: string; label?: string }): Slots {
  const usr = entries.filter((e) => e.typeGuid === usrTypeGuid && (e.name === 'USR-A' || e.name === 'USR-B'));
  const a = usr.find((e) => e.name === 'USR-A');
  const b = usr.find((e) => e.name === 'USR-B');
  if (!a || !b) throw new Error('the disk has no USR-A and USR-B partitions of type coreos-usr');
  const current = usr.find((e) => (active.partUuid ? e.uniqueGuid === active.partUuid.toUpperCase() : e.name === active.label));
  if (!current) throw new Error(`neither USR partition is the running one (${active.partUuid ?? active.label ?? 'nothing given'})`);
  return { active: current, passive: current === a ? b : a };
}

/** The partition UUID in `usr=PARTUUID=...` (or mount.usr=) on a kernel command line. */
export function usrFromCmdline(cmdline: string): string | undefined {
  return /(?:^|\s)(?:mount\.)?usr=PARTUUID=([0-9a-fA-F-]{36})/.exec(cmdline)?.[1]?.toUpperCase();
}

function setAttrs(disk: string, number: number, f: Parameters<typeof attr.with>[1]): void {
  updateGpt(disk, (entries) => {
    const e = entries[number - 1]!;
    e.attributes = attr.with(e.attributes, f);
  });
}

/**
 * Finalize: the staged passive slot becomes the one to try next (priority above the active one,
 * one try, not yet successful), as update_engine's postinstall does. Only called with the lock held.
 */
export function finalize(disk: string, slots: Slots): void {
  const activePriority = Math.max(1, attr.priority(slots.active.attributes));
  updateGpt(disk, (entries) => {
    const active = entries[slots.active.number - 1]!;
    const passive = entries[slots.passive.number - 1]!;
    const top = Math.min(15, activePriority + 1);
    active.attributes = attr.with(active.attributes, { priority: top - 1 });
    passive.attributes = attr.with(passive.attributes, { priority: top, tries: 1, successful: false });
  });
}

/** After a healthy boot: the running slot is good (successful, no tries needed). */
export function markSuccessful(disk: string, running: GptEntry): void {
  setAttrs(disk, running.number, { successful: true, tries: 0 });
}

/** A slot whose payload failed a check: never booted (priority 0, no tries, not successful). */
export function markUnbootable(disk: string, slot: GptEntry): void {
  setAttrs(disk, slot.number, { priority: 0, tries: 0, successful: false });
}

/**
 * Whether this boot is a rollback: the other slot was finalized (higher priority) but never marked
 * successful and has no tries left, so the boot loader fell back to the running one.
 */
export function isRollback(slots: Slots): boolean {
  const p = slots.passive.attributes;
  return attr.priority(p) > attr.priority(slots.active.attributes) && !attr.successful(p) && attr.tries(p) === 0;
}

/** Whether the passive slot is finalized and not yet booted: above the active one, with its try. */
export function isFinalized(slots: Slots): boolean {
  const p = slots.passive.attributes;
  return attr.priority(p) > attr.priority(slots.active.attributes) && !attr.successful(p) && attr.tries(p) > 0;
}
