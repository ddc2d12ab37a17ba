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
