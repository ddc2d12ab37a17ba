/**
 * When update_engine checks next (shared/reference/update-engine.md 1.4): the first check 7 minutes
 * after start, then every 45 minutes, each with up to ±10 minutes of random fuzz so a fleet does not
 * check in step; after server errors (HTTP 500 and 503, or no answer) the interval doubles per
 * failure up to 4 hours; a server's PollInterval replaces the regular interval.
 */
const minute = 60_000;

export interface SchedulePolicy {
  firstMs: number;
  intervalMs: number;
  fuzzMs: number;
  maxBackoffMs: number;
}

export const defaultSchedule: SchedulePolicy = { firstMs: 7 * minute, intervalMs: 45 * minute, fuzzMs: 10 * minute, maxBackoffMs: 240 * minute };

export interface ScheduleState {
  /** Checks so far. */
  checks: number;
  /** Server failures in a row. */
  failures: number;
  /** The server's PollInterval, in seconds, from its last answer. */
  pollInterval?: number;
}

/** Milliseconds until the next check. `random` gives [0, 1). */
export function nextCheckIn(state: ScheduleState, policy: SchedulePolicy = defaultSchedule, random: () => number = Math.random): number {
  const fuzz = Math.round((random() * 2 - 1) * policy.fuzzMs);
  if (state.checks === 0) return Math.max(0, policy.firstMs + fuzz);
  if (state.failures > 0) return Math.min(policy.maxBackoffMs, policy.intervalMs * 2 ** state.failures) + Math.abs(fuzz);
  const interval = state.pollInterval !== undefined ? state.pollInterval * 1000 : policy.intervalMs;
  return Math.max(0, interval + fuzz);
}

/** Whether a failed check counts toward the backoff: the server failing (5xx) or not answering, not a bad answer. */
export function isServerFailure(code: number): boolean {
  return code === 2 || (code >= 2500 && code < 2600);
}
