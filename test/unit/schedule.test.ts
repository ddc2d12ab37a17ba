/** The check schedule: 7 min then 45 min, ±10 min of fuzz, doubling backoff on server failures up to 4 h, PollInterval. */
import { isServerFailure, nextCheckIn } from '../../src/update/schedule';

const min = 60_000;
const at = (r: number) => () => r;

test('first check 7 minutes after start, then every 45, each with up to ±10 minutes of fuzz', () => {
  expect(nextCheckIn({ checks: 0, failures: 0 }, undefined, at(0.5))).toBe(7 * min);
  expect(nextCheckIn({ checks: 0, failures: 0 }, undefined, at(0))).toBe(0); // 7 - 10 min: at once
  expect(nextCheckIn({ checks: 3, failures: 0 }, undefined, at(0.5))).toBe(45 * min);
  expect(nextCheckIn({ checks: 3, failures: 0 }, undefined, at(0))).toBe(35 * min);
  expect(nextCheckIn({ checks: 3, failures: 0 }, undefined, at(0.999999))).toBeLessThanOrEqual(55 * min);
});

test('server failures double the wait up to 4 hours; PollInterval replaces the interval', () => {
  expect(nextCheckIn({ checks: 1, failures: 1 }, undefined, at(0.5))).toBe(90 * min);
  expect(nextCheckIn({ checks: 1, failures: 2 }, undefined, at(0.5))).toBe(180 * min);
  expect(nextCheckIn({ checks: 1, failures: 9 }, undefined, at(0.5))).toBe(240 * min);
  expect(nextCheckIn({ checks: 1, failures: 0, pollInterval: 600 }, undefined, at(0.5))).toBe(10 * min);
  expect([2, 2500, 2503, 2404, 34].map(isServerFailure)).toEqual([true, true, true, false, false]);
});
