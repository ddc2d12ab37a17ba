/**
 * Reboot windows: locksmith's form (`Thu 23:00` weekly or `23:00` daily, with a length such as
 * `1h30m`, crossing midnight allowed), several of them, in a time zone (default: the machine's).
 * Pure: `now` is given.
 */
import { parseDuration } from './presence';

export interface RebootWindow {
  /** 0 = Sunday .. 6 = Saturday; undefined: every day. */
  day: number | undefined;
  /** Minutes after midnight. */
  minute: number;
  /** Length in minutes. */
  lengthMinutes: number;
  /** As written, for messages: `Thu 23:00 for 1h30m`. */
  text: string;
}

const days = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/** Parses a start (`Thu 23:00`, `23:00`) and a length (`1h30m`); throws with the reason. */
export function parseWindow(start: string, length: string): RebootWindow {
  const fields = start.trim().split(/\s+/);
  if (fields.length > 2) throw new Error(`invalid reboot window start "${start}": want "Thu 04:00" or "04:00"`);
  let day: number | undefined;
  if (fields.length === 2) {
    day = days.indexOf(fields[0]!.toLowerCase());
    if (day === -1) throw new Error(`invalid day of week "${fields[0]}" in reboot window start "${start}"`);
  }
  const m = /^(\d{1,2}):(\d{1,2})$/.exec(fields[fields.length - 1]!);
  const hour = m ? Number(m[1]) : NaN;
  const minute = m ? Number(m[2]) : NaN;
  if (!m || hour > 23 || minute > 59) throw new Error(`invalid time in reboot window start "${start}": want HH:MM, 00:00 to 23:59`);
  const ms = parseDuration(length);
  if (ms === undefined || ms <= 0) throw new Error(`invalid reboot window length "${length}": want a duration such as 1h30m`);
  const lengthMinutes = Math.round(ms / 60_000);
  const period = day === undefined ? 1440 : 10080;
  if (lengthMinutes >= period) throw new Error(`reboot window length ${length} is not shorter than its period (${day === undefined ? 'a day' : 'a week'})`);
  return { day, minute: hour * 60 + minute, lengthMinutes, text: `${start.trim()} for ${length.trim()}` };
}

/** Wall-clock weekday and minute of `now` in `timeZone` (undefined: the machine's zone). */
export function wallClock(now: Date, timeZone?: string): { day: number; minute: number } {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(now);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
  return { day: days.indexOf(get('weekday').toLowerCase()), minute: Number(get('hour')) * 60 + Number(get('minute')) };
}

/** Checks a time zone name; throws for one Intl does not know. */
export function checkTimeZone(timeZone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
  } catch {
    throw new Error(`unknown time zone "${timeZone}": use an IANA name such as Europe/Berlin or UTC`);
  }
}

export interface WindowState {
  /** Inside a window now. */
  inside: boolean;
  /** When the window we are in ends (inside), or when the next one starts (outside). */
  at: Date;
}

/**
 * Where `now` stands against the windows: inside one (and until when), or when the next opens.
 * No windows: always inside. Minutes are wall-clock minutes in the zone (a DST change inside a
 * window shifts its end by the change).
 */
export function windowState(now: Date, windows: RebootWindow[], timeZone?: string): WindowState {
  if (windows.length === 0) return { inside: true, at: new Date(8.64e15) };
  const clock = wallClock(now, timeZone);
  const weekMinute = clock.day * 1440 + clock.minute;
  const seconds = now.getUTCSeconds() * 1000 + now.getUTCMilliseconds();
  let insideUntil: number | undefined;
  let nextStart = Infinity;
  for (const w of windows) {
    const period = w.day === undefined ? 1440 : 10080;
    const start = w.day === undefined ? w.minute : w.day * 1440 + w.minute;
    const here = w.day === undefined ? clock.minute : weekMinute;
    const since = (((here - start) % period) + period) % period; // minutes since the latest start
    if (since < w.lengthMinutes) insideUntil = Math.max(insideUntil ?? 0, w.lengthMinutes - since);
    else nextStart = Math.min(nextStart, period - since);
  }
  const base = now.getTime() - seconds;
  if (insideUntil !== undefined) return { inside: true, at: new Date(base + insideUntil * 60_000) };
  return { inside: false, at: new Date(base + nextStart * 60_000) };
}
